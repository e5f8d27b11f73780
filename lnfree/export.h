// Exports of an LN-free model (every path fixed, sigma known per LayerNorm module; method.md section 9):
//  - hf/: a stock GPT2LMHeadModel checkpoint that behaves as the LN-free model: config.json with
//    layer_norm_epsilon 1e12 and every LayerNorm weight gamma * 1e6 / sigma (biases unchanged), float32, the
//    released models' convention; tokenizer files copied from the source checkpoint when it had them.
//  - transformer_lens/: the model with no normalization at all, in TransformerLens naming for
//    normalization_type=None: gamma/sigma folded into the reading weights, the mean subtraction folded by centering
//    them over d_model, beta folded into the following biases, and an untied unembedding with a bias.
// Each directory is written as "<dir>.tmp" and replaces an older export only when complete (lnfree/file_io.h).
#pragma once
#include <string>
#include <vector>

#include "lnfree/model.h"

namespace lnfree {

struct NamedTensor {
    std::string name;
    std::vector<size_t> shape;
    std::vector<double> values;
};

// The TransformerLens state dict of the folded model, computed in float64. sigma: (2L+1) per module.
std::vector<NamedTensor> fold_for_transformer_lens(const ParameterSet<float>& params, const std::vector<double>& sigma);

// An ordinary Hugging Face GPT-2 checkpoint of a model that keeps LayerNorm (vanilla and pretraining runs).
void export_hf_with_layernorm(const std::string& dir, const ParameterSet<float>& params, const std::string& source_dir);

// Writes out_dir/hf and out_dir/transformer_lens. source_dir: the checkpoint the run started from ("" if none),
// whose config.json fields and tokenizer files are carried over.
void export_lnfree(const std::string& out_dir, const ParameterSet<float>& params, const std::vector<double>& sigma,
                   const std::string& source_dir);

}  // namespace lnfree
