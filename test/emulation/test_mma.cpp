// The tensor-core warp operations of kernels/mma.cuh under the host emulation (kernels/emulation/cuda_host_mma.h):
// mma_16816 against a plain float matrix product, ldmatrix x2/x4 and .trans against the PTX layouts, with one and
// with two warps per block, and the example tile kernel that chains them, each in the three scheduling orders; lanes
// that skip one of the operations, and other misuse, must be reported, not hang.
#include "test/kernels/kernel_test_util.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/mma.cuh"
#include "test/emulation/example_kernels.cuh"

using namespace lnfree::kernels;
using lnfree::launch_kernel;
using lnfree::test::rel_error;
using lnfree::test::use_schedule;

namespace {

// The bits of n random bf16 values in [-2, 2).
std::vector<std::uint16_t> random_bf16(size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
    std::vector<std::uint16_t> v(n);
    for (std::uint16_t& x : v) x = __bfloat16_as_ushort(__float2bfloat16_rn(uniform(rng)));
    return v;
}
float bf16_value(std::uint16_t bits) { return bf16_lo(bits); }
__host__ __device__ std::uint32_t pair(std::uint16_t lo, std::uint16_t hi) {
    return std::uint32_t{lo} | std::uint32_t{hi} << 16;
}

// Fragments by the PTX layouts (g = lane >> 2, t = lane & 3), with plain loads: A 16x16 and B 16x8 (k by n) row-major.
__device__ MmaA load_a(const std::uint16_t* a, int g, int t) {
    const auto at = [&](int row, int col) { return pair(a[row * 16 + col], a[row * 16 + col + 1]); };
    return {{at(g, 2 * t), at(g + 8, 2 * t), at(g, 2 * t + 8), at(g + 8, 2 * t + 8)}};
}
__device__ MmaB load_b(const std::uint16_t* b, int g, int t) {
    const auto at = [&](int k) { return pair(b[k * 8 + g], b[(k + 1) * 8 + g]); };
    return {{at(2 * t), at(2 * t + 8)}};
}

// Warp w: d = c + a_0 b_0 + a_1 b_1 for its own tiles (a: 2 x 256, b: 2 x 128, c and d: 128 values per warp).
__global__ void mma_twice_kernel(float* d, const std::uint16_t* a, const std::uint16_t* b, const float* c) {
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    a += 512 * w, b += 256 * w, c += 128 * w, d += 128 * w;
    MmaC acc = {{c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]}};
    mma_16816(acc, load_a(a, g, t), load_b(b, g, t));
    mma_16816(acc, load_a(a + 256, g, t), load_b(b + 128, g, t));
    d[g * 8 + 2 * t] = acc.r[0];
    d[g * 8 + 2 * t + 1] = acc.r[1];
    d[(g + 8) * 8 + 2 * t] = acc.r[2];
    d[(g + 8) * 8 + 2 * t + 1] = acc.r[3];
}

enum LdmatrixForm { kX2, kX2Trans, kX4, kX4Trans };
constexpr int kStride = 24;  // bf16 per shared row: 16 and 8 of padding (48 bytes, so rows stay 16-byte aligned)

// Row j of matrix i in the ldmatrix test: an arbitrary arrangement of the tile's rows and 8-column halves.
__host__ __device__ int matrix_row(int i, int j) { return (7 * j + 2 * i) % 16; }
__host__ __device__ int matrix_col(int i) { return 8 * (i % 2); }

// Warp w copies its 16x16 tile (tile + 256 w) into shared memory with padded rows; lane l gives the address of
// row l % 8 of matrix l / 8 (x2 ignores lanes 16-31); out gets 4 registers per thread.
__global__ void ldmatrix_kernel(std::uint32_t* out, const std::uint16_t* tile, int form) {
    __shared__ __align__(16) std::uint16_t s[2][16][kStride];
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int e = lane; e < 256; e += 32) s[w][e / 16][e % 16] = tile[256 * w + e];
    __syncwarp();
    const void* row = &s[w][matrix_row(lane / 8, lane % 8)][matrix_col(lane / 8)];
    std::uint32_t* o = out + 4 * threadIdx.x;
    if (form == kX2 || form == kX2Trans) {
        std::uint32_t r[2];
        if (form == kX2) ldmatrix_x2(r, row);
        else ldmatrix_x2_trans(r, row);
        for (int i = 0; i < 2; ++i) o[i] = r[i];
    } else {
        std::uint32_t r[4];
        if (form == kX4) ldmatrix_x4(r, row);
        else ldmatrix_x4_trans(r, row);
        for (int i = 0; i < 4; ++i) o[i] = r[i];
    }
}

