#include "lnfree/export.h"

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/error.h"
#include "lnfree/file_io.h"
#include "lnfree/safetensors.h"

namespace lnfree {
namespace {

constexpr double kHfEps = 1e12, kHfScale = 1e6;

void check_sigma(const ParameterSet<float>& params, const std::vector<double>& sigma) {
    if (sigma.size() != (size_t)(2 * params.config.L + 1))
        throw Error("export: " + std::to_string(sigma.size()) + " sigma values given, the model needs 2L+1 = " +
                    std::to_string(2 * params.config.L + 1));
    for (double s : sigma)
        if (!(s > 0) || !std::isfinite(s)) throw Error("export: every sigma must be positive and finite");
}

// Folds y = S(x) W^T + b, S(x) = (x - mean(x)) * gamma / sigma + beta, into y = x W'^T... returned in the reading
// layout (in = C rows, out columns): W'[i, o] = g_i W[o, i] - mean_i(g_i W[o, i]) with g = gamma / sigma, and
// b'[o] = b[o] + sum_i beta_i W[o, i]. W is (out, in) with in = C.
void fold_reader(const float* W, const float* b, const float* gamma, const float* beta, double sigma, int C, int out,
                 std::vector<double>& Wf, std::vector<double>& bf) {
    Wf.assign((size_t)C * out, 0.0);
    bf.assign(out, 0.0);
    for (int o = 0; o < out; o++) {
        double mean = 0.0, shift = b ? b[o] : 0.0;
        for (int i = 0; i < C; i++) {
            double w = (double)gamma[i] / sigma * W[(size_t)o * C + i];
            Wf[(size_t)i * out + o] = w;
            mean += w;
            shift += (double)beta[i] * W[(size_t)o * C + i];
        }
        mean /= C;
        for (int i = 0; i < C; i++) Wf[(size_t)i * out + o] -= mean;
        bf[o] = shift;
    }
}

}  // namespace

std::vector<NamedTensor> fold_for_transformer_lens(const ParameterSet<float>& params, const std::vector<double>& sigma) {
    check_sigma(params, sigma);
    const GPT2Config& c = params.config;
    const int L = c.L, C = c.C, NH = c.NH, hd = C / NH, V = c.V;
    std::vector<NamedTensor> out;
    auto add = [&](const std::string& name, std::vector<size_t> shape, std::vector<double> values) {
        out.push_back({name, std::move(shape), std::move(values)});
    };
    add("embed.W_E", {(size_t)V, (size_t)C}, std::vector<double>(params.tensor(WTE), params.tensor(WTE) + (size_t)V * C));
    add("pos_embed.W_pos", {(size_t)c.maxT, (size_t)C},
        std::vector<double>(params.tensor(WPE), params.tensor(WPE) + (size_t)c.maxT * C));
    std::vector<double> Wf, bf;
    for (int l = 0; l < L; l++) {
        const std::string p = "blocks." + std::to_string(l) + ".";
        // ln_1 folded into all of QKV (both paths share gamma, beta, sigma), split per head: W_Q [NH, C, hd]
        fold_reader(params.tensor(QKVW) + (size_t)l * 3 * C * C, params.tensor(QKVB) + (size_t)l * 3 * C,
                    params.tensor(LN1W) + (size_t)l * C, params.tensor(LN1B) + (size_t)l * C, sigma[ln1_module(l)], C,
                    3 * C, Wf, bf);
        const char* names[3] = {"Q", "K", "V"};
        for (int part = 0; part < 3; part++) {
            std::vector<double> W((size_t)NH * C * hd), b((size_t)NH * hd);
            for (int h = 0; h < NH; h++)
                for (int j = 0; j < hd; j++) {
                    const int col = part * C + h * hd + j;
                    for (int i = 0; i < C; i++) W[((size_t)h * C + i) * hd + j] = Wf[(size_t)i * 3 * C + col];
                    b[(size_t)h * hd + j] = bf[col];
                }
            add(p + "attn.W_" + names[part], {(size_t)NH, (size_t)C, (size_t)hd}, std::move(W));
            add(p + "attn.b_" + names[part], {(size_t)NH, (size_t)hd}, std::move(b));
        }
        // W_O [NH, hd, C] from c_proj (C_out, C_in)
        const float* Wo = params.tensor(ATTPROJW) + (size_t)l * C * C;
        std::vector<double> W_O((size_t)NH * hd * C);
        for (int h = 0; h < NH; h++)
            for (int j = 0; j < hd; j++)
                for (int m = 0; m < C; m++) W_O[((size_t)h * hd + j) * C + m] = Wo[(size_t)m * C + h * hd + j];
        add(p + "attn.W_O", {(size_t)NH, (size_t)hd, (size_t)C}, std::move(W_O));
        add(p + "attn.b_O", {(size_t)C},
            std::vector<double>(params.tensor(ATTPROJB) + (size_t)l * C, params.tensor(ATTPROJB) + (size_t)(l + 1) * C));
        // ln_2 folded into W_in [C, 4C]
        fold_reader(params.tensor(FCW) + (size_t)l * 4 * C * C, params.tensor(FCB) + (size_t)l * 4 * C,
                    params.tensor(LN2W) + (size_t)l * C, params.tensor(LN2B) + (size_t)l * C, sigma[ln2_module(L, l)], C,
                    4 * C, Wf, bf);
        add(p + "mlp.W_in", {(size_t)C, (size_t)4 * C}, Wf);
        add(p + "mlp.b_in", {(size_t)4 * C}, bf);
        const float* Wout = params.tensor(FCPROJW) + (size_t)l * C * 4 * C;  // (C, 4C) -> W_out [4C, C]
        std::vector<double> W_out((size_t)4 * C * C);
        for (int k = 0; k < 4 * C; k++)
            for (int m = 0; m < C; m++) W_out[(size_t)k * C + m] = Wout[(size_t)m * 4 * C + k];
        add(p + "mlp.W_out", {(size_t)4 * C, (size_t)C}, std::move(W_out));
        add(p + "mlp.b_out", {(size_t)C},
            std::vector<double>(params.tensor(FCPROJB) + (size_t)l * C, params.tensor(FCPROJB) + (size_t)(l + 1) * C));
    }
    // ln_f folded into an untied unembedding W_U [C, V] with a bias b_U [V]
    fold_reader(params.tensor(WTE), nullptr, params.tensor(LNFW), params.tensor(LNFB), sigma[lnf_module(L)], C, V, Wf, bf);
    add("unembed.W_U", {(size_t)C, (size_t)V}, Wf);
    add("unembed.b_U", {(size_t)V}, bf);
    return out;
}

namespace {

void write_float32_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata) {
    std::vector<std::vector<float>> storage;
    std::vector<SafetensorsView> views;
    storage.reserve(tensors.size());
    for (const NamedTensor& t : tensors) {
        storage.emplace_back(t.values.begin(), t.values.end());
        views.push_back(f32_view(t.name, t.shape, storage.back().data()));
    }
    write_safetensors(path, views, metadata);
}

// sigma empty: an ordinary GPT-2 checkpoint, LayerNorm kept (eps 1e-5, weights as they are)
void export_hf(const std::string& dir, const ParameterSet<float>& params, const std::vector<double>& sigma,
               const std::string& source_dir) {
    const GPT2Config& c = params.config;
    make_directories(dir);
    nlohmann::ordered_json config;
    if (!source_dir.empty() && file_exists(source_dir + "/config.json")) {
        config = nlohmann::ordered_json::parse(read_text_file(source_dir + "/config.json"), nullptr, false);
        if (config.is_discarded()) config = nlohmann::ordered_json::object();
    }
    config["architectures"] = {"GPT2LMHeadModel"};
    config["model_type"] = "gpt2";
    config["vocab_size"] = c.V;
    config["n_positions"] = c.maxT;
    config["n_ctx"] = c.maxT;
    config["n_embd"] = c.C;
    config["n_layer"] = c.L;
    config["n_head"] = c.NH;
    config["n_inner"] = nullptr;
    config["activation_function"] = "gelu_new";
    config["layer_norm_epsilon"] = sigma.empty() ? 1e-5 : kHfEps;
    config["torch_dtype"] = "float32";
    if (!config.contains("bos_token_id")) config["bos_token_id"] = c.V - 1;
    if (!config.contains("eos_token_id")) config["eos_token_id"] = c.V - 1;

    // HF names with the "transformer." prefix, Conv1D weights as (in, out), LayerNorm weights times 1e6 / sigma
    std::vector<NamedTensor> tensors;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const bool layered = !(i == WTE || i == WPE || i == LNFW || i == LNFB);
        std::vector<size_t> shape = param_shape(c, i);
        if (layered) shape.erase(shape.begin());
        if (i == WTE) shape[0] = c.V;
        const bool conv1d = i == QKVW || i == ATTPROJW || i == FCW || i == FCPROJW;
        size_t n = 1;
        for (size_t d : shape) n *= d;
        for (int l = 0; l < (layered ? c.L : 1); l++) {
            const float* src = params.tensor(i) + (size_t)l * n;
            std::vector<double> v(src, src + n);
            if (conv1d) {
                const size_t out = shape[0], in = shape[1];
                for (size_t o = 0; o < out; o++)
                    for (size_t r = 0; r < in; r++) v[r * out + o] = src[o * in + r];
                std::swap(shape[0], shape[1]);
            }
            const int module = i == LN1W ? ln1_module(l) : i == LN2W ? ln2_module(c.L, l) : i == LNFW ? lnf_module(c.L) : -1;
            if (module >= 0 && !sigma.empty())
                for (double& w : v) w *= kHfScale / sigma[module];
            tensors.push_back({"transformer." + hf_tensor_name(i, l), shape, std::move(v)});
            if (conv1d) std::swap(shape[0], shape[1]);
        }
    }
    write_float32_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
    write_text_file(dir + "/config.json", config.dump(2) + "\n");
    for (const char* f : {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                          "generation_config.json"}) {
        const std::string src = source_dir + "/" + f;
        if (!source_dir.empty() && file_exists(src)) write_text_file(dir + "/" + f, read_text_file(src));
    }
}

