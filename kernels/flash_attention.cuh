// Fused causal self-attention in the FlashAttention-2 manner, bf16 on the tensor cores (kernels/mma.cuh: mma.sync
// m16n8k16, bf16 in, float32 accumulate). No T x T matrix touches memory: the forward keeps each query row's running
// max and sum in registers (online softmax) and writes only the output and the row's log-sum-exp; the backward
// recomputes the probabilities tile by tile from the log-sum-exp. Dropout on the probabilities draws the same
// element-keyed Philox masks as kernels/attention.cuh and the reference (element ((b*NH + h)*T + t)*T + s).
//   forward:  S = q k^T / sqrt(hd); P = exp(S - lse); out = (P * dropout) v
//   backward: D = rowsum(dout * out); dv = (P * dropout)^T dout; dP = dout v^T; dS = P * (dP * dropout - D);
//             dq = dS k / sqrt(hd); dk = dS^T q / sqrt(hd)
// The backward is two kernels so that no gradient is accumulated with atomics (deterministic, as every reduction
// here): one per key tile writes dk and dv looping over the query tiles at or below the diagonal, one per query
// tile writes dq looping over the key tiles; the second recomputes S and dP (about a third more FLOPs).
// Tiles: 64 queries per block (16 per warp, 4 warps), 64 keys per step; tiles wholly above the diagonal are skipped.
// Head sizes up to 64 (every GPT-2 has 64; the tiny model 32, the tests 8): the head dimension is zero-padded to a
// multiple of 16 in shared memory. Forward FLOPs: 4 B NH T^2 hd / 2 (causal); at GPT-2 XL's micro-batch (B=18,
// T=1024, NH=25, hd=64) 6.0e10 forward and 2.1e11 backward (with the dq kernel's recompute).
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/attention.cuh"
#include "kernels/common.cuh"
#include "kernels/mma.cuh"

