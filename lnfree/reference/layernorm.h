// The two modes of a LayerNorm path, over the last dimension of N rows of C features:
//   real:  y = (x - mean) / sqrt(var + 1e-5) * w + b      (population variance)
//   fixed: y = (x - mean) / sigma * w + b                 (sigma a constant: no eps, no gradient)
// Both store per row the mean and the reciprocal scale (rstd = 1/sqrt(var+eps), or 1/sigma), which is all the
// backward needs. The sigma estimator's statistic is the mean over rows of sqrt(var + 1e-5).
#pragma once
#include <cmath>

namespace lnfree::ref {

inline constexpr double kLayerNormEps = 1e-5;

template <typename real>
void row_mean_var(const real* x, int C, double* mean, double* var) {
    double m = 0.0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    double v = 0.0;
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    *mean = m;
    *var = v / C;
}

// mean over the N rows of x (N,C) of sqrt(var + 1e-5)
template <typename real>
double layernorm_statistic(const real* x, int N, int C) {
    double sum = 0.0;
    for (int n = 0; n < N; n++) {
        double mean, var;
        row_mean_var(x + (size_t)n * C, C, &mean, &var);
        sum += std::sqrt(var + kLayerNormEps);
    }
    return sum / N;
}

// out (N,C), mean (N), rstd (N) from x (N,C), w (C), b (C); sigma <= 0 selects the real mode
template <typename real>
void layernorm_forward(real* out, real* mean, real* rstd, const real* x, const real* w, const real* b,
                       double sigma, int N, int C) {
    for (int n = 0; n < N; n++) {
        const real* xn = x + (size_t)n * C;
        double m, v;
        row_mean_var(xn, C, &m, &v);
        double s = sigma > 0 ? 1.0 / sigma : 1.0 / std::sqrt(v + kLayerNormEps);
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = (real)((xn[c] - m) * s * w[c] + b[c]);
        mean[n] = (real)m;
        rstd[n] = (real)s;
    }
}

// dx (N,C) +=, dw (C) +=, db (C) += from dout (N,C). With xhat = (x - mean) * rstd and g = dout * w:
//   real:  dx = rstd * (g - mean(g) - xhat * mean(g * xhat))   (rstd depends on x)
//   fixed: dx = rstd * (g - mean(g))                            (rstd = 1/sigma is a constant)
template <typename real>
void layernorm_backward(real* dx, real* dw, real* db, const real* dout, const real* x, const real* mean,
                        const real* rstd, const real* w, bool fixed, int N, int C) {
    for (int n = 0; n < N; n++) {
        const real* xn = x + (size_t)n * C;
        const real* dn = dout + (size_t)n * C;
        double m = mean[n], s = rstd[n];
        double g_mean = 0.0, gx_mean = 0.0;
        for (int c = 0; c < C; c++) {
            double g = (double)dn[c] * w[c];
            g_mean += g;
            gx_mean += g * (xn[c] - m) * s;
        }
        g_mean /= C;
        gx_mean /= C;
        if (fixed) gx_mean = 0.0;
        for (int c = 0; c < C; c++) {
            double xhat = (xn[c] - m) * s;
            double g = (double)dn[c] * w[c];
            dx[(size_t)n * C + c] += (real)(s * (g - g_mean - xhat * gx_mean));
            dw[c] += (real)(dn[c] * xhat);
            db[c] += dn[c];
        }
    }
}

}  // namespace lnfree::ref
