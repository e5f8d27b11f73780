// The optimizer step on float32 master weights: global gradient norm (deterministic two-pass reduction), then
// AdamW with clipping folded in (the clip scale is computed on the device from the norm: no host sync), writing the
// model's compute copy in T (bf16: round-to-nearest, or stochastic rounding keyed by (seed, step, tensor, element)
// so a rerun or a resume rounds identically). Traffic per parameter: reads grad, master, m, v (16 bytes), writes
// master, m, v and the copy (14 bytes with bf16): 30 bytes; about 47 GB for GPT-2 XL's 1.56e9 parameters.
#pragma once
#include "kernels/common.cuh"

namespace lnfree::kernels {

inline constexpr int kNormBlocks = 256;

// partial[blockIdx.x] = sum of g^2 over this block's grid-stride slice of g (n)
static __global__ void sum_squares_partial_kernel(float* partial, const float* g, size_t n) {
    __shared__ float scratch[32];
    float sum = 0.0f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        sum += g[i] * g[i];
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// The partials added in order, in double (deterministic).
__device__ inline double sum_of_partials(const float* partial, int count) {
    double sum = 0.0;
    for (int i = 0; i < count; i++) sum += partial[i];
    return sum;
}

// norm = sqrt(sum of the partials)
static __global__ void norm_from_partials_kernel(float* norm, const float* partial, int count) {
    if (threadIdx.x == 0 && blockIdx.x == 0) *norm = (float)sqrt(sum_of_partials(partial, count));
}

// The partials: kNormBlocks blocks of 512 threads, or of one (see kSingleThreadReductions); the same blocks
// either way, so a shape's result does not depend on the machine.
inline void sum_squares_partials(float* scratch, const float* g, size_t n, bool single_thread, cudaStream_t stream) {
    launch_kernel(reduction_sync(single_thread), sum_squares_partial_kernel, dim3(kNormBlocks), dim3(single_thread ? 1 : 512),
                  0, stream, scratch, g, n);
}

// scratch: kNormBlocks floats
inline void global_norm(float* norm, float* scratch, const float* g, size_t n, cudaStream_t stream,
                        bool single_thread = kSingleThreadReductions) {
    sum_squares_partials(scratch, g, n, single_thread, stream);
    launch_kernel(Sync::none, norm_from_partials_kernel, dim3(1), dim3(1), 0, stream, norm, (const float*)scratch, kNormBlocks);
}

// The same norm in two halves, for gradients sharded over processes: each process sums the squares of its shard
// (in double, as global_norm does), the processes add their sums, and the norm is the root of the total. For one
// process this is global_norm, bit for bit.
static __global__ void sum_from_partials_kernel(double* sum, const float* partial, int count) {
    if (threadIdx.x == 0 && blockIdx.x == 0) *sum = sum_of_partials(partial, count);
}
static __global__ void norm_from_sum_kernel(float* norm, const double* sum) {
    if (threadIdx.x == 0 && blockIdx.x == 0) *norm = (float)sqrt(*sum);
}
// sum = sum of g^2 over n; scratch: kNormBlocks floats
inline void sum_squares(double* sum, float* scratch, const float* g, size_t n, cudaStream_t stream,
                        bool single_thread = kSingleThreadReductions) {
    sum_squares_partials(scratch, g, n, single_thread, stream);
    launch_kernel(Sync::none, sum_from_partials_kernel, dim3(1), dim3(1), 0, stream, sum, (const float*)scratch, kNormBlocks);
}
inline void norm_from_sum_squares(float* norm, const double* sum, cudaStream_t stream) {
    launch_kernel(Sync::none, norm_from_sum_kernel, dim3(1), dim3(1), 0, stream, norm, sum);
}

struct AdamWStep {
    float lr, beta1, beta2, eps, weight_decay;  // weight_decay 0 for tensors outside the decay mask
    float clip;                                 // global-norm clip (torch's clip_grad_norm_)
    int t;                                      // 1-based update count
    bool stochastic_rounding;
    uint64_t seed;
    uint32_t tensor;                            // keys the rounding noise
    uint64_t first = 0;                         // index in its tensor of the launch's first element (a shard)
};

__device__ inline bf16 round_to_bf16(float x, bool stochastic, const DropoutKey& key, uint32_t tensor, uint64_t i) {
    if (!stochastic) return __float2bfloat16_rn(x);
    // add uniform noise below bf16's last mantissa bit, then truncate
    const uint32_t noise = (uint32_t)(dropout_uniform(key, tensor, 15, i) * 65536.0f);
    uint32_t bits = __float_as_uint(x);
    if ((bits & 0x7f800000u) == 0x7f800000u) return __float2bfloat16_rn(x);  // inf, nan
    bits = (bits + noise) & 0xffff0000u;
    return __float2bfloat16_rn(__uint_as_float(bits));
}


template <typename T>
__global__ void adamw_kernel(T* param, float* master, float* m, float* v, const float* grad, const float* grad_norm,
                             AdamWStep s, size_t n) {
    const float clip_scale = fminf(1.0f, s.clip / (*grad_norm + 1e-6f));
    const float bias1 = 1.0f - powf(s.beta1, (float)s.t), bias2 = 1.0f - powf(s.beta2, (float)s.t);
    const DropoutKey key{0.5f, s.seed, (uint32_t)s.t, 0};
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float g = grad[i] * clip_scale;
        float p = master[i] * (1.0f - s.lr * s.weight_decay);
        const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * g;
        const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
        p -= (s.lr / bias1) * mi / (sqrtf(vi) / sqrtf(bias2) + s.eps);
        m[i] = mi;
        v[i] = vi;
        master[i] = p;
        if constexpr (std::is_same_v<T, bf16>) param[i] = round_to_bf16(p, s.stochastic_rounding, key, s.tensor, s.first + i);
        else param[i] = p;
    }
}

template <typename T>
void adamw(T* param, float* master, float* m, float* v, const float* grad, const float* grad_norm, const AdamWStep& s,
           size_t n, cudaStream_t stream) {
    launch_kernel(Sync::none, adamw_kernel<T>, stride_grid(n, 512), dim3(512), 0, stream, param,
                  master, m, v, grad, grad_norm, s, n);
}

}  // namespace lnfree::kernels