namespace lnfree::kernels {

inline constexpr int kFlashRows = 64;     // queries per block (and keys per block in the dk/dv kernel)
inline constexpr int kFlashCols = 64;     // keys (or queries) per inner step
inline constexpr int kFlashThreads = 128; // 4 warps of 16 rows each
inline constexpr int kFlashMaxHead = 64;

inline bool flash_attention_supports(int hd) { return hd <= kFlashMaxHead; }

// A (rows x HDP) tile of one head into shared memory (row stride LD), rows [row0, row0 + rows) of a (T, ld)
// activation at `base`; rows past T and columns past hd are zero.
template <int HDP, int LD>
__device__ inline void flash_load_tile(bf16* tile, const bf16* base, int ld, int row0, int rows, int Tn, int hd) {
    for (int i = threadIdx.x; i < rows * HDP; i += blockDim.x) {
        const int r = i / HDP, c = i % HDP, row = row0 + r;
        tile[r * LD + c] = row < Tn && c < hd ? base[(size_t)row * ld + c] : from_float<bf16>(0.0f);
    }
}

// Fragments from row-major tiles in shared memory by ldmatrix (the lane addresses of kernels/mma.cuh's recipes;
// rows of LD bf16 are 16-byte aligned). A: rows [row0, row0 + 16), columns [k0, k0 + 16).
template <int LD>
__device__ inline MmaA flash_fragment_a(const bf16* tile, int row0, int k0) {
    const int l = threadIdx.x % 32;
    MmaA a;
    ldmatrix_x4(a.r, tile + (row0 + l % 8 + 8 * (l / 8 % 2)) * LD + k0 + 8 * (l / 16));
    return a;
}
// The A fragments of a warp's 16 rows [row0, row0 + 16) over the whole (padded) head.
template <int HDP, int LD>
__device__ inline void flash_fragments_a(MmaA (&a)[HDP / 16], const bf16* tile, int row0) {
    #pragma unroll
    for (int kk = 0; kk < HDP / 16; kk++) a[kk] = flash_fragment_a<LD>(tile, row0, kk * 16);
}
// B fragment (16 x 8, k by n) whose column n is row n0 + n of the tile: B[k][n] = tile[n0 + n][k0 + k] (q k^T).
template <int LD>
__device__ inline MmaB flash_fragment_b_rows(const bf16* tile, int n0, int k0) {
    const int l = threadIdx.x % 32;
    MmaB b;
    ldmatrix_x2(b.r, tile + (n0 + l % 8) * LD + k0 + 8 * (l / 8 % 2));
    return b;
}
// B fragment that is the tile itself: B[k][n] = tile[k0 + k][n0 + n] (P v).
template <int LD>
__device__ inline MmaB flash_fragment_b_cols(const bf16* tile, int k0, int n0) {
    const int l = threadIdx.x % 32;
    MmaB b;
    ldmatrix_x2_trans(b.r, tile + (k0 + l % 16) * LD + n0);
    return b;
}
// acc[n] += a * tile^T over the step's 8-column tiles: rows [8n, 8n + 8) of the tile are the columns of tile n
// (q k^T, k q^T, dout v^T, v dout^T).
template <int HDP, int LD>
__device__ inline void flash_products(MmaC (&acc)[kFlashCols / 8], const MmaA (&a)[HDP / 16], const bf16* tile) {
    #pragma unroll
    for (int n = 0; n < kFlashCols / 8; n++)
        #pragma unroll
        for (int kk = 0; kk < HDP / 16; kk++) mma_16816(acc[n], a[kk], flash_fragment_b_rows<LD>(tile, n * 8, kk * 16));
}

// The A fragment of a 16 x 16 product whose columns are two accumulator tiles side by side (FlashAttention-2's
// registers-only P: a C fragment's layout is the A fragment's, one 8-column half at a time).
__device__ inline MmaA flash_fragment_a_from(const MmaC& left, const MmaC& right) {
    return MmaA{{pack_bf16(left.r[0], left.r[1]), pack_bf16(left.r[2], left.r[3]), pack_bf16(right.r[0], right.r[1]),
                 pack_bf16(right.r[2], right.r[3])}};
}

// acc (16 x HDP) += p (16 x 64, the step's accumulator tiles, in bf16) * tile (64 x HDP): P v, dS k.
template <int HDP, int LD>
__device__ inline void flash_products_into(MmaC (&acc)[HDP / 8], const MmaC (&p)[kFlashCols / 8], const bf16* tile) {
    #pragma unroll
    for (int kk = 0; kk < kFlashCols / 16; kk++) {
        const MmaA a = flash_fragment_a_from(p[2 * kk], p[2 * kk + 1]);
        #pragma unroll
        for (int n = 0; n < HDP / 8; n++) mma_16816(acc[n], a, flash_fragment_b_cols<LD>(tile, kk * 16, n * 8));
    }
}

// Row `half` (0: g, 1: g + 8) of a warp's 16 x HDP accumulator, times `factor`, into the hd columns at `row`.
template <int HDP>
__device__ inline void flash_store_row(bf16* row, const MmaC (&acc)[HDP / 8], int half, float factor, int hd) {
    const int t = threadIdx.x % 4;
    #pragma unroll
    for (int n = 0; n < HDP / 8; n++)
        #pragma unroll
        for (int e = 0; e < 2; e++) {
            const int c = n * 8 + 2 * t + e;
            if (c < hd) row[c] = from_float<bf16>(acc[n].r[2 * half + e] * factor);
        }
}

// Which of a lane's elements (rows[i], k0 + 8n + 2t + e) of one step survive dropout: bit 2n + e of keep[i].
// Element x of the probabilities uses word x & 3 of the Philox call at counter x >> 2. With T a multiple of 4 a lane
// and its neighbour t ^ 1 need the two halves of the same call for each tile, so each computes every other tile's
// call and hands the neighbour its two bits: all four words of a call are used. Otherwise (T not a multiple of 4:
// the tests' shapes) every pair draws its own one or two calls.
__device__ inline void flash_dropout_step(const DropoutKey& key, uint32_t layer, const uint64_t (&row_first)[2], int k0,
                                          int Tn, uint32_t (&keep)[2]) {
    if (key.p == 0.0f) {  // no dropout: every element kept
        keep[0] = keep[1] = ~0u;
        return;
    }
    const int t = threadIdx.x % 4;
    const uint32_t site = (layer << 4) | DROPOUT_ATTENTION_PROBS;
    const auto kept = [&](uint32_t word) { return (float)(word >> 8) * (1.0f / 16777216.0f) >= key.p ? 1u : 0u; };
    const auto call = [&](uint64_t x) {
        return philox4x32_10((uint32_t)(x >> 2), site, key.micro_step, key.step, (uint32_t)key.seed, (uint32_t)(key.seed >> 32));
    };
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        keep[i] = 0;
        if (Tn % 4 == 0) {
            #pragma unroll
            for (int n = 0; n < kFlashCols / 8; n += 2) {
                const int mine = n + (t & 1), theirs = n + 1 - (t & 1);  // the tile whose call this lane draws
                const uint64_t x = row_first[i] + k0 + 8 * mine + 2 * t;  // x & 3 is 0 (t even) or 2 (t odd)
                const Philox4x32 r = call(x);
                const int w = (int)(x & 3);
                const uint32_t own = kept(r.word[w]) | kept(r.word[w + 1]) << 1;
                const uint32_t for_neighbour = kept(r.word[w ^ 2]) | kept(r.word[(w ^ 2) + 1]) << 1;
                const uint32_t from_neighbour = __shfl_xor_sync(0xffffffffu, for_neighbour, 1);
                keep[i] |= own << 2 * mine | from_neighbour << 2 * theirs;
            }
        } else {
            #pragma unroll
            for (int n = 0; n < kFlashCols / 8; n++) {
                const uint64_t x = row_first[i] + k0 + 8 * n + 2 * t;
                const Philox4x32 r = call(x);
                const int w = (int)(x & 3);
                const uint32_t second = w < 3 ? kept(r.word[w + 1]) : kept(call(x + 1).word[0]);
                keep[i] |= (kept(r.word[w]) | second << 1) << 2 * n;
            }
        }
    }
}
// What element (rows[i], k0 + 8n + 2t + e) of the step is multiplied by: 1 / (1 - p) when bit 2n + e of keep[i] is
// set, 0 when dropped.
__device__ inline float flash_keep_factor(const uint32_t (&keep)[2], int i, int bit, float keep_scale) {
    return keep[i] >> bit & 1u ? keep_scale : 0.0f;
}
__device__ inline float flash_keep_scale(const DropoutKey& key) { return key.p > 0.0f ? 1.0f / (1.0f - key.p) : 1.0f; }

