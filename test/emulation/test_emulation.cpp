// The CUDA host emulation (kernels/emulation/cuda_host_emulation.h): small real kernels, launched through
// lnfree::launch_kernel, in the forward, reverse and random schedules of a block's threads.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/launch.cuh"
#include "test/emulation/emulation_test_util.h"
#include "test/emulation/example_kernels.cuh"

using cuda_emu::Schedule;
using lnfree::launch_kernel;
using emulation_test::kernel_error;
using emulation_test::kSchedules;
using emulation_test::ScheduleScope;

namespace {

// ---- kernels -----------------------------------------------------------------------------------------------------

// partial[blockIdx.x] = sum of a grid-stride slice of x: tree reduction in static shared memory (block: 256).
__global__ void tree_sum_kernel(float* partial, const float* x, int n) {
    __shared__ float s[256];
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
    s[threadIdx.x] = v;
    __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

// The same with the __syncthreads inside the loop forgotten: a planted race.
__global__ void tree_sum_missing_sync_kernel(float* partial, const float* x, int n) {
    __shared__ float s[256];
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
    s[threadIdx.x] = v;
    __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2)
        if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

// Shifted copy through shared memory with the barrier between write and read forgotten.
__global__ void rotate_missing_sync_kernel(float* out, const float* x) {
    __shared__ float s[128];
    s[threadIdx.x] = x[threadIdx.x];
    out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

// Warp sums: lane results of a butterfly (xor) and of a shift-down reduction (lane 0 holds the sum).
__global__ void warp_sum_kernel(float* out_xor, float* out_down, const float* x) {
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    float a = x[i], b = x[i];
    for (int offset = 16; offset > 0; offset /= 2) {
        a += __shfl_xor_sync(0xffffffffu, a, offset);
        b += __shfl_down_sync(0xffffffffu, b, offset);
    }
    out_xor[i] = a;
    out_down[i] = b;
}

// Block sum of any multiple-of-32 block size: warp shuffles, then the warp sums through static shared memory.
__global__ void block_sum_kernel(float* partial, const float* x, int n) {
    __shared__ float warp_sums[32];
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
    v = lnfree::example::warp_sum(v);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0.0f;
        v = lnfree::example::warp_sum(v);
        if (threadIdx.x == 0) partial[blockIdx.x] = v;
    }
}

enum ShflOp { kIdx, kUp, kDown, kXor };

// out[t] = the value shuffled in by thread t; each lane offers 1000 * warp + lane.
__global__ void shuffle_kernel(int* out, int op, int b, int width) {
    const int mine = 1000 * static_cast<int>(threadIdx.x / 32) + static_cast<int>(threadIdx.x % 32);
    int r = 0;
    switch (op) {
    case kIdx: r = __shfl_sync(0xffffffffu, mine, b, width); break;
    case kUp: r = __shfl_up_sync(0xffffffffu, mine, static_cast<unsigned>(b), width); break;
    case kDown: r = __shfl_down_sync(0xffffffffu, mine, static_cast<unsigned>(b), width); break;
    default: r = __shfl_xor_sync(0xffffffffu, mine, b, width); break;
    }
    out[threadIdx.x] = r;
}

// What the CUDA programming guide says each lane reads (written independently of the emulator's PTX formulas).
int expected_shuffle(int op, int lane, int b, int width) {
    const int seg = lane / width * width;
    switch (op) {
    case kIdx: return seg + b % width;
    case kUp: return lane - seg >= b ? lane - b : lane;
    case kDown: return lane - seg + b < width ? lane + b : lane;
    default: return (lane ^ b) < seg + width ? lane ^ b : lane;  // earlier groups readable, later ones not
    }
}

// 8-byte and 2-byte values through shuffles.
__global__ void shuffle_types_kernel(double* d, __nv_bfloat16* h) {
    const unsigned t = threadIdx.x;
    d[t] = __shfl_sync(0xffffffffu, 0.5 + t, (t + 3) % 32);
    h[t] = __shfl_xor_sync(0xffffffffu, __float2bfloat16(static_cast<float>(t)), 1);
}

// Votes and counting barriers.
__global__ void vote_kernel(unsigned* ballot, int* any_none, int* any_some, int* all_true, int* all_some, int* counts) {
    const unsigned lane = threadIdx.x % 32, w = threadIdx.x / 32;
    const int some = lane % 3 == 0;
    const unsigned bal = __ballot_sync(0xffffffffu, some);
    const int an = __any_sync(0xffffffffu, 0), as = __any_sync(0xffffffffu, some);
    const int at = __all_sync(0xffffffffu, 1), al = __all_sync(0xffffffffu, some);
    const int c = __syncthreads_count(threadIdx.x % 5 == 0);
    const int ca = __syncthreads_and(threadIdx.x < 1000);
    const int co = __syncthreads_or(threadIdx.x == 17);
    const int cn = __syncthreads_and(threadIdx.x != 17);
    __syncwarp();
    if (lane == 0) {
        ballot[w] = bal;
        any_none[w] = an;
        any_some[w] = as;
        all_true[w] = at;
        all_some[w] = al;
    }
    if (threadIdx.x == 0) {
        counts[0] = c;
        counts[1] = ca;
        counts[2] = co;
        counts[3] = cn;
    }
}

// __activemask() is the caller's warp lanes that have not exited; between two __syncwarp none can have exited.
// (Inside a branch its value depends on the schedule, as on a GPU it depends on convergence: don't rely on it.)
__global__ void activemask_kernel(unsigned* out) {
    __syncwarp();
    const unsigned m = __activemask();
    __syncwarp();
    if (threadIdx.x % 32 == 0) out[threadIdx.x / 32] = m;
}

struct AtomicsOut {
    int i;
    unsigned u;
    unsigned long long ull;
    float f;
    double d;
    __nv_bfloat16 h;
    int max, min, owner, exchanges;
};

__global__ void atomics_kernel(AtomicsOut* o) {
    const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    atomicAdd(&o->i, 1);
    atomicAdd(&o->u, 2u);
    atomicAdd(&o->ull, 3ull);
    atomicAdd(&o->f, 0.5f);
    atomicAdd(&o->d, 0.25);
    if (threadIdx.x == 0) atomicAdd(&o->h, __float2bfloat16(1.0f));
    atomicMax(&o->max, t);
    atomicMin(&o->min, t);
    atomicCAS(&o->owner, -1, t);
    if (atomicExch(&o->exchanges, t) != t) __threadfence();
}

// Reverse a block's slice through dynamic shared memory.
template <int Tag>
__global__ void reverse_dynamic_kernel(float* out, const float* x, int n) {
    LNFREE_DYNAMIC_SHARED(float, buf);
    for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = x[blockIdx.x * n + i];
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + i] = buf[n - 1 - i];
}

// Reads shared memory that nothing wrote: the layer poisons it (0xFF bytes: NaN) before each block.
__global__ void unwritten_shared_kernel(float* static_out, float* dynamic_out) {
    __shared__ float s[64];
    LNFREE_DYNAMIC_SHARED(float, d);
    if (threadIdx.x < 16) s[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 0) {
        static_out[blockIdx.x] = s[40];
        dynamic_out[blockIdx.x] = d[5];
    }
    // leave both written, so a block that ran before on the same worker would have left 1.0 behind
    __syncthreads();
    s[threadIdx.x] = 1.0f;
    d[threadIdx.x] = 1.0f;
}

__global__ void axpb_kernel(float* y, const float* x, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = 2.0f * x[i] + 1.0f;
}

__global__ void index3d_kernel(int* out) {
    const int bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const int g = bx * blockDim.x * blockDim.y * blockDim.z + tx;
    int* o = out + 8 * g;
    o[0] = threadIdx.x, o[1] = threadIdx.y, o[2] = threadIdx.z;
    o[3] = blockIdx.x, o[4] = blockIdx.y, o[5] = blockIdx.z;
    o[6] = blockDim.x * 100 + blockDim.y * 10 + blockDim.z;
    o[7] = gridDim.x * 100 + gridDim.y * 10 + gridDim.z;
}

__global__ void params_kernel(int* out, int n) {
    n += threadIdx.x;  // each thread owns a copy of its parameters
    __syncthreads();
    out[threadIdx.x] = n;
}

__global__ void deadlock_kernel(float* out) {
    float v = static_cast<float>(threadIdx.x);
    if (threadIdx.x % 32 < 16) __syncthreads();  // half of every warp waits here ...
    v = __shfl_xor_sync(0xffffffffu, v, 1);      // ... the other half here
    out[threadIdx.x] = v;
}

__global__ void divergent_shuffle_kernel(float* out) {
    if (threadIdx.x % 32 < 16) return;  // early return of half a warp
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<float>(threadIdx.x), 1);
}

