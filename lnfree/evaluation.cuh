// The evaluation suite on the device (method.md section 10; doc/evaluation.md): every model of a comparison runs
// the same chunks, and per target the engine keeps the cross-entropy, the entropy of the prediction, its top
// probability and whether the top token is the target, and for each model after the first (the reference) the
// KL divergences both ways and the JSD against the reference's prediction. lnfree/token_statistics.h summarises
// the records; HellaSwag is scored completion-style, as llm.c does.
#pragma once
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/distribution.cuh"
#include "lnfree/data_loader.h"
#include "lnfree/error.h"
#include "lnfree/eval_model.h"
#include "lnfree/gpt2_device.cuh"
#include "lnfree/token_shard.h"
#include "lnfree/token_statistics.h"

namespace lnfree {

// One model on the device for inference: the compute copy and sigma, its LayerNorm paths as loaded.
template <typename T>
struct EvalEngine {
    std::string label;
    DeviceGPT2<T> model;
    LayerNormPaths paths;
    explicit EvalEngine(const EvalModel& m) : label(m.label), model(m.params, 0, 1, false), paths(m.paths) {
        model.set_sigma(m.sigma);
    }
    const GPT2Config& config() const { return model.cfg; }
};

// The forward of acts.B x acts.Tn tokens (host arrays): per-token losses in acts.losses (0 where a target is
// negative), the logits left in acts.logits.
template <typename T>
void eval_forward(EvalEngine<T>& e, DeviceActivations<T>& acts, kernels::MatmulContext& mm, const int* idx,
                  const int* targets) {
    DeviceMicroBatch mb;
    mb.eot = e.config().V - 1;
    mb.ignore_eot = false;  // end-of-text targets count, as in the papers' evaluation
    mb.backward = false;
    gpt2_device_step(e.model, acts, mm, e.paths, idx, targets, mb, nullptr);
}

// A progress line at most every `seconds`: what is done of the total and the time left.
class Progress {
   public:
    Progress(std::string what, size_t total, bool on, double seconds = 10.0)
        : what_(std::move(what)), total_(total), on_(on), every_(seconds), start_(clock::now()), last_(start_) {}
    void advance(size_t done) {
        const auto now = clock::now();
        if (!on_ || std::chrono::duration<double>(now - last_).count() < every_ || done >= total_) return;
        last_ = now;
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        std::printf("eval       %s: %zu of %zu tokens, %.0f s left\n", what_.c_str(), done, total_,
                    elapsed / std::max<size_t>(done, 1) * (total_ - done));
    }