void export_transformer_lens(const std::string& dir, const ParameterSet<float>& params, const std::vector<double>& sigma) {
    const GPT2Config& c = params.config;
    make_directories(dir);
    write_float32_safetensors(dir + "/model.safetensors", fold_for_transformer_lens(params, sigma), {{"format", "pt"}});
    nlohmann::ordered_json config = {
        {"n_layers", c.L}, {"d_model", c.C}, {"n_ctx", c.maxT}, {"d_head", c.C / c.NH}, {"n_heads", c.NH},
        {"d_mlp", 4 * c.C}, {"d_vocab", c.V}, {"d_vocab_out", c.V}, {"act_fn", "gelu_new"},
        {"normalization_type", nullptr}, {"positional_embedding_type", "standard"},
        {"original_architecture", "GPT2LMHeadModel"}, {"default_prepend_bos", false}, {"dtype", "float32"}};
    write_text_file(dir + "/config.json", config.dump(2) + "\n");
}

}  // namespace

// Each export directory is written as "<dir>.tmp" and put in place of an older export only once complete
// (lnfree/file_io.h, StagedDirectory): a failed write (no space, a file-size limit) leaves the older export as it
// was and no temporary directory behind. The directory, not out_dir, is replaced: out_dir may hold other files.
void export_hf_with_layernorm(const std::string& dir, const ParameterSet<float>& params, const std::string& source_dir) {
    StagedDirectory hf(dir);
    export_hf(hf.path(), params, {}, source_dir);
    hf.commit();
}

void export_lnfree(const std::string& out_dir, const ParameterSet<float>& params, const std::vector<double>& sigma,
                   const std::string& source_dir) {
    check_sigma(params, sigma);
    StagedDirectory hf(out_dir + "/hf"), lens(out_dir + "/transformer_lens");
    export_hf(hf.path(), params, sigma, source_dir);
    export_transformer_lens(lens.path(), params, sigma);
    // both complete before either replaces its older export: only a failed rename between the two (the
    // filesystem gone read-only) can leave a new hf/ beside an old transformer_lens/
    hf.commit();
    lens.commit();
}

}  // namespace lnfree