__global__ void divergent_barrier_kernel(float* out) {
    if (threadIdx.x < 32) {
        out[threadIdx.x] = 1.0f;
        __syncthreads();
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f;
    }
}

__global__ void partial_warp_shuffle_kernel(float* out) {  // block of 48: lane 0 of warp 1 reads lane 16
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<float>(threadIdx.x), 16);
}

__global__ void early_exit_kernel(float* out, int n) {  // whole warps return early; the rest meet at the barrier
    __shared__ float s[64];
    if (static_cast<int>(threadIdx.x / 32 * 32) >= n) return;
    s[threadIdx.x % 64] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % 32];
}

__global__ void trap_kernel(int* out) {
    if (threadIdx.x == 7) __trap();
    out[threadIdx.x] = 1;
}

__global__ void sync_bench_kernel(float* out, int syncs) {
    __shared__ float s[1024];
    float v = static_cast<float>(threadIdx.x);
    for (int k = 0; k < syncs; ++k) {
        s[threadIdx.x] = v;
        __syncthreads();
        v += s[(threadIdx.x + 1) % blockDim.x];
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

__global__ void noop_kernel(float*) {}

std::vector<float> ramp(int n) {
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i) x[i] = static_cast<float>((i * 37) % 101) * 0.25f - 12.0f;
    return x;
}

}  // namespace