__device__ inline float flash_dropout(const DropoutKey& key, uint32_t layer, uint64_t e) {
    return dropout_scale(key, layer, DROPOUT_ATTENTION_PROBS, e);
}

// Max and sum over the 4 lanes that hold one accumulator row.
__device__ inline float flash_row_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ inline float flash_row_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// ---- forward: grid (query tiles, B*NH), kFlashThreads threads ------------------------------------------------
template <int HDP>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_forward_kernel(bf16* out, float* lse, const bf16* qkv,
                                                                               DropoutKey key, uint32_t layer, int Tn,
                                                                               int C, int NH, float scale) {
    constexpr int LD = HDP + 8;  // padded rows (16-byte multiples): a warp's ldmatrix rows spread over the banks
    alignas(16) __shared__ bf16 q_tile[kFlashRows * LD], k_tile[kFlashCols * LD], v_tile[kFlashCols * LD];
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, hd = C / NH, q0 = blockIdx.x * kFlashRows;
    const int warp = threadIdx.x / 32, g = threadIdx.x % 32 >> 2, t = threadIdx.x % 4;
    const bf16* seq = qkv + (size_t)b * Tn * 3 * C + h * hd;
    flash_load_tile<HDP, LD>(q_tile, seq, 3 * C, q0, kFlashRows, Tn, hd);
    __syncthreads();
    MmaA q[HDP / 16];
    flash_fragments_a<HDP, LD>(q, q_tile, warp * 16);
    const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    const uint64_t row_first[2] = {((uint64_t)bh * Tn + row[0]) * Tn, ((uint64_t)bh * Tn + row[1]) * Tn};  // dropout
    const float keep_scale = flash_keep_scale(key);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    MmaC o[HDP / 8] = {};
    const int last = (min(q0 + kFlashRows, Tn) - 1) / kFlashCols;  // the diagonal's key tile
    for (int j = 0; j <= last; j++) {
        const int k0 = j * kFlashCols;
        __syncthreads();  // every warp is done with the previous tiles
        flash_load_tile<HDP, LD>(k_tile, seq + C, 3 * C, k0, kFlashCols, Tn, hd);
        flash_load_tile<HDP, LD>(v_tile, seq + 2 * C, 3 * C, k0, kFlashCols, Tn, hd);
        __syncthreads();
        MmaC s[kFlashCols / 8] = {};
        flash_products<HDP, LD>(s, q, k_tile);
        // scale and causal mask (a key after the query, which also covers keys past T), then the online softmax
        float mx[2] = {m[0], m[1]};
        #pragma unroll
        for (int n = 0; n < kFlashCols / 8; n++)
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int col = k0 + n * 8 + 2 * t + (e & 1);
                s[n].r[e] = col <= row[e >> 1] ? s[n].r[e] * scale : -INFINITY;
                mx[e >> 1] = fmaxf(mx[e >> 1], s[n].r[e]);
            }
        float sum[2] = {0.0f, 0.0f};
        #pragma unroll
        for (int i = 0; i < 2; i++) {
            mx[i] = flash_row_max(mx[i]);
            const float rescale = m[i] == -INFINITY ? 0.0f : expf(m[i] - mx[i]);
            l[i] *= rescale;
            #pragma unroll
            for (int n = 0; n < HDP / 8; n++) { o[n].r[2 * i] *= rescale; o[n].r[2 * i + 1] *= rescale; }
            m[i] = mx[i];
        }
        uint32_t keep[2];
        flash_dropout_step(key, layer, row_first, k0, Tn, keep);
        #pragma unroll
        for (int n = 0; n < kFlashCols / 8; n++)
            #pragma unroll
            for (int i = 0; i < 2; i++) {
                const float p0 = expf(s[n].r[2 * i] - mx[i]), p1 = expf(s[n].r[2 * i + 1] - mx[i]);
                sum[i] += p0 + p1;
                s[n].r[2 * i] = p0 * flash_keep_factor(keep, i, 2 * n, keep_scale);
                s[n].r[2 * i + 1] = p1 * flash_keep_factor(keep, i, 2 * n + 1, keep_scale);
            }
        #pragma unroll
        for (int i = 0; i < 2; i++) l[i] += flash_row_sum(sum[i]);
        flash_products_into<HDP, LD>(o, s, v_tile);
    }
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        if (row[i] >= Tn) continue;
        flash_store_row<HDP>(out + ((size_t)b * Tn + row[i]) * C + h * hd, o, i, 1.0f / l[i], hd);
        if (t == 0) lse[(size_t)bh * Tn + row[i]] = m[i] + logf(l[i]);
    }
}

