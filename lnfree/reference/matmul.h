// Linear layer with llm.c's (out, in) weight layout. The output may be a column block of a wider matrix
// (row stride ldo >= OC): that is how ln_1's QK and V paths write their parts of one (N, 3C) qkv tensor.
#pragma once
#include <cstddef>

namespace lnfree::ref {

// out[n, o] (row stride ldo) = sum_i inp[n, i] (N,IC) * weight[o, i] (OC,IC) + bias[o] (OC, may be null)
template <typename real>
void matmul_forward(real* out, int ldo, const real* inp, const real* weight, const real* bias, int N, int IC, int OC) {
#pragma omp parallel for
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = bias ? (double)bias[o] : 0.0;
            for (int i = 0; i < IC; i++) acc += (double)inp[(size_t)n * IC + i] * weight[(size_t)o * IC + i];
            out[(size_t)n * ldo + o] = (real)acc;
        }
}

// dinp (N,IC) += dout W; dweight (OC,IC) += dout^T inp; dbias (OC, may be null) += column sums of dout
template <typename real>
void matmul_backward(real* dinp, real* dweight, real* dbias, const real* dout, int ldo, const real* inp,
                     const real* weight, int N, int IC, int OC) {
#pragma omp parallel for
    for (int n = 0; n < N; n++)
        for (int i = 0; i < IC; i++) {
            double acc = 0.0;
            for (int o = 0; o < OC; o++) acc += (double)dout[(size_t)n * ldo + o] * weight[(size_t)o * IC + i];
            dinp[(size_t)n * IC + i] += (real)acc;
        }
#pragma omp parallel for
    for (int o = 0; o < OC; o++) {
        for (int i = 0; i < IC; i++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += (double)dout[(size_t)n * ldo + o] * inp[(size_t)n * IC + i];
            dweight[(size_t)o * IC + i] += (real)acc;
        }
        if (dbias) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += dout[(size_t)n * ldo + o];
            dbias[o] += (real)acc;
        }
    }
}

}  // namespace lnfree::ref