// ---- tests --------------------------------------------------------------------------------------------------------

TEST_CASE("block reductions with static shared memory and __syncthreads, every schedule", "[emulation]") {
    const int n = 10007, grid = 5;
    const std::vector<float> x = ramp(n);
    const double ref = std::accumulate(x.begin(), x.end(), 0.0);
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        INFO("schedule " << cuda_emu::schedule_name(s));
        std::vector<float> partial(grid, 0.0f);
        launch_kernel(tree_sum_kernel, dim3(grid), dim3(256), 0, nullptr, partial.data(), x.data(), n);
        CHECK(std::accumulate(partial.begin(), partial.end(), 0.0) == Approx(ref).epsilon(1e-5));
        for (int block : {32, 96, 1024}) {  // 96: not a power of two
            std::fill(partial.begin(), partial.end(), 0.0f);
            launch_kernel(block_sum_kernel, dim3(grid), dim3(block), 0, nullptr, partial.data(), x.data(), n);
            CHECK(std::accumulate(partial.begin(), partial.end(), 0.0) == Approx(ref).epsilon(1e-5));
        }
        // the example kernel header (also compiled by nvcc): dynamic shared memory, grid-stride loop, warp sums
        const int rows = 6, cols = 1000;
        std::vector<float> out(rows);
        lnfree::example::row_sum(out.data(), x.data(), rows, cols, 0.5f, 128, nullptr);
        for (int r = 0; r < rows; ++r) {
            const double row_ref = 0.5 * std::accumulate(x.begin() + r * cols, x.begin() + (r + 1) * cols, 0.0);
            CHECK(out[r] == Approx(row_ref).epsilon(1e-5).margin(1e-4));
        }
    }
}

