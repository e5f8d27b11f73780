// The CPU build's matrix products: OpenBLAS's cblas_sgemm, loaded on first use so that two settings are made
// before OpenBLAS initialises (it reads them once, when it is loaded):
//   - one thread: the CPU build splits its products over the emulator's workers (cuda_emu::parallel_for), so the
//     cores have one owner and no OpenBLAS thread spins beside the kernels (doc/emulation.md, "Threads");
//   - its AVX-512 kernels on a CPU with AVX-512 that this OpenBLAS does not know by model (Debian's 0.3.21 runs
//     its SSE3 "Prescott" kernels on newer Xeons). OPENBLAS_CORETYPE set by the user is kept.
#pragma once
#include <string>

namespace lnfree::cpu_blas {

// Row-major C (M, N; ldc) = alpha op(A) op(B) + beta C in float32, op(X) = X or X^T as stored, on the calling thread.
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
           float beta, float* C, int ldc);

// Which kernels run and why, e.g. "OpenBLAS 0.3.21, SkylakeX kernels (OPENBLAS_CORETYPE=SkylakeX set by lnfree:
// the CPU has AVX-512), 1 thread". Loads OpenBLAS if it is not loaded yet.
std::string description();

}  // namespace lnfree::cpu_blas