// ---- backward, keys: grid (key tiles, B*NH); block j writes dk and dv of keys [64 j, 64 j + 64) ---------------
// Each warp owns 16 keys and computes the transposed products (keys as rows): S^T = k q^T, dP^T = v dout^T.
template <int HDP>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_backward_kv_kernel(
    bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* D, DropoutKey key, uint32_t layer, int Tn,
    int C, int NH, float scale) {
    constexpr int LD = HDP + 8;
    alignas(16) __shared__ bf16 k_tile[kFlashRows * LD], v_tile[kFlashRows * LD], q_tile[kFlashCols * LD], do_tile[kFlashCols * LD];
    __shared__ float lse_tile[kFlashCols], d_tile[kFlashCols];
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, hd = C / NH, k0 = blockIdx.x * kFlashRows;
    const int warp = threadIdx.x / 32, g = threadIdx.x % 32 >> 2, t = threadIdx.x % 4;
    const bf16* seq = qkv + (size_t)b * Tn * 3 * C + h * hd;
    const bf16* dseq = dout + (size_t)b * Tn * C + h * hd;
    flash_load_tile<HDP, LD>(k_tile, seq + C, 3 * C, k0, kFlashRows, Tn, hd);
    flash_load_tile<HDP, LD>(v_tile, seq + 2 * C, 3 * C, k0, kFlashRows, Tn, hd);
    __syncthreads();
    MmaA kf[HDP / 16], vf[HDP / 16];
    flash_fragments_a<HDP, LD>(kf, k_tile, warp * 16);
    flash_fragments_a<HDP, LD>(vf, v_tile, warp * 16);
    const int keyrow[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
    MmaC dk[HDP / 8] = {}, dv[HDP / 8] = {};
    for (int q0 = k0 / kFlashCols * kFlashCols; q0 < Tn; q0 += kFlashCols) {  // query tiles at or below the diagonal
        __syncthreads();
        flash_load_tile<HDP, LD>(q_tile, seq, 3 * C, q0, kFlashCols, Tn, hd);
        flash_load_tile<HDP, LD>(do_tile, dseq, C, q0, kFlashCols, Tn, hd);
        for (int i = threadIdx.x; i < kFlashCols; i += blockDim.x) {
            const bool in = q0 + i < Tn;
            lse_tile[i] = in ? lse[(size_t)bh * Tn + q0 + i] : 0.0f;
            d_tile[i] = in ? D[(size_t)bh * Tn + q0 + i] : 0.0f;
        }
        __syncthreads();
        MmaC st[kFlashCols / 8] = {}, dpt[kFlashCols / 8] = {};
        flash_products<HDP, LD>(st, kf, q_tile);
        flash_products<HDP, LD>(dpt, vf, do_tile);
        // P^T * dropout and dS^T, 16 queries at a time, straight into A fragments: element (key, query) of S^T is
        // element (query, key) of the probabilities
        #pragma unroll
        for (int kk = 0; kk < kFlashCols / 16; kk++) {
            MmaC pz[2], ds[2];
            #pragma unroll
            for (int half = 0; half < 2; half++) {
                const int n = 2 * kk + half;
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int qi = n * 8 + 2 * t + (e & 1), query = q0 + qi, k = keyrow[e >> 1];
                    const bool visible = k <= query && query < Tn;
                    const float p = visible ? expf(st[n].r[e] * scale - lse_tile[qi]) : 0.0f;
                    const float z = visible ? flash_dropout(key, layer, ((uint64_t)bh * Tn + query) * Tn + k) : 0.0f;
                    pz[half].r[e] = p * z;
                    ds[half].r[e] = p * (dpt[n].r[e] * z - d_tile[qi]);
                }
            }
            const MmaA pz_a = flash_fragment_a_from(pz[0], pz[1]), ds_a = flash_fragment_a_from(ds[0], ds[1]);
            #pragma unroll
            for (int n = 0; n < HDP / 8; n++) {
                mma_16816(dv[n], pz_a, flash_fragment_b_cols<LD>(do_tile, kk * 16, n * 8));
                mma_16816(dk[n], ds_a, flash_fragment_b_cols<LD>(q_tile, kk * 16, n * 8));
            }
        }
    }
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        if (keyrow[i] >= Tn) continue;
        bf16* base = dqkv + ((size_t)b * Tn + keyrow[i]) * 3 * C + h * hd;
        flash_store_row<HDP>(base + C, dk, i, scale, hd);
        flash_store_row<HDP>(base + 2 * C, dv, i, 1.0f, hd);
    }
}

