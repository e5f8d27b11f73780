// The two losses of a micro-batch: next-token cross-entropy with an ignore rule, and the auxiliary loss that
// pulls every position's residual std at the ln_f input toward the typical value (method.md section 5).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

namespace lnfree::ref {

struct CrossEntropyResult {
    double mean = 0.0;  // over counted targets; 0 when none is counted
    int counted = 0;
};

// losses (N) = -log softmax(logits[n, 0:V])[targets[n]] for every row; targets equal to ignore_id (-1: none)
// are left out of the mean, and a negative target means no target at all (the last position of a sequence:
// loss 0, not counted). logits (N,Vp); columns V..Vp-1 are padding and never read.
template <typename real>
CrossEntropyResult crossentropy_forward(real* losses, const real* logits, const int* targets, int ignore_id,
                                        int N, int V, int Vp) {
    CrossEntropyResult r;
    double sum = 0.0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) { losses[n] = real(0); continue; }
        const real* z = logits + (size_t)n * Vp;
        double maxval = z[0];
        for (int v = 1; v < V; v++) maxval = std::max(maxval, (double)z[v]);
        double sumexp = 0.0;
        for (int v = 0; v < V; v++) sumexp += std::exp(z[v] - maxval);
        double loss = std::log(sumexp) + maxval - z[targets[n]];
        losses[n] = (real)loss;
        if (targets[n] != ignore_id) { sum += loss; r.counted++; }
    }
    r.mean = r.counted > 0 ? sum / r.counted : 0.0;
    return r;
}

// dlogits (N,Vp) += dloss * (softmax - onehot) for counted rows, where dloss is d(total loss)/d(row loss)
template <typename real>
void crossentropy_backward(real* dlogits, const real* logits, const int* targets, int ignore_id, double dloss,
                           int N, int V, int Vp) {
    for (int n = 0; n < N; n++) {
        if (targets[n] == ignore_id || targets[n] < 0) continue;
        const real* z = logits + (size_t)n * Vp;
        double maxval = z[0];
        for (int v = 1; v < V; v++) maxval = std::max(maxval, (double)z[v]);
        double sumexp = 0.0;
        for (int v = 0; v < V; v++) sumexp += std::exp(z[v] - maxval);
        for (int v = 0; v < V; v++) {
            double p = std::exp(z[v] - maxval) / sumexp;
            dlogits[(size_t)n * Vp + v] += (real)(dloss * (p - (v == targets[n] ? 1.0 : 0.0)));
        }
    }
}

struct AuxLossResult {
    double loss = 0.0;    // mean over all positions of (s - target)^2, unweighted
    double target = 0.0;  // mean of s over positions that are neither t == 0 nor an end-of-text input
};

// s (B*T) = per-position std sqrt(var(h) + 1e-5) of h (B,T,C); the target excludes position 0 and positions whose
// input token is eot (the attention sinks), falling back to all positions when none is left; it gets no gradient.
// frozen_target (may be null) replaces the measured target.
template <typename real>
AuxLossResult aux_loss_forward(std::vector<double>& s, const real* h, const int* idx, int eot, int B, int T, int C,
                               const double* frozen_target) {
    const int N = B * T;
    s.assign(N, 0.0);
    double typical = 0.0, all = 0.0;
    int count = 0;
    for (int n = 0; n < N; n++) {
        const real* x = h + (size_t)n * C;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < C; c++) mean += x[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
        s[n] = std::sqrt(var / C + 1e-5);
        all += s[n];
        if (n % T != 0 && idx[n] != eot) { typical += s[n]; count++; }
    }
    AuxLossResult r;
    r.target = frozen_target ? *frozen_target : count > 0 ? typical / count : all / N;
    for (int n = 0; n < N; n++) r.loss += (s[n] - r.target) * (s[n] - r.target);
    r.loss /= N;
    return r;
}

// dh (B*T,C) += dloss * d(aux)/dh, with d(aux)/ds_n = 2 (s_n - target) / N and ds_n/dh_c = (h_c - mean) / (C s_n)
template <typename real>
void aux_loss_backward(real* dh, const real* h, const std::vector<double>& s, double target, double dloss, int N,
                       int C) {
    for (int n = 0; n < N; n++) {
        const real* x = h + (size_t)n * C;
        double mean = 0.0;
        for (int c = 0; c < C; c++) mean += x[c];
        mean /= C;
        double ds = dloss * 2.0 * (s[n] - target) / N;
        for (int c = 0; c < C; c++) dh[(size_t)n * C + c] += (real)(ds * (x[c] - mean) / (C * s[n]));
    }
}

}  // namespace lnfree::ref