TEST_CASE("a missing __syncthreads gives wrong output in at least one schedule", "[emulation]") {
    const int n = 4096, grid = 4;
    const std::vector<float> x = ramp(n);
    const double ref = std::accumulate(x.begin(), x.end(), 0.0);
    int wrong_sum = 0, wrong_rotate = 0;
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        std::vector<float> partial(grid);
        launch_kernel(tree_sum_missing_sync_kernel, dim3(grid), dim3(256), 0, nullptr, partial.data(), x.data(), n);
        const double got = std::accumulate(partial.begin(), partial.end(), 0.0);
        wrong_sum += !(std::abs(got - ref) <= 1e-5 * std::abs(ref));
        std::vector<float> rotated(128);
        launch_kernel(rotate_missing_sync_kernel, dim3(1), dim3(128), 0, nullptr, rotated.data(), x.data());
        bool ok = true;
        for (int t = 0; t < 128; ++t) ok = ok && rotated[t] == x[(t + 1) % 128];
        wrong_rotate += !ok;
        std::printf("missing __syncthreads, %s schedule: tree sum %s, rotate %s\n", cuda_emu::schedule_name(s),
                    std::abs(got - ref) <= 1e-5 * std::abs(ref) ? "right" : "WRONG", ok ? "right" : "WRONG");
    }
    CHECK(wrong_sum >= 1);
    CHECK(wrong_rotate >= 1);
}

TEST_CASE("shared memory that nothing wrote reads as poison (NaN), static and dynamic", "[emulation]") {
    const int grid = 8;
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        std::vector<float> st(grid, 0.0f), dy(grid, 0.0f);
        launch_kernel(unwritten_shared_kernel, dim3(grid), dim3(64), 64 * sizeof(float), nullptr, st.data(), dy.data());
        for (int b = 0; b < grid; ++b) CHECK(std::isnan(dy[b]));
        if (cuda_emu::static_shared_poisoning())
            for (int b = 0; b < grid; ++b) CHECK(std::isnan(st[b]));
        else
            WARN("static __shared__ poisoning is not available in this build");
    }
    CHECK(cuda_emu::static_shared_poisoning());  // expected in the project's test binary
}

TEST_CASE("warp reductions with __shfl_xor_sync and __shfl_down_sync", "[emulation]") {
    const int n = 4 * 64;
    const std::vector<float> x = ramp(n);
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        std::vector<float> a(n), b(n);
        launch_kernel(warp_sum_kernel, dim3(4), dim3(64), 0, nullptr, a.data(), b.data(), x.data());
        for (int w = 0; w < n / 32; ++w) {
            const double ref = std::accumulate(x.begin() + 32 * w, x.begin() + 32 * w + 32, 0.0);
            for (int l = 0; l < 32; ++l) CHECK(a[32 * w + l] == Approx(ref).margin(1e-4));
            CHECK(b[32 * w] == Approx(ref).margin(1e-4));
        }
    }
}

TEST_CASE("width-limited shuffles follow the source-lane rules", "[emulation]") {
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        for (int op : {kIdx, kUp, kDown, kXor})
            for (int width : {1, 2, 4, 8, 16, 32})
                for (int b : {0, 1, 3, 5, 8, 16, 31}) {
                    std::vector<int> out(64, -1);
                    launch_kernel(shuffle_kernel, dim3(1), dim3(64), 0, nullptr, out.data(), op, b, width);
                    for (int t = 0; t < 64; ++t) {
                        INFO("op " << op << " width " << width << " b " << b << " thread " << t);
                        REQUIRE(out[t] == 1000 * (t / 32) + expected_shuffle(op, t % 32, b, width));
                    }
                }
        std::vector<int> out(64);  // srcLane beyond the width wraps within the segment
        launch_kernel(shuffle_kernel, dim3(1), dim3(64), 0, nullptr, out.data(), static_cast<int>(kIdx), 33, 8);
        CHECK(out[9] == 9);
        CHECK(out[42] == 1000 + 9);
        std::vector<double> d(32);
        std::vector<__nv_bfloat16> h(32);
        launch_kernel(shuffle_types_kernel, dim3(1), dim3(32), 0, nullptr, d.data(), h.data());
        for (int t = 0; t < 32; ++t) {
            CHECK(d[t] == 0.5 + (t + 3) % 32);
            CHECK(__bfloat162float(h[t]) == static_cast<float>(t ^ 1));
        }
    }
}

