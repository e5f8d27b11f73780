// A kernel header written to the project's conventions (doc/emulation.md): both nvcc and g++ compile it.
// test/emulation/test_emulation.cpp and test_mma.cpp run it on the CPU; test/emulation/example_nvcc.cu is the nvcc
// compile check.
#pragma once
#include "kernels/launch.cuh"
#include "kernels/mma.cuh"

namespace lnfree::example {

// Sum of a warp's values, in every lane (full mask, every lane executes it).
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// out[row] = scale * sum(x[row, :]) over a (rows, cols) row-major matrix: one block per row, a grid-stride loop
// over the columns, warp sums through shuffles, the warps' partial sums through dynamic shared memory.
__global__ void __launch_bounds__(1024) row_sum_kernel(float* __restrict__ out, const float* __restrict__ x, int cols, float scale) {
    LNFREE_DYNAMIC_SHARED(float, partial);  // one float per warp
    const float* row = x + static_cast<size_t>(blockIdx.x) * cols;
    float v = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) v += __ldg(row + c);
    v = warp_sum(v);
    const int warp = threadIdx.x / warpSize, lane = threadIdx.x % warpSize;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int nwarps = blockDim.x / warpSize;
        v = lane < nwarps ? partial[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) __stcs(out + blockIdx.x, scale * v);
    }
}

// The kernel's one launcher, used by the trainer and the tests alike. block_size: a multiple of 32, <= 1024.
inline void row_sum(float* out, const float* x, int rows, int cols, float scale, int block_size, cudaStream_t stream) {
    launch_kernel(row_sum_kernel, dim3(rows), dim3(block_size), (block_size / 32) * sizeof(float), stream, out, x, cols, scale);
}

// A flash-attention tile in miniature, without the softmax, on the tensor cores (kernels/mma.cuh), one warp per
// tile: o = bf16(bf16(scale q) k^T) v for q, k (16 x 16) and v (16 x 24) in bf16, o (16 x 24) in float, all
// row-major, tile b at q + 256 b, k + 256 b, v + 384 b, o + 384 b. v is 24 wide so that its B fragments are loaded
// both ways: the first two 8-column tiles with one ldmatrix_x4_trans, the third with ldmatrix_x2_trans.
__global__ void __launch_bounds__(32) mma_tile_kernel(float* __restrict__ o, const __nv_bfloat16* __restrict__ q,
                                                      const __nv_bfloat16* __restrict__ k,
                                                      const __nv_bfloat16* __restrict__ v, float scale) {
    using namespace lnfree::kernels;
    // bf16 pairs, each row padded by 16 bytes: rows stay 16-byte aligned for ldmatrix and fall on other banks
    __shared__ __align__(16) uint32_t qs[16][12], ks[16][12], vs[16][16];
    const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    const uint32_t* q2 = reinterpret_cast<const uint32_t*>(q) + blockIdx.x * 128;
    const uint32_t* k2 = reinterpret_cast<const uint32_t*>(k) + blockIdx.x * 128;
    const uint32_t* v2 = reinterpret_cast<const uint32_t*>(v) + blockIdx.x * 192;
    for (int i = lane; i < 128; i += 32) {
        const uint32_t w = q2[i];
        qs[i / 8][i % 8] = pack_bf16(scale * bf16_lo(w), scale * bf16_hi(w));
        ks[i / 8][i % 8] = k2[i];
    }
    for (int i = lane; i < 192; i += 32) vs[i / 12][i % 12] = v2[i];
    __syncwarp();

    MmaA qa;
    ldmatrix_x4(qa.r, &qs[lane % 8 + 8 * (lane / 8 % 2)][4 * (lane / 16)]);
    MmaC s[2] = {};
    for (int j = 0; j < 2; ++j) {  // scores of keys 8j..8j+7: one row per key (n by k), so ldmatrix_x2 gives B
        MmaB kb;
        ldmatrix_x2(kb.r, &ks[8 * j + lane % 8][4 * (lane / 8 % 2)]);
        mma_16816(s[j], qa, kb);
    }
    // the C fragments of the two score tiles, side by side, are the A fragment of p
    const MmaA p = {{pack_bf16(s[0].r[0], s[0].r[1]), pack_bf16(s[0].r[2], s[0].r[3]), pack_bf16(s[1].r[0], s[1].r[1]),
                     pack_bf16(s[1].r[2], s[1].r[3])}};
    uint32_t v01[4];
    ldmatrix_x4_trans(v01, &vs[lane % 16][4 * (lane / 16)]);
    MmaB vb[3] = {{{v01[0], v01[1]}}, {{v01[2], v01[3]}}, {}};
    ldmatrix_x2_trans(vb[2].r, &vs[lane % 16][8]);
    float* out = o + blockIdx.x * 384;
    for (int j = 0; j < 3; ++j) {
        MmaC acc = {};
        mma_16816(acc, p, vb[j]);
        out[g * 24 + 8 * j + 2 * t] = acc.r[0];
        out[g * 24 + 8 * j + 2 * t + 1] = acc.r[1];
        out[(g + 8) * 24 + 8 * j + 2 * t] = acc.r[2];
        out[(g + 8) * 24 + 8 * j + 2 * t + 1] = acc.r[3];
    }
}

inline void mma_tile(float* o, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, float scale,
                     int tiles, cudaStream_t stream) {
    launch_kernel(mma_tile_kernel, dim3(tiles), dim3(32), 0, stream, o, q, k, v, scale);
}

}  // namespace lnfree::example
