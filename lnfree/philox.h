// Philox4x32-10, the counter-based generator of Salmon et al. (SC'11), as in cuRAND and Random123.
// Stateless: the same (counter, key) always gives the same four words, so a backward pass, another
// process or a resumed run regenerates any dropout mask without storing it. Host and device code share it.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define LNFREE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LNFREE_HOST_DEVICE inline
#endif

namespace lnfree {

struct Philox4x32 { uint32_t word[4]; };

LNFREE_HOST_DEVICE Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                             uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    return Philox4x32{{c0, c1, c2, c3}};
}

// Where a dropout mask sits: the sites of doc/reference-conventions.md.
enum DropoutSite : uint32_t {
    DROPOUT_EMBEDDING = 0,
    DROPOUT_ATTENTION_PROBS = 1,
    DROPOUT_ATTENTION_RESIDUAL = 2,
    DROPOUT_MLP_RESIDUAL = 3,
};

// Everything that keys one micro-batch's masks. p == 0 means no dropout.
struct DropoutKey {
    float p = 0.0f;
    uint64_t seed = 0;
    uint32_t step = 0;        // completed optimizer steps
    uint32_t micro_step = 0;  // micro-batch within the step
};

// The four words of (layer, site) that elements 4 * group .. 4 * group + 3 draw from.
LNFREE_HOST_DEVICE Philox4x32 dropout_words(const DropoutKey& key, uint32_t layer, uint32_t site, uint64_t group) {
    return philox4x32_10((uint32_t)group, (layer << 4) | site, key.micro_step, key.step, (uint32_t)key.seed,
                         (uint32_t)(key.seed >> 32));
}

// Uniform in [0, 1) from a word's top 24 bits.
LNFREE_HOST_DEVICE float word_uniform(uint32_t word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }

// Uniform in [0, 1) with 24 random bits, for element `element` of (layer, site).
LNFREE_HOST_DEVICE float dropout_uniform(const DropoutKey& key, uint32_t layer, uint32_t site, uint64_t element) {
    return word_uniform(dropout_words(key, layer, site, element >> 2).word[element & 3]);
}

// The factor of the element that draws `word`: 0 when dropped, 1/(1-p) when kept.
LNFREE_HOST_DEVICE float dropout_factor(const DropoutKey& key, uint32_t word) {
    return word_uniform(word) >= key.p ? 1.0f / (1.0f - key.p) : 0.0f;
}

// The factor an element is multiplied by: 0 when dropped, 1/(1-p) when kept.
LNFREE_HOST_DEVICE float dropout_scale(const DropoutKey& key, uint32_t layer, uint32_t site, uint64_t element) {
    if (key.p == 0.0f) return 1.0f;
    return dropout_factor(key, dropout_words(key, layer, site, element >> 2).word[element & 3]);
}

// dropout_scale for the elements one thread visits in increasing order: the four elements of a Philox call share
// it, so a thread that walks a row element by element (one thread per row, as under the emulator) computes a
// quarter of the calls; one that strides (a warp's lane) computes every one. The same factors either way.
class DropoutScales {
public:
    LNFREE_HOST_DEVICE DropoutScales(const DropoutKey& key, uint32_t layer, uint32_t site)
        : key_(key), layer_(layer), site_(site) {}
    LNFREE_HOST_DEVICE float operator()(uint64_t element) {
        if (key_.p == 0.0f) return 1.0f;
        if (element >> 2 != group_) {
            group_ = element >> 2;
            words_ = dropout_words(key_, layer_, site_, group_);
        }
        return dropout_factor(key_, words_.word[element & 3]);
    }
private:
    DropoutKey key_;
    uint32_t layer_, site_;
    uint64_t group_ = ~(uint64_t)0;
    Philox4x32 words_{};
};

}  // namespace lnfree
