// The evaluation suite and the samples, as the trainer's binary runs them: `train_gpt2_lnfree eval` and
// `train_gpt2_lnfree sample` (doc/evaluation.md), and the end of a training run with --eval-suite. One process:
// the models are loaded whole on one device, inference only (no gradients or optimizer state).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lnfree/console.h"
#include "lnfree/eval_report.h"
#include "lnfree/evaluation.cuh"
#include "lnfree/sampling.cuh"
#include "lnfree/token_shard.h"
#include "lnfree/tokenizer.h"

namespace lnfree {

struct EvalSuite {
    std::vector<std::pair<std::string, std::string>> datasets;         // (name, shard glob)
    std::vector<std::pair<std::string, std::string>> multiple_choice;  // (name, eval file)
    int seq_len = -1;                                                  // -1: each model's context
    int batch = 8;
    long max_chunks = -1;
    bool all_chunks = false;  // false: whole batches only, as the papers' evaluation
    std::string attention;    // as --attention
};

// The models of one comparison must read the same tokens.
inline void check_same_vocabulary(const std::vector<EvalModel>& models) {
    for (const EvalModel& m : models)
        if (m.params.config.V != models[0].params.config.V)
            throw Error(m.path + ": its vocabulary has " + std::to_string(m.params.config.V) + " tokens, " + models[0].path +
                        "'s " + std::to_string(models[0].params.config.V) + "; compare models of one tokenizer");
}

template <typename T>
EvalReport run_eval_suite(const std::vector<EvalModel>& models, const EvalSuite& suite, const Console& out) {
    if (models.empty()) throw Error("evaluation: no model");
    if (suite.datasets.empty() && suite.multiple_choice.empty())
        throw Error("evaluation: no dataset; give --data NAME=GLOB or --hellaswag FILE (dev/data/ prepares them)");
    check_same_vocabulary(models);
    EvalReport report;
    std::vector<std::unique_ptr<EvalEngine<T>>> engines;
    int context = models[0].params.config.maxT;
    for (const EvalModel& m : models) {
        report.models.push_back({m.label, m.path, m.layernorm()});
        engines.push_back(std::make_unique<EvalEngine<T>>(m));
        context = std::min(context, m.params.config.maxT);
        out.line("model      %s: %s, L=%d C=%d, LayerNorm %s\n", m.label.c_str(), m.path.c_str(), m.params.config.L,
                 m.params.config.C, m.layernorm().c_str());
    }
    const int V = models[0].params.config.V;
    if (suite.seq_len > context)
        throw Error("--seq-len " + std::to_string(suite.seq_len) + " exceeds the models' context " + std::to_string(context));
    if (suite.batch < 1) throw Error("--batch " + std::to_string(suite.batch) + ": give at least 1 sequence");
    const int Tn = suite.seq_len > 0 ? suite.seq_len : context;
    auto kernels_for = [&](const GPT2Config& c) {
        return choose_attention_kernels(suite.attention, can_fuse_attention<T>(c));
    };
    kernels::MatmulContext mm;

    if (!suite.datasets.empty()) {
        std::vector<std::unique_ptr<DeviceActivations<T>>> acts;
        for (auto& e : engines)
            acts.push_back(std::make_unique<DeviceActivations<T>>(e->config(), suite.batch, Tn, 1, kernels_for(e->config())));
        for (const auto& [name, pattern] : suite.datasets) {
            const TokenChunks chunks(pattern, Tn, V);
            size_t used = suite.max_chunks < 0 ? chunks.size() : std::min<size_t>(chunks.size(), suite.max_chunks);
            if (!suite.all_chunks) used = used / suite.batch * suite.batch;  // whole batches, as the papers' scripts
            if (used == 0)
                throw Error(pattern + ": fewer chunks (" + std::to_string(chunks.size()) + ") than one batch of " +
                            std::to_string(suite.batch) + " sequences; give a smaller --batch or --all-chunks");
            Progress progress(name, used * (Tn - 1), out.on);
            const std::vector<TokenRecords> records = evaluate_chunks(engines, acts, mm, chunks, used, progress);
            DatasetResult d{name, pattern, Tn, used, {}};
            for (const TokenRecords& r : records) d.models.push_back(summarize(r));
            report.datasets.push_back(std::move(d));
        }
    }
    for (const auto& [name, path] : suite.multiple_choice) {
        const std::vector<MultipleChoiceExample> examples = read_multiple_choice_file(path, V);
        if (examples.empty()) throw Error(path + ": no examples");
        const int longest = longest_multiple_choice(examples);
        if (longest > context)
            throw Error(path + ": an example of " + std::to_string(longest) + " tokens exceeds the models' context " +
                        std::to_string(context));
        MultipleChoiceResult h{name, path, examples.size(), {}, {}, {}, {}};
        for (auto& e : engines) {
            const int endings = (int)examples[0].completions.size();
            DeviceActivations<T> acts(e->config(), std::max(endings, 1) * suite.batch, longest, 1, kernels_for(e->config()));
            const HellaswagScores s = evaluate_multiple_choice(*e, acts, mm, examples, path);
            h.acc.push_back(s.acc());
            h.acc_norm.push_back(s.acc_norm());
            h.predicted.push_back(s.predicted);
            h.predicted_norm.push_back(s.predicted_norm);
        }
        report.multiple_choice.push_back(std::move(h));
    }
    return report;
}

// The tokenizer of a model: --tokenizer, else the model's own directory; its vocabulary must be the model's.
inline Tokenizer model_tokenizer(const EvalModel& m, const std::string& option) {
    const std::string dir = option.empty() ? m.tokenizer_dir : option;
    if (dir.empty())
        throw Error(m.path + ": no tokenizer beside the model (vocab.json); give --tokenizer DIR, e.g. the Hugging Face "
                             "directory the run started from");
    Tokenizer t = Tokenizer::from_hf_directory(dir);
    const int V = m.params.config.V;
    if (t.size() != V)
        throw Error(dir + ": the tokenizer has " + std::to_string(t.size()) + " tokens and " + m.path + " " +
                    std::to_string(V) + "; give the tokenizer the model was trained with (--tokenizer DIR)");
    return t;
}

// Prints `settings.count` continuations of `prompt` ("" : from end-of-text, GPT-2's start of a document).
template <typename T>
void print_samples(const EvalModel& m, const Tokenizer& tokenizer, const std::string& prompt, const SampleSettings& settings,
                   const std::string& attention, const Console& out, const std::string& heading, bool ids_too = false) {
    std::vector<int> ids = prompt.empty() ? std::vector<int>{} : tokenizer.encode(prompt);
    if (ids.empty()) {
        if (tokenizer.eot() < 0) throw Error("an empty prompt starts from <|endoftext|>, which this tokenizer lacks; give --prompt");
        ids.push_back(tokenizer.eot());
    }
    EvalEngine<T> engine(m);
    kernels::MatmulContext mm;
    const auto samples = sample_continuations(engine, mm, ids, settings,
                                              choose_attention_kernels(attention, can_fuse_attention<T>(m.params.config)));
    for (size_t b = 0; b < samples.size(); b++) {
        out.line("%s %zu/%zu: %s%s\n", heading.c_str(), b + 1, samples.size(), prompt.c_str(), tokenizer.decode(samples[b]).c_str());
        if (!ids_too) continue;
        std::string list;
        for (int id : samples[b]) list += (list.empty() ? "" : ",") + std::to_string(id);
        out.line("ids %zu/%zu: %s\n", b + 1, samples.size(), list.c_str());
    }
}

}  // namespace lnfree
