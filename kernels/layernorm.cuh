// LayerNorm paths, real or fixed-scale, in three launches so that the sigma estimator can sit between them:
//   1. layernorm_stats: per row of the float32 residual x (N,C) its mean and std = sqrt(var + 1e-5)
//      (the estimator's statistic is the mean of std over rows: reduce.cuh, then sigma.cuh);
//   2. layernorm_normalize, once per path: out (N,C) = (x - mean) * r * w + b with r = 1/std (real) or 1/sigma
//      (fixed, sigma read from device memory so no host sync is needed); ln_1's QK and V paths call it twice
//      when their modes differ;
//   3. layernorm_backward per path: dx (N,C) += ..., and per-block partial dw, db, summed over blocks in a fixed
//      order by column_sum (reduce.cuh), so gradients are deterministic with no float atomics.
// Traffic per path at GPT-2 XL's micro-batch (N = 18*1024, C = 1600): stats read 4NC bytes; normalize reads 4NC and
// writes 2NC (bf16); backward reads 2NC + 4NC and reads/writes dx 8NC.
#pragma once
#include "kernels/reduce.cuh"

namespace lnfree::kernels {

inline constexpr float kLayerNormEps = 1e-5f;

// mean (N), std (N) from x (N,C); `lanes` threads per row (a warp, or one: kSingleThreadReductions), rows strided
// over the grid
static __global__ void layernorm_stats_kernel(float* mean, float* std_out, const float* x, int N, int C, int lanes) {
    const int rows_per_block = blockDim.x / lanes, lane = threadIdx.x % lanes;
    for (int row = blockIdx.x * rows_per_block + threadIdx.x / lanes; row < N; row += gridDim.x * rows_per_block) {
        const float* xr = x + (size_t)row * C;
        float sum = 0.0f;
        for (int c = lane; c < C; c += lanes) sum += xr[c];
        const float m = row_sum(sum, lanes) / C;
        float sq = 0.0f;
        for (int c = lane; c < C; c += lanes) sq += (xr[c] - m) * (xr[c] - m);
        const float var = row_sum(sq, lanes) / C;
        if (lane == 0) {
            mean[row] = m;
            std_out[row] = sqrtf(var + kLayerNormEps);
        }
    }
}

// out (N,C) = (x - mean) * r * w + b, r = 1/std[row] when sigma is null (real), 1/(*sigma) otherwise (fixed);
// rstd (N) = r, for the backward
template <typename T>
__global__ void layernorm_normalize_kernel(T* out, float* rstd, const float* x, const float* mean, const float* std_in,
                                           const T* w, const T* b, const float* sigma, int N, int C) {
    const size_t total = (size_t)N * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int row = (int)(i / C), c = (int)(i % C);
        const float r = sigma ? 1.0f / *sigma : 1.0f / std_in[row];
        out[i] = from_float<T>((x[i] - mean[row]) * r * to_float(w[c]) + to_float(b[c]));
        if (c == 0) rstd[row] = r;
    }
}

// Maximum channels per thread in the backward (registers): C <= kLayerNormBackwardMaxPerThread * blockDim.x.
inline constexpr int kLayerNormBackwardMaxPerThread = 8;

// One block per row at a time (rows strided over the grid). With g = dout * w and xhat = (x - mean) * rstd:
//   real:  dx += rstd * (g - mean(g) - xhat * mean(g * xhat));   fixed: dx += rstd * (g - mean(g))
// dw_partial, db_partial (gridDim.x, C): this block's sums over its rows, in row order.
template <typename T>
__global__ void layernorm_backward_kernel(float* dx, float* dw_partial, float* db_partial, const T* dout, const float* x,
                                          const float* mean, const float* rstd, const T* w, bool fixed, int N, int C) {
    __shared__ float scratch[32];
    float dw_acc[kLayerNormBackwardMaxPerThread] = {}, db_acc[kLayerNormBackwardMaxPerThread] = {};
    for (int row = blockIdx.x; row < N; row += gridDim.x) {
        const size_t base = (size_t)row * C;
        const float m = mean[row], r = rstd[row];
        float g_sum = 0.0f, gx_sum = 0.0f;
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            const float g = to_float(dout[base + c]) * to_float(w[c]);
            g_sum += g;
            gx_sum += g * (x[base + c] - m) * r;
        }
        const float g_mean = block_sum(g_sum, scratch) / C;
        const float gx_mean = fixed ? 0.0f : block_sum(gx_sum, scratch) / C;
        for (int c = threadIdx.x, k = 0; c < C; c += blockDim.x, k++) {
            const float d = to_float(dout[base + c]);
            const float xhat = (x[base + c] - m) * r;
            dx[base + c] += r * (d * to_float(w[c]) - g_mean - xhat * gx_mean);
            dw_acc[k] += d * xhat;
            db_acc[k] += d;
        }
    }
    for (int c = threadIdx.x, k = 0; c < C; c += blockDim.x, k++) {
        dw_partial[(size_t)blockIdx.x * C + c] = dw_acc[k];
        db_partial[(size_t)blockIdx.x * C + c] = db_acc[k];
    }
}

