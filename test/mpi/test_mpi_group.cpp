// The CPU build's process group over real MPI (`make test` runs it as mpirun -np 3): each collective against what
// the processes' values say it must give, and the trainer's step on a small random GPT-2 split over the processes
// against the same step in one process (every rank also runs the one-process step, to compare with).
// Tolerances: the collectives are exact (rank-ordered sums); the split step's losses and sigmas 1e-6 relative
// (the micro-batch gradients are added in another order), its weights 1e-6 per tensor (rel_error).
#include <catch2/catch.hpp>  // its implementation: test/catch_session.cpp

#include <cmath>
#include <random>

#include "lnfree/gpt2_device.cuh"
#include "lnfree/train_step.cuh"
#include "lnfree/mpi_group.h"
#include "test/catch_session.h"
#include "test/fixtures.h"
#include "test/kernels/host_data.h"

using namespace lnfree;
using lnfree::kernels::bf16;

namespace {

MpiWorld* world = nullptr;

float value(int rank, size_t i) { return 0.1f * (float)rank + 1.0f / (float)(i + 3); }

}  // namespace

TEST_CASE("reduce-scatter adds every process's shard in rank order", "[mpi]") {
    MpiGroup group(*world);
    const int P = group.size();
    const size_t n = padded_length(1000, P);
    std::vector<float> data(n);
    for (size_t i = 0; i < n; i++) data[i] = value(group.rank(), i);
    group.reduce_scatter_sum(data.data(), n, nullptr);
    const ShardRange own = shard_range(n, group.rank(), P);
    for (size_t i = own.first; i < own.last; i++) {
        float expect = value(0, i);
        for (int p = 1; p < P; p++) expect += value(p, i);
        REQUIRE(data[i] == expect);  // bit for bit: the order is fixed
    }
}

TEST_CASE("all-gather gives every process every shard, for float32 and bf16", "[mpi]") {
    MpiGroup group(*world);
    const int P = group.size();
    const size_t n = padded_length(777, P);
    const ShardRange own = shard_range(n, group.rank(), P);
    std::vector<float> f(n, -1.0f);
    std::vector<bf16> h(n, kernels::from_float<bf16>(-1.0f));
    for (size_t i = own.first; i < own.last; i++) {
        f[i] = value(group.rank(), i);
        h[i] = kernels::from_float<bf16>(value(group.rank(), i));
    }
    group.all_gather(f.data(), sizeof(float), n, nullptr);
    group.all_gather(h.data(), sizeof(bf16), n, nullptr);
    for (int p = 0; p < P; p++) {
        const ShardRange r = shard_range(n, p, P);
        for (size_t i = r.first; i < r.last; i++) {
            REQUIRE(f[i] == value(p, i));
            REQUIRE(kernels::to_float(h[i]) == kernels::to_float(kernels::from_float<bf16>(value(p, i))));
        }
    }
}

TEST_CASE("host values are gathered in rank order and device doubles summed", "[mpi]") {
    MpiGroup group(*world);
    const int P = group.size();
    const double mine[2] = {(double)group.rank(), 10.0 + group.rank()};
    std::vector<double> all(2 * P);
    group.all_gather_host(mine, 2, all.data());
    double sums[2] = {0.5, 1.0};
    group.all_reduce_sum(sums, 2, nullptr);
    for (int p = 0; p < P; p++) {
        CHECK(all[2 * p] == p);
        CHECK(all[2 * p + 1] == 10.0 + p);
    }
    CHECK(sums[0] == 0.5 * P);
    CHECK(sums[1] == 1.0 * P);
}

