// The sigma estimator of the 2025 recipe (method.md 3.3): each call of a LayerNorm module folds the call's
// statistic into a running average, and a still-real path copies that average into the module's sigma. A fixed path
// never copies, so its sigma is frozen at the last value a real path of the same module wrote. ln_1's two paths
// share one module, so the QK path's sigma keeps moving until the V path is fixed too.
#pragma once
#include "lnfree/model.h"

namespace lnfree {

struct SigmaEstimator {
    double momentum_ln1 = 0.9, momentum_ln2 = 0.9, momentum_lnf = 0.9;  // weight of the old value
    int ln1_calls = 3;  // the 2025 code calls ln_1 a third time (its no-op EOT branch of the V path)

    // One call of module `module`: returns the sigma that call divides by if its path is fixed.
    static double call(SigmaState& state, int module, double momentum, double stat, bool path_fixed) {
        state.ema[module] = momentum * state.ema[module] + (1.0 - momentum) * stat;
        if (!path_fixed) state.sigma[module] = state.ema[module];
        return state.sigma[module];
    }

    // ln_1 of `layer`: the QK call, the V call, then any repeated V calls. Gives each path's sigma.
    void ln1(SigmaState& state, int layer, double stat, bool qk_fixed, bool v_fixed, double* sigma_qk,
             double* sigma_v) const {
        int m = ln1_module(layer);
        *sigma_qk = call(state, m, momentum_ln1, stat, qk_fixed);
        *sigma_v = call(state, m, momentum_ln1, stat, v_fixed);
        for (int i = 2; i < ln1_calls; i++) call(state, m, momentum_ln1, stat, v_fixed);
    }
};

}  // namespace lnfree
