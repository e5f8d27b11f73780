// The device model (lnfree/gpt2_device.cuh: every kernel composed into GPT-2's forward, backward and optimizer
// step) against the CPU reference's training loop, over 20 optimizer steps crossing 7 removal events with
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

    ref::TrainOptions opt;
    opt.B = 2; opt.T = 13; opt.grad_accum = 2; opt.steps = 20;
    opt.lr = LRSchedule{2e-3, 1e-3, 3, 30};
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        opt.decay[i] = !(i == LN1B || i == LN2B || i == LNFB || i == QKVB || i == ATTPROJB || i == FCB || i == FCPROJB);
    opt.clip = 1.0;
    opt.dropout = 0.1f;
    opt.seed = 77;
    opt.w_aux = 0.1;
    opt.eot = 5;
    opt.events = {{PathKind::LN2, 2, 1}, {PathKind::LN1QK, 6, 1}, {PathKind::LN1V, 10, 1}, {PathKind::LNF, 14, 0}};
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

    // the device model, the same loop
    DeviceGPT2<T> model(params);
    model.set_sigma(sigma0);
    DeviceActivations<T> acts(cfg, opt.B, opt.T);
    kernels::MatmulContext mm;
    device::Buffer<float> norm(1), norm_scratch(kernels::kNormBlocks);
    LayerNormPaths paths(cfg.L);
    std::vector<int> idx(window), targets(window);
    const double tol = std::is_same_v<T, float> ? 1e-4 : 2e-2;
    int switched = 0;
    for (int step = 0; step < opt.steps; step++) {
        INFO("step " << step);
        switched += (int)apply_removal_events(opt.events, step, paths).size();
        device::zero(model.grads.data(), model.num_params * sizeof(float), nullptr);
        double ce = 0.0, aux = 0.0;
        for (int micro = 0; micro < opt.grad_accum; micro++) {
            batches(step, micro, idx.data(), targets.data());
            DeviceMicroBatch mb;
            mb.dropout = DropoutKey{opt.dropout, opt.seed, (uint32_t)step, (uint32_t)micro};
            mb.eot = opt.eot;
            mb.w_aux = opt.w_aux;
            mb.loss_scale = 1.0 / opt.grad_accum;
            mb.estimator = &opt.estimator;
            gpt2_device_step(model, acts, mm, paths, idx.data(), targets.data(), mb, nullptr);
            ce += acts.ce.to_host()[0] / opt.grad_accum;
            aux += acts.aux.to_host()[0] / opt.grad_accum;
        }
        gpt2_device_optimizer_step(model, norm, norm_scratch, opt.lr.at(step), 0.9, 0.999, 1e-8, 0.01, opt.clip,
                                   opt.decay, false, opt.seed, nullptr);
        CHECK(std::abs(ce - expected[step].ce) <= tol * expected[step].ce);
        CHECK(std::abs(aux - expected[step].aux) <= std::max(tol * expected[step].aux, 1e-7));
        CHECK(std::abs(norm.to_host()[0] - expected[step].grad_norm) <= tol * 10 * expected[step].grad_norm);
        const SigmaState sig = model.get_sigma();
        for (size_t m = 0; m < sig.sigma.size(); m++)
            CHECK(std::abs(sig.sigma[m] / expected[step].sigma[m] - 1) <= (std::is_same_v<T, float> ? 1e-5 : 2e-2));
    }
    CHECK(switched == 7);
    CHECK(paths.real_paths_remaining() == 0);
    CHECK(rel_error(model.master_to_host().data, ref_params.data) <= (std::is_same_v<T, float> ? 1e-4 : 2e-2));
}
