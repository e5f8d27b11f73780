// Statistics of next-token distributions for evaluation, in float64 from the definitions: the reference of
// kernels/distribution.cuh. logits (N,Vp); columns V..Vp-1 are padding and never read.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

namespace lnfree::ref {

// log softmax of one row, in float64
inline std::vector<double> log_softmax_row(const float* z, int V) {
    const double m = *std::max_element(z, z + V);
    double s = 0.0;
    for (int v = 0; v < V; v++) s += std::exp(z[v] - m);
    const double lse = m + std::log(s);
    std::vector<double> out(V);
    for (int v = 0; v < V; v++) out[v] = z[v] - lse;
    return out;
}

// entropy -sum p log p, the top probability, and the top token (the lowest index among equal maxima)
inline void distribution_stats(float* entropy, float* confidence, int* top, const float* logits, int N, int V, int Vp) {
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * Vp;
        const std::vector<double> lp = log_softmax_row(z, V);
        double h = 0.0;
        for (double l : lp) h -= std::exp(l) * l;
        const int best = (int)(std::max_element(z, z + V) - z);
        entropy[n] = (float)h;
        confidence[n] = (float)std::exp(lp[best]);
        top[n] = best;
    }
}

// KL(p || q) = sum p (log p - log q), KL(q || p), and JSD = (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2
inline void divergence(float* kl_pq, float* kl_qp, float* jsd, const float* p_logits, const float* q_logits, int N, int V,
                       int Vp) {
    for (int n = 0; n < N; n++) {
        const std::vector<double> lp = log_softmax_row(p_logits + (size_t)n * Vp, V);
        const std::vector<double> lq = log_softmax_row(q_logits + (size_t)n * Vp, V);
        double pq = 0.0, qp = 0.0, js = 0.0;
        for (int v = 0; v < V; v++) {
            const double p = std::exp(lp[v]), q = std::exp(lq[v]), m = 0.5 * (p + q);
            pq += p * (lp[v] - lq[v]);
            qp += q * (lq[v] - lp[v]);
            js += (p > 0 ? p * (lp[v] - std::log(m)) : 0.0) + (q > 0 ? q * (lq[v] - std::log(m)) : 0.0);
        }
        kl_pq[n] = (float)pq;
        kl_qp[n] = (float)qp;
        jsd[n] = (float)(0.5 * js);
    }
}

}  // namespace lnfree::ref
