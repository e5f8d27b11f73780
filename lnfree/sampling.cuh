// Continuations of a prompt, to see at once that a model still writes: `count` samples in one batch, one token at
// a time, each step a full forward of the prompt and what was drawn so far (no key/value cache: a few samples of a
// few dozen tokens cost a few forwards). Temperature 0 is greedy decoding (the lowest id among equal maxima, as
// torch.argmax); otherwise softmax(logits / temperature) over the top_k largest logits (0: all), drawn with
// Philox keyed by (seed, sample, position): the same seed gives the same text on any machine and any batch.
#pragma once
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "lnfree/error.h"
#include "lnfree/evaluation.cuh"
#include "lnfree/philox.h"

namespace lnfree {

struct SampleSettings {
    int count = 2, tokens = 32, top_k = 40;
    double temperature = 1.0;
    uint64_t seed = 1337;
};

// The next token from one row of logits (V entries), as above. u: uniform in [0, 1).
inline int pick_token(const std::vector<float>& logits, const SampleSettings& s, double u) {
    const int V = (int)logits.size();
    if (s.temperature == 0.0) return (int)(std::max_element(logits.begin(), logits.end()) - logits.begin());
    std::vector<int> order(V);
    std::iota(order.begin(), order.end(), 0);
    const int k = s.top_k > 0 ? std::min(s.top_k, V) : V;
    // the k largest, ties to the lower id; then in that order, so the draw does not depend on the sort's internals
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    std::vector<double> p(k);
    for (int i = 0; i < k; i++) p[i] = std::exp((logits[order[i]] - logits[order[0]]) / s.temperature);
    const double total = std::accumulate(p.begin(), p.end(), 0.0);
    double below = 0.0;
    for (int i = 0; i < k; i++) {
        below += p[i] / total;
        if (u < below) return order[i];
    }
    return order[k - 1];
}

// Uniform in [0, 1) for sample `sample` at position `position` (53 random bits)
inline double sample_uniform(uint64_t seed, int sample, int position) {
    const Philox4x32 r = philox4x32_10((uint32_t)position, (uint32_t)sample, 0x53414d50u /* "SAMP" */, 0, (uint32_t)seed,
                                       (uint32_t)(seed >> 32));
    const uint64_t bits = ((uint64_t)r.word[0] << 21) ^ (r.word[1] >> 11);
    return (double)(bits & ((1ull << 53) - 1)) / 9007199254740992.0;
}

// Each sample's new tokens (s.tokens of them) after `prompt` (at least one token).
template <typename T>
std::vector<std::vector<int>> sample_continuations(EvalEngine<T>& engine, kernels::MatmulContext& mm,
                                                   const std::vector<int>& prompt, const SampleSettings& s,
                                                   AttentionKernels attention) {
    const GPT2Config& c = engine.config();
    const int length = (int)prompt.size() + s.tokens;
    if (prompt.empty()) throw Error("sampling needs a prompt of at least one token");
    if (length > c.maxT)
        throw Error("the prompt's " + std::to_string(prompt.size()) + " tokens and --tokens " + std::to_string(s.tokens) +
                    " exceed the model's context of " + std::to_string(c.maxT) + "; ask for fewer tokens");
    DeviceActivations<T> acts(c, s.count, length, 1, attention);
    const int N = s.count * length;
    std::vector<int> idx(N, 0), targets(N, -1);
    for (int b = 0; b < s.count; b++) std::copy(prompt.begin(), prompt.end(), idx.begin() + (size_t)b * length);
    std::vector<std::vector<int>> out(s.count);
    std::vector<T> row(c.Vp);
    std::vector<float> logits(c.V);
    for (int t = (int)prompt.size(); t < length; t++) {
        // causal: the positions after t - 1 (zeros for now) do not change its logits
        eval_forward(engine, acts, mm, idx.data(), targets.data());
        for (int b = 0; b < s.count; b++) {
            device::to_host(row.data(), acts.logits.data() + ((size_t)b * length + t - 1) * c.Vp, c.Vp * sizeof(T));
            for (int v = 0; v < c.V; v++) logits[v] = kernels::to_float(row[v]);
            const int next = pick_token(logits, s, sample_uniform(s.seed, b, t));
            idx[(size_t)b * length + t] = next;
            out[b].push_back(next);
        }
    }
    return out;
}

}  // namespace lnfree
