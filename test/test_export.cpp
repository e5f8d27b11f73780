// The LN-free exports. The folded TransformerLens state dict, run through a float64 forward with no normalization,
// must give the logits of the reference model with every LayerNorm path fixed, to 1e-9 relative. The hf/ export
// must hold gamma * 1e6 / sigma in every LayerNorm weight, unchanged biases and layer_norm_epsilon 1e12.
// (Loading both exports in transformers and TransformerLens themselves: test/python/test_interop.py.)
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <map>

#include "lnfree/export.h"
#include "lnfree/reference/gpt2.h"
#include "test/fixtures.h"
#include "test/hf_checkpoint_writer.h"

using namespace lnfree;
using namespace lnfree::test;

namespace {

// TransformerLens' forward for normalization_type=None, act_fn gelu_new, in float64: logits (T, V).
std::vector<double> folded_forward(const std::map<std::string, NamedTensor>& sd, const GPT2Config& c, const std::vector<int>& tokens) {
    const int T = (int)tokens.size(), C = c.C, NH = c.NH, hd = C / NH, V = c.V, M = 4 * C;
    auto W = [&](const std::string& name) -> const std::vector<double>& { return sd.at(name).values; };
    std::vector<double> resid((size_t)T * C);
    for (int t = 0; t < T; t++)
        for (int m = 0; m < C; m++) resid[t * C + m] = W("embed.W_E")[(size_t)tokens[t] * C + m] + W("pos_embed.W_pos")[t * C + m];
    for (int l = 0; l < c.L; l++) {
        const std::string p = "blocks." + std::to_string(l) + ".";
        std::vector<double> q((size_t)NH * T * hd), k(q.size()), v(q.size()), attn_out((size_t)T * C, 0.0);
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++)
                for (int j = 0; j < hd; j++) {
                    double sq = W(p + "attn.b_Q")[h * hd + j], sk = W(p + "attn.b_K")[h * hd + j], sv = W(p + "attn.b_V")[h * hd + j];
                    for (int m = 0; m < C; m++) {
                        size_t w = ((size_t)h * C + m) * hd + j;
                        sq += resid[t * C + m] * W(p + "attn.W_Q")[w];
                        sk += resid[t * C + m] * W(p + "attn.W_K")[w];
                        sv += resid[t * C + m] * W(p + "attn.W_V")[w];
                    }
                    q[((size_t)h * T + t) * hd + j] = sq;
                    k[((size_t)h * T + t) * hd + j] = sk;
                    v[((size_t)h * T + t) * hd + j] = sv;
                }
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                std::vector<double> score(t + 1);
                double mx = -INFINITY, sum = 0.0;
                for (int s = 0; s <= t; s++) {
                    double d = 0.0;
                    for (int j = 0; j < hd; j++) d += q[((size_t)h * T + t) * hd + j] * k[((size_t)h * T + s) * hd + j];
                    score[s] = d / std::sqrt((double)hd);
                    mx = std::max(mx, score[s]);
                }
                for (int s = 0; s <= t; s++) sum += (score[s] = std::exp(score[s] - mx));
                for (int j = 0; j < hd; j++) {
                    double z = 0.0;
                    for (int s = 0; s <= t; s++) z += score[s] / sum * v[((size_t)h * T + s) * hd + j];
                    for (int m = 0; m < C; m++) attn_out[t * C + m] += z * W(p + "attn.W_O")[((size_t)h * hd + j) * C + m];
                }
            }
        for (int t = 0; t < T; t++)
            for (int m = 0; m < C; m++) resid[t * C + m] += attn_out[t * C + m] + W(p + "attn.b_O")[m];
        for (int t = 0; t < T; t++) {
            std::vector<double> act(M);
            for (int n = 0; n < M; n++) {
                double u = W(p + "mlp.b_in")[n];
                for (int m = 0; m < C; m++) u += resid[t * C + m] * W(p + "mlp.W_in")[(size_t)m * M + n];
                act[n] = 0.5 * u * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u)));
            }
            for (int m = 0; m < C; m++) {
                double o = W(p + "mlp.b_out")[m];
                for (int n = 0; n < M; n++) o += act[n] * W(p + "mlp.W_out")[(size_t)n * C + m];
                resid[t * C + m] += o;
            }
        }
    }
    std::vector<double> logits((size_t)T * V);
    for (int t = 0; t < T; t++)
        for (int u = 0; u < V; u++) {
            double z = W("unembed.b_U")[u];
            for (int m = 0; m < C; m++) z += resid[t * C + m] * W("unembed.W_U")[(size_t)m * V + u];
            logits[(size_t)t * V + u] = z;
        }
    return logits;
}

}  // namespace

