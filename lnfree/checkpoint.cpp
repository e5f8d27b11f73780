#include "lnfree/checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "lnfree/error.h"
#include "lnfree/file_io.h"
#include "lnfree/safetensors.h"

namespace lnfree {
namespace {

constexpr int kLlmcMagic = 20240326;

bool is_conv1d(int tensor) { return tensor == QKVW || tensor == ATTPROJW || tensor == FCW || tensor == FCPROJW; }
bool per_layer(int tensor) { return tensor != WTE && tensor != WPE && tensor != LNFW && tensor != LNFB; }

void check_finite(const ParameterSet<float>& p, const std::string& path) {
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const float* t = p.tensor(i);
        for (size_t k = 0; k < p.numel(i); k++)
            if (!std::isfinite(t[k]))
                throw Error(path + ": tensor " + kParamNames[i] + " holds a non-finite value at element " +
                            std::to_string(k) + "; the checkpoint is corrupt or diverged");
    }
}

int json_int(const nlohmann::json& config, const std::string& path, std::initializer_list<const char*> keys) {
    for (const char* k : keys)
        if (config.contains(k) && config[k].is_number_integer() && config[k].get<long>() > 0 &&
            config[k].get<long>() < (1L << 24))
            return config[k].get<int>();
    throw Error(path + ": needs a positive integer '" + std::string(*keys.begin()) + "'; is this a GPT-2 config.json?");
}

}  // namespace

std::string hf_tensor_name(int tensor, int layer) {
    const std::string h = "h." + std::to_string(layer) + ".";
    switch (tensor) {
        case WTE: return "wte.weight";
        case WPE: return "wpe.weight";
        case LN1W: return h + "ln_1.weight";
        case LN1B: return h + "ln_1.bias";
        case QKVW: return h + "attn.c_attn.weight";
        case QKVB: return h + "attn.c_attn.bias";
        case ATTPROJW: return h + "attn.c_proj.weight";
        case ATTPROJB: return h + "attn.c_proj.bias";
        case LN2W: return h + "ln_2.weight";
        case LN2B: return h + "ln_2.bias";
        case FCW: return h + "mlp.c_fc.weight";
        case FCB: return h + "mlp.c_fc.bias";
        case FCPROJW: return h + "mlp.c_proj.weight";
        case FCPROJB: return h + "mlp.c_proj.bias";
        case LNFW: return "ln_f.weight";
        default: return "ln_f.bias";
    }
}

namespace {

double hf_layer_norm_epsilon(const nlohmann::json& config) {
    const auto eps = config.find("layer_norm_epsilon");
    return eps != config.end() && eps->is_number() ? eps->get<double>() : 1e-5;
}

}  // namespace

GPT2Config read_hf_config(const std::string& dir, HfLayerNorm accept) {
    const std::string config_path = dir + "/config.json";
    if (!file_exists(config_path))
        throw Error(dir + ": no config.json; a Hugging Face GPT-2 checkpoint directory is expected (dev/download_model.py fetches one)");
    nlohmann::json config = nlohmann::json::parse(read_text_file(config_path), nullptr, false);
    if (config.is_discarded() || !config.is_object()) throw Error(config_path + ": not valid JSON");
    if (config.contains("model_type") && config["model_type"] != "gpt2")
        throw Error(config_path + ": model_type is " + config["model_type"].dump() + ", only gpt2 is supported");
    if (config.contains("activation_function") && config["activation_function"] != "gelu_new" &&
        config["activation_function"] != "gelu_pytorch_tanh")
        throw Error(config_path + ": activation_function " + config["activation_function"].dump() +
                    " is not GPT-2's tanh GELU (gelu_new)");
    if (config.contains("n_inner") && !config["n_inner"].is_null())
        throw Error(config_path + ": n_inner is set; only GPT-2's MLP width 4 * n_embd is supported");
    if (accept == HfLayerNorm::real && hf_layer_norm_epsilon(config) > 1.0)
        throw Error(config_path + ": layer_norm_epsilon is " + config["layer_norm_epsilon"].dump() +
                    ": this is an LN-free export, not a model with LayerNorm to remove");
    GPT2Config c;
    c.L = json_int(config, config_path, {"n_layer"});
    c.C = json_int(config, config_path, {"n_embd"});
    c.NH = json_int(config, config_path, {"n_head"});
    c.V = json_int(config, config_path, {"vocab_size"});
    c.maxT = json_int(config, config_path, {"n_positions", "n_ctx"});
    c.Vp = padded_vocab(c.V);
    if (c.C % c.NH != 0)
        throw Error(config_path + ": n_embd " + std::to_string(c.C) + " is not divisible by n_head " + std::to_string(c.NH));
    return c;
}

