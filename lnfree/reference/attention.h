// Causal multi-head self-attention with dropout on the attention probabilities.
// qkv (B,T,3C) holds q | k | v; head h uses channels [h*hd, (h+1)*hd) of each. Scale 1/sqrt(hd).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "lnfree/reference/dropout.h"

namespace lnfree::ref {

// out (B,T,C) = dropout(att) v; att (B,NH,T,T) = the probabilities before dropout (kept for backward)
template <typename real>
void attention_forward(real* out, real* att, const real* qkv, const DropoutKey& key, uint32_t layer,
                       int B, int T, int C, int NH) {
    const int hd = C / NH;
    const double scale = 1.0 / std::sqrt((double)hd);
    std::vector<double> row(T), acc(hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const real* q = qkv + ((size_t)b * T + t) * 3 * C + h * hd;
                double maxval = -INFINITY;
                for (int s = 0; s <= t; s++) {
                    const real* k = qkv + ((size_t)b * T + s) * 3 * C + C + h * hd;
                    double dot = 0.0;
                    for (int i = 0; i < hd; i++) dot += (double)q[i] * k[i];
                    row[s] = dot * scale;
                    maxval = std::max(maxval, row[s]);
                }
                double sum = 0.0;
                for (int s = 0; s <= t; s++) { row[s] = std::exp(row[s] - maxval); sum += row[s]; }
                real* a = att + (((size_t)b * NH + h) * T + t) * T;
                for (int s = 0; s < T; s++) a[s] = s <= t ? (real)(row[s] / sum) : real(0);

                real* o = out + ((size_t)b * T + t) * C + h * hd;
                const uint64_t first = (((uint64_t)b * NH + h) * T + t) * T;
                std::fill(acc.begin(), acc.end(), 0.0);
                for (int s = 0; s <= t; s++) {
                    double p = a[s] * (double)dropout_scale(key, layer, DROPOUT_ATTENTION_PROBS, first + s);
                    const real* v = qkv + ((size_t)b * T + s) * 3 * C + 2 * C + h * hd;
                    for (int i = 0; i < hd; i++) acc[i] += p * v[i];
                }
                for (int i = 0; i < hd; i++) o[i] = (real)acc[i];
            }
}

// dqkv (B,T,3C) += gradient of out w.r.t. q, k, v, given dout (B,T,C), qkv and att from the forward
template <typename real>
void attention_backward(real* dqkv, const real* dout, const real* qkv, const real* att, const DropoutKey& key,
                        uint32_t layer, int B, int T, int C, int NH) {
    const int hd = C / NH;
    const double scale = 1.0 / std::sqrt((double)hd);
    std::vector<double> datt(T), dpre(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const real* a = att + (((size_t)b * NH + h) * T + t) * T;
                const real* dout_t = dout + ((size_t)b * T + t) * C + h * hd;
                const uint64_t first = (((uint64_t)b * NH + h) * T + t) * T;
                // through out = dropout(att) v: gradients of the probabilities and of v
                for (int s = 0; s <= t; s++) {
                    double mask = dropout_scale(key, layer, DROPOUT_ATTENTION_PROBS, first + s);
                    const real* v = qkv + ((size_t)b * T + s) * 3 * C + 2 * C + h * hd;
                    real* dv = dqkv + ((size_t)b * T + s) * 3 * C + 2 * C + h * hd;
                    double dot = 0.0;
                    for (int i = 0; i < hd; i++) {
                        dot += (double)dout_t[i] * v[i];
                        dv[i] += (real)(a[s] * mask * dout_t[i]);
                    }
                    datt[s] = dot * mask;
                }
                // through the softmax: dpre = att * (datt - sum(att * datt))
                double weighted = 0.0;
                for (int s = 0; s <= t; s++) weighted += a[s] * datt[s];
                for (int s = 0; s <= t; s++) dpre[s] = a[s] * (datt[s] - weighted) * scale;
                // through the scores q.k
                const real* q = qkv + ((size_t)b * T + t) * 3 * C + h * hd;
                real* dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hd;
                for (int s = 0; s <= t; s++) {
                    const real* k = qkv + ((size_t)b * T + s) * 3 * C + C + h * hd;
                    real* dk = dqkv + ((size_t)b * T + s) * 3 * C + C + h * hd;
                    for (int i = 0; i < hd; i++) {
                        dq[i] += (real)(dpre[s] * k[i]);
                        dk[i] += (real)(dpre[s] * q[i]);
                    }
                }
            }
}

}  // namespace lnfree::ref
