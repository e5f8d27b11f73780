// What every kernel file includes first: the CUDA runtime (or, under g++, the project's host emulation of it),
// the launch helper, bf16, and a few device helpers. Kernels are templated on the activation type
// T = __nv_bfloat16 (the product) or float (the float32 build, for tight comparisons).
#pragma once
#if defined(__CUDACC__)
#include <cuda_runtime.h>
#else
#include "kernels/emulation/cuda_host_emulation.h"
#endif
#include <cuda_bf16.h>

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "kernels/launch.cuh"
#include "lnfree/philox.h"

namespace lnfree::kernels {

using bf16 = __nv_bfloat16;

__host__ __device__ inline float to_float(float x) { return x; }
__host__ __device__ inline float to_float(bf16 x) { return __bfloat162float(x); }

template <typename T> __host__ __device__ inline T from_float(float x);
template <> __host__ __device__ inline float from_float<float>(float x) { return x; }
template <> __host__ __device__ inline bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }

inline int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

// Blocks for a grid-stride loop over n items with `block` threads: enough to fill any GPU. Under the host
// emulation every CUDA thread costs a fiber, or a call in a plain loop, so a few blocks per worker do the same work
// faster (measured: one item per thread is no faster in plain loops, and slower on fibers).
inline dim3 stride_grid(size_t n, int block) {
#if defined(CUDA_HOST_EMU)
    const size_t cap = 16;
#else
    const size_t cap = 65535;
#endif
    return dim3((unsigned)std::min<size_t>(std::max<size_t>((n + block - 1) / block, 1), cap));
}

// Threads for a kernel that reduces each row with a whole block: `gpu` on a GPU; under the emulation, where every
// barrier and shuffle switches fibers, the fewest warps that keep at most `per_thread` items per thread.
inline int row_block(int gpu, int row_length, int per_thread) {
#if defined(CUDA_HOST_EMU)
    const int needed = (row_length + per_thread - 1) / per_thread;
    return std::min(gpu, std::max(32, (needed + 31) / 32 * 32));
#else
    (void)row_length;
    (void)per_thread;
    return gpu;
#endif
}

// Single-thread reductions: whether a row (or a block's slice) that a GPU reduces with a warp or a block is reduced
// by one thread instead. Under the emulator it is the launchers' default: every shuffle and barrier switches fibers
// there, and a kernel whose reductions are one thread's never synchronises, so it runs as a plain loop
// (Sync::none). The launchers take it as a parameter, and the kernel tests run both shapes.
#if defined(CUDA_HOST_EMU)
inline constexpr bool kSingleThreadReductions = true;
#else
inline constexpr bool kSingleThreadReductions = false;
#endif
inline Sync reduction_sync(bool single_thread) { return single_thread ? Sync::none : Sync::may_sync; }

// Max and sum over `lanes` consecutive lanes (1 or a power of two up to 32): every lane gets the result, in a fixed
// order; one lane never shuffles.
__device__ inline float row_max(float v, int lanes) {
    for (int offset = lanes / 2; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}
__device__ inline float row_sum(float v, int lanes) {
    for (int offset = lanes / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Sum over a warp; every lane gets the same result, in a fixed order (deterministic).
__device__ inline float warp_sum(float v) { return row_sum(v, 32); }

// Sum over a block of up to 1024 threads (a multiple of 32, or 1: the value itself, no synchronisation); every
// thread gets the result, in a fixed order. scratch: 32 floats of shared memory, free again when this returns.
__device__ inline float block_sum(float v, float* scratch) {
    if (blockDim.x == 1) return v;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < warps; w++) total += scratch[w];
    __syncthreads();
    return total;
}

}  // namespace lnfree::kernels
