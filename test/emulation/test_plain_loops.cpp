// The emulator's plain loops (launch_kernel(Sync::none, ...), cuda_emu::Threads::plain): a block's threads run one
// after the other without fibers, in the schedule's order, with the same results as on fibers; a kernel that
// synchronises is never run that way: the first sync point its thread reaches fails the launch with its call site.
// And cuda_emu::parallel_for, the host tasks the CPU build's matrix products run on the same workers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/launch.cuh"
#include "test/emulation/emulation_test_util.h"

using cuda_emu::Schedule;
using lnfree::launch_kernel;
using lnfree::Sync;
using emulation_test::kernel_error;
using emulation_test::kSchedules;
using emulation_test::ScheduleScope;

namespace {

struct PlainScope {
    bool old = cuda_emu::plain_loops();
    explicit PlainScope(bool on) { cuda_emu::set_plain_loops(on); }
    ~PlainScope() { cuda_emu::set_plain_loops(old); }
};

// y = a x + y over a grid-stride loop, and which thread of its block ran when (a per-block ticket)
__global__ void axpy_kernel(float* y, const float* x, float a, int n, unsigned* ticket, unsigned* when) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] += a * x[i];
    when[blockIdx.x * blockDim.x + threadIdx.x] = ticket[blockIdx.x]++;  // one block runs on one worker at a time
}

// Sync points of every kind, each behind a flag, so that one kernel misdeclared as Sync::none can reach any of them
__global__ void synchronising_kernel(float* out, int which, int only_block) {
    __shared__ float s[64];
    float v = (float)threadIdx.x;
    if (only_block < 0 || (int)blockIdx.x == only_block) {
        if (which == 0) { s[threadIdx.x] = v; __syncthreads(); v = s[63 - threadIdx.x]; }
        if (which == 1) v = __shfl_xor_sync(0xffffffffu, v, 1);
        if (which == 2) v = (float)__ballot_sync(0xffffffffu, v > 3.0f);
        if (which == 3) v = (float)__activemask();
        if (which == 4) __syncwarp();
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

}  // namespace

TEST_CASE("plain loops compute what fibers compute, in the schedule's thread order", "[emulation][plain]") {
    const int n = 5000, grid = 3, block = 96;
    std::vector<float> x(n);
    std::iota(x.begin(), x.end(), 0.0f);
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        INFO("schedule " << cuda_emu::schedule_name(s));
        std::vector<std::vector<float>> results;
        std::vector<std::vector<unsigned>> orders;
        for (bool plain : {false, true}) {
            PlainScope mode(true);
            std::vector<float> y(n, 1.0f);
            std::vector<unsigned> ticket(grid, 0), when(grid * block, ~0u);
            launch_kernel(plain ? Sync::none : Sync::may_sync, axpy_kernel, dim3(grid), dim3(block), 0, nullptr, y.data(),
                          x.data(), 0.5f, n, ticket.data(), when.data());
            results.push_back(y);
            orders.push_back(when);
        }
        CHECK(results[0] == results[1]);
        for (int i = 0; i < n; i += 997) CHECK(results[1][i] == 1.0f + 0.5f * (float)i);
        // forward: thread t runs t-th; reverse: (block-1-t)-th; random: a permutation, not one of those two
        const std::vector<unsigned>& when = orders[1];
        for (int b = 0; b < grid; ++b) {
            std::vector<unsigned> w(when.begin() + b * block, when.begin() + (b + 1) * block), sorted = w;
            std::sort(sorted.begin(), sorted.end());
            std::vector<unsigned> identity(block);
            std::iota(identity.begin(), identity.end(), 0u);
            CHECK(sorted == identity);  // every thread ran exactly once
            std::vector<unsigned> reversed(identity.rbegin(), identity.rend());
            if (s == Schedule::forward) CHECK(w == identity);
            if (s == Schedule::reverse) CHECK(w == reversed);
            if (s == Schedule::random) CHECK((w != identity && w != reversed));
        }
    }
}

