// Causal self-attention with its matrix products on the tensor cores (cuBLASLt strided-batched GEMMs; OpenBLAS in
// the CPU build) and the softmax, causal mask and dropout in hand-written row kernels between them. The products
// read and write the heads in place, as column slices of qkv, out, dout and dqkv (one batched product of NH heads
// per sequence). The T x T scores live in one scratch shared by every layer: only each row's log-sum-exp is kept
// for the backward, which recomputes the scores. Dropout on the attention probabilities uses the counter-based
// masks of lnfree/philox.h.
//   forward:  S = q k^T / sqrt(hd); A = dropout(softmax(S)), lse per row; out = A v
//   backward: D = rowsum(dout * out); S recomputed, P = exp(S - lse) and A = dropout(P); dv = A^T dout;
//             dA = dout v^T; dS = P * (dA * dropout - D); dq = dS k / sqrt(hd); dk = dS^T q / sqrt(hd)
// The scores and probabilities are stored in T (bf16 on the GPU, as PyTorch's autocast eager attention of the
// authors' runs stores them); the softmax and its gradient compute in float32.
// qkv (B,T,3C) holds q | k | v with head h at channels [h*hd, (h+1)*hd). The products run over the full T x T
// square (the masked half is computed and discarded): at GPT-2 XL's micro-batch (B=18, T=1024, NH=25, hd=64) that
// is 2 * 2 B NH T^2 hd = 1.2e11 FLOP forward and 3.0e11 backward, a few tenths of a millisecond per layer at an
// H100's bf16 rate; the T x T traffic (8 bytes per element forward, 22 backward in bf16: about 3.8 GB and 10 GB
// per layer there) makes the row kernels and the products' reads and writes, not their arithmetic, the cost.
#pragma once
#include <cmath>

#include "kernels/common.cuh"
#include "kernels/device.cuh"
#include "kernels/matmul.cuh"

namespace lnfree::kernels {

// The scores' row length, padded so every row and every (batch, head) matrix starts 16-byte aligned.
inline int attention_scores_ld(int Tn) { return ceil_div(Tn, 8) * 8; }

// The attention's working memory, sized for one layer and reused by every layer and micro-step.
template <typename T>
struct AttentionScratch {
    device::Buffer<T> scores;      // (B*NH, T, ld): S; in the backward P
    device::Buffer<T> probs;       // (B*NH, T, ld): A = dropout(P); in the backward dA, then dS
    device::Buffer<float> D;       // (B*NH, T): rowsum(dout * out)
    // threads per row of the row kernels: a warp on the GPU (coalesced rows, shuffle reductions); one thread with
    // single-thread reductions (the emulator's default, see kSingleThreadReductions; the tests run both)
    int row_lanes = kSingleThreadReductions ? 1 : 32;

