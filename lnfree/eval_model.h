// A model to evaluate or sample from, whatever form it comes in, as the engine runs it: its weights, which
// LayerNorm paths are fixed and the sigma each module divides by, and where its tokenizer is.
//  - a Hugging Face directory with LayerNorm (every path real);
//  - an LN-free `hf/` export (layer_norm_epsilon 1e12, lnfree/export.h): every path fixed with sigma =
//    sqrt(epsilon), which is exactly what transformers computes for it, (x - mean) / sqrt(var + eps) * w, up to a
//    relative var / (2 eps);
//  - an llm.c model file (every path real);
//  - a run's checkpoint directory (checkpoint_<step>/: model.bin and state.json's paths and sigmas), or a run's
//    output directory (its newest intact checkpoint). Checkpoints are verified first (lnfree/checkpoint_integrity.h).
#pragma once
#include <string>

#include "lnfree/model.h"

namespace lnfree {

struct EvalModel {
    std::string label, path;
    ParameterSet<float> params;
    LayerNormPaths paths;
    SigmaState sigma;
    std::string tokenizer_dir;  // a directory with vocab.json (and merges.txt to encode); "" if none is known

    // "real" (every path), "none" (every path fixed) or "partial"
    std::string layernorm() const;
};

// path: as above; label: the name tables and eval.json use
EvalModel load_eval_model(const std::string& label, const std::string& path);

}  // namespace lnfree
