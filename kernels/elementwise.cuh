// Elementwise kernels: GELU (tanh approximation) and the residual add fused with the branch's dropout.
// Each reads and writes its n elements once: the MLP's GELU moves 4 bytes per element forward (bf16 in and out) and
// 6 backward (two reads, one write), n = N * 4C = 1.2e8 at GPT-2 XL's micro-batch (N = 18*1024 tokens).
#pragma once
#include "kernels/common.cuh"

namespace lnfree::kernels {

__device__ inline float gelu_tanh(float x) {
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

__device__ inline float gelu_tanh_grad(float x) {
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    const float th = tanhf(inner);
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * x * x);
}

// out (n) = gelu(in)
template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* in, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_float<T>(gelu_tanh(to_float(in[i])));
}

// dinp (n) = dout * gelu'(inp)
template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dinp[i] = from_float<T>(to_float(dout[i]) * gelu_tanh_grad(to_float(inp[i])));
}

// x (n, float32 residual) += dropout(branch): the residual add and the branch's dropout in one pass
template <typename T>
__global__ void residual_dropout_add_kernel(float* x, const T* branch, DropoutKey key, uint32_t layer, uint32_t site,
                                            size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] += to_float(branch[i]) * dropout_scale(key, layer, site, i);
}

// dbranch (n) = dropout(dx): the backward of residual_dropout_add for the branch (dx passes to x unchanged)
template <typename T>
__global__ void dropout_backward_kernel(T* dbranch, const float* dx, DropoutKey key, uint32_t layer, uint32_t site, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dbranch[i] = from_float<T>(dx[i] * dropout_scale(key, layer, site, i));
}

template <typename T>
void gelu_forward(T* out, const T* in, size_t n, cudaStream_t stream) {
    launch_kernel(gelu_forward_kernel<T>, stride_grid(n, 256), dim3(256), 0, stream, out, in, n);
}

template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, size_t n, cudaStream_t stream) {
    launch_kernel(gelu_backward_kernel<T>, stride_grid(n, 256), dim3(256), 0, stream, dinp, inp, dout, n);
}

template <typename T>
void residual_dropout_add(float* x, const T* branch, const DropoutKey& key, uint32_t layer, uint32_t site, size_t n,
                          cudaStream_t stream) {
    launch_kernel(residual_dropout_add_kernel<T>, stride_grid(n, 256), dim3(256), 0, stream, x, branch, key, layer,
                  site, n);
}

template <typename T>
void dropout_backward(T* dbranch, const float* dx, const DropoutKey& key, uint32_t layer, uint32_t site, size_t n,
                      cudaStream_t stream) {
    launch_kernel(dropout_backward_kernel<T>, stride_grid(n, 256), dim3(256), 0, stream, dbranch, dx, key, layer,
                  site, n);
}

}  // namespace lnfree::kernels
