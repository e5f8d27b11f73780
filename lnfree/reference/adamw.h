// AdamW as torch.optim.AdamW (decoupled weight decay applied first), and global gradient-norm clipping as
// torch.nn.utils.clip_grad_norm_. The reference keeps master weights and moments in the same precision as the model.
#pragma once
#include <array>
#include <cmath>

#include "lnfree/model.h"

namespace lnfree::ref {

struct AdamWHyper {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

// One update of n elements; t = 1-based update count, decay = whether this tensor is weight-decayed.
template <typename real>
void adamw_update(real* param, const real* grad, real* m, real* v, size_t n, double lr, const AdamWHyper& h, int t,
                  bool decay) {
    const double bias1 = 1.0 - std::pow(h.beta1, t), bias2 = 1.0 - std::pow(h.beta2, t);
    for (size_t i = 0; i < n; i++) {
        double p = param[i];
        if (decay) p *= 1.0 - lr * h.weight_decay;
        double mi = h.beta1 * m[i] + (1.0 - h.beta1) * grad[i];
        double vi = h.beta2 * v[i] + (1.0 - h.beta2) * (double)grad[i] * grad[i];
        p -= (lr / bias1) * mi / (std::sqrt(vi) / std::sqrt(bias2) + h.eps);
        param[i] = (real)p;
        m[i] = (real)mi;
        v[i] = (real)vi;
    }
}

template <typename real>
struct AdamWState {
    ParameterSet<real> m, v;
    int t = 0;
    explicit AdamWState(const GPT2Config& c) : m(c), v(c) {}
};

template <typename real>
void adamw_step(ParameterSet<real>& params, const ParameterSet<real>& grads, AdamWState<real>& state, double lr,
                const AdamWHyper& h, const std::array<bool, NUM_PARAM_TENSORS>& decay) {
    state.t++;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        adamw_update(params.tensor(i), grads.tensor(i), state.m.tensor(i), state.v.tensor(i), params.numel(i), lr, h,
                     state.t, decay[i]);
}

template <typename real>
double global_grad_norm(const ParameterSet<real>& grads) {
    double sum = 0.0;
    for (real g : grads.data) sum += (double)g * g;
    return std::sqrt(sum);
}

// Scales every gradient by min(1, clip / (norm + 1e-6)), as torch does; norm is global_grad_norm's value.
template <typename real>
void clip_gradients(ParameterSet<real>& grads, double norm, double clip) {
    const double scale = clip / (norm + 1e-6);
    if (scale >= 1.0) return;
    for (real& g : grads.data) g = (real)(g * scale);
}

}  // namespace lnfree::ref
