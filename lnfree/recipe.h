// A run's recipe: everything the published LayerNorm-removal procedure fixes per model size (method.md 4.2, 6.1 and
// section 14), as data. Presets reproduce the 2025 configs exactly; derive_recipe() extends them to any depth (the
// bundled tiny model); `vanilla` keeps LayerNorm with the same optimisation (the paper's baseline); `pretrain`
// trains a randomly initialised model with LayerNorm. A JSON file overrides any field, so ablations need no code.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/model.h"
#include "lnfree/schedule.h"

namespace lnfree {

struct Recipe {
    std::string name;
    // LayerNorm removal: the paths' events; empty keeps LayerNorm (vanilla, pretrain)
    std::vector<RemovalEvent> events;
    // the sigma estimator (method.md 3.3): momentum per module class, ln_1's calls per micro-batch
    double momentum_ln1 = 0.9, momentum_ln2 = 0.9, momentum_lnf = 0.9;
    int ln1_calls = 3;
    // the auxiliary loss on the ln_f input (method.md 5)
    double w_aux = 0.0;
    // optimisation (method.md 6.1)
    LRSchedule lr;
    int steps = 0;              // optimizer steps run (may stop before lr.length)
    int micro_batch = 1;        // sequences per micro-step
    int grad_accum = 1;         // micro-steps per optimizer step
    int seq_len = 1024;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
    bool decay_layernorm_weights = true;  // the substitute's gamma is decayed in 2025; nn.LayerNorm's weight is not
    double clip = 1.0;
    double dropout = 0.1;
    bool ignore_eot_targets = true;       // the training loss skips end-of-text targets (method.md 7.1)
    bool random_init = false;             // pretrain: start from random weights
    bool stochastic_rounding = true;      // bf16 weight copy
    // a step's loss above this multiple of the mean of the previous 10 steps is marked a spike (0: never)
    double spike_factor = 1.5;
    // sigma per module read from a JSON file instead of measured on the first batch (doc/trainer.md); with
    // momentum 1 it never moves: the 2024 recipe's fixed values, or another run's summary.json
    std::string sigma_file;
    // how training sequences are drawn: T-token chunks without replacement (2025), or windows at random token
    // offsets with every target defined (2024, nanoGPT's get_batch)
    enum class Sampling { chunks, random_windows } sampling = Sampling::chunks;
};

// "small", "medium", "large", "xl" (the 2025 `*_aux` configs), "small-2024" (the 2024 public code, method.md 4.3
// and 6.2), "vanilla" (LayerNorm kept, the optimisation of the preset for this depth), "pretrain"; L is the
// model's depth (checked against a size preset).
Recipe preset_recipe(const std::string& name, int L);
// The 2025 schedule's shape for any depth L (gaps 2/2/3 after a start of max(2, steps/15)), fitted into `steps`.
Recipe derive_recipe(int L, int steps);
// Events of the 2025 config formula: ln2 from start (gap_ln2), then ln1qk, ln1v, lnf each after L gaps of the last.
std::vector<RemovalEvent> removal_schedule(int L, int start, int gap_ln2, int gap_ln1qk, int gap_ln1v);

// Overrides from JSON (a recipe file): any field by its name; unknown fields are an lnfree::Error naming `source`.
void apply_recipe_json(Recipe& r, const nlohmann::json& j, const std::string& source);
nlohmann::json recipe_to_json(const Recipe& r);
// sigma of every module (ema = sigma) from a JSON object {"blocks.<l>.ln_1": s, "blocks.<l>.ln_2": s, "ln_f": s}
// or a summary.json holding one under "sigma"; a missing module or a value that is not positive is an Error.
SigmaState read_sigma_file(const std::string& path, int L);
// Which tensors are weight-decayed: every non-bias tensor; LayerNorm weights only if decay_layernorm_weights.
std::array<bool, NUM_PARAM_TENSORS> decay_mask(const Recipe& r);

}  // namespace lnfree