// Planted bugs: lane 5 of every warp skips the mma and exits; lane 17 skips the ldmatrix and waits at a __syncwarp.
__global__ void mma_skipped_kernel(float* d) {
    MmaC acc = {};
    if (threadIdx.x % 32 != 5) mma_16816(acc, MmaA{}, MmaB{});
    d[threadIdx.x] = acc.r[0];
}
__global__ void ldmatrix_skipped_kernel(std::uint32_t* out) {
    __shared__ __align__(16) std::uint16_t s[32][8];
    for (int c = 0; c < 8; ++c) s[threadIdx.x][c] = static_cast<std::uint16_t>(c);
    __syncwarp();
    std::uint32_t r[4] = {};
    if (threadIdx.x != 17) ldmatrix_x4(r, s[threadIdx.x]);
    __syncwarp();
    out[threadIdx.x] = r[0];
}

// Misuse: the lanes of a warp at two different mma calls; lane 3 giving a row address outside shared memory, or
// one that is not 16-byte aligned.
__global__ void mma_two_calls_kernel(float* d) {
    MmaC acc = {};
    if (threadIdx.x < 16) mma_16816(acc, MmaA{}, MmaB{});
    else mma_16816(acc, MmaA{}, MmaB{});
    d[threadIdx.x] = acc.r[0];
}
__global__ void ldmatrix_bad_address_kernel(std::uint32_t* out, const std::uint16_t* global, int misaligned) {
    __shared__ __align__(16) std::uint16_t s[32][16];
    const std::uint16_t* row = threadIdx.x != 3 ? s[threadIdx.x] : misaligned ? s[3] + 1 : global;
    std::uint32_t r[2];
    ldmatrix_x2(r, row);
    out[threadIdx.x] = r[0];
}

}  // namespace

TEST_CASE("pack_bf16 rounds to nearest even and puts lo in the low half; bf16_lo and bf16_hi unpack", "[emulation][mma]") {
    CHECK(pack_bf16(1.0f, -2.0f) == 0xC0003F80u);
    CHECK(pack_bf16(1.0f + 0x1p-8f, 1.0f + 0x3p-8f) == 0x3F823F80u);  // both halfway: to the even neighbour
    CHECK(pack_bf16(1.0f + 0x1.2p-8f, 0.0f) == 0x00003F81u);         // above halfway: up
    CHECK(bf16_lo(0xC0003F80u) == 1.0f);
    CHECK(bf16_hi(0xC0003F80u) == -2.0f);
    CHECK(bf16_lo(pack_bf16(3.140625f, 0.0f)) == 3.140625f);  // exactly representable
}

TEST_CASE("mma_16816 accumulates the product of bf16 fragments like a float matrix product", "[emulation][mma]") {
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    const int warps = GENERATE(1, 2);
    INFO(order << " schedule, " << warps << " warps");
    const std::vector<std::uint16_t> a = random_bf16(512 * warps, 1), b = random_bf16(256 * warps, 2);
    std::vector<float> c(128 * warps), d(128 * warps);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> uniform(-4.0f, 4.0f);
    for (float& x : c) x = uniform(rng);
    launch_kernel(mma_twice_kernel, dim3(1), dim3(32 * warps), 0, nullptr, d.data(), a.data(), b.data(), c.data());
    for (int w = 0; w < warps; ++w) {
        std::vector<float> ref(128), ours(d.begin() + 128 * w, d.begin() + 128 * (w + 1));
        for (int i = 0; i < 16; ++i)
            for (int j = 0; j < 8; ++j) {
                double sum = c[128 * w + i * 8 + j];
                for (int p = 0; p < 2; ++p)
                    for (int k = 0; k < 16; ++k)
                        sum += double(bf16_value(a[512 * w + 256 * p + i * 16 + k])) *
                               bf16_value(b[256 * w + 128 * p + k * 8 + j]);
                ref[i * 8 + j] = static_cast<float>(sum);
            }
        INFO("warp " << w);
        CHECK(rel_error(ours, ref) <= 1e-6);
    }
}

TEST_CASE("ldmatrix x2, x4 and .trans give the PTX fragment layouts from a padded shared tile", "[emulation][mma]") {
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    const int warps = GENERATE(1, 2);
    const int form = GENERATE(kX2, kX2Trans, kX4, kX4Trans);
    INFO(order << " schedule, " << warps << " warps, form " << form);
    const std::vector<std::uint16_t> tile = random_bf16(256 * warps, 4);
    std::vector<std::uint32_t> out(128 * warps, 0);
    launch_kernel(ldmatrix_kernel, dim3(1), dim3(32 * warps), 0, nullptr, out.data(), tile.data(), form);
    const int num = form == kX2 || form == kX2Trans ? 2 : 4;
    const bool trans = form == kX2Trans || form == kX4Trans;
    int wrong = 0;
    for (int w = 0; w < warps; ++w)
        for (int l = 0; l < 32; ++l)
            for (int i = 0; i < num; ++i) {
                const auto m = [&](int r, int c) { return tile[256 * w + matrix_row(i, r) * 16 + matrix_col(i) + c]; };
                const int r = l / 4, c = 2 * (l % 4);
                const std::uint32_t expected = trans ? pair(m(c, r), m(c + 1, r)) : pair(m(r, c), m(r, c + 1));
                wrong += out[4 * (32 * w + l) + i] != expected;
            }
    CHECK(wrong == 0);
}