TEST_CASE("the folded LN-free model equals the fixed-scale model to 1e-9 in float64", "[formats][export]") {
    const GPT2Config c{3, 40, 5, 97, 128, 24};
    ParameterSet<float> params = random_params(c, 11);
    for (int i : {LN1W, LN2W, LNFW})  // LayerNorm weights near 1, as in a trained model
        for (size_t k = 0; k < params.numel(i); k++) params.tensor(i)[k] += 1.0f;
    std::vector<double> sigma(2 * c.L + 1);
    for (size_t m = 0; m < sigma.size(); m++) sigma[m] = 0.3 + 0.1 * m;

    std::map<std::string, NamedTensor> sd;
    for (NamedTensor& t : fold_for_transformer_lens(params, sigma)) {
        size_t n = 1;
        for (size_t d : t.shape) n *= d;
        REQUIRE(n == t.values.size());
        sd[t.name] = t;
    }
    CHECK(sd.size() == 4 + 12 * (size_t)c.L);  // W_E, W_pos, W_U, b_U and 12 per block
    CHECK(sd.at("blocks.0.attn.W_Q").shape == std::vector<size_t>{5, 40, 8});
    CHECK(sd.at("blocks.2.attn.W_O").shape == std::vector<size_t>{5, 8, 40});
    CHECK(sd.at("unembed.W_U").shape == std::vector<size_t>{40, 97});

    // the reference, in float64, with every path fixed at those sigmas
    ParameterSet<double> params64(c);
    std::copy(params.data.begin(), params.data.end(), params64.data.begin());
    LayerNormPaths fixed(c.L);
    for (int l = 0; l < c.L; l++) fixed.ln2_fixed[l] = fixed.ln1qk_fixed[l] = fixed.ln1v_fixed[l] = true;
    fixed.lnf_fixed = true;
    SigmaState state(c.L);
    state.sigma = sigma;
    std::vector<int> tokens = {5, 17, 96, 0, 42, 42, 7, 88, 13, 60, 1, 2, 3, 95, 50, 23, 31, 64, 9, 77, 11, 12, 13, 14};
    ref::Activations<double> acts;
    ref::gpt2_forward(acts, params64, fixed, state, nullptr, tokens.data(), nullptr, 1, (int)tokens.size(), ref::MicroBatchOptions{});
    std::vector<double> expected, folded = folded_forward(sd, c, tokens);
    for (size_t t = 0; t < tokens.size(); t++)
        for (int v = 0; v < c.V; v++) expected.push_back(acts.logits[t * c.Vp + v]);
    CHECK(rel_error(folded, expected) <= 1e-9);
}

TEST_CASE("the hf/ export stores gamma * 1e6 / sigma, unchanged biases and epsilon 1e12", "[formats][export]") {
    const GPT2Config c{2, 20, 5, 97, 128, 16};
    ParameterSet<float> params = random_params(c, 12);
    std::vector<double> sigma = {0.5, 0.6, 0.7, 0.8, 2.0};
    const std::string dir = std::string(LNFREE_SOURCE_DIR) + "/build/test_scratch/export";
    std::filesystem::remove_all(dir);
    write_hf_checkpoint(dir + "/source", params, {});
    write_text_file(dir + "/source/vocab.json", "{\"a\": 0}");
    export_lnfree(dir + "/out", params, sigma, dir + "/source");

    nlohmann::json config = nlohmann::json::parse(read_text_file(dir + "/out/hf/config.json"));
    CHECK(config.at("layer_norm_epsilon").get<double>() == 1e12);
    CHECK(config.at("n_layer") == 2);
    CHECK(read_text_file(dir + "/out/hf/vocab.json") == "{\"a\": 0}");
    SafetensorsFile f(dir + "/out/hf/model.safetensors");
    CHECK(f.metadata("format") == "pt");
    for (int l = 0; l < c.L; l++) {
        std::vector<float> w1 = f.floats("transformer.h." + std::to_string(l) + ".ln_1.weight");
        std::vector<float> b1 = f.floats("transformer.h." + std::to_string(l) + ".ln_1.bias");
        std::vector<float> w2 = f.floats("transformer.h." + std::to_string(l) + ".ln_2.weight");
        for (int k = 0; k < c.C; k++) {
            CHECK(w1[k] == Approx(params.tensor(LN1W)[l * c.C + k] * 1e6 / sigma[l]).epsilon(1e-6));
            CHECK(b1[k] == params.tensor(LN1B)[l * c.C + k]);
            CHECK(w2[k] == Approx(params.tensor(LN2W)[l * c.C + k] * 1e6 / sigma[c.L + l]).epsilon(1e-6));
        }
    }
    std::vector<float> wf = f.floats("transformer.ln_f.weight");
    CHECK(wf[3] == Approx(params.tensor(LNFW)[3] * 1e6 / 2.0).epsilon(1e-6));
    // the export reads back as the original weights apart from the LayerNorm scales: Conv1D layout round-trips
    std::vector<float> cattn = f.floats("transformer.h.1.attn.c_attn.weight");  // (C, 3C) = qkvw^T
    CHECK(cattn[(size_t)7 * 3 * c.C + 33] == params.tensor(QKVW)[(size_t)c.C * 3 * c.C + (size_t)33 * c.C + 7]);
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir + "/out"))
        CHECK(entry.path().extension() != ".tmp");
    CHECK_THROWS_WITH(export_lnfree(dir + "/bad", params, {1.0, 2.0}, ""), Catch::Contains("2L+1 = 5"));
}
