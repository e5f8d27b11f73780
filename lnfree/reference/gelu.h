// GELU, tanh approximation: y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#pragma once
#include <cmath>
#include <cstddef>

namespace lnfree::ref {

inline constexpr double kGeluScale = 0.7978845608028654;  // sqrt(2/pi)

template <typename real>
void gelu_forward(real* out, const real* x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double u = x[i];
        out[i] = (real)(0.5 * u * (1.0 + std::tanh(kGeluScale * (u + 0.044715 * u * u * u))));
    }
}

// dx (n) += dout * gelu'(x)
template <typename real>
void gelu_backward(real* dx, const real* x, const real* dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double u = x[i];
        double inner = kGeluScale * (u + 0.044715 * u * u * u);
        double th = std::tanh(inner);
        double sech2 = 1.0 - th * th;
        double grad = 0.5 * (1.0 + th) + 0.5 * u * sech2 * kGeluScale * (1.0 + 3.0 * 0.044715 * u * u);
        dx[i] += (real)(grad * dout[i]);
    }
}

}  // namespace lnfree::ref