// The backward with single-thread reductions: one thread per row for dx, and the parameter gradients per chunk of
// rows with one thread per channel (as bias_partial_kernel), so that neither synchronises.
template <typename T>
__global__ void layernorm_backward_rows_kernel(float* dx, const T* dout, const float* x, const float* mean,
                                               const float* rstd, const T* w, bool fixed, int N, int C) {
    for (int row = blockIdx.x * blockDim.x + threadIdx.x; row < N; row += gridDim.x * blockDim.x) {
        const size_t base = (size_t)row * C;
        const float m = mean[row], r = rstd[row];
        float g_sum = 0.0f, gx_sum = 0.0f;
        for (int c = 0; c < C; c++) {
            const float g = to_float(dout[base + c]) * to_float(w[c]);
            g_sum += g;
            gx_sum += g * (x[base + c] - m) * r;
        }
        const float g_mean = g_sum / C, gx_mean = fixed ? 0.0f : gx_sum / C;
        for (int c = 0; c < C; c++) {
            const float xhat = (x[base + c] - m) * r;
            dx[base + c] += r * (to_float(dout[base + c]) * to_float(w[c]) - g_mean - xhat * gx_mean);
        }
    }
}

// dw_partial, db_partial (gridDim.y, C): sums of dout * xhat and dout over rows [chunk * rows, (chunk + 1) * rows)
template <typename T>
__global__ void layernorm_param_partial_kernel(float* dw_partial, float* db_partial, const T* dout, const float* x,
                                               const float* mean, const float* rstd, int N, int C, int rows_per_chunk) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (c >= C) return;
    const int first = chunk * rows_per_chunk, last = min(N, first + rows_per_chunk);
    float dw = 0.0f, db = 0.0f;
    for (int row = first; row < last; row++) {
        const float d = to_float(dout[(size_t)row * C + c]);
        dw += d * ((x[(size_t)row * C + c] - mean[row]) * rstd[row]);
        db += d;
    }
    dw_partial[(size_t)chunk * C + c] = dw;
    db_partial[(size_t)chunk * C + c] = db;
}

// ---- launchers: the only way the trainer and the tests run these kernels -------------------------------------

inline void layernorm_stats(float* mean, float* std_out, const float* x, int N, int C, cudaStream_t stream,
                            bool single_thread = kSingleThreadReductions) {
    const int block = 256, lanes = single_thread ? 1 : 32;
    launch_kernel(reduction_sync(single_thread), layernorm_stats_kernel, stride_grid(N, block / lanes), dim3(block), 0,
                  stream, mean, std_out, x, N, C, lanes);
}

template <typename T>
void layernorm_normalize(T* out, float* rstd, const float* x, const float* mean, const float* std_in, const T* w,
                         const T* b, const float* sigma, int N, int C, cudaStream_t stream) {
    const int block = 256;
    launch_kernel(Sync::none, layernorm_normalize_kernel<T>, stride_grid((size_t)N * C, block), dim3(block), 0, stream, out, rstd, x, mean, std_in, w, b,
                  sigma, N, C);
}

// The number of partial rows layernorm_backward writes: scratch must hold 2 * this * C floats.
inline int layernorm_backward_blocks(int N) {
#if defined(CUDA_HOST_EMU)
    return std::min(N, 16);  // the emulator: few blocks, each a set of fibers
#else
    return std::min(N, 256);
#endif
}

// the GPU's shape: one block per row, block reductions
template <typename T>
void launch_backward_blocks(float* dx, float* dw_partial, float* db_partial, const T* dout, const float* x, const float* mean,
                            const float* rstd, const T* w, bool fixed, int N, int C, int blocks, cudaStream_t stream) {
    const int block = row_block(C <= 256 * kLayerNormBackwardMaxPerThread ? 256 : 1024, C, kLayerNormBackwardMaxPerThread);
    if (C > block * kLayerNormBackwardMaxPerThread) throw std::invalid_argument("layernorm_backward: C too large");
    launch_kernel(layernorm_backward_kernel<T>, dim3(blocks), dim3(block), 0, stream, dx, dw_partial, db_partial, dout,
                  x, mean, rstd, w, fixed, N, C);
}

// dx += the path's input gradient; dw, db += its parameter gradients. scratch: 2 * layernorm_backward_blocks(N) * C.
template <typename T>
void layernorm_backward(float* dx, float* dw, float* db, float* scratch, const T* dout, const float* x,
                        const float* mean, const float* rstd, const T* w, bool fixed, int N, int C, cudaStream_t stream,
                        bool single_thread = kSingleThreadReductions) {
    const int blocks = layernorm_backward_blocks(N);
    float* dw_partial = scratch;
    float* db_partial = scratch + (size_t)blocks * C;
    if (single_thread) {
        launch_kernel(Sync::none, layernorm_backward_rows_kernel<T>, stride_grid(N, 128), dim3(128), 0, stream, dx, dout, x,
                      mean, rstd, w, fixed, N, C);
        launch_kernel(Sync::none, layernorm_param_partial_kernel<T>, dim3(ceil_div(C, 128), blocks), dim3(128), 0, stream,
                      dw_partial, db_partial, dout, x, mean, rstd, N, C, ceil_div(N, blocks));
    } else {
        launch_backward_blocks(dx, dw_partial, db_partial, dout, x, mean, rstd, w, fixed, N, C, blocks, stream);
    }
    launch_kernel(Sync::none, column_sum_kernel, dim3(ceil_div(C, 256)), dim3(256), 0, stream, dw, (const float*)dw_partial, blocks, C);
    launch_kernel(Sync::none, column_sum_kernel, dim3(ceil_div(C, 256)), dim3(256), 0, stream, db, (const float*)db_partial, blocks, C);
}

}  // namespace lnfree::kernels
