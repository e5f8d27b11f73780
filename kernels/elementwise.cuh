// Elementwise kernels: GELU (tanh approximation) and the residual add fused with the branch's dropout.
// Each reads and writes its n elements once: the MLP's GELU moves 4 bytes per element forward (bf16 in and out) and
// 6 backward (two reads, one write), n = N * 4C = 1.2e8 at GPT-2 XL's micro-batch (N = 18*1024 tokens).
#pragma once
#include "kernels/common.cuh"

namespace lnfree::kernels {

// 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): one expf instead of tanhf (half the time
// on the CPU, the same to about 1e-7 relative)
__device__ inline float gelu_sigmoid(float x) {
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 1.0f / (1.0f + expf(-2.0f * inner));
}

__device__ inline float gelu_tanh(float x) { return x * gelu_sigmoid(x); }

// d/dx: with s = sigmoid(2u), 0.5 (1 + tanh u) = s and 0.5 (1 - tanh^2 u) = 2 s (1 - s)
__device__ inline float gelu_tanh_grad(float x) {
    const float s = gelu_sigmoid(x);
    return s + x * 2.0f * s * (1.0f - s) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * x * x);
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
// Each thread takes groups of 4 consecutive elements, the 4 that one Philox call draws for.
template <typename T>
__global__ void residual_dropout_add_kernel(float* x, const T* branch, DropoutKey key, uint32_t layer, uint32_t site,
                                            size_t n) {
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; 4 * g < n; g += (size_t)gridDim.x * blockDim.x) {
        DropoutScales scale(key, layer, site);
        for (size_t i = 4 * g; i < 4 * g + 4 && i < n; i++) x[i] += to_float(branch[i]) * scale(i);
    }
}

// dbranch (n) = dropout(dx): the backward of residual_dropout_add for the branch (dx passes to x unchanged)
template <typename T>
__global__ void dropout_backward_kernel(T* dbranch, const float* dx, DropoutKey key, uint32_t layer, uint32_t site, size_t n) {
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; 4 * g < n; g += (size_t)gridDim.x * blockDim.x) {
        DropoutScales scale(key, layer, site);
        for (size_t i = 4 * g; i < 4 * g + 4 && i < n; i++) dbranch[i] = from_float<T>(dx[i] * scale(i));
    }
}

template <typename T>
void gelu_forward(T* out, const T* in, size_t n, cudaStream_t stream) {
    launch_kernel(Sync::none, gelu_forward_kernel<T>, stride_grid(n, 256), dim3(256), 0, stream, out, in, n);
}

template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, size_t n, cudaStream_t stream) {
    launch_kernel(Sync::none, gelu_backward_kernel<T>, stride_grid(n, 256), dim3(256), 0, stream, dinp, inp, dout, n);
}

template <typename T>
void residual_dropout_add(float* x, const T* branch, const DropoutKey& key, uint32_t layer, uint32_t site, size_t n,
                          cudaStream_t stream) {
    launch_kernel(Sync::none, residual_dropout_add_kernel<T>, stride_grid((n + 3) / 4, 256), dim3(256), 0, stream, x, branch, key, layer,
                  site, n);
}

template <typename T>
void dropout_backward(T* dbranch, const float* dx, const DropoutKey& key, uint32_t layer, uint32_t site, size_t n,
                      cudaStream_t stream) {
    launch_kernel(Sync::none, dropout_backward_kernel<T>, stride_grid((n + 3) / 4, 256), dim3(256), 0, stream, dbranch, dx, key, layer,
                  site, n);
}

}  // namespace lnfree::kernels