TEST_CASE("ldmatrix and mma_16816 chained: the example attention tile", "[emulation][mma]") {
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    INFO(order << " schedule");
    const int tiles = 3;
    const float scale = 0.25f;
    const std::vector<std::uint16_t> q = random_bf16(256 * tiles, 5), k = random_bf16(256 * tiles, 6),
                                     v = random_bf16(384 * tiles, 7);
    std::vector<float> o(384 * tiles);
    const auto as_bf16 = [](const std::vector<std::uint16_t>& x) { return reinterpret_cast<const __nv_bfloat16*>(x.data()); };
    lnfree::example::mma_tile(o.data(), as_bf16(q), as_bf16(k), as_bf16(v), scale, tiles, nullptr);
    const auto round = [](float x) { return bf16_lo(pack_bf16(x, 0.0f)); };
    for (int b = 0; b < tiles; ++b) {
        float p[16][16];  // bf16(bf16(scale q) k^T), summed in the order of k as the emulator does
        for (int i = 0; i < 16; ++i)
            for (int j = 0; j < 16; ++j) {
                float s = 0.0f;
                for (int d = 0; d < 16; ++d)
                    s += round(scale * bf16_value(q[256 * b + i * 16 + d])) * bf16_value(k[256 * b + j * 16 + d]);
                p[i][j] = round(s);
            }
        std::vector<float> ref(384), ours(o.begin() + 384 * b, o.begin() + 384 * (b + 1));
        for (int i = 0; i < 16; ++i)
            for (int c = 0; c < 24; ++c) {
                double sum = 0.0;
                for (int n = 0; n < 16; ++n) sum += double(p[i][n]) * bf16_value(v[384 * b + n * 24 + c]);
                ref[i * 24 + c] = static_cast<float>(sum);
            }
        INFO("tile " << b);
        CHECK(rel_error(ours, ref) <= 1e-6);
    }
}

TEST_CASE("a lane that skips mma_16816 or ldmatrix_x4 is reported with the lanes that wait", "[emulation][mma]") {
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    INFO(order << " schedule");
    std::vector<float> d(64);
    CHECK_THROWS_WITH(launch_kernel(mma_skipped_kernel, dim3(1), dim3(64), 0, nullptr, d.data()),
                      Catch::Contains("mma_skipped_kernel") &&
                          Catch::Contains("divergent warp operation: lanes 0-4,6-31 of warp 0 wait at mma_16816 but "
                                          "lanes 5 of its mask exited"));
    std::vector<std::uint32_t> out(32);
    CHECK_THROWS_WITH(launch_kernel(ldmatrix_skipped_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
                      Catch::Contains("deadlock") &&
                          Catch::Contains("lanes 0-16,18-31 wait at ldmatrix_x4(mask 0xffffffff) [test_mma.cpp:") &&
                          Catch::Contains("lanes 17 wait at __syncwarp(mask 0xffffffff) [test_mma.cpp:"));
}

TEST_CASE("misused matrix operations are reported", "[emulation][mma]") {
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    INFO(order << " schedule");
    std::vector<float> d(64);
    CHECK_THROWS_WITH(launch_kernel(mma_two_calls_kernel, dim3(1), dim3(32), 0, nullptr, d.data()),
                      Catch::Contains("divergent warp operation: lanes 0-15 of warp 0 wait at mma_16816 [test_mma.cpp:") &&
                          Catch::Contains("but lanes 16-31 at another call of it"));
    std::vector<std::uint16_t> a(1024), b(512);
    std::vector<float> c(256), two_warps(256);
    CHECK_THROWS_WITH(launch_kernel(mma_twice_kernel, dim3(1), dim3(48), 0, nullptr, two_warps.data(), a.data(), b.data(),
                                    c.data()),
                      Catch::Contains("mma_16816 needs a whole warp, and warp 1 has 16 threads"));
    std::vector<std::uint32_t> out(32);
    const std::vector<std::uint16_t> global(16);
    CHECK_THROWS_WITH(launch_kernel(ldmatrix_bad_address_kernel, dim3(1), dim3(32), 0, nullptr, out.data(), global.data(), 0),
                      Catch::Contains("ldmatrix_x2: lane 3 of warp 0 gives the row address") &&
                          Catch::Contains("which is not in shared memory"));
    CHECK_THROWS_WITH(launch_kernel(ldmatrix_bad_address_kernel, dim3(1), dim3(32), 0, nullptr, out.data(), global.data(), 1),
                      Catch::Contains("which is not 16-byte aligned"));
}
