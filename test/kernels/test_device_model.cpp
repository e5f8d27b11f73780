// The trainer's step (lnfree/gpt2_device.cuh and lnfree/train_step.cuh: every kernel composed into GPT-2's
// forward, backward and optimizer step; train_gpt2_lnfree.cu calls the same function) against the CPU reference's
// training loop, over 20 optimizer steps crossing 7 removal events with dropout, the aux loss, gradient
// accumulation and clipping: float32 build, losses within 1e-4 relative and sigmas within 1e-5 at every step; bf16
// build within 2e-2. And the optimizer step on shards of a data-parallel run against the whole step.
#include "test/kernels/kernel_test_util.h"

#include <cstring>
#include <memory>

#include "lnfree/gpt2_device.cuh"
#include "lnfree/train_step.cuh"
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
    SingleProcess group;
    int switched = 0;
    for (int step = 0; step < opt.steps; step++) {
        INFO("step " << step);
        const TrainStepResult r = gpt2_device_train_step(model, acts, mm, paths, recipe, seed, opt.eot, step, batches, group, nullptr);
        switched += (int)r.switched.size();
        CHECK(r.lr == expected[step].lr);
        CHECK(std::abs(r.ce - expected[step].ce) <= tol * expected[step].ce);
        // the aux loss is a mean of squared differences of nearly equal stds: in bf16 its relative error is about
        // 1.5 times the CE's (measured up to 2.03e-2 when the GELU and the reductions' order changed)
        CHECK(std::abs(r.aux - expected[step].aux) <= std::max(1.5 * tol * expected[step].aux, 1e-7));
        CHECK(std::abs(r.grad_norm - expected[step].grad_norm) <= tol * 10 * expected[step].grad_norm);
        const SigmaState sig = model.get_sigma();
        for (size_t m = 0; m < sig.sigma.size(); m++)
            CHECK(std::abs(sig.sigma[m] / expected[step].sigma[m] - 1) <= (std::is_same_v<T, float> ? 1e-5 : 2e-2));
    }
    CHECK(switched == 7);
    CHECK(paths.real_paths_remaining() == 0);
    // The key biases in absolute terms (is_key_bias: Adam moves them by rounding noise, up to lr per step), every
    // other parameter relatively.
    ParameterSet<float> got = master_to_host(model, group);
    std::vector<float> ours, ref;
    double key_drift = 0.0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        for (size_t e = 0; e < got.numel(i); e++) {
            if (i == QKVB && is_key_bias(e, cfg.C)) {
                key_drift = std::max(key_drift, (double)std::abs(got.tensor(i)[e] - ref_params.tensor(i)[e]));
            } else {
                ours.push_back(got.tensor(i)[e]);
                ref.push_back(ref_params.tensor(i)[e]);
            }
        }
    CHECK(key_drift <= recipe.steps * recipe.lr.peak);
    CHECK(rel_error(ours, ref) <= (std::is_same_v<T, float> ? 1e-5 : 2e-2));
}

namespace {

// Process `rank` of `size` with collectives that do nothing: the sharded arithmetic of one process, without the
// exchange (test/mpi/test_mpi_group.cpp runs the exchange over real MPI).
class ShardOf final : public ProcessGroup {
   public:
    ShardOf(int rank, int size) : rank_(rank), size_(size) {}
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    void reduce_scatter_sum(float*, size_t, cudaStream_t) override {}
    void all_gather(void*, size_t, size_t, cudaStream_t) override {}
    void all_reduce_sum(double*, size_t, cudaStream_t) override {}
    void all_gather_host(const double*, size_t, double*) override {}

   private:
    int rank_, size_;
};

}  // namespace

TEST_CASE("shards of the optimizer step cover every parameter once and update it as the whole step does",
          "[kernels][model]") {
    for (size_t n : {1ul, 7ul, 1000ul, 1001ul})
        for (int size : {1, 2, 3, 8}) {
            const size_t padded = padded_length(n, size);
            CHECK(padded >= n);
            CHECK(padded % (size * 64) == 0);
            size_t next = 0;
            for (int rank = 0; rank < size; rank++) {
                const ShardRange r = shard_range(padded, rank, size);
                CHECK(r.first == next);
                CHECK(r.size() == padded / size);
                next = r.last;
            }
            CHECK(next == padded);
        }

    // bf16 with stochastic rounding: the rounding noise is keyed by each element's index in its tensor. Each shard
    // holds only its part of the master weights and moments (ZeRO-1).
    const GPT2Config cfg{2, 32, 4, 61, 64, 16};
    ParameterSet<float> params(cfg);
    const std::vector<float> init = random_floats(params.data.size(), 0.1f, 91);
    std::copy(init.begin(), init.end(), params.data.begin());
    const Recipe recipe = preset_recipe("small", 12);
    std::vector<float> grads = random_floats(params.data.size(), 0.01f, 92);
    DeviceGPT2<bf16> whole(params);
    std::vector<std::unique_ptr<DeviceGPT2<bf16>>> shards;
    for (int rank = 0; rank < 3; rank++) shards.push_back(std::make_unique<DeviceGPT2<bf16>>(params, rank, 3));
    CHECK(shards[0]->optimizer_state_bytes() == 3 * sizeof(float) * (shards[0]->padded / 3));  // master, m, v: a third
    for (DeviceGPT2<bf16>* m : {&whole, shards[0].get(), shards[1].get(), shards[2].get()}) {
        device::to_device(m->grads.data(), grads.data(), grads.size() * sizeof(float));
        kernels::global_norm(m->grad_norm.data(), m->norm_scratch.data(), m->grads.data(), m->num_params, nullptr);
    }
    SingleProcess one;
    for (int step = 0; step < 3; step++) {
        gpt2_device_optimizer_step(whole, recipe, 1e-3, 5, one, nullptr);
        for (int rank = 0; rank < 3; rank++) {
            ShardOf group(rank, 3);
            gpt2_device_optimizer_step(*shards[rank], recipe, 1e-3, 5, group, nullptr);
        }
    }
    const std::vector<float> master = on_host(whole.master), m = on_host(whole.m), v = on_host(whole.v);
    const std::vector<bf16> copy = on_host(whole.params);
    for (int rank = 0; rank < 3; rank++) {
        const DeviceGPT2<bf16>& s = *shards[rank];
        CHECK(s.adam_t == whole.adam_t);
        const size_t first = s.shard.first, count = std::min(s.shard.last, s.num_params) - std::min(first, s.num_params);
        const std::vector<float> sm = on_host(s.master), s1 = on_host(s.m), s2 = on_host(s.v);
        CHECK(std::equal(sm.begin(), sm.begin() + count, master.begin() + first));
        CHECK(std::equal(s1.begin(), s1.begin() + count, m.begin() + first));
        CHECK(std::equal(s2.begin(), s2.begin() + count, v.begin() + first));
        const std::vector<bf16> sc = on_host(s.params);
        CHECK(std::memcmp(sc.data() + first, copy.data() + first, count * sizeof(bf16)) == 0);
    }
}
