// The trainer binary's two other commands (doc/evaluation.md):
//   train_gpt2_lnfree eval   -m MODEL [--compare MODEL]... [--data NAME=GLOB]... [--hellaswag FILE] [-o DIR]
//   train_gpt2_lnfree sample -m MODEL [--prompt TEXT] [--count N] [--tokens N] [--temperature X] [--top-k K]
// A model is LABEL=PATH or PATH (tiny | small | medium | large | xl | a Hugging Face directory, an LN-free hf/
// export included | an llm.c .bin | a run's checkpoint or output directory; lnfree/eval_model.h).
#pragma once
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lnfree/eval_suite.cuh"
#include "lnfree/file_io.h"
#include "lnfree/model_source.h"

namespace lnfree {

struct EvalCommandOptions {
    std::string model = "tiny", out = "out_eval", tokenizer;
    std::vector<std::string> compare, data, hellaswag;
    EvalSuite suite;
    // sample
    std::string prompt;
    SampleSettings sampling;
    bool print_ids = false;
};

// "LABEL=PATH" split into (LABEL, PATH); ("", argument) when there is no label (an '=' inside a path is not one)
inline std::pair<std::string, std::string> split_label(const std::string& argument) {
    const size_t eq = argument.find('=');
    if (eq == std::string::npos || eq == 0 || argument.find('/') < eq) return {"", argument};
    return {argument.substr(0, eq), argument.substr(eq + 1)};
}

// "LABEL=PATH" or "PATH" (labelled by its name: tiny, small, ... or the path)
inline EvalModel load_labelled_model(const std::string& argument) {
    const auto [label, name] = split_label(argument);
    return load_eval_model(label.empty() ? name : label, resolve_model(name).path);
}

// NAME=GLOB, or GLOB named by its file name's stem
inline std::pair<std::string, std::string> named_set(const std::string& argument, const char* option) {
    const auto [name, path] = split_label(argument);
    if (path.empty() || argument.front() == '=') throw Error(std::string(option) + " " + argument + ": give NAME=PATH or PATH");
    if (!name.empty()) return {name, path};
    std::string stem = path.substr(path.rfind('/') + 1);
    stem = stem.substr(0, std::min(stem.find('*'), stem.find(".bin")));
    while (!stem.empty() && (stem.back() == '_' || stem.back() == '0')) stem.pop_back();
    return {stem.empty() ? path : stem, path};
}

inline void add_model_options(CLI::App& app, EvalCommandOptions& o) {
    app.add_option("-m,--model", o.model, "LABEL=PATH or PATH: tiny | small | medium | large | xl | a Hugging Face "
                                          "directory (an LN-free hf/ export too) | an llm.c .bin | a run's checkpoint")
        ->capture_default_str();
    app.add_option("--tokenizer", o.tokenizer, "directory with vocab.json and merges.txt (default: the model's own)");
    app.add_option("--attention", o.suite.attention, "fused | products | cudnn (as the trainer's --attention)")
        ->check(CLI::IsMember({"fused", "products", "cudnn"}));
}

// Returns false with exit_code when parsing ends the program (--help, a bad option); the trainer's options too.
// The app's name (set, so that CLI11 does not take argv[0]) starts its error line.
inline bool parse_command(CLI::App& app, int argc, char** argv, int& exit_code) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::fputs(app.help().c_str(), stdout);
        exit_code = 0;
        return false;
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "%s: %s (see --help)\n", app.get_name().c_str(), e.what());
        exit_code = 2;
        return false;
    }
    return true;
}

