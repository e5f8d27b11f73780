// The counter-based generator and the dropout built on it: Philox4x32-10 against Random123's known answers,
// the mask rate, determinism, independence of keys, and a backward that reuses the forward's mask.
#include <catch2/catch.hpp>

#include <vector>

#include "lnfree/philox.h"
#include "lnfree/reference/dropout.h"

using namespace lnfree;

TEST_CASE("Philox4x32-10 gives Random123's known answers", "[dropout]") {
    Philox4x32 a = philox4x32_10(0, 0, 0, 0, 0, 0);
    CHECK(a.word[0] == 0x6627e8d5u); CHECK(a.word[1] == 0xe169c58du);
    CHECK(a.word[2] == 0xbc57ac4cu); CHECK(a.word[3] == 0x9b00dbd8u);
    Philox4x32 b = philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
    CHECK(b.word[0] == 0x408f276du); CHECK(b.word[1] == 0x41c83b0eu);
    CHECK(b.word[2] == 0xa20bc7c6u); CHECK(b.word[3] == 0x6d5451fdu);
    Philox4x32 c = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
    CHECK(c.word[0] == 0xd16cfe09u); CHECK(c.word[1] == 0x94fdccebu);
    CHECK(c.word[2] == 0x5001e420u); CHECK(c.word[3] == 0x24126ea1u);
}

TEST_CASE("dropout drops at rate p, scales the rest, and is a pure function of its key", "[dropout]") {
    const size_t n = 200000;
    const DropoutKey key{0.1f, 1234, 5, 2};
    std::vector<float> x(n, 1.0f);
    ref::dropout_apply(x.data(), n, key, 3, DROPOUT_MLP_RESIDUAL);
    size_t dropped = 0;
    for (float v : x) {
        if (v == 0.0f) dropped++;
        else REQUIRE(v == Approx(1.0f / 0.9f));
    }
    // binomial: mean 0.1 n, std sqrt(0.09 n) ~ 134; 5 sigma
    CHECK(std::abs((double)dropped - 0.1 * n) < 5 * 134.2);

    std::vector<float> again(n, 1.0f);
    ref::dropout_apply(again.data(), n, key, 3, DROPOUT_MLP_RESIDUAL);
    CHECK(again == x);

    // any other field of the key, or another layer or site, gives a different mask
    auto differs = [&](DropoutKey k, uint32_t layer, uint32_t site) {
        std::vector<float> y(n, 1.0f);
        ref::dropout_apply(y.data(), n, k, layer, site);
        return y != x;
    };
    CHECK(differs({0.1f, 1235, 5, 2}, 3, DROPOUT_MLP_RESIDUAL));
    CHECK(differs({0.1f, 1234, 6, 2}, 3, DROPOUT_MLP_RESIDUAL));
    CHECK(differs({0.1f, 1234, 5, 3}, 3, DROPOUT_MLP_RESIDUAL));
    CHECK(differs(key, 4, DROPOUT_MLP_RESIDUAL));
    CHECK(differs(key, 3, DROPOUT_ATTENTION_RESIDUAL));
}

TEST_CASE("dropout backward applies the forward's mask to the gradient", "[dropout]") {
    const size_t n = 4096;
    const DropoutKey key{0.3f, 99, 1, 0};
    std::vector<double> x(n), grad(n);
    for (size_t i = 0; i < n; i++) { x[i] = 1.0 + i % 7; grad[i] = 0.5 + i % 3; }
    std::vector<double> y = x, dx = grad;
    ref::dropout_apply(y.data(), n, key, 0, DROPOUT_EMBEDDING);
    ref::dropout_apply(dx.data(), n, key, 0, DROPOUT_EMBEDDING);
    for (size_t i = 0; i < n; i++) {
        // y = x * s and dx = grad * s with the same s in {0, 1/(1-p)}
        REQUIRE(y[i] / x[i] == Approx(dx[i] / grad[i]));
    }
    std::vector<double> none = x;
    ref::dropout_apply(none.data(), n, DropoutKey{0.0f, 99, 1, 0}, 0, DROPOUT_EMBEDDING);
    CHECK(none == x);
}
