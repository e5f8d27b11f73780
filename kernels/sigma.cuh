// The sigma estimator on the device, so the trainer never waits for the host: one launch per module and
// micro-batch applies that module's calls in order (ln_1: the QK call, the V call, then repeated V calls; see
// lnfree/sigma_estimator.h, which this mirrors) and writes the sigma each call's path divides by if fixed.
#pragma once
#include "kernels/common.cuh"

namespace lnfree::kernels {

// ema, sigma: the module's state (double, like the host estimator); fixed_mask bit k: call k's path is fixed;
// used[k] (float): the sigma call k's path divides by.
static __global__ void sigma_calls_kernel(double* ema, double* sigma, float* used, const float* stat, double momentum, int calls,
                                   unsigned fixed_mask) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    for (int k = 0; k < calls; k++) {
        *ema = momentum * *ema + (1.0 - momentum) * (double)*stat;
        if (!(fixed_mask >> k & 1u)) *sigma = *ema;
        used[k] = (float)*sigma;
    }
}

inline void sigma_calls(double* ema, double* sigma, float* used, const float* stat, double momentum, int calls,
                        unsigned fixed_mask, cudaStream_t stream) {
    launch_kernel(sigma_calls_kernel, dim3(1), dim3(1), 0, stream, ema, sigma, used, stat, momentum, calls, fixed_mask);
}

}  // namespace lnfree::kernels