TEST_CASE("ballot, any, all, __syncthreads_count/and/or, __activemask", "[emulation]") {
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        std::vector<unsigned> ballot(4);
        std::vector<int> any_none(4), any_some(4), all_true(4), all_some(4), counts(4);
        launch_kernel(vote_kernel, dim3(1), dim3(128), 0, nullptr, ballot.data(), any_none.data(), any_some.data(),
                      all_true.data(), all_some.data(), counts.data());
        unsigned expect = 0;
        for (int l = 0; l < 32; l += 3) expect |= 1u << l;
        for (int w = 0; w < 4; ++w) {
            CHECK(ballot[w] == expect);
            CHECK(any_none[w] == 0);
            CHECK(any_some[w] == 1);
            CHECK(all_true[w] == 1);
            CHECK(all_some[w] == 0);
        }
        CHECK(counts == std::vector<int>{26, 1, 1, 0});
        std::vector<unsigned> masks(2);
        launch_kernel(activemask_kernel, dim3(1), dim3(48), 0, nullptr, masks.data());
        CHECK(masks[0] == 0xffffffffu);
        CHECK(masks[1] == 0x0000ffffu);
    }
}

TEST_CASE("atomics from many blocks running in parallel", "[emulation]") {
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        AtomicsOut o{};
        o.h = __float2bfloat16(0.0f);
        o.min = 1 << 30;
        o.max = -1;
        o.owner = -1;
        const int blocks = 64, threads = 128, total = blocks * threads;
        launch_kernel(atomics_kernel, dim3(blocks), dim3(threads), 0, nullptr, &o);
        CHECK(o.i == total);
        CHECK(o.u == 2u * total);
        CHECK(o.ull == 3ull * total);
        CHECK(o.f == 0.5f * total);
        CHECK(o.d == 0.25 * total);
        CHECK(__bfloat162float(o.h) == static_cast<float>(blocks));
        CHECK(o.max == total - 1);
        CHECK(o.min == 0);
        CHECK(o.owner >= 0);
        CHECK(o.owner < total);
    }
}

TEST_CASE("dynamic shared memory: within the limit, over it, and after cudaFuncSetAttribute", "[emulation]") {
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        const int n = 4000, blocks = 3;  // 16 000 bytes per block
        const std::vector<float> x = ramp(n * blocks);
        std::vector<float> out(n * blocks);
        launch_kernel(reverse_dynamic_kernel<0>, dim3(blocks), dim3(96), n * sizeof(float), nullptr, out.data(), x.data(), n);
        for (int b = 0; b < blocks; ++b)
            for (int i = 0; i < n; ++i) REQUIRE(out[b * n + i] == x[b * n + n - 1 - i]);
    }
    // over 48 KiB without the attribute: the launch fails, as on a GPU
    const int big = 16384;  // 64 KiB
    const std::vector<float> x = ramp(big);
    std::vector<float> out(big);
    const std::string msg = kernel_error([&] {
        launch_kernel(reverse_dynamic_kernel<1>, dim3(1), dim3(256), big * sizeof(float), nullptr, out.data(), x.data(), big);
    });
    CHECK_THAT(msg, Catch::Contains("cudaFuncAttributeMaxDynamicSharedMemorySize"));
    CHECK_THAT(msg, Catch::Contains("49152"));
    CHECK_THAT(msg, Catch::Contains("reverse_dynamic_kernel<1>"));
    CHECK(cudaFuncSetAttribute(reverse_dynamic_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) ==
          cudaErrorInvalidValue);
    CHECK_THROWS_AS(lnfree::set_max_dynamic_shared_memory(reverse_dynamic_kernel<1>, 300 * 1024), std::runtime_error);
    lnfree::set_max_dynamic_shared_memory(reverse_dynamic_kernel<1>, 100 * 1024);
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        launch_kernel(reverse_dynamic_kernel<1>, dim3(1), dim3(256), big * sizeof(float), nullptr, out.data(), x.data(), big);
        for (int i = 0; i < big; ++i) REQUIRE(out[i] == x[big - 1 - i]);
    }
    CHECK_THROWS_AS(launch_kernel(reverse_dynamic_kernel<1>, dim3(1), dim3(256), 101 * 1024, nullptr, out.data(), x.data(), big),
                    cuda_emu::KernelError);
}