   private:
    using clock = std::chrono::steady_clock;
    std::string what_;
    size_t total_;
    bool on_;
    double every_;
    clock::time_point start_, last_;
};

// Every model's records on the first `used` of `chunks` (T-token windows, targets shifted by one, the last position
// without one), in batches of B; a last, partial batch has rows without targets.
template <typename T>
std::vector<TokenRecords> evaluate_chunks(std::vector<std::unique_ptr<EvalEngine<T>>>& engines,
                                          std::vector<std::unique_ptr<DeviceActivations<T>>>& acts,
                                          kernels::MatmulContext& mm, const TokenChunks& chunks, size_t used,
                                          Progress& progress) {
    const int B = acts[0]->B, Tn = acts[0]->Tn, N = B * Tn, V = engines[0]->config().V, Vp = engines[0]->config().Vp;
    std::vector<TokenRecords> records(engines.size());
    for (TokenRecords& r : records) r.positions = Tn - 1;
    std::vector<int> idx(N), targets(N);
    device::Buffer<float> entropy(N), confidence(N), kl_pq(N), kl_qp(N), jsd(N);
    device::Buffer<int> top(N);
    for (size_t first = 0; first < used; first += B) {
        const int rows = (int)std::min<size_t>(B, used - first);
        std::fill(idx.begin(), idx.end(), 0);
        std::fill(targets.begin(), targets.end(), -1);  // rows past the data: no targets
        for (int b = 0; b < rows; b++) chunks.read(first + b, idx.data() + (size_t)b * Tn, targets.data() + (size_t)b * Tn);
        for (size_t m = 0; m < engines.size(); m++) {
            DeviceActivations<T>& a = *acts[m];
            eval_forward(*engines[m], a, mm, idx.data(), targets.data());
            kernels::distribution_stats(entropy.data(), confidence.data(), top.data(), a.logits.data(), N, V, Vp, nullptr);
            if (m > 0)
                kernels::divergence(kl_pq.data(), kl_qp.data(), jsd.data(), acts[0]->logits.data(), a.logits.data(), N, V,
                                    Vp, nullptr);
            const std::vector<float> loss = a.losses.to_host(), h = entropy.to_host(), c = confidence.to_host();
            const std::vector<int> best = top.to_host();
            std::vector<float> pq, qp, js;
            if (m > 0) { pq = kl_pq.to_host(); qp = kl_qp.to_host(); js = jsd.to_host(); }
            TokenRecords& r = records[m];
            for (int i = 0; i < N; i++) {
                if (targets[i] < 0) continue;
                r.loss.push_back(loss[i]);
                r.entropy.push_back(h[i]);
                r.confidence.push_back(c[i]);
                r.correct.push_back(best[i] == targets[i]);
                if (m > 0) { r.kl_ref_to_model.push_back(pq[i]); r.kl_model_to_ref.push_back(qp[i]); r.jsd.push_back(js[i]); }
            }
        }
        progress.advance((first + rows) * (size_t)(Tn - 1));
    }
    return records;
}

struct HellaswagScores {
    size_t examples = 0, correct = 0, correct_norm = 0;
    std::vector<int> predicted, predicted_norm;  // per example: the ending of the lowest summed / mean loss
    double acc() const { return (double)correct / examples; }
    double acc_norm() const { return (double)correct_norm / examples; }
};

// The longest context + ending of the examples, in tokens: the sequence length HellaSwag runs at
inline int longest_multiple_choice(const std::vector<MultipleChoiceExample>& examples) {
    size_t longest = 0;
    for (const MultipleChoiceExample& e : examples)
        for (const auto& c : e.completions) longest = std::max(longest, e.context.size() + c.size());
    return (int)longest;
}

// Completion style (llm.c's hellaswag.py): each ending follows its context; the losses of the ending's tokens,
// summed (acc) or averaged (acc_norm), pick the answer with the lowest. acts: B rows, a multiple of the endings.
template <typename T>
HellaswagScores evaluate_multiple_choice(EvalEngine<T>& engine, DeviceActivations<T>& acts, kernels::MatmulContext& mm,
                                         const std::vector<MultipleChoiceExample>& examples, const std::string& name) {
    const int B = acts.B, Tn = acts.Tn, N = B * Tn;
    HellaswagScores s;
    std::vector<int> idx(N), targets(N);
    std::vector<std::array<int, 2>> rows;  // (example, ending) of each row of the batch
    auto score_batch = [&]() {
        if (rows.empty()) return;
        eval_forward(engine, acts, mm, idx.data(), targets.data());
        const std::vector<float> loss = acts.losses.to_host();
        for (size_t r = 0; r < rows.size();) {  // the endings of one example are consecutive rows
            const int ex = rows[r][0];
            const MultipleChoiceExample& e = examples[ex];
            double best_sum = INFINITY, best_mean = INFINITY;
            int pick = 0, pick_norm = 0;
            for (size_t k = 0; k < e.completions.size(); k++, r++) {
                double sum = 0.0;
                for (int t = 0; t < Tn; t++) sum += loss[r * Tn + t];
                const double mean = sum / e.completions[k].size();
                if (sum < best_sum) { best_sum = sum; pick = (int)k; }
                if (mean < best_mean) { best_mean = mean; pick_norm = (int)k; }
            }
            s.predicted[ex] = pick;
            s.predicted_norm[ex] = pick_norm;
            s.correct += pick == e.label;
            s.correct_norm += pick_norm == e.label;
        }
        rows.clear();
        std::fill(idx.begin(), idx.end(), 0);
        std::fill(targets.begin(), targets.end(), -1);
    };
    s.examples = examples.size();
    s.predicted.assign(s.examples, -1);
    s.predicted_norm.assign(s.examples, -1);
    std::fill(idx.begin(), idx.end(), 0);
    std::fill(targets.begin(), targets.end(), -1);
    for (size_t ex = 0; ex < examples.size(); ex++) {
        const MultipleChoiceExample& e = examples[ex];
        if ((int)e.completions.size() > B)
            throw Error(name + ": example " + std::to_string(e.index) + " has " + std::to_string(e.completions.size()) +
                        " endings, more than a batch of " + std::to_string(B) + " rows");
        if (e.context.empty()) throw Error(name + ": example " + std::to_string(e.index) + " has an empty context");
        if (rows.size() + e.completions.size() > (size_t)B) score_batch();
        for (size_t k = 0; k < e.completions.size(); k++) {
            const auto& c = e.completions[k];
            if (c.empty()) throw Error(name + ": example " + std::to_string(e.index) + " has an empty ending");
            int* row_idx = idx.data() + rows.size() * Tn;
            int* row_targets = targets.data() + rows.size() * Tn;
            const int n_ctx = (int)e.context.size(), n = n_ctx + (int)c.size();
            for (int t = 0; t < n; t++) row_idx[t] = t < n_ctx ? e.context[t] : c[t - n_ctx];
            for (int t = n_ctx - 1; t < n - 1; t++) row_targets[t] = row_idx[t + 1];  // the ending's tokens only
            rows.push_back({(int)ex, (int)k});
        }
    }
    score_batch();
    return s;
}

}  // namespace lnfree
