// Dropout of one (layer, site) of a micro-batch, applied in place. The mask is never stored: the backward
// regenerates it from the same key, so forward and backward agree by construction (see lnfree/philox.h).
#pragma once
#include <cstddef>
#include <cstdint>

#include "lnfree/philox.h"

namespace lnfree::ref {

// x[e] *= 0 or 1/(1-p), for e in [0, n). The backward is the same call on the gradient.
template <typename real>
void dropout_apply(real* x, size_t n, const DropoutKey& key, uint32_t layer, uint32_t site) {
    if (key.p == 0.0f) return;
    for (size_t e = 0; e < n; e++) x[e] *= (real)dropout_scale(key, layer, site, e);
}

}  // namespace lnfree::ref