TEST_CASE("grid-stride loops with sizes that are not multiples of the block", "[emulation]") {
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        for (int n : {1, 31, 1000, 4099}) {
            const std::vector<float> x = ramp(n);
            std::vector<float> y(n + 1, -7.0f);
            launch_kernel(axpb_kernel, dim3(4), dim3(96), 0, nullptr, y.data(), x.data(), n);
            for (int i = 0; i < n; ++i) REQUIRE(y[i] == 2.0f * x[i] + 1.0f);
            CHECK(y[n] == -7.0f);
        }
    }
}

TEST_CASE("3D grid and block indexing", "[emulation]") {
    const dim3 grid(3, 2, 2), block(4, 3, 2);
    const int total = 12 * 24;
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        std::vector<int> out(8 * total, -1);
        launch_kernel(index3d_kernel, grid, block, 0, nullptr, out.data());
        int g = 0;
        for (unsigned bz = 0; bz < 2; ++bz)
            for (unsigned by = 0; by < 2; ++by)
                for (unsigned bx = 0; bx < 3; ++bx)
                    for (unsigned tz = 0; tz < 2; ++tz)
                        for (unsigned ty = 0; ty < 3; ++ty)
                            for (unsigned tx = 0; tx < 4; ++tx, ++g) {
                                const std::vector<int> got(out.begin() + 8 * g, out.begin() + 8 * g + 8);
                                REQUIRE(got == std::vector<int>{int(tx), int(ty), int(tz), int(bx), int(by), int(bz), 432, 322});
                            }
    }
}

TEST_CASE("kernel arguments are copied for every thread", "[emulation]") {
    std::vector<int> out(64);
    launch_kernel(params_kernel, dim3(1), dim3(64), 0, nullptr, out.data(), 100);
    for (int t = 0; t < 64; ++t) CHECK(out[t] == 100 + t);
}

TEST_CASE("a deadlock names the kernel, the block, and where each warp's lanes wait", "[emulation]") {
    std::vector<float> out(64);
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        const std::string msg = kernel_error([&] { launch_kernel(deadlock_kernel, dim3(2), dim3(64), 0, nullptr, out.data()); });
        INFO(msg);
        CHECK_THAT(msg, Catch::Contains("deadlock_kernel"));
        CHECK_THAT(msg, Catch::Contains("deadlock"));
        CHECK_THAT(msg, Catch::Contains("block (0,0,0)"));
        CHECK_THAT(msg, Catch::Contains("warp 0 (threads 0-31): lanes 0-15 wait at __syncthreads()"));
        CHECK_THAT(msg, Catch::Contains("lanes 16-31 wait at __shfl_xor_sync(mask 0xffffffff)"));
        CHECK_THAT(msg, Catch::Contains("warp 1 (threads 32-63)"));
        CHECK_THAT(msg, Catch::Contains("test_emulation.cpp:"));
    }
}