TEST_CASE("the train step split over the processes is the one-process step", "[mpi][model]") {
    MpiGroup group(*world);
    const int P = group.size();
    const GPT2Config cfg{2, 32, 4, 61, 64, 16};
    ParameterSet<float> params(cfg);
    const std::vector<float> init = test::random_floats(params.data.size(), 0.1f, 81);
    std::copy(init.begin(), init.end(), params.data.begin());
    for (int i : {LN1W, LN2W, LNFW})
        for (size_t k = 0; k < params.numel(i); k++) params.tensor(i)[k] += 1.0f;
    Recipe recipe;
    recipe.events = {{PathKind::LN2, 1, 1}, {PathKind::LN1QK, 3, 1}, {PathKind::LN1V, 4, 1}, {PathKind::LNF, 6, 0}};
    recipe.w_aux = 0.1;
    recipe.lr = LRSchedule{2e-3, 1e-3, 2, 10};
    recipe.steps = 8;
    recipe.micro_batch = 2;
    recipe.grad_accum = 6;  // 6 micro-batches: 2 each on 3 processes
    recipe.seq_len = 13;
    std::vector<int> tokens(600);
    std::mt19937 rng(82);
    for (int& t : tokens) t = rng() % 10 == 0 ? 5 : (int)(rng() % cfg.V);
    const int window = recipe.micro_batch * recipe.seq_len;
    auto batches = [&](int step, int micro, int* idx, int* targets) {
        const size_t start = ((size_t)(step * recipe.grad_accum + micro) * window) % (tokens.size() - window - 1);
        for (int i = 0; i < window; i++) { idx[i] = tokens[start + i]; targets[i] = tokens[start + i + 1]; }
    };
    SigmaState sigma0(cfg.L);
    for (size_t m = 0; m < sigma0.sigma.size(); m++) sigma0.ema[m] = sigma0.sigma[m] = 0.5 + 0.1 * m;

    SingleProcess one;
    DeviceGPT2<float> whole(params), split(params, group.rank(), P);
    DeviceActivations<float> whole_acts(cfg, recipe.micro_batch, recipe.seq_len),
        split_acts(cfg, recipe.micro_batch, recipe.seq_len, P);
    whole.set_sigma(sigma0);
    split.set_sigma(sigma0);
    CHECK(split.optimizer_state_bytes() == whole.optimizer_state_bytes() / P);  // the padding divides by P here
    kernels::MatmulContext mm;
    LayerNormPaths whole_paths(cfg.L), split_paths(cfg.L);
    for (int step = 0; step < recipe.steps; step++) {
        INFO("step " << step);
        const TrainStepResult a = gpt2_device_train_step(whole, whole_acts, mm, whole_paths, recipe, 9, 5, step, batches, one, nullptr);
        const TrainStepResult b = gpt2_device_train_step(split, split_acts, mm, split_paths, recipe, 9, 5, step, batches, group, nullptr);
        CHECK(a.switched == b.switched);
        CHECK(std::abs(b.ce / a.ce - 1) <= 1e-6);
        CHECK(std::abs(b.aux / a.aux - 1) <= 1e-6);
        CHECK(std::abs(b.grad_norm / a.grad_norm - 1) <= 1e-6);
        const SigmaState sa = whole.get_sigma(), sb = split.get_sigma();
        for (size_t m = 0; m < sa.sigma.size(); m++) CHECK(std::abs(sb.sigma[m] / sa.sigma[m] - 1) <= 1e-6);
        if (step == 0) {  // the same weights and data: the forward's losses and sigmas are bit for bit the same
            CHECK(b.ce == a.ce);
            CHECK(sb.ema == sa.ema);
        }
    }
    CHECK(split_paths.real_paths_remaining() == 0);
    const ParameterSet<float> got = master_to_host(split, group), expect = master_to_host(whole, one);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        INFO("tensor " << i);
        std::vector<float> ours, ref;
        for (size_t e = 0; e < expect.numel(i); e++) {
            if (i == QKVB && test::is_key_bias(e, cfg.C)) continue;  // rounding noise moves them (test_device_model.cpp)
            ours.push_back(got.tensor(i)[e]);
            ref.push_back(expect.tensor(i)[e]);
        }
        CHECK(test::rel_error(ours, ref) <= 1e-6);
    }
    const std::vector<float> copy = split.params.to_host();  // float32: the compute copy is the master, gathered
    for (size_t e = 0; e < split.num_params; e++) REQUIRE(copy[e] == got.data[e]);
}

int main(int argc, char** argv) {
    MpiWorld w(&argc, &argv);
    world = &w;
    if (w.size() < 2) std::fprintf(stderr, "test_mpi_group: run it under mpirun -np 2 or more\n");
    const int failed = run_catch_session(argc, argv);
    int any = failed;  // a failure on any rank fails every rank
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any == 0 && w.size() >= 2 ? 0 : 1;
}
