// Causal self-attention, written by hand in the flash-attention style: K and V (forward) or Q and dO (backward)
// are staged through shared memory in tiles of kTile rows; the softmax is computed online, so only each row's
// log-sum-exp is kept for the backward and memory grows with T, not T^2. Dropout on the attention probabilities
// uses the counter-based masks of lnfree/philox.h, regenerated in the backward.
//   forward:  one thread per query row; out = dropout(softmax(q k^T / sqrt(hd))) v, lse per row
//   backward: D = rowsum(dout * out); then one thread per key row accumulates dk, dv over the query tiles
//             (fixed order: deterministic), and one thread per query row accumulates dq over the key tiles
//             (the scores are recomputed there rather than atomically added: deterministic, about 1.5x the FLOPs).
// qkv (B,T,3C) holds q | k | v with head h at channels [h*hd, (h+1)*hd). FLOPs at GPT-2 XL's micro-batch
// (B=18, T=1024, NH=25, hd=64, causal): forward 2 * B * NH * T^2 * hd = 6.0e10, backward about 2.5x that.
#pragma once
#include <cmath>

#include "kernels/common.cuh"

namespace lnfree::kernels {

inline constexpr int kAttentionTile = 32;

// k_row, v_row (HD) = key and value s of head h (zeros past the sequence): one thread's row of a K/V tile
template <int HD, typename T>
__device__ inline void load_kv_row(float* k_row, float* v_row, const T* qkv, int b, int h, int s, int Tn, int C) {
    for (int d = 0; d < HD; d++) {
        const size_t base = ((size_t)b * Tn + s) * 3 * C + h * HD + d;
        k_row[d] = s < Tn ? to_float(qkv[base + C]) : 0.0f;
        v_row[d] = s < Tn ? to_float(qkv[base + 2 * C]) : 0.0f;
    }
}

// out (B,T,C), lse (B,NH,T) from qkv (B,T,3C). grid (ceil(T/kTile), B*NH), block kTile
template <int HD, typename T>
__global__ void attention_forward_kernel(T* out, float* lse, const T* qkv, DropoutKey key, uint32_t layer, int Tn, int C,
                                         int NH) {
    __shared__ float k_tile[kAttentionTile][HD], v_tile[kAttentionTile][HD];
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int t = blockIdx.x * kAttentionTile + threadIdx.x;  // this thread's query row (may be past T)
    const float scale = 1.0f / sqrtf((float)HD);
    float q[HD], o[HD];
    for (int d = 0; d < HD; d++) {
        q[d] = t < Tn ? to_float(qkv[((size_t)b * Tn + t) * 3 * C + h * HD + d]) * scale : 0.0f;
        o[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int last_row = min(Tn - 1, (int)(blockIdx.x + 1) * kAttentionTile - 1);  // the block's last query row
    for (int s0 = 0; s0 <= last_row; s0 += kAttentionTile) {
        load_kv_row<HD>(k_tile[threadIdx.x], v_tile[threadIdx.x], qkv, b, h, s0 + threadIdx.x, Tn, C);
        __syncthreads();
        for (int j = 0; j < kAttentionTile && t < Tn; j++) {
            const int s = s0 + j;
            if (s > t) break;  // causal
            float score = 0.0f;
            for (int d = 0; d < HD; d++) score += q[d] * k_tile[j][d];
            if (score > m) {  // a new running maximum: rescale what was accumulated so far
                const float correction = expf(m - score);
                l *= correction;
                for (int d = 0; d < HD; d++) o[d] *= correction;
                m = score;
            }
            const float p = expf(score - m);
            l += p;
            const float kept = p * dropout_scale(key, layer, DROPOUT_ATTENTION_PROBS, (((uint64_t)bh) * Tn + t) * Tn + s);
            for (int d = 0; d < HD; d++) o[d] += kept * v_tile[j][d];
        }
        __syncthreads();
    }
    if (t < Tn) {
        for (int d = 0; d < HD; d++) out[((size_t)b * Tn + t) * C + h * HD + d] = from_float<T>(o[d] / l);
        lse[(size_t)bh * Tn + t] = m + logf(l);
    }
}

// D (B,NH,T) = sum over d of dout * out, per row and head
template <typename T>
__global__ void attention_backward_rowdot_kernel(float* D, const T* dout, const T* out, int B, int Tn, int C, int NH, int hd) {
    const size_t total = (size_t)B * NH * Tn;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int t = (int)(i % Tn), bh = (int)(i / Tn), b = bh / NH, h = bh % NH;
        const size_t base = ((size_t)b * Tn + t) * C + h * hd;
        float sum = 0.0f;
        for (int d = 0; d < hd; d++) sum += to_float(dout[base + d]) * to_float(out[base + d]);
        D[i] = sum;
    }
}

// dk, dv of one key row per thread, over every query tile at or after it. grid (ceil(T/kTile), B*NH)
template <int HD, typename T>
__global__ void attention_backward_dkv_kernel(T* dqkv, const T* qkv, const T* dout, const float* lse, const float* D,
                                              DropoutKey key, uint32_t layer, int Tn, int C, int NH) {
    __shared__ float q_tile[kAttentionTile][HD], do_tile[kAttentionTile][HD], own_k[kAttentionTile][HD],
        own_v[kAttentionTile][HD];
    __shared__ float lse_tile[kAttentionTile], d_tile[kAttentionTile];
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int s = blockIdx.x * kAttentionTile + threadIdx.x;  // this thread's key row
    const float scale = 1.0f / sqrtf((float)HD);
    load_kv_row<HD>(own_k[threadIdx.x], own_v[threadIdx.x], qkv, b, h, s, Tn, C);
    float dk[HD], dv[HD];
    for (int d = 0; d < HD; d++) dk[d] = dv[d] = 0.0f;
    for (int t0 = blockIdx.x * kAttentionTile; t0 < Tn; t0 += kAttentionTile) {
        const int t_load = t0 + threadIdx.x;
        for (int d = 0; d < HD; d++) {
            q_tile[threadIdx.x][d] = t_load < Tn ? to_float(qkv[((size_t)b * Tn + t_load) * 3 * C + h * HD + d]) : 0.0f;
            do_tile[threadIdx.x][d] = t_load < Tn ? to_float(dout[((size_t)b * Tn + t_load) * C + h * HD + d]) : 0.0f;
        }
        lse_tile[threadIdx.x] = t_load < Tn ? lse[(size_t)bh * Tn + t_load] : 0.0f;
        d_tile[threadIdx.x] = t_load < Tn ? D[(size_t)bh * Tn + t_load] : 0.0f;
        __syncthreads();
        for (int i = 0; i < kAttentionTile && s < Tn; i++) {
            const int t = t0 + i;
            if (t >= Tn) break;
            if (t < s) continue;  // causal: query t sees key s only when s <= t
            float score = 0.0f, dp = 0.0f;
            for (int d = 0; d < HD; d++) {
                score += q_tile[i][d] * own_k[threadIdx.x][d];
                dp += do_tile[i][d] * own_v[threadIdx.x][d];
            }
            const float p = expf(score * scale - lse_tile[i]);
            const float mask = dropout_scale(key, layer, DROPOUT_ATTENTION_PROBS, (((uint64_t)bh) * Tn + t) * Tn + s);
            const float ds = p * (dp * mask - d_tile[i]);
            for (int d = 0; d < HD; d++) {
                dv[d] += p * mask * do_tile[i][d];
                dk[d] += ds * scale * q_tile[i][d];
            }
        }
        __syncthreads();
    }
    if (s < Tn)
        for (int d = 0; d < HD; d++) {
            const size_t base = ((size_t)b * Tn + s) * 3 * C + h * HD + d;
            dqkv[base + C] = from_float<T>(dk[d]);
            dqkv[base + 2 * C] = from_float<T>(dv[d]);
        }
}

// dq of one query row per thread, over every key tile at or before it. grid (ceil(T/kTile), B*NH)
template <int HD, typename T>
__global__ void attention_backward_dq_kernel(T* dqkv, const T* qkv, const T* dout, const float* lse, const float* D,
                                             DropoutKey key, uint32_t layer, int Tn, int C, int NH) {
    __shared__ float k_tile[kAttentionTile][HD], v_tile[kAttentionTile][HD], own_q[kAttentionTile][HD],
        own_do[kAttentionTile][HD];
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int t = blockIdx.x * kAttentionTile + threadIdx.x;  // this thread's query row
    const float scale = 1.0f / sqrtf((float)HD);
    for (int d = 0; d < HD; d++) {
        own_q[threadIdx.x][d] = t < Tn ? to_float(qkv[((size_t)b * Tn + t) * 3 * C + h * HD + d]) : 0.0f;
        own_do[threadIdx.x][d] = t < Tn ? to_float(dout[((size_t)b * Tn + t) * C + h * HD + d]) : 0.0f;
    }
    const float row_lse = t < Tn ? lse[(size_t)bh * Tn + t] : 0.0f, row_d = t < Tn ? D[(size_t)bh * Tn + t] : 0.0f;
    float dq[HD];
    for (int d = 0; d < HD; d++) dq[d] = 0.0f;
    const int last_row = min(Tn - 1, (int)(blockIdx.x + 1) * kAttentionTile - 1);
    for (int s0 = 0; s0 <= last_row; s0 += kAttentionTile) {
        load_kv_row<HD>(k_tile[threadIdx.x], v_tile[threadIdx.x], qkv, b, h, s0 + threadIdx.x, Tn, C);
        __syncthreads();
        for (int j = 0; j < kAttentionTile && t < Tn; j++) {
            const int s = s0 + j;
            if (s > t) break;
            float score = 0.0f, dp = 0.0f;
            for (int d = 0; d < HD; d++) {
                score += own_q[threadIdx.x][d] * k_tile[j][d];
                dp += own_do[threadIdx.x][d] * v_tile[j][d];
            }
            const float p = expf(score * scale - row_lse);
            const float mask = dropout_scale(key, layer, DROPOUT_ATTENTION_PROBS, (((uint64_t)bh) * Tn + t) * Tn + s);
            const float ds = p * (dp * mask - row_d);
            for (int d = 0; d < HD; d++) dq[d] += ds * scale * k_tile[j][d];
        }
        __syncthreads();
    }
    if (t < Tn)
        for (int d = 0; d < HD; d++) dqkv[((size_t)b * Tn + t) * 3 * C + h * HD + d] = from_float<T>(dq[d]);
}

// Runs `launch.template operator()<HD>()` for the head dimension hd (8, 16, 32 or 64: GPT-2 uses 64).
template <typename F>
void dispatch_head_dim(int hd, F&& launch) {
    switch (hd) {
        case 8: launch.template operator()<8>(); break;
        case 16: launch.template operator()<16>(); break;
        case 32: launch.template operator()<32>(); break;
        case 64: launch.template operator()<64>(); break;
        default: throw std::invalid_argument("attention: head dimension " + std::to_string(hd) + " is not 8, 16, 32 or 64");
    }
}

template <typename T>
void attention_forward(T* out, float* lse, const T* qkv, const DropoutKey& key, uint32_t layer, int B, int Tn, int C, int NH,
                       cudaStream_t stream) {
    const dim3 grid(ceil_div(Tn, kAttentionTile), B * NH);
    dispatch_head_dim(C / NH, [&]<int HD>() {
        launch_kernel(attention_forward_kernel<HD, T>, grid, dim3(kAttentionTile), 0, stream, out, lse, qkv, key, layer, Tn,
                      C, NH);
    });
}

// dqkv (B,T,3C) = the gradient of out w.r.t. qkv (written, not accumulated). D: B*NH*T floats of scratch.
template <typename T>
void attention_backward(T* dqkv, float* D, const T* dout, const T* out, const T* qkv, const float* lse,
                        const DropoutKey& key, uint32_t layer, int B, int Tn, int C, int NH, cudaStream_t stream) {
    launch_kernel(attention_backward_rowdot_kernel<T>, stride_grid((size_t)B * NH * Tn, 256), dim3(256), 0, stream, D,
                  dout, out, B, Tn, C, NH, C / NH);
    const dim3 grid(ceil_div(Tn, kAttentionTile), B * NH);
    dispatch_head_dim(C / NH, [&]<int HD>() {
        launch_kernel(attention_backward_dkv_kernel<HD, T>, grid, dim3(kAttentionTile), 0, stream, dqkv, qkv, dout, lse,
                      (const float*)D, key, layer, Tn, C, NH);
        launch_kernel(attention_backward_dq_kernel<HD, T>, grid, dim3(kAttentionTile), 0, stream, dqkv, qkv, dout, lse,
                      (const float*)D, key, layer, Tn, C, NH);
    });
}

}  // namespace lnfree::kernels
