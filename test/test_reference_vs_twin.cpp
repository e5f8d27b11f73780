// The float32 CPU reference against the PyTorch twin (autograd, float64) on an awkward shape
// (L=3, NH=5, head_dim=8, T=24, B=3, V=97 padded to 128): logits, losses, the sigma statistics and estimator
// state, and every parameter gradient, in each LayerNorm state. Tolerance: 1e-5 relative per tensor (loss and
// aux loss 1e-5 absolute).
#include <catch2/catch.hpp>

#include "lnfree/reference/gpt2.h"
#include "test/fixtures.h"

using namespace lnfree;
using namespace lnfree::test;

TEST_CASE("reference forward and backward match the PyTorch twin", "[reference][twin]") {
    const char* state = GENERATE("state_all_real", "state_ln2_fixed", "state_ln2_ln1qk_fixed", "state_all_fixed",
                                 "state_v_before_qk");
    INFO("fixture " << state);
    SafetensorsFile model_file(fixture_path("model"));
    const GPT2Config cfg = model_config(fixture_config(model_file));
    const ParameterSet<float> params = load_params<float>(model_file, cfg);

    SafetensorsFile f(fixture_path(state));
    const nlohmann::json j = fixture_config(f);
    const int B = j.at("B"), T = j.at("T");
    const std::vector<int> idx = f.ints("idx"), targets = f.ints("targets");
    LayerNormPaths paths = paths_from_config(j, cfg.L);
    SigmaState sigma = sigma_from_fixture(f, cfg.L);
    const SigmaEstimator estimator = estimator_from_config(j);
    ref::MicroBatchOptions mb;
    mb.dropout = DropoutKey{j.at("dropout").get<float>(), j.at("seed").get<uint64_t>(), j.at("step").get<uint32_t>(),
                            j.at("micro_step").get<uint32_t>()};
    mb.eot = j.at("eot");
    mb.ignore_eot = j.at("ignore_eot");
    mb.w_aux = j.at("w_aux");

    ref::Activations<float> acts;
    ref::ForwardResult fwd = ref::gpt2_forward(acts, params, paths, sigma, &estimator, idx.data(), targets.data(), B, T, mb);
    ParameterSet<float> grads(cfg);
    ref::gpt2_backward(grads, params, acts, idx.data(), targets.data(), mb, fwd, 1.0);

    CHECK(rel_error(acts.logits, f.doubles("logits")) <= 1e-5);
    CHECK(rel_error(acts.losses, f.doubles("losses")) <= 1e-5);
    CHECK(std::abs(fwd.ce - f.doubles("loss")[0]) <= 1e-5);
    CHECK(std::abs(fwd.aux - f.doubles("aux")[0]) <= 1e-5);
    CHECK(rel_error(fwd.stats, f.doubles("stats")) <= 1e-5);
    CHECK(rel_error(sigma.ema, f.doubles("sigma_ema_out")) <= 1e-5);
    CHECK(rel_error(sigma.sigma, f.doubles("sigma_out")) <= 1e-5);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        INFO("gradient of " << kParamNames[i]);
        std::vector<double> ref = f.doubles(std::string("grad.") + kParamNames[i]);
        std::vector<float> ours(grads.tensor(i), grads.tensor(i) + grads.numel(i));
        CHECK(rel_error(ours, ref) <= 1e-5);
    }
}