inline bool parse_eval_options(int argc, char** argv, EvalCommandOptions& o, int& exit_code) {
    CLI::App app{"train_gpt2_lnfree eval: cross-entropy with its percentiles and by position, entropy, calibration, "
                 "divergence from the first model, and HellaSwag, for one model or several side by side",
                 "train_gpt2_lnfree eval"};
    add_model_options(app, o);
    app.add_option("--compare", o.compare, "more models, each compared with -m (repeatable)");
    app.add_option("--data", o.data, "NAME=GLOB of token shards, cut into --seq-len chunks (repeatable; default: the sets "
                                     "dev/data/ prepared, or the tiny model's validation shard)");
    app.add_option("--hellaswag", o.hellaswag, "NAME=FILE or FILE: an llm.c multiple-choice eval file (repeatable; default: "
                                               "data/hellaswag/hellaswag_val.bin when present)");
    app.add_option("-t,--seq-len", o.suite.seq_len, "tokens per chunk (default: the models' context)")->check(CLI::PositiveNumber);
    app.add_option("-b,--batch", o.suite.batch, "chunks per forward")->capture_default_str()->check(CLI::Range(1, 4096));
    app.add_option("--max-chunks", o.suite.max_chunks, "at most this many chunks per dataset")->check(CLI::PositiveNumber);
    app.add_flag("--all-chunks", o.suite.all_chunks, "also the last, incomplete batch (the papers drop it)");
    app.add_option("-o,--out", o.out, "directory for eval.json")->capture_default_str();
    return parse_command(app, argc, argv, exit_code);
}

inline bool parse_sample_options(int argc, char** argv, EvalCommandOptions& o, int& exit_code) {
    CLI::App app{"train_gpt2_lnfree sample: continuations of a prompt", "train_gpt2_lnfree sample"};
    add_model_options(app, o);
    app.add_option("-p,--prompt", o.prompt, "text to continue (default: none, from <|endoftext|>)");
    app.add_option("-n,--count", o.sampling.count, "samples")->capture_default_str()->check(CLI::Range(1, 1024));
    app.add_option("--tokens", o.sampling.tokens, "new tokens per sample")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    app.add_option("--temperature", o.sampling.temperature, "0: greedy")->capture_default_str()->check(CLI::Range(0.0, 100.0));
    app.add_option("--top-k", o.sampling.top_k, "sample among the k likeliest tokens (0: all)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 30));
    app.add_option("-s,--seed", o.sampling.seed, "seed of the draws")->capture_default_str();
    app.add_flag("--ids", o.print_ids, "also print each sample's token ids");
    return parse_command(app, argc, argv, exit_code);
}

// The suite of o's datasets (or the defaults for o.model) on `models`: eval.json into o.out and the table printed.
template <typename T>
void run_eval_suite_into(const std::vector<EvalModel>& models, const EvalCommandOptions& o, const Console& out) {
    EvalSuite suite = o.suite;
    const std::string base = split_label(o.model).second;
    for (const std::string& d : o.data) suite.datasets.push_back(named_set(d, "--data"));
    for (const std::string& h : o.hellaswag) suite.multiple_choice.push_back(named_set(h, "--hellaswag"));
    if (o.data.empty() && o.hellaswag.empty()) {
        suite.datasets = default_eval_datasets(base);
        suite.multiple_choice = default_multiple_choice(base);
    }
    const EvalReport report = run_eval_suite<T>(models, suite, out);
    make_directories(o.out);
    write_text_file(o.out + "/eval.json", eval_json(report).dump(2) + "\n");
    out.line("%s", eval_table(report).c_str());
    out.line("eval       %s/eval.json\n", o.out.c_str());
}

template <typename T>
int run_eval_command(const EvalCommandOptions& o, const Console& out) {
    std::vector<EvalModel> models{load_labelled_model(o.model)};
    for (const std::string& c : o.compare) models.push_back(load_labelled_model(c));
    for (size_t i = 0; i < models.size(); i++)
        for (size_t j = 0; j < i; j++)
            if (models[i].label == models[j].label)
                throw Error("two models are labelled '" + models[i].label + "'; name them LABEL=PATH");
    run_eval_suite_into<T>(models, o, out);
    return 0;
}

template <typename T>
int run_sample_command(const EvalCommandOptions& o, const Console& out) {
    const EvalModel m = load_labelled_model(o.model);
    print_samples<T>(m, model_tokenizer(m, o.tokenizer), o.prompt, o.sampling, o.suite.attention, out, "sample", o.print_ids);
    return 0;
}

}  // namespace lnfree
