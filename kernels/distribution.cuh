// Statistics of the next-token distributions for evaluation (lnfree/evaluation.cuh), read from the logits the
// classifier leaves in place when it computes losses only (kernels/classifier.cuh, dloss = 0):
//  - per row of one model: the entropy of softmax(z), the top probability (the confidence of the top token) and
//    the top token (the lowest index among equal maxima, as torch.argmax);
//  - per row of two models p and q on the same tokens: KL(p || q), KL(q || p) and the Jensen-Shannon divergence,
//    in nats.
// One block per row, reading the row three times; evaluation only, so no backward. The reference is
// lnfree/reference/distribution.h.
#pragma once
#include <cmath>

#include "kernels/classifier.cuh"
#include "kernels/common.cuh"

namespace lnfree::kernels {

// The row's maximum over [0, V), and the lowest index that holds it, on every thread.
template <typename T>
__device__ inline float row_max_and_index(const T* z, int V, int* index, float* scratch) {
    float m = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, to_float(z[v]));
    m = block_max(m, scratch);
    float lowest = -(float)V;  // -index, so that the block's maximum is the lowest index (exact up to 2^24)
    for (int v = threadIdx.x; v < V; v += blockDim.x)
        if (to_float(z[v]) == m) { lowest = fmaxf(lowest, -(float)v); break; }
    *index = (int)-block_max(lowest, scratch);
    return m;
}

// entropy, confidence, top (N): per row of logits (N, Vp) over the first V entries
template <typename T>
__global__ void distribution_stats_kernel(float* entropy, float* confidence, int* top, const T* logits, int N, int V,
                                          int Vp) {
    __shared__ float scratch[32];
    for (int row = blockIdx.x; row < N; row += gridDim.x) {
        const T* z = logits + (size_t)row * Vp;
        int argmax = 0;
        const float m = row_max_and_index(z, V, &argmax, scratch);
        float s = 0.0f, sz = 0.0f;  // sum of exp(z - m), and of exp(z - m) * (z - m)
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            const float d = to_float(z[v]) - m, e = expf(d);
            s += e;
            sz += e * d;
        }
        s = block_sum(s, scratch);
        sz = block_sum(sz, scratch);
        if (threadIdx.x == 0) {
            entropy[row] = logf(s) - sz / s;  // H = lse - E[z], both shifted by m
            confidence[row] = 1.0f / s;       // exp(m - lse)
            top[row] = argmax;
        }
    }
}

// kl_pq, kl_qp, jsd (N): per row of two models' logits (N, Vp) over the first V entries
template <typename T>
__global__ void divergence_kernel(float* kl_pq, float* kl_qp, float* jsd, const T* p_logits, const T* q_logits, int N,
                                  int V, int Vp) {
    __shared__ float scratch[32];
    for (int row = blockIdx.x; row < N; row += gridDim.x) {
        const T *zp = p_logits + (size_t)row * Vp, *zq = q_logits + (size_t)row * Vp;
        float mp = -INFINITY, mq = -INFINITY;
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            mp = fmaxf(mp, to_float(zp[v]));
            mq = fmaxf(mq, to_float(zq[v]));
        }
        mp = block_max(mp, scratch);
        mq = block_max(mq, scratch);
        float sp = 0.0f, sq = 0.0f;
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            sp += expf(to_float(zp[v]) - mp);
            sq += expf(to_float(zq[v]) - mq);
        }
        const float lse_p = mp + logf(block_sum(sp, scratch)), lse_q = mq + logf(block_sum(sq, scratch));
        float pq = 0.0f, qp = 0.0f, js = 0.0f;
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            const float lp = to_float(zp[v]) - lse_p, lq = to_float(zq[v]) - lse_q;
            const float p = expf(lp), q = expf(lq);
            // log((p + q) / 2) without underflow: the larger log plus log1p of the smaller's ratio
            const float lm = fmaxf(lp, lq) + log1pf(expf(-fabsf(lp - lq))) - 0.69314718f;
            pq += p * (lp - lq);
            qp += q * (lq - lp);
            js += p * (lp - lm) + q * (lq - lm);
        }
        pq = block_sum(pq, scratch);
        qp = block_sum(qp, scratch);
        js = block_sum(js, scratch);
        if (threadIdx.x == 0) {
            kl_pq[row] = pq;
            kl_qp[row] = qp;
            jsd[row] = 0.5f * js;
        }
    }
}

template <typename T>
void distribution_stats(float* entropy, float* confidence, int* top, const T* logits, int N, int V, int Vp,
                        cudaStream_t stream, bool single_thread = kSingleThreadReductions) {
    launch_kernel(reduction_sync(single_thread), distribution_stats_kernel<T>, stride_grid(N, 1),
                  dim3(single_thread ? 1 : row_block(512, V, 64)), 0, stream, entropy,
                  confidence, top, logits, N, V, Vp);
}

template <typename T>
void divergence(float* kl_pq, float* kl_qp, float* jsd, const T* p_logits, const T* q_logits, int N, int V, int Vp,
                cudaStream_t stream, bool single_thread = kSingleThreadReductions) {
    launch_kernel(reduction_sync(single_thread), divergence_kernel<T>, stride_grid(N, 1),
                  dim3(single_thread ? 1 : row_block(512, V, 64)), 0, stream, kl_pq, kl_qp, jsd,
                  p_logits, q_logits, N, V, Vp);
}

}  // namespace lnfree::kernels