TEST_CASE("divergent warp operations and barriers are reported", "[emulation]") {
    std::vector<float> out(64);
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        std::string msg = kernel_error([&] { launch_kernel(divergent_shuffle_kernel, dim3(1), dim3(64), 0, nullptr, out.data()); });
        INFO(msg);
        CHECK_THAT(msg, Catch::Contains("divergent warp operation"));
        CHECK_THAT(msg, Catch::Contains("lanes 16-31 of warp 0 wait at __shfl_xor_sync but lanes 0-15 of its mask exited"));
        msg = kernel_error([&] { launch_kernel(divergent_barrier_kernel, dim3(1), dim3(64), 0, nullptr, out.data()); });
        CHECK_THAT(msg, Catch::Contains("divergent __syncthreads"));
        msg = kernel_error([&] { launch_kernel(partial_warp_shuffle_kernel, dim3(1), dim3(48), 0, nullptr, out.data()); });
        CHECK_THAT(msg, Catch::Contains("reads lane 16, which does not exist"));
        msg = kernel_error([&] { launch_kernel(trap_kernel, dim3(1), dim3(32), 0, nullptr, reinterpret_cast<int*>(out.data())); });
        CHECK_THAT(msg, Catch::Contains("__trap() called"));
        CHECK_THAT(msg, Catch::Contains("[thread (7,0,0)]"));
        // whole warps may return early; the rest still meet at the barrier
        std::fill(out.begin(), out.end(), 0.0f);
        launch_kernel(early_exit_kernel, dim3(1), dim3(64), 0, nullptr, out.data(), 32);
        for (int t = 0; t < 32; ++t) CHECK(out[t] == 1.0f);
        CHECK(out[32] == 0.0f);
    }
}

TEST_CASE("bad launch configurations fail like a real launch", "[emulation]") {
    float* p = nullptr;
    auto code = [&](dim3 g, dim3 b) {
        try {
            launch_kernel(noop_kernel, g, b, 0, nullptr, p);
        } catch (const cuda_emu::KernelError& e) {
            return e.code();
        }
        return cudaSuccess;
    };
    CHECK(code(dim3(1), dim3(1025)) == cudaErrorInvalidConfiguration);
    CHECK(code(dim3(1), dim3(512, 3)) == cudaErrorInvalidConfiguration);
    CHECK(code(dim3(1), dim3(1, 1, 65)) == cudaErrorInvalidConfiguration);
    CHECK(code(dim3(0), dim3(32)) == cudaErrorInvalidConfiguration);
    CHECK(code(dim3(1, 65536), dim3(32)) == cudaErrorInvalidConfiguration);
    CHECK(code(dim3(1), dim3(1024)) == cudaSuccess);
    CHECK_THAT(kernel_error([&] { launch_kernel(noop_kernel, dim3(1), dim3(2048), 0, nullptr, p); }),
               Catch::Contains("more than 1024 threads per block"));
    // the pool is still usable after failed launches
    std::vector<float> y(10);
    const std::vector<float> x = ramp(10);
    launch_kernel(axpb_kernel, dim3(1), dim3(32), 0, nullptr, y.data(), x.data(), 10);
    CHECK(y[9] == 2.0f * x[9] + 1.0f);
}

TEST_CASE("cost of the emulation per thread per sync point (printed, not asserted)", "[emulation][benchmark]") {
    const int blocks = 64, threads = 256, syncs = 64;
    std::vector<float> out(blocks * threads);
    for (Schedule s : kSchedules) {
        ScheduleScope scope(s);
        launch_kernel(sync_bench_kernel, dim3(blocks), dim3(threads), 0, nullptr, out.data(), 1);  // warm the stacks
        const auto t0 = std::chrono::steady_clock::now();
        launch_kernel(sync_bench_kernel, dim3(blocks), dim3(threads), 0, nullptr, out.data(), syncs);
        const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double ns = sec * 1e9 / (double(blocks) * threads * (syncs + 1));
        std::printf("emulation cost, %s schedule: %.1f ns per thread per sync point (%.1f ns x %u workers)\n",
                    cuda_emu::schedule_name(s), ns, ns * cuda_emu::num_workers(), cuda_emu::num_workers());
    }
}
