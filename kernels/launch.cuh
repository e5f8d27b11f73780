// The project's only way to launch a kernel (doc/emulation.md). Every kernel header includes this file first.
//
// Under nvcc: the CUDA runtime, and launch_kernel is `kernel<<<grid, block, smem, stream>>>(args...)` followed by
// a cudaGetLastError() check. Under g++: the CUDA host emulation (kernels/emulation/cuda_host_emulation.h), and
// launch_kernel runs the whole grid on the CPU before it returns. Both throw on a launch that fails.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
// `LNFREE_DYNAMIC_SHARED(float, buf);` declares `float* const buf` at the start of the launch's dynamic shared
// memory. One byte array for every kernel of a translation unit, so kernels may view it as different types.
#define LNFREE_DYNAMIC_SHARED(type, name)                                                                         \
    extern __shared__ __align__(16) unsigned char lnfree_dynamic_smem_[];                                         \
    type* const name = reinterpret_cast<type*>(lnfree_dynamic_smem_)
#else
#include "kernels/emulation/cuda_host_emulation.h"
#endif

namespace lnfree {

// Whether a kernel's threads ever synchronise (__syncthreads, a warp shuffle, vote or matrix operation). On the GPU
// it changes nothing. Under the emulator a Sync::none launch runs each block as a plain loop over its threads,
// without fibers; a thread that reaches a sync point anyway fails the launch, so a wrong declaration is an error,
// never a wrong result (doc/emulation.md, "Plain loops").
enum class Sync { may_sync, none };

// Launch `kernel` on `grid` x `block` threads with `dynamic_smem` bytes of dynamic shared memory on `stream`.
// The arguments are converted to the kernel's parameter types and copied at launch (trivially copyable values;
// pass large things by pointer). The emulator runs the grid synchronously and ignores the stream.
template <typename... Params, typename... Args>
inline void launch_kernel(Sync sync, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t dynamic_smem,
                          cudaStream_t stream, Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "wrong number of kernel arguments");
#if defined(__CUDACC__)
    (void)sync;
    kernel<<<grid, block, dynamic_smem, stream>>>(std::forward<Args>(args)...);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        throw std::runtime_error(std::string("kernel launch failed: ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
#else
    (void)stream;
    cuda_emu::launch(sync == Sync::none ? cuda_emu::Threads::plain : cuda_emu::Threads::fibers, kernel, grid, block,
                     dynamic_smem, std::forward<Args>(args)...);
#endif
}

// A kernel that may synchronise (the default).
template <typename... Params, typename... Args>
inline void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t dynamic_smem,
                          cudaStream_t stream, Args&&... args) {
    launch_kernel(Sync::may_sync, kernel, grid, block, dynamic_smem, stream, std::forward<Args>(args)...);
}

// Allow `kernel` more than 48 KiB of dynamic shared memory (cudaFuncAttributeMaxDynamicSharedMemorySize).
template <typename... Params>
inline void set_max_dynamic_shared_memory(void (*kernel)(Params...), std::size_t bytes) {
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    if (err != cudaSuccess)
        throw std::runtime_error("cudaFuncSetAttribute(MaxDynamicSharedMemorySize, " + std::to_string(bytes) +
                                 ") failed: error " + std::to_string(static_cast<int>(err)));
}

}  // namespace lnfree
