// Token + position embedding with the embedding dropout, into the float32 residual stream, and its backward.
// The backward is deterministic without float atomics: the host (which holds the batch's token ids anyway) groups
// the positions by token (build_encoder_buckets), and one thread per (token, channel) sums its positions in order.
// Forward reads 2 * N * C bf16 and writes 4 * N * C bytes; backward reads 4 * N * C and updates the used rows.
#pragma once
#include <vector>

#include "kernels/common.cuh"

namespace lnfree::kernels {

// x (B*T, C) = dropout(wte[idx] + wpe[t])
template <typename T>
__global__ void encoder_forward_kernel(float* x, const int* idx, const T* wte, const T* wpe, DropoutKey key, int B, int Tn,
                                       int C) {
    const size_t total = (size_t)B * Tn * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t pos = i / C;
        const int c = (int)(i % C), t = (int)(pos % Tn);
        const float v = to_float(wte[(size_t)idx[pos] * C + c]) + to_float(wpe[(size_t)t * C + c]);
        x[i] = v * dropout_scale(key, 0, DROPOUT_EMBEDDING, i);
    }
}

// The positions of a micro-batch grouped by token: token[u] occurs at positions[start[u] .. start[u+1]).
struct EncoderBuckets {
    std::vector<int> token, start, positions;
};

inline EncoderBuckets build_encoder_buckets(const int* idx, int n) {
    std::vector<std::vector<int>> by_token;
    std::vector<int> order;  // tokens in order of first appearance
    std::vector<int> slot;   // token -> index into by_token
    for (int p = 0; p < n; p++) {
        if (idx[p] >= (int)slot.size()) slot.resize(idx[p] + 1, -1);
        if (slot[idx[p]] < 0) { slot[idx[p]] = (int)by_token.size(); by_token.emplace_back(); order.push_back(idx[p]); }
        by_token[slot[idx[p]]].push_back(p);
    }
    EncoderBuckets b;
    b.start.push_back(0);
    for (size_t u = 0; u < by_token.size(); u++) {
        b.token.push_back(order[u]);
        b.positions.insert(b.positions.end(), by_token[u].begin(), by_token[u].end());
        b.start.push_back((int)b.positions.size());
    }
    return b;
}

// dwte[token[u], c] += sum over the bucket's positions p (in order) of dropout(dx)[p, c]
static __global__ void encoder_backward_wte_kernel(float* dwte, const float* dx, const int* token, const int* start,
                                            const int* positions, int buckets, DropoutKey key, int C) {
    const size_t total = (size_t)buckets * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int u = (int)(i / C), c = (int)(i % C);
        float sum = 0.0f;
        for (int k = start[u]; k < start[u + 1]; k++) {
            const size_t e = (size_t)positions[k] * C + c;
            sum += dx[e] * dropout_scale(key, 0, DROPOUT_EMBEDDING, e);
        }
        dwte[(size_t)token[u] * C + c] += sum;
    }
}

// dwpe[t, c] += sum over b (in order) of dropout(dx)[b, t, c]
static __global__ void encoder_backward_wpe_kernel(float* dwpe, const float* dx, DropoutKey key, int B, int Tn, int C) {
    const size_t total = (size_t)Tn * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float sum = 0.0f;
        for (int b = 0; b < B; b++) {
            const size_t e = (size_t)b * Tn * C + i;
            sum += dx[e] * dropout_scale(key, 0, DROPOUT_EMBEDDING, e);
        }
        dwpe[i] += sum;
    }
}

template <typename T>
void encoder_forward(float* x, const int* idx, const T* wte, const T* wpe, const DropoutKey& key, int B, int Tn, int C,
                     cudaStream_t stream) {
    const size_t n = (size_t)B * Tn * C;
    launch_kernel(Sync::none, encoder_forward_kernel<T>, stride_grid(n, 256), dim3(256), 0,
                  stream, x, idx, wte, wpe, key, B, Tn, C);
}

// token, start, positions: device copies of an EncoderBuckets (buckets = token.size())
inline void encoder_backward(float* dwte, float* dwpe, const float* dx, const int* token, const int* start,
                             const int* positions, int buckets, const DropoutKey& key, int B, int Tn, int C,
                             cudaStream_t stream) {
    launch_kernel(Sync::none, encoder_backward_wte_kernel, stride_grid((size_t)buckets * C, 256), dim3(256), 0, stream, dwte, dx,
                  token, start, positions, buckets, key, C);
    launch_kernel(Sync::none, encoder_backward_wpe_kernel, stride_grid((size_t)Tn * C, 256), dim3(256), 0, stream, dwpe, dx, key, B,
                  Tn, C);
}

}  // namespace lnfree::kernels
