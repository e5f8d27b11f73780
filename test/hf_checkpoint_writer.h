// Writes random GPT-2 checkpoints the way Hugging Face lays them out (config.json, Conv1D (in, out) weights,
// optional "transformer." prefix, attn.bias buffers, one file or shards with an index), for the loader's tests.
// The layout itself is checked against transformers in test/python/test_interop.py.
#pragma once
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/file_io.h"
#include "lnfree/safetensors.h"

namespace lnfree::test {

inline ParameterSet<float> random_params(const GPT2Config& c, uint32_t seed) {
    ParameterSet<float> p(c);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.1f);
    for (float& x : p.data) x = normal(rng);
    std::fill(p.tensor(WTE) + (size_t)c.V * c.C, p.tensor(WTE) + (size_t)c.Vp * c.C, 0.0f);  // padding rows
    return p;
}

// Values as the checkpoint stores them in `dtype` (what a loader must give back).
inline float stored_value(float x, const std::string& dtype) {
    if (dtype == "F16") return half_to_float(float_to_half(x));
    if (dtype == "BF16") return bf16_to_float(float_to_bf16(x));
    return x;
}

struct HfLayout {
    std::string dtype = "F32";
    bool prefix = false;   // "transformer." before every name
    int shards = 1;        // > 1: model-0000k-of-0000n.safetensors + model.safetensors.index.json
    bool buffers = true;   // h.{i}.attn.bias and masked_bias, as old checkpoints carry
};

inline void write_hf_checkpoint(const std::string& dir, const ParameterSet<float>& p, const HfLayout& layout,
                                nlohmann::json config = nullptr) {
    const GPT2Config& c = p.config;
    make_directories(dir);
    if (config.is_null())
        config = {{"model_type", "gpt2"}, {"n_layer", c.L}, {"n_embd", c.C}, {"n_head", c.NH}, {"vocab_size", c.V},
                  {"n_positions", c.maxT}, {"activation_function", "gelu_new"}, {"layer_norm_epsilon", 1e-5}};
    write_text_file(dir + "/config.json", config.dump());

    struct Stored { std::string name; std::vector<size_t> shape; std::vector<uint16_t> half; std::vector<float> f32; };
    std::vector<Stored> tensors;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const bool layered = !(i == WTE || i == WPE || i == LNFW || i == LNFB);
        const bool conv1d = i == QKVW || i == ATTPROJW || i == FCW || i == FCPROJW;
        std::vector<size_t> shape = param_shape(c, i);
        if (layered) shape.erase(shape.begin());
        if (i == WTE) shape[0] = c.V;
        size_t n = 1, slice = p.numel(i) / (layered ? c.L : 1);
        for (size_t d : shape) n *= d;
        for (int l = 0; l < (layered ? c.L : 1); l++) {
            const float* src = p.tensor(i) + (size_t)l * slice;
            std::vector<float> v(src, src + n);
            std::vector<size_t> s = shape;
            if (conv1d) {
                for (size_t o = 0; o < shape[0]; o++)
                    for (size_t r = 0; r < shape[1]; r++) v[r * shape[0] + o] = src[o * shape[1] + r];
                std::swap(s[0], s[1]);
            }
            Stored t{(layout.prefix ? "transformer." : "") + hf_tensor_name(i, l), s, {}, {}};
            if (layout.dtype == "F32") t.f32 = v;
            for (float x : v)
                if (layout.dtype != "F32") t.half.push_back(layout.dtype == "F16" ? float_to_half(x) : float_to_bf16(x));
            tensors.push_back(std::move(t));
        }
    }
    for (int l = 0; l < c.L && layout.buffers; l++) {
        std::vector<size_t> s = {1, 1, (size_t)c.maxT, (size_t)c.maxT};
        tensors.push_back({"h." + std::to_string(l) + ".attn.bias", s, {}, std::vector<float>((size_t)c.maxT * c.maxT, 1.0f)});
    }
    nlohmann::json weight_map;
    for (int k = 0; k < layout.shards; k++) {
        std::string file = layout.shards == 1 ? "model.safetensors"
                                              : "model-0000" + std::to_string(k + 1) + "-of-0000" + std::to_string(layout.shards) + ".safetensors";
        std::vector<SafetensorsView> views;
        for (size_t t = k; t < tensors.size(); t += layout.shards) {
            const Stored& s = tensors[t];
            size_t n = 1;
            for (size_t d : s.shape) n *= d;
            if (!s.f32.empty()) views.push_back({s.name, "F32", s.shape, s.f32.data(), n * 4});
            else views.push_back({s.name, layout.dtype, s.shape, s.half.data(), n * 2});
            weight_map[s.name] = file;
        }
        write_safetensors(dir + "/" + file, views, {{"format", "pt"}});
    }
    if (layout.shards > 1) write_text_file(dir + "/model.safetensors.index.json", nlohmann::json{{"weight_map", weight_map}}.dump());
}

}  // namespace lnfree::test
