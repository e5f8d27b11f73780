// The auxiliary loss on the ln_f input h (method.md section 5), reusing ln_f's per-row mean and std
// (std = sqrt(var + 1e-5), layernorm_stats): target = mean of std over positions that are neither t == 0 nor an
// end-of-text input (no gradient); aux = mean over all rows of (std - target)^2. Forward reads 3 floats per row;
// backward reads h and dh and writes dh (12 * N * C bytes).
#pragma once
#include "kernels/reduce.cuh"

namespace lnfree::kernels {

// mask (N) = 1 where the row takes part in the target
static __global__ void aux_mask_kernel(int* mask, const int* idx, int eot, int Tn, int N) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < N; i += gridDim.x * blockDim.x)
        mask[i] = (i % Tn != 0) && idx[i] != eot;
}

// loss = mean over rows of (std - *target)^2
static __global__ void aux_loss_value_kernel(float* loss, const float* std_in, const float* target, int N) {
    __shared__ float scratch[32];
    float sum = 0.0f;
    for (int i = threadIdx.x; i < N; i += blockDim.x) sum += (std_in[i] - *target) * (std_in[i] - *target);
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) *loss = sum / N;
}

// dh (N,C) += dloss * 2 (std - target) / N * (h - mean) / (C std)
static __global__ void aux_loss_backward_kernel(float* dh, const float* h, const float* mean, const float* std_in,
                                         const float* target, float dloss, int N, int C) {
    const size_t total = (size_t)N * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int row = (int)(i / C);
        const float ds = dloss * 2.0f * (std_in[row] - *target) / N;
        dh[i] += ds * (h[i] - mean[row]) / (C * std_in[row]);
    }
}

// target, loss: one float each on the device; mask: N ints of scratch
inline void aux_loss_forward(float* loss, float* target, int* mask, const float* std_in, const int* idx, int eot, int B,
                             int Tn, cudaStream_t stream, bool single_thread = kSingleThreadReductions) {
    const int N = B * Tn;
    launch_kernel(Sync::none, aux_mask_kernel, stride_grid(N, 256), dim3(256), 0, stream, mask, idx, eot, Tn, N);
    masked_mean(target, std_in, mask, N, stream, single_thread);
    launch_kernel(reduction_sync(single_thread), aux_loss_value_kernel, dim3(1), dim3(single_thread ? 1 : 1024), 0, stream,
                  loss, std_in, (const float*)target, N);
}

inline void aux_loss_backward(float* dh, const float* h, const float* mean, const float* std_in, const float* target,
                              float dloss, int N, int C, cudaStream_t stream) {
    launch_kernel(Sync::none, aux_loss_backward_kernel, stride_grid((size_t)N * C, 256),
                  dim3(256), 0, stream, dh, h, mean, std_in, target, dloss, N, C);
}

}  // namespace lnfree::kernels