double hf_layer_norm_epsilon(const std::string& dir) {
    const nlohmann::json config = nlohmann::json::parse(read_text_file(dir + "/config.json"), nullptr, false);
    return config.is_object() ? hf_layer_norm_epsilon(config) : 1e-5;
}

ParameterSet<float> load_hf_checkpoint(const std::string& dir, HfLayerNorm accept) {
    const GPT2Config c = read_hf_config(dir, accept);
    // the files holding the tensors, and which file holds which name
    std::vector<std::unique_ptr<SafetensorsFile>> files;
    std::map<std::string, const SafetensorsFile*> where;
    const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
    if (file_exists(single)) {
        files.push_back(std::make_unique<SafetensorsFile>(single));
    } else if (file_exists(index)) {
        nlohmann::json j = nlohmann::json::parse(read_text_file(index), nullptr, false);
        if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object())
            throw Error(index + ": no weight_map object; the index is corrupt");
        std::set<std::string> shard_names;
        for (auto& [name, file] : j["weight_map"].items()) {
            if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos)
                throw Error(index + ": the shard of '" + name + "' is not a plain file name");
            shard_names.insert(file.get<std::string>());
        }
        for (const std::string& s : shard_names) files.push_back(std::make_unique<SafetensorsFile>(dir + "/" + s));
    } else {
        throw Error(dir + ": neither model.safetensors nor model.safetensors.index.json; download the safetensors weights");
    }
    for (auto& f : files)
        for (auto& [name, t] : f->tensors()) {
            std::string key = name.rfind("transformer.", 0) == 0 ? name.substr(12) : name;
            if (where.count(key)) throw Error(f->path() + ": tensor '" + key + "' appears twice in the checkpoint");
            where[key] = f.get();
        }

    ParameterSet<float> p(c);
    std::set<std::string> used;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const std::vector<size_t> shape = param_shape(c, i);
        const int layers = per_layer(i) ? c.L : 1;
        // one layer's slice of the engine's tensor: the HF tensor's shape is that, transposed for Conv1D
        std::vector<size_t> hf_shape(per_layer(i) ? shape.begin() + 1 : shape.begin(), shape.end());
        if (i == WTE) hf_shape[0] = c.V;
        if (is_conv1d(i)) std::swap(hf_shape[0], hf_shape[1]);
        size_t slice = 1;
        for (size_t d : shape) slice *= d;
        slice /= layers;
        for (int l = 0; l < layers; l++) {
            const std::string name = hf_tensor_name(i, l);
            auto it = where.find(name);
            if (it == where.end())
                throw Error(dir + ": tensor '" + name + "' is missing; the checkpoint is incomplete or not GPT-2");
            const std::string stored = it->second->has(name) ? name : "transformer." + name;
            const SafetensorsTensor& info = it->second->info(stored);
            if (info.shape != hf_shape) {
                std::string want, got;
                for (size_t d : hf_shape) want += (want.empty() ? "" : "x") + std::to_string(d);
                for (size_t d : info.shape) got += (got.empty() ? "" : "x") + std::to_string(d);
                throw Error(it->second->path() + ": tensor '" + stored + "' has shape " + got + ", config.json implies " +
                            want + "; the config and the weights disagree");
            }
            std::vector<float> v = it->second->floats(stored);
            float* dst = p.tensor(i) + (size_t)l * slice;
            if (is_conv1d(i)) {  // (in, out) -> (out, in)
                const size_t in = hf_shape[0], out = hf_shape[1];
                for (size_t r = 0; r < in; r++)
                    for (size_t o = 0; o < out; o++) dst[o * in + r] = v[r * out + o];
            } else {
                std::memcpy(dst, v.data(), v.size() * sizeof(float));  // wte rows V..Vp-1 stay zero
            }
            used.insert(name);
        }
    }
    for (auto& [name, file] : where) {
        if (used.count(name)) continue;
        const bool buffer = name.size() > 9 && (name.find(".attn.bias") != std::string::npos ||
                                                name.find(".attn.masked_bias") != std::string::npos);
        if (buffer) continue;
        if (name == "lm_head.weight") {
            if (file->floats(file->has(name) ? name : "transformer." + name) !=
                std::vector<float>(p.tensor(WTE), p.tensor(WTE) + (size_t)c.V * c.C))
                throw Error(file->path() + ": lm_head.weight differs from wte.weight; only GPT-2's tied unembedding is supported");
            continue;
        }
        throw Error(file->path() + ": unexpected tensor '" + name + "'; is this a GPT-2 (GPT2LMHeadModel) checkpoint?");
    }
    check_finite(p, dir);
    return p;
}

