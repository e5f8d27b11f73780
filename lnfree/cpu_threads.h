// The CPU build's threads: one set, the emulator's workers, runs the emulated kernels and the matrix products
// (kernels/matmul_cpu.cuh, OpenBLAS with one thread per call), so no two pools compete for the cores.
#pragma once
#if !defined(__CUDACC__)  // the CPU build
#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/emulation/cuda_host_emulation.h"
#include "lnfree/cpu_blas.h"

namespace lnfree {

// At most this many (the emulator's limit, from its fiber stacks' mappings)
inline constexpr int kMaxCpuThreads = (int)cuda_emu::kMaxWorkers;

// This process's cores, shared with the other processes of a data-parallel run on the same node (mpirun sets
// OMPI_COMM_WORLD_LOCAL_SIZE), at least 1 and at most kMaxCpuThreads.
inline int default_cpu_threads() {
    int local = 1;
    if (const char* e = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) local = std::max(1, std::atoi(e));
    return std::clamp((int)cuda_emu::available_cores() / local, 1, kMaxCpuThreads);
}

// threads: --threads, 0 when not given: then LNFREE_EMU_WORKERS where set (the emulator reads it), else the default
inline void use_cpu_threads(int threads) {
    if (threads > 0) cuda_emu::set_num_workers((unsigned)threads);
    else if (!std::getenv("LNFREE_EMU_WORKERS")) cuda_emu::set_num_workers((unsigned)default_cpu_threads());
}

inline std::string cpu_threads_description() {
    const unsigned n = cuda_emu::num_workers();
    return std::to_string(n) + (n == 1 ? " thread" : " threads") + " for kernels and products; " + cpu_blas::description();
}

}  // namespace lnfree
#endif