// ---- backward, queries: grid (query tiles, B*NH); block i writes dq of queries [64 i, 64 i + 64) -------------
template <int HDP>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_backward_q_kernel(
    bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* D, DropoutKey key, uint32_t layer, int Tn,
    int C, int NH, float scale) {
    constexpr int LD = HDP + 8;
    alignas(16) __shared__ bf16 q_tile[kFlashRows * LD], do_tile[kFlashRows * LD], k_tile[kFlashCols * LD], v_tile[kFlashCols * LD];
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, hd = C / NH, q0 = blockIdx.x * kFlashRows;
    const int warp = threadIdx.x / 32, g = threadIdx.x % 32 >> 2, t = threadIdx.x % 4;
    const bf16* seq = qkv + (size_t)b * Tn * 3 * C + h * hd;
    flash_load_tile<HDP, LD>(q_tile, seq, 3 * C, q0, kFlashRows, Tn, hd);
    flash_load_tile<HDP, LD>(do_tile, dout + (size_t)b * Tn * C + h * hd, C, q0, kFlashRows, Tn, hd);
    __syncthreads();
    MmaA qf[HDP / 16], dof[HDP / 16];
    flash_fragments_a<HDP, LD>(qf, q_tile, warp * 16);
    flash_fragments_a<HDP, LD>(dof, do_tile, warp * 16);
    const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    const uint64_t row_first[2] = {((uint64_t)bh * Tn + row[0]) * Tn, ((uint64_t)bh * Tn + row[1]) * Tn};  // dropout
    const float keep_scale = flash_keep_scale(key);
    float row_lse[2], row_d[2];
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        row_lse[i] = row[i] < Tn ? lse[(size_t)bh * Tn + row[i]] : 0.0f;
        row_d[i] = row[i] < Tn ? D[(size_t)bh * Tn + row[i]] : 0.0f;
    }
    MmaC dq[HDP / 8] = {};
    const int last = (min(q0 + kFlashRows, Tn) - 1) / kFlashCols;
    for (int j = 0; j <= last; j++) {
        const int k0 = j * kFlashCols;
        __syncthreads();
        flash_load_tile<HDP, LD>(k_tile, seq + C, 3 * C, k0, kFlashCols, Tn, hd);
        flash_load_tile<HDP, LD>(v_tile, seq + 2 * C, 3 * C, k0, kFlashCols, Tn, hd);
        __syncthreads();
        MmaC s[kFlashCols / 8] = {}, dp[kFlashCols / 8] = {};
        flash_products<HDP, LD>(s, qf, k_tile);
        flash_products<HDP, LD>(dp, dof, v_tile);
        uint32_t keep[2];
        flash_dropout_step(key, layer, row_first, k0, Tn, keep);
        #pragma unroll
        for (int n = 0; n < kFlashCols / 8; n++)
            #pragma unroll
            for (int i = 0; i < 2; i++) {
                const int col = k0 + n * 8 + 2 * t;
                const float z[2] = {flash_keep_factor(keep, i, 2 * n, keep_scale),
                                    flash_keep_factor(keep, i, 2 * n + 1, keep_scale)};
                #pragma unroll
                for (int e = 0; e < 2; e++) {
                    const bool visible = col + e <= row[i] && row[i] < Tn;
                    const float p = visible ? expf(s[n].r[2 * i + e] * scale - row_lse[i]) : 0.0f;
                    s[n].r[2 * i + e] = p * (dp[n].r[2 * i + e] * z[e] - row_d[i]);  // dS
                }
            }
        flash_products_into<HDP, LD>(dq, s, k_tile);  // s holds dS
    }
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        if (row[i] >= Tn) continue;
        flash_store_row<HDP>(dqkv + ((size_t)b * Tn + row[i]) * 3 * C + h * hd, dq, i, scale, hd);
    }
}

