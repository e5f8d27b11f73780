// The reference backward in float64 against central finite differences of its own forward, on a tiny shape with
// dropout and the aux loss on, in every LayerNorm state: per tensor, ||analytic - numeric|| / ||numeric|| <= 1e-4
// over a random sample of entries of every parameter tensor.
#include <catch2/catch.hpp>

#include <random>

#include "lnfree/reference/gpt2.h"
#include "test/fixtures.h"

using namespace lnfree;

namespace {

struct TinyProblem {
    GPT2Config cfg{2, 8, 2, 13, 16, 6};
    int B = 2, T = 5;
    std::vector<int> idx, targets;
    ParameterSet<double> params{cfg};
    ref::MicroBatchOptions mb;

    TinyProblem() {
        std::mt19937 rng(42);
        std::normal_distribution<double> normal(0.0, 1.0);
        std::uniform_int_distribution<int> token(0, cfg.V - 1);
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
            bool ln_weight = i == LN1W || i == LN2W || i == LNFW;
            double stddev = i == WTE ? 0.5 : i == WPE ? 0.2 : ln_weight ? 0.1 : 0.3;
            for (size_t k = 0; k < params.numel(i); k++)
                params.tensor(i)[k] = (ln_weight ? 1.0 : 0.0) + stddev * normal(rng);
        }
        std::fill(params.tensor(WTE) + (size_t)cfg.V * cfg.C, params.tensor(WTE) + (size_t)cfg.Vp * cfg.C, 0.0);
        mb.eot = 3;
        mb.w_aux = 0.5;
        mb.dropout = DropoutKey{0.2f, 7, 3, 1};
        for (int i = 0; i < B * T; i++) {
            idx.push_back(i % 4 == 2 ? mb.eot : token(rng));
            targets.push_back(i % 5 == 1 ? mb.eot : token(rng));
        }
    }

    // the loss with sigma and the aux target held constant: neither gets a gradient
    double loss(const LayerNormPaths& paths, SigmaState& sigma, double aux_target) const {
        ref::Activations<double> acts;
        ref::MicroBatchOptions frozen = mb;
        frozen.frozen_aux_target = &aux_target;
        return ref::gpt2_forward(acts, params, paths, sigma, nullptr, idx.data(), targets.data(), B, T, frozen).loss;
    }
};

LayerNormPaths make_state(int L, const std::string& name) {
    LayerNormPaths p(L);
    for (int l = 0; l < L; l++) {
        p.ln2_fixed[l] = name != "all_real";
        p.ln1qk_fixed[l] = name == "ln2_ln1qk_fixed" || name == "all_fixed" || (name == "v_before_qk" && l == 0);
        p.ln1v_fixed[l] = name == "all_fixed" || name == "v_before_qk";
    }
    p.lnf_fixed = name == "all_fixed";
    return p;
}

}  // namespace

TEST_CASE("reference backward matches float64 finite differences", "[reference][gradcheck]") {
    const std::string state = GENERATE("all_real", "ln2_fixed", "ln2_ln1qk_fixed", "all_fixed", "v_before_qk");
    INFO("state " << state);
    TinyProblem p;
    const LayerNormPaths paths = make_state(p.cfg.L, state);

    // sigma := the statistics of the model itself (one estimator call with momentum 0), then times 1.3 so that
    // the fixed and real modes give visibly different outputs
    SigmaState sigma(p.cfg.L);
    SigmaEstimator measure{0.0, 0.0, 0.0, 2};
    ref::Activations<double> acts;
    ref::gpt2_forward(acts, p.params, LayerNormPaths(p.cfg.L), sigma, &measure, p.idx.data(), p.targets.data(), p.B, p.T, p.mb);
    for (double& s : sigma.sigma) s *= 1.3;

    ref::ForwardResult fwd = ref::gpt2_forward(acts, p.params, paths, sigma, nullptr, p.idx.data(), p.targets.data(), p.B, p.T, p.mb);
    REQUIRE(fwd.aux > 0.0);
    ParameterSet<double> grads(p.cfg);
    ref::gpt2_backward(grads, p.params, acts, p.idx.data(), p.targets.data(), p.mb, fwd, 1.0);

    std::mt19937 rng(7);
    const double h = 1e-5;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        INFO("tensor " << kParamNames[i]);
        // wte and wpe: sample only rows this batch uses (the others have no gradient at all)
        size_t rows = i == WTE ? p.cfg.V : i == WPE ? p.T : 1;
        size_t sample_space = i == WTE || i == WPE ? rows * p.cfg.C : p.params.numel(i);
        std::uniform_int_distribution<size_t> pick(0, sample_space - 1);
        std::vector<double> analytic, numeric;
        for (int s = 0; s < 12; s++) {
            size_t k = pick(rng);
            if (i == WTE) k = (size_t)p.idx[k % p.idx.size()] * p.cfg.C + k % p.cfg.C;
            double& w = p.params.tensor(i)[k];
            const double saved = w;
            w = saved + h;
            double up = p.loss(paths, sigma, acts.aux_target);
            w = saved - h;
            double down = p.loss(paths, sigma, acts.aux_target);
            w = saved;
            numeric.push_back((up - down) / (2 * h));
            analytic.push_back(grads.tensor(i)[k]);
        }
        CHECK(test::rel_error(analytic, numeric) <= 1e-4);
    }
}
