// The trainer's step (lnfree/gpt2_device.cuh: every kernel composed into GPT-2's forward, backward and optimizer
// step; train_gpt2_lnfree.cu calls the same function) against the CPU reference's training loop, over 20 optimizer steps crossing 7 removal events with
// dropout, the aux loss, gradient accumulation and clipping: float32 build, losses within 1e-4 relative and sigmas
// within 1e-5 at every step; bf16 build within 2e-2.
#include "test/kernels/kernel_test_util.h"

#include "lnfree/gpt2_device.cuh"
#include "lnfree/reference/train_loop.h"

using namespace lnfree;
using namespace lnfree::test;

TEMPLATE_TEST_CASE("the device model trains like the reference loop through removal events", "[kernels][model]", float,
                   bf16) {
    using T = TestType;
    const GPT2Config cfg{2, 32, 4, 61, 64, 16};
    ParameterSet<float> params(cfg);
    std::vector<float> init = random_floats(params.data.size(), 0.1f, 81);
    std::copy(init.begin(), init.end(), params.data.begin());
    for (int i : {LN1W, LN2W, LNFW})
        for (size_t k = 0; k < params.numel(i); k++) params.tensor(i)[k] += 1.0f;
    std::fill(params.tensor(WTE) + (size_t)cfg.V * cfg.C, params.tensor(WTE) + (size_t)cfg.Vp * cfg.C, 0.0f);

    // a recipe for the trainer's step function, and the same run as the reference loop's options
    Recipe recipe;
    recipe.events = {{PathKind::LN2, 2, 1}, {PathKind::LN1QK, 6, 1}, {PathKind::LN1V, 10, 1}, {PathKind::LNF, 14, 0}};
    recipe.w_aux = 0.1;
    recipe.lr = LRSchedule{2e-3, 1e-3, 3, 30};
    recipe.steps = 20;
    recipe.micro_batch = 2;
    recipe.grad_accum = 2;
    recipe.seq_len = 13;
    recipe.stochastic_rounding = false;
    const uint64_t seed = 77;
    ref::TrainOptions opt;
    opt.B = recipe.micro_batch; opt.T = recipe.seq_len; opt.grad_accum = recipe.grad_accum; opt.steps = recipe.steps;
    opt.lr = recipe.lr;
    opt.adamw = ref::AdamWHyper{recipe.beta1, recipe.beta2, recipe.eps, recipe.weight_decay};
    opt.decay = decay_mask(recipe);
    opt.clip = recipe.clip;
    opt.dropout = (float)recipe.dropout;
    opt.seed = seed;
    opt.estimator = SigmaEstimator{recipe.momentum_ln1, recipe.momentum_ln2, recipe.momentum_lnf, recipe.ln1_calls};
    opt.w_aux = recipe.w_aux;
    opt.eot = 5;
    opt.events = recipe.events;
    std::vector<int> tokens(400);
    std::mt19937 rng(82);
    for (int& t : tokens) t = rng() % 10 == 0 ? opt.eot : (int)(rng() % cfg.V);
    const int window = opt.B * opt.T;
    auto batches = [&](int step, int micro, int* idx, int* targets) {
        size_t start = ((size_t)(step * opt.grad_accum + micro) * window) % (tokens.size() - window - 1);
        for (int i = 0; i < window; i++) { idx[i] = tokens[start + i]; targets[i] = tokens[start + i + 1]; }
    };
    SigmaState sigma0(cfg.L);
    for (size_t m = 0; m < sigma0.sigma.size(); m++) sigma0.ema[m] = sigma0.sigma[m] = 0.5 + 0.1 * m;

    // the reference
    ParameterSet<float> ref_params = params;
    LayerNormPaths ref_paths(cfg.L);
    SigmaState ref_sigma = sigma0;
    const std::vector<ref::StepRecord> expected = ref::train(ref_params, ref_paths, ref_sigma, opt, batches);

    // the device model through the trainer's own step function
    DeviceGPT2<T> model(params);
    model.set_sigma(sigma0);
    DeviceActivations<T> acts(cfg, opt.B, opt.T);
    kernels::MatmulContext mm;
    LayerNormPaths paths(cfg.L);
    const double tol = std::is_same_v<T, float> ? 1e-4 : 2e-2;
    int switched = 0;
    for (int step = 0; step < opt.steps; step++) {
        INFO("step " << step);
        const TrainStepResult r = gpt2_device_train_step(model, acts, mm, paths, recipe, seed, opt.eot, step, batches, nullptr);
        switched += (int)r.switched.size();
        CHECK(r.lr == expected[step].lr);
        CHECK(std::abs(r.ce - expected[step].ce) <= tol * expected[step].ce);
        CHECK(std::abs(r.aux - expected[step].aux) <= std::max(tol * expected[step].aux, 1e-7));
        CHECK(std::abs(r.grad_norm - expected[step].grad_norm) <= tol * 10 * expected[step].grad_norm);
        const SigmaState sig = model.get_sigma();
        for (size_t m = 0; m < sig.sigma.size(); m++)
            CHECK(std::abs(sig.sigma[m] / expected[step].sigma[m] - 1) <= (std::is_same_v<T, float> ? 1e-5 : 2e-2));
    }
    CHECK(switched == 7);
    CHECK(paths.real_paths_remaining() == 0);
    CHECK(rel_error(model.master_to_host().data, ref_params.data) <= (std::is_same_v<T, float> ? 1e-4 : 2e-2));
}
