// Deterministic reductions on the device, no float atomics, fixed order: the mean of per-row values (the sigma
// estimator's statistic, the aux loss's target, the cross-entropy), and column sums of per-block partials.
#pragma once
#include "kernels/common.cuh"

namespace lnfree::kernels {

// result = mean of values[i] over i < n with (mask == null or mask[i] != 0); the mean over all when no i qualifies
static __global__ void masked_mean_kernel(float* result, const float* values, const int* mask, int n) {
    __shared__ float scratch[32];
    float sum = 0.0f, all = 0.0f, count = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        all += values[i];
        if (!mask || mask[i]) { sum += values[i]; count += 1.0f; }
    }
    sum = block_sum(sum, scratch);
    all = block_sum(all, scratch);
    count = block_sum(count, scratch);
    if (threadIdx.x == 0) *result = count > 0.0f ? sum / count : all / n;
}

// out[c] += sum over r < rows of partial[r, c], in order r = 0, 1, ... (deterministic)
static __global__ void column_sum_kernel(float* out, const float* partial, int rows, int C) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
        float sum = 0.0f;
        for (int r = 0; r < rows; r++) sum += partial[(size_t)r * C + c];
        out[c] += sum;
    }
}

inline void masked_mean(float* result, const float* values, const int* mask, int n, cudaStream_t stream,
                        bool single_thread = kSingleThreadReductions) {
    launch_kernel(reduction_sync(single_thread), masked_mean_kernel, dim3(1), dim3(single_thread ? 1 : 1024), 0, stream,
                  result, values, mask, n);
}

}  // namespace lnfree::kernels
