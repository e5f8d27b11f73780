// GPT-2 shape, the 16 parameter tensors (llm.c's order and (out, in) layout), and the state of every LayerNorm:
// which paths are still real and the sigma each module divides by once fixed. doc/reference-conventions.md.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <vector>

namespace lnfree {

struct GPT2Config {
    int L = 0;     // layers
    int C = 0;     // channels
    int NH = 0;    // heads
    int V = 0;     // vocabulary
    int Vp = 0;    // vocabulary padded (rows V..Vp-1 of wte are unused)
    int maxT = 0;  // maximum context
    int head_dim() const { return C / NH; }
};

enum ParamTensor {
    WTE, WPE, LN1W, LN1B, QKVW, QKVB, ATTPROJW, ATTPROJB,
    LN2W, LN2B, FCW, FCB, FCPROJW, FCPROJB, LNFW, LNFB, NUM_PARAM_TENSORS
};

inline const std::array<const char*, NUM_PARAM_TENSORS> kParamNames = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

inline std::vector<size_t> param_shape(const GPT2Config& c, int tensor) {
    size_t L = c.L, C = c.C;
    switch (tensor) {
        case WTE: return {(size_t)c.Vp, C};
        case WPE: return {(size_t)c.maxT, C};
        case LN1W: case LN1B: case ATTPROJB: case LN2W: case LN2B: case FCPROJB: return {L, C};
        case QKVW: return {L, 3 * C, C};
        case QKVB: return {L, 3 * C};
        case ATTPROJW: return {L, C, C};
        case FCW: return {L, 4 * C, C};
        case FCB: return {L, 4 * C};
        case FCPROJW: return {L, C, 4 * C};
        default: return {C};  // LNFW, LNFB
    }
}

inline size_t param_numel(const GPT2Config& c, int tensor) {
    size_t n = 1;
    for (size_t d : param_shape(c, tensor)) n *= d;
    return n;
}

// All 16 tensors in one buffer; used for parameters, gradients and optimizer moments alike.
template <typename real>
struct ParameterSet {
    GPT2Config config;
    std::vector<real> data;
    std::array<size_t, NUM_PARAM_TENSORS> offset{};

    ParameterSet() = default;
    explicit ParameterSet(const GPT2Config& c) : config(c) {
        size_t total = 0;
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) { offset[i] = total; total += param_numel(c, i); }
        data.assign(total, real(0));
    }
    real* tensor(int i) { return data.data() + offset[i]; }
    const real* tensor(int i) const { return data.data() + offset[i]; }
    size_t numel(int i) const { return param_numel(config, i); }
    void zero() { std::fill(data.begin(), data.end(), real(0)); }
};

// One flag per switchable path: ln2 of each layer, ln1's QK and V paths of each layer, and ln_f.
struct LayerNormPaths {
    std::vector<bool> ln2_fixed, ln1qk_fixed, ln1v_fixed;
    bool lnf_fixed = false;

    explicit LayerNormPaths(int L = 0) : ln2_fixed(L, false), ln1qk_fixed(L, false), ln1v_fixed(L, false) {}
    int real_paths_remaining() const {
        int n = lnf_fixed ? 0 : 1;
        for (size_t l = 0; l < ln2_fixed.size(); l++) n += !ln2_fixed[l] + !ln1qk_fixed[l] + !ln1v_fixed[l];
        return n;
    }
};

// The 2L+1 LayerNorm modules, in the order [ln1 of layers 0..L-1, ln2 of layers 0..L-1, ln_f].
inline int ln1_module(int layer) { return layer; }
inline int ln2_module(int L, int layer) { return L + layer; }
inline int lnf_module(int L) { return 2 * L; }

// Per module: the running estimate (ema) and the sigma a fixed path divides by.
struct SigmaState {
    std::vector<double> ema, sigma;
    explicit SigmaState(int L = 0) : ema(2 * L + 1, 1.0), sigma(2 * L + 1, 1.0) {}
};

}  // namespace lnfree
