// Token + position embedding. Backward functions in the reference accumulate (+=) into every gradient they write.
#pragma once

namespace lnfree::ref {

// out (B,T,C) = wte[idx[b,t]] (Vp,C) + wpe[t] (maxT,C)
template <typename real>
void encoder_forward(real* out, const int* idx, const real* wte, const real* wpe, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            real* o = out + ((size_t)b * T + t) * C;
            const real* tok = wte + (size_t)idx[b * T + t] * C;
            const real* pos = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = tok[c] + pos[c];
        }
}

// dwte (Vp,C) += rows of dout gathered by token; dwpe (maxT,C) += dout summed over the batch
template <typename real>
void encoder_backward(real* dwte, real* dwpe, const real* dout, const int* idx, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const real* d = dout + ((size_t)b * T + t) * C;
            real* dtok = dwte + (size_t)idx[b * T + t] * C;
            real* dpos = dwpe + (size_t)t * C;
            for (int c = 0; c < C; c++) { dtok[c] += d[c]; dpos[c] += d[c]; }
        }
}

}  // namespace lnfree::ref