TEST_CASE("a kernel that synchronises is never run as a plain loop: every sync point fails the launch",
          "[emulation][plain]") {
    const char* names[] = {"__syncthreads", "__shfl_xor_sync", "__ballot_sync", "__activemask", "__syncwarp"};
    std::vector<float> out(4 * 64);
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        for (int which = 0; which < 5; ++which)
            for (int only_block : {-1, 3}) {  // every block, or only the last one (a data-dependent sync point)
                INFO("schedule " << cuda_emu::schedule_name(s) << ", " << names[which] << ", block " << only_block);
                const std::string msg = kernel_error([&] {
                    launch_kernel(Sync::none, synchronising_kernel, dim3(4), dim3(64), 0, nullptr, out.data(), which,
                                  only_block);
                });
                CHECK_THAT(msg, Catch::Contains("synchronising_kernel"));
                CHECK_THAT(msg, Catch::Contains(std::string(names[which]) + " reached at test_plain_loops.cpp:"));
                CHECK_THAT(msg, Catch::Contains("declared free of synchronisation"));
                CHECK_THAT(msg, Catch::Contains(only_block < 0 ? "block (0,0,0)" : "block (3,0,0)"));
                // declared as synchronising, the same launch runs on fibers and is right
                std::fill(out.begin(), out.end(), -1.0f);
                launch_kernel(synchronising_kernel, dim3(4), dim3(64), 0, nullptr, out.data(), which, only_block);
                // thread 0 of block 3 (__activemask does not wait, so what it sees depends on the order: not checked)
                const float expect[] = {63.0f, 1.0f, (float)0xfffffff0u, 0.0f, 0.0f};
                if (which != 3) CHECK(out[3 * 64] == expect[which]);
            }
    }
}

TEST_CASE("LNFREE_EMU_PLAIN=0 (set_plain_loops(false)) runs Sync::none launches on fibers", "[emulation][plain]") {
    PlainScope mode(false);
    std::vector<float> out(4 * 64);
    launch_kernel(Sync::none, synchronising_kernel, dim3(4), dim3(64), 0, nullptr, out.data(), 0, -1);
    CHECK(out[0] == 63.0f);  // the barrier was honoured: fibers
}

TEST_CASE("a thread that throws in a plain loop fails the launch, and the next launch is clean", "[emulation][plain]") {
    ScheduleScope scope(Schedule::forward);  // thread 0 first
    std::vector<float> out(64);
    const std::string msg = kernel_error([&] {
        launch_kernel(Sync::none, synchronising_kernel, dim3(1), dim3(64), 0, nullptr, out.data(), 0, -1);
    });
    CHECK_THAT(msg, Catch::Contains("[thread (0,0,0)]"));
    std::vector<float> y(10, 0.0f), x(10, 2.0f);
    std::vector<unsigned> ticket(1, 0), when(32);
    launch_kernel(Sync::none, axpy_kernel, dim3(1), dim3(32), 0, nullptr, y.data(), x.data(), 1.0f, 10, ticket.data(),
                  when.data());
    CHECK(y[9] == 2.0f);
    launch_kernel(synchronising_kernel, dim3(1), dim3(64), 0, nullptr, out.data(), 0, -1);  // fibers still work
    CHECK(out[0] == 63.0f);
}

TEST_CASE("parallel_for runs every index once on the workers, and a failing index's exception ends it",
          "[emulation][plain]") {
    std::vector<std::atomic<int>> hits(1000);
    cuda_emu::parallel_for(hits.size(), [&](std::uint64_t i) { hits[i]++; });
    for (auto& h : hits) CHECK(h.load() == 1);
    std::atomic<int> nested{0};
    cuda_emu::parallel_for(4, [&](std::uint64_t) { cuda_emu::parallel_for(5, [&](std::uint64_t) { nested++; }); });
    CHECK(nested.load() == 20);
    std::string what;
    try {
        cuda_emu::parallel_for(64, [](std::uint64_t i) {
            if (i == 40 || i == 41) throw std::runtime_error("task " + std::to_string(i));
        });
    } catch (const std::runtime_error& e) {
        what = e.what();
    }
    CHECK(what.rfind("task 4", 0) == 0);  // 40, or 41 if it ran first and 40 never started
    std::vector<float> y(10, 0.0f), x(10, 1.0f);  // kernels still launch afterwards
    std::vector<unsigned> ticket(1, 0), when(32);
    launch_kernel(Sync::none, axpy_kernel, dim3(1), dim3(32), 0, nullptr, y.data(), x.data(), 3.0f, 10, ticket.data(),
                  when.data());
    CHECK(y[0] == 3.0f);
}