    AttentionScratch() = default;
    AttentionScratch(int B, int Tn, int NH)
        : scores((size_t)B * NH * Tn * attention_scores_ld(Tn)), probs(scores.size()), D((size_t)B * NH * Tn) {}
    static size_t bytes(int B, int Tn, int NH) {
        return (size_t)B * NH * Tn * (attention_scores_ld(Tn) * 2 * sizeof(T) + sizeof(float));
    }
};

// A per-(sequence, head) matrix: element (row, col) of sequence b, head h at base[b*seq + h*head + row*ld + col].
// Heads are column slices of (B,T,.) activations (ld = their width, seq = T*ld, head = hd) or the scratch's
// squares (ld = the scores' row length, seq = NH*T*ld, head = T*ld).
template <typename P>
struct HeadMatrix {
    P* base;
    int ld;
    long long seq, head;
};

// d = alpha op(a) op(b) for every (sequence, head): one strided-batched product of the NH heads per sequence.
template <typename T, typename TD>
void head_products(MatmulContext& mm, bool trans_a, bool trans_b, int M, int N, int K, float alpha, HeadMatrix<const T> a,
                   HeadMatrix<const T> b, HeadMatrix<TD> d, int B, int NH, cudaStream_t stream) {
#if defined(CUDA_HOST_EMU)  // all B * NH products at once over the emulator's workers
    (void)mm, (void)stream;
    cuda_emu::ProfileScope profiled("host: attention head products");
    cuda_emu::parallel_for((std::uint64_t)B * NH, [&](std::uint64_t i) {
        const long long s = (long long)(i / NH), h = (long long)(i % NH);
        matmul_one(trans_a, trans_b, M, N, K, alpha, a.base + s * a.seq + h * a.head, a.ld, b.base + s * b.seq + h * b.head,
                   b.ld, d.base + s * d.seq + h * d.head, d.ld);
    });
#else
    for (int i = 0; i < B; i++)
        batched_matmul<T, TD>(mm, trans_a, trans_b, M, N, K, alpha, a.base + i * a.seq, a.ld, a.head, b.base + i * b.seq,
                              b.ld, b.head, d.base + i * d.seq, d.ld, d.head, NH, stream);
#endif
}

// Forward softmax, `lanes` threads per row r = (b*NH + h)*T + t: lse[r] = log sum_{s<=t} exp(S[r,s]);
// probs[r,s] = exp(S[r,s] - lse[r]) * dropout for s <= t, 0 for t < s < T.
template <typename T>
__global__ void attention_softmax_forward_kernel(T* probs, float* lse, const T* scores, int ld, int Tn, int rows,
                                                 DropoutKey key, uint32_t layer, int lanes) {
    const int lane = threadIdx.x % lanes, groups = (gridDim.x * blockDim.x) / lanes;
    for (int r = (blockIdx.x * blockDim.x + threadIdx.x) / lanes; r < rows; r += groups) {
        const int t = r % Tn;
        const T* srow = scores + (size_t)r * ld;
        float m = -INFINITY;
        for (int s = lane; s <= t; s += lanes) m = fmaxf(m, to_float(srow[s]));
        m = row_max(m, lanes);
        float sum = 0.0f;
        for (int s = lane; s <= t; s += lanes) sum += expf(to_float(srow[s]) - m);
        const float row_lse = m + logf(row_sum(sum, lanes));
        T* prow = probs + (size_t)r * ld;
        const uint64_t first = (uint64_t)r * Tn;  // the dropout counter of (b, h, t, s) is ((b*NH + h)*T + t)*T + s
        DropoutScales scale(key, layer, DROPOUT_ATTENTION_PROBS);
        for (int s = lane; s < Tn; s += lanes)
            prow[s] = from_float<T>(s <= t ? expf(to_float(srow[s]) - row_lse) * scale(first + s) : 0.0f);
        if (lane == 0) lse[r] = row_lse;
    }
}

// Backward, before dv: scores[r,s] := P = exp(S - lse) (0 above the diagonal), probs[r,s] := P * dropout.
template <typename T>
__global__ void attention_softmax_recompute_kernel(T* scores, T* probs, const float* lse, int ld, int Tn, int rows,
                                                   DropoutKey key, uint32_t layer, int lanes) {
    const int lane = threadIdx.x % lanes, groups = (gridDim.x * blockDim.x) / lanes;
    for (int r = (blockIdx.x * blockDim.x + threadIdx.x) / lanes; r < rows; r += groups) {
        const int t = r % Tn;
        const float row_lse = lse[r];
        T* srow = scores + (size_t)r * ld;
        T* prow = probs + (size_t)r * ld;
        const uint64_t first = (uint64_t)r * Tn;
        DropoutScales scale(key, layer, DROPOUT_ATTENTION_PROBS);
        for (int s = lane; s < Tn; s += lanes) {
            const float p = s <= t ? expf(to_float(srow[s]) - row_lse) : 0.0f;
            srow[s] = from_float<T>(p);
            prow[s] = from_float<T>(s <= t ? p * scale(first + s) : 0.0f);
        }
    }
}

// Backward, after dA = do v^T landed in probs: probs[r,s] := dS = P * (dA * dropout - D[r]).
template <typename T>
__global__ void attention_softmax_backward_kernel(T* probs, const T* scores, const float* D, int ld, int Tn, int rows,
                                                  DropoutKey key, uint32_t layer, int lanes) {
    const int lane = threadIdx.x % lanes, groups = (gridDim.x * blockDim.x) / lanes;
    for (int r = (blockIdx.x * blockDim.x + threadIdx.x) / lanes; r < rows; r += groups) {
        const int t = r % Tn;
        const float row_d = D[r];
        const T* srow = scores + (size_t)r * ld;
        T* prow = probs + (size_t)r * ld;
        const uint64_t first = (uint64_t)r * Tn;
        DropoutScales scale(key, layer, DROPOUT_ATTENTION_PROBS);
        for (int s = lane; s < Tn; s += lanes)  // P = 0 above the diagonal
            prow[s] = from_float<T>(s <= t ? to_float(srow[s]) * (to_float(prow[s]) * scale(first + s) - row_d) : 0.0f);
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

// The grid of the row kernels: blocks of 256 threads, `lanes` per row (grid-stride).
inline dim3 attention_row_grid(int rows, int lanes) { return stride_grid((size_t)rows * lanes, 256); }

// out (B,T,C), lse (B,NH,T) from qkv (B,T,3C).
template <typename T>
void attention_forward(MatmulContext& mm, AttentionScratch<T>& w, T* out, float* lse, const T* qkv, const DropoutKey& key,
                       uint32_t layer, int B, int Tn, int C, int NH, cudaStream_t stream) {
    const int hd = C / NH, ld = attention_scores_ld(Tn), rows = B * NH * Tn;
    const long long qkv_seq = (long long)Tn * 3 * C, square = (long long)Tn * ld, squares = NH * square;
    const HeadMatrix<const T> q{qkv, 3 * C, qkv_seq, hd}, k{qkv + C, 3 * C, qkv_seq, hd}, v{qkv + 2 * C, 3 * C, qkv_seq, hd};
    head_products<T, T>(mm, false, true, Tn, Tn, hd, 1.0f / std::sqrt((float)hd), q, k,
                        HeadMatrix<T>{w.scores.data(), ld, squares, square}, B, NH, stream);
    launch_kernel(reduction_sync(w.row_lanes == 1), attention_softmax_forward_kernel<T>, attention_row_grid(rows, w.row_lanes), dim3(256), 0, stream,
                  w.probs.data(), lse, (const T*)w.scores.data(), ld, Tn, rows, key, layer, w.row_lanes);
    head_products<T, T>(mm, false, false, Tn, hd, Tn, 1.0f, HeadMatrix<const T>{w.probs.data(), ld, squares, square}, v,
                        HeadMatrix<T>{out, C, (long long)Tn * C, hd}, B, NH, stream);
}

// dqkv (B,T,3C) = the gradient of out w.r.t. qkv (written, not accumulated).
template <typename T>
void attention_backward(MatmulContext& mm, AttentionScratch<T>& w, T* dqkv, const T* dout, const T* out, const T* qkv,
                        const float* lse, const DropoutKey& key, uint32_t layer, int B, int Tn, int C, int NH,
                        cudaStream_t stream) {
    const int hd = C / NH, ld = attention_scores_ld(Tn), rows = B * NH * Tn;
    const long long qkv_seq = (long long)Tn * 3 * C, square = (long long)Tn * ld, squares = NH * square;
    const float scale = 1.0f / std::sqrt((float)hd);
    const HeadMatrix<const T> q{qkv, 3 * C, qkv_seq, hd}, k{qkv + C, 3 * C, qkv_seq, hd}, v{qkv + 2 * C, 3 * C, qkv_seq, hd};
    const HeadMatrix<const T> d_out{dout, C, (long long)Tn * C, hd}, probs{w.probs.data(), ld, squares, square};
    const HeadMatrix<T> dq{dqkv, 3 * C, qkv_seq, hd}, dk{dqkv + C, 3 * C, qkv_seq, hd}, dv{dqkv + 2 * C, 3 * C, qkv_seq, hd};
    launch_kernel(Sync::none, attention_backward_rowdot_kernel<T>, stride_grid((size_t)rows, 256), dim3(256), 0, stream, w.D.data(),
                  dout, out, B, Tn, C, NH, hd);
    head_products<T, T>(mm, false, true, Tn, Tn, hd, scale, q, k, HeadMatrix<T>{w.scores.data(), ld, squares, square}, B, NH,
                        stream);
    launch_kernel(reduction_sync(w.row_lanes == 1), attention_softmax_recompute_kernel<T>, attention_row_grid(rows, w.row_lanes), dim3(256), 0, stream,
                  w.scores.data(), w.probs.data(), lse, ld, Tn, rows, key, layer, w.row_lanes);
    head_products<T, T>(mm, true, false, Tn, hd, Tn, 1.0f, probs, d_out, dv, B, NH, stream);  // dv = A^T dout
    head_products<T, T>(mm, false, true, Tn, Tn, hd, 1.0f, d_out, v,                           // dA = dout v^T
                        HeadMatrix<T>{w.probs.data(), ld, squares, square}, B, NH, stream);
    launch_kernel(reduction_sync(w.row_lanes == 1), attention_softmax_backward_kernel<T>, attention_row_grid(rows, w.row_lanes), dim3(256), 0, stream,
                  w.probs.data(), (const T*)w.scores.data(), (const float*)w.D.data(), ld, Tn, rows, key, layer,
                  w.row_lanes);                                                                // dS in place of dA
    head_products<T, T>(mm, false, false, Tn, hd, Tn, scale, probs, k, dq, B, NH, stream);  // dq = dS k * scale
    head_products<T, T>(mm, true, false, Tn, hd, Tn, scale, probs, q, dk, B, NH, stream);   // dk = dS^T q * scale
}

}  // namespace lnfree::kernels