ParameterSet<float> init_gpt2(const GPT2Config& c, uint64_t seed) {
    ParameterSet<float> p(c);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.02f), residual(0.0f, 0.02f / std::sqrt(2.0f * c.L));
    for (int i : {WTE, WPE, QKVW, FCW})
        for (size_t k = 0; k < p.numel(i); k++) p.tensor(i)[k] = normal(rng);
    for (int i : {ATTPROJW, FCPROJW})  // GPT-2 scales the residual projections by 1/sqrt(2L)
        for (size_t k = 0; k < p.numel(i); k++) p.tensor(i)[k] = residual(rng);
    for (int i : {LN1W, LN2W, LNFW}) std::fill(p.tensor(i), p.tensor(i) + p.numel(i), 1.0f);
    std::fill(p.tensor(WTE) + (size_t)c.V * c.C, p.tensor(WTE) + (size_t)c.Vp * c.C, 0.0f);
    return p;
}

ParameterSet<float> load_llmc_model(const std::string& path) {
    MappedFile f(path);
    if (f.size() < 1024) throw Error(path + ": shorter than llm.c's 1024-byte header; the file is truncated or not an llm.c model");
    int32_t h[256];
    std::memcpy(h, f.data(), 1024);
    if (h[0] != kLlmcMagic)
        throw Error(path + ": bad magic " + std::to_string(h[0]) + " (llm.c model files have " + std::to_string(kLlmcMagic) + ")");
    if (h[1] != 3 && h[1] != 5)
        throw Error(path + ": llm.c model version " + std::to_string(h[1]) + " is not supported; use version 3 (float32) or 5 (bfloat16)");
    GPT2Config c;
    c.maxT = h[2]; c.V = h[3]; c.L = h[4]; c.NH = h[5]; c.C = h[6]; c.Vp = h[7];
    if (c.maxT <= 0 || c.V <= 0 || c.L <= 0 || c.NH <= 0 || c.C <= 0 || c.Vp < c.V || c.C % c.NH != 0 ||
        c.maxT > (1 << 20) || c.Vp > (1 << 24) || c.L > 4096 || c.C > (1 << 16))
        throw Error(path + ": the header's shape (maxT " + std::to_string(c.maxT) + ", V " + std::to_string(c.V) + ", L " +
                    std::to_string(c.L) + ", NH " + std::to_string(c.NH) + ", C " + std::to_string(c.C) + ", Vp " +
                    std::to_string(c.Vp) + ") is not a valid GPT-2 shape; the file is corrupt");
    // the size check comes before any allocation: a corrupt header must not ask for gigabytes
    const size_t elem = h[1] == 3 ? 4 : 2;
    size_t numel = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) numel += param_numel(c, i);
    if (f.size() != 1024 + numel * elem)
        throw Error(path + ": " + std::to_string(f.size()) + " bytes, but the header's shape needs " +
                    std::to_string(1024 + numel * elem) + "; the file is truncated or corrupt");
    ParameterSet<float> p(c);
    const unsigned char* src = f.data() + 1024;
    if (elem == 4) {
        std::memcpy(p.data.data(), src, p.data.size() * 4);
    } else {
        for (size_t i = 0; i < p.data.size(); i++) {
            uint16_t b;
            std::memcpy(&b, src + 2 * i, 2);
            p.data[i] = bf16_to_float(b);
        }
    }
    check_finite(p, path);
    return p;
}

ParameterSet<float> load_model(const std::string& path) {
    if (std::filesystem::is_directory(path)) return load_hf_checkpoint(path);
    return load_llmc_model(path);
}

FileDigest write_llmc_model(const std::string& path, const ParameterSet<float>& params) {
    int32_t h[256] = {};
    const GPT2Config& c = params.config;
    h[0] = kLlmcMagic; h[1] = 3; h[2] = c.maxT; h[3] = c.V; h[4] = c.L; h[5] = c.NH; h[6] = c.C; h[7] = c.Vp;
    AtomicFile out(path);
    out.write(h, sizeof(h));
    out.write(params.data.data(), params.data.size() * sizeof(float));
    out.commit();
    return out.digest();
}

}  // namespace lnfree
