// The fixed part of fuzz_checkpoint's checkpoint directory, shared with make_seeds so that the seeds' state.json
// match it: a small 2-layer model.bin, written once, and state.json's fields as the trainer writes them
// (lnfree/train_checkpoint.cuh's save_checkpoint: step, adam_t, sigma_ema, sigma, fixed, val_loss_initial,
// processes), before seal_checkpoint_state adds "files" and "state_xxh64". The directory holds no
// state.safetensors (the trainer's resume state, which load_eval_model does not read), so "files" records
// model.bin only.
#pragma once
#include <cmath>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/model.h"

namespace fuzz {

inline lnfree::ParameterSet<float> checkpoint_model() {
    lnfree::GPT2Config c;
    c.L = 2; c.C = 4; c.NH = 2; c.V = 5; c.Vp = 8; c.maxT = 4;
    lnfree::ParameterSet<float> p(c);
    for (size_t i = 0; i < p.data.size(); i++) p.data[i] = std::cos(0.3f * (float)i);
    return p;
}

inline nlohmann::json checkpoint_state(int step, const lnfree::LayerNormPaths& paths, const lnfree::SigmaState& sigma) {
    nlohmann::json fixed = {{"ln2", paths.ln2_fixed}, {"ln1qk", paths.ln1qk_fixed}, {"ln1v", paths.ln1v_fixed},
                            {"lnf", paths.lnf_fixed}};
    return {{"step", step}, {"adam_t", step}, {"sigma_ema", sigma.ema}, {"sigma", sigma.sigma}, {"fixed", fixed},
            {"val_loss_initial", 6.25}, {"processes", 1}};
}

}  // namespace fuzz
