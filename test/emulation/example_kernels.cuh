// A kernel header written to the project's conventions (doc/emulation.md): both nvcc and g++ compile it.
// test/emulation/test_emulation.cpp runs it on the CPU; test/emulation/example_nvcc.cu is the nvcc compile check.
#pragma once
#include "kernels/launch.cuh"

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

}  // namespace lnfree::example