// The padded head size a kernel instance is built for.
template <typename F>
void flash_dispatch(int hd, F&& launch) {
    if (hd <= 16) launch(std::integral_constant<int, 16>{});
    else if (hd <= 32) launch(std::integral_constant<int, 32>{});
    else if (hd <= 64) launch(std::integral_constant<int, 64>{});
    else throw std::invalid_argument("fused attention: head size " + std::to_string(hd) + " above " + std::to_string(kFlashMaxHead));
}

// out (B,T,C), lse (B,NH,T) from qkv (B,T,3C).
inline void flash_attention_forward(bf16* out, float* lse, const bf16* qkv, const DropoutKey& key, uint32_t layer, int B,
                                    int Tn, int C, int NH, cudaStream_t stream) {
    const float scale = 1.0f / std::sqrt((float)(C / NH));
    const dim3 grid(ceil_div(Tn, kFlashRows), B * NH);
    flash_dispatch(C / NH, [&](auto hdp) {
        launch_kernel(flash_attention_forward_kernel<decltype(hdp)::value>, grid, dim3(kFlashThreads), 0, stream, out, lse,
                      qkv, key, layer, Tn, C, NH, scale);
    });
}

// dqkv (B,T,3C) = the gradient of out w.r.t. qkv (written, not accumulated); D: (B,NH,T) scratch.
inline void flash_attention_backward(bf16* dqkv, float* D, const bf16* dout, const bf16* out, const bf16* qkv,
                                     const float* lse, const DropoutKey& key, uint32_t layer, int B, int Tn, int C, int NH,
                                     cudaStream_t stream) {
    const float scale = 1.0f / std::sqrt((float)(C / NH));
    const dim3 grid(ceil_div(Tn, kFlashRows), B * NH);
    launch_kernel(Sync::none, attention_backward_rowdot_kernel<bf16>, stride_grid((size_t)B * NH * Tn, 256), dim3(256), 0, stream, D,
                  dout, out, B, Tn, C, NH, C / NH);  // D, as the product-based backward computes it
    flash_dispatch(C / NH, [&](auto hdp) {
        launch_kernel(flash_attention_backward_kv_kernel<decltype(hdp)::value>, grid, dim3(kFlashThreads), 0, stream, dqkv,
                      dout, qkv, lse, (const float*)D, key, layer, Tn, C, NH, scale);
        launch_kernel(flash_attention_backward_q_kernel<decltype(hdp)::value>, grid, dim3(kFlashThreads), 0, stream, dqkv,
                      dout, qkv, lse, (const float*)D, key, layer, Tn, C, NH, scale);
    });
}

}  // namespace lnfree::kernels
