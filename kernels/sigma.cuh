// The sigma estimator on the device, so the trainer never waits for the host: one launch per module and
// micro-step applies that module's calls in order (ln_1: the QK call, the V call, then repeated V calls; see
// lnfree/sigma_estimator.h, which this mirrors) and writes the sigma each call's path divides by if fixed.
// In a data-parallel run the launch gets every process's statistic of this micro-step (the step's global
// micro-batches m * P ... m * P + P - 1, in that order) and applies them all, so every process holds the state one
// process running those micro-batches one after the other would; `used` is taken at this process's own slot.
#pragma once
#include "kernels/common.cuh"

namespace lnfree::kernels {

// ema, sigma: the module's state (double, like the host estimator); stats: `slots` statistics in global
// micro-batch order, `own` this process's; fixed_mask bit k: call k's path is fixed; used[k] (float): the sigma
// call k's path of micro-batch `own` divides by.
static __global__ void sigma_calls_kernel(double* ema, double* sigma, float* used, const float* stats, int slots, int own,
                                          double momentum, int calls, unsigned fixed_mask) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    for (int j = 0; j < slots; j++)
        for (int k = 0; k < calls; k++) {
            *ema = momentum * *ema + (1.0 - momentum) * (double)stats[j];
            if (!(fixed_mask >> k & 1u)) *sigma = *ema;
            if (j == own) used[k] = (float)*sigma;
        }
}

inline void sigma_calls(double* ema, double* sigma, float* used, const float* stats, int slots, int own, double momentum,
                        int calls, unsigned fixed_mask, cudaStream_t stream) {
    launch_kernel(Sync::none, sigma_calls_kernel, dim3(1), dim3(1), 0, stream, ema, sigma, used, stats, slots, own, momentum, calls,
                  fixed_mask);
}

}  // namespace lnfree::kernels
