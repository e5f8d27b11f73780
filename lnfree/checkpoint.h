// Loading GPT-2 weights into the engine's layout (lnfree/model.h), and writing llm.c's model file.
//  - Hugging Face: a directory with config.json and model.safetensors, or a sharded model.safetensors.index.json;
//    F32/F16/BF16 tensors; Conv1D (in, out) weights transposed to (out, in); names with or without "transformer.";
//    the attn.bias / attn.masked_bias buffers ignored; lm_head must be absent or equal to wte (tied).
//  - llm.c: magic 20240326, version 3 (float32) or 5 (bfloat16), 256-int header, 16 tensors (llmc-notes 2.1).
// Every problem is an lnfree::Error naming the file, what is wrong and what to do.
#pragma once
#include <string>

#include "lnfree/checksum.h"
#include "lnfree/model.h"

namespace lnfree {

inline int padded_vocab(int V) { return (V + 127) / 128 * 128; }

// What a layer_norm_epsilon above 1 (an LN-free export, lnfree/export.h) meets: refused where a model with
// LayerNorm is needed (training), taken as it is by evaluation (lnfree/eval_model.h).
enum class HfLayerNorm { real, any };
ParameterSet<float> load_hf_checkpoint(const std::string& dir, HfLayerNorm accept = HfLayerNorm::real);
// config.json alone (a model to pretrain needs no weights)
GPT2Config read_hf_config(const std::string& dir, HfLayerNorm accept = HfLayerNorm::real);
// config.json's layer_norm_epsilon (transformers' default 1e-5 when absent)
double hf_layer_norm_epsilon(const std::string& dir);
// GPT-2's initialisation: N(0, 0.02), residual projections N(0, 0.02 / sqrt(2L)), LayerNorm 1 and 0, biases 0
ParameterSet<float> init_gpt2(const GPT2Config& c, uint64_t seed);
ParameterSet<float> load_llmc_model(const std::string& path);
// A directory is read as a Hugging Face checkpoint, a file as an llm.c model file.
ParameterSet<float> load_model(const std::string& path);
// version 3, float32; returns the file's size and XXH64 (what a checkpoint records of it)
FileDigest write_llmc_model(const std::string& path, const ParameterSet<float>& params);

// Hugging Face names of the tensors of layer l (without "transformer."), in the engine's order of kParamNames.
std::string hf_tensor_name(int tensor, int layer);

}  // namespace lnfree
