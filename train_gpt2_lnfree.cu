// train_gpt2_lnfree: fine-tune GPT-2 into a model with no LayerNorm, by the published recipe (doc/, method.md).
// One source, two builds: `make train` (nvcc, the GPU) and `make cpu` (g++ through the host emulation of the
// kernels, the CPU). The main loop reads top to bottom: options, model, recipe, data, plan, train, evaluate, export.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/data_loader.h"
#include "lnfree/console.h"
#include "lnfree/cpu_threads.h"
#include "lnfree/error.h"
#include "lnfree/eval_commands.cuh"
#include "lnfree/export.h"
#include "lnfree/file_io.h"
#include "lnfree/gpu_peaks.h"
#include "lnfree/gpt2_device.cuh"
#include "lnfree/train_step.cuh"
#include "lnfree/memory_plan.h"
#include "lnfree/model_source.h"
#include "lnfree/output_checks.h"
#include "lnfree/mpi_group.h"
#include "lnfree/recipe.h"
#include "lnfree/run_directory.h"
#include "lnfree/safetensors.h"
#include "lnfree/step_monitor.h"
#include "lnfree/stop_signals.h"
#include "lnfree/train_checkpoint.cuh"
#if defined(__CUDACC__)
#include "lnfree/nccl_group.cuh"
#endif

using namespace lnfree;
namespace fs = std::filesystem;

// The compute type: bf16 activations and weight copy, or everything in float32 (-DLNFREE_FLOAT32) for tight
// comparisons and for the CPU build.
#if defined(LNFREE_FLOAT32)
using floatX = float;
#else
using floatX = kernels::bf16;
#endif

struct Options {
    std::string model = "tiny", recipe, train_data, val_data, out = "out";
    int steps = -1, micro_batch = -1, total_batch = -1, seq_len = -1;
    int eval_interval = 50, eval_batches = -1, checkpoint_interval = 0, keep_checkpoints = 2;
    uint64_t seed = 1337;
    std::string resume;
    bool plan_only = false, no_save = false;
    double gpu_memory_gb = 80.0;
    int gpus = 0;  // the plan's process count; 0: this launch's
    std::string attention;  // "fused", "products", "cudnn"; empty: fused where the build and the head size allow
    double peak_tflops = 0;  // one GPU's peak for MFU; 0: from the GPU's name (lnfree/gpu_peaks.h)
    // the evaluation suite at the end (the original model against the trained one) and samples before and after
    bool eval_suite = false;
    std::vector<std::string> eval_data, hellaswag;
    int samples = 2, sample_tokens = 32;
    std::string prompt;
    // long runs: non-finite steps in a row before the run stops; starting over a used output directory
    int max_nonfinite = 3;
    bool overwrite = false;
    int threads = 0;  // the CPU build's threads; 0: default_cpu_threads()
};

// Parsed before MPI starts, so --help and a bad option end the process plainly. Returns false with `exit_code`.
bool parse_options(int argc, char** argv, Options& o, int& exit_code) {
    CLI::App app{"train_gpt2_lnfree: remove every LayerNorm of a GPT-2 by fine-tuning (doc/ for the method). Also: "
                 "train_gpt2_lnfree eval --help, train_gpt2_lnfree sample --help", "train_gpt2_lnfree"};
    app.add_option("-m,--model", o.model, "tiny | small | medium | large | xl | a Hugging Face directory | an llm.c .bin")
        ->capture_default_str();
    app.add_option("-r,--recipe", o.recipe, "small | medium | large | xl | small-2024 | derived | vanilla | pretrain | FILE.json "
                                            "(default: the preset of the model's size, derived for other depths)");
    app.add_option("--train", o.train_data, "training shards (glob); default per model");
    app.add_option("--val", o.val_data, "validation shards (glob); default per model");
    app.add_option("-o,--out", o.out, "output directory")->capture_default_str();
    // every count is checked here: a value out of range is one line naming the option, never a silent default
    const auto count = CLI::Range(1, 1 << 30), count_or_zero = CLI::Range(0, 1 << 30);
    app.add_option("-n,--steps", o.steps, "optimizer steps, 0 or more (default: the recipe's)")->check(count_or_zero);
    app.add_option("-b,--micro-batch", o.micro_batch, "sequences per micro-step, 1 or more (default: the recipe's)")
        ->check(count);
    app.add_option("-B,--total-batch", o.total_batch, "sequences per optimizer step, a multiple of the micro-batch "
                                                      "(default: the recipe's)")
        ->check(count);
    app.add_option("-t,--seq-len", o.seq_len, "tokens per sequence, 2 up to the model's context (default: the recipe's)")
        ->check(CLI::Range(2, 1 << 20));
    app.add_option("--eval-interval", o.eval_interval, "evaluate every N steps (0: start and end only)")
        ->capture_default_str()
        ->check(count_or_zero);
    app.add_option("--eval-batches", o.eval_batches, "validation micro-batches per evaluation, and batches of 8 chunks "
                                                     "per dataset of --eval-suite, 1 or more (default: all)")
        ->check(count);
    app.add_option("--checkpoint-interval", o.checkpoint_interval, "checkpoint every N steps (0: at the end only)")
        ->capture_default_str()
        ->check(count_or_zero);
    app.add_option("--keep-checkpoints", o.keep_checkpoints, "checkpoints kept, 1 or more")->capture_default_str()->check(count);
    app.add_option("--max-nonfinite-steps", o.max_nonfinite, "non-finite steps in a row (each skipped, not applied) "
                                                             "before the run stops")
        ->capture_default_str()
        ->check(count);
    app.add_flag("--overwrite", o.overwrite, "start clean in an output directory that holds another run's files");
    app.add_option("-s,--seed", o.seed, "seed of data order and dropout")->capture_default_str();
    app.add_option("--resume", o.resume, "continue from a checkpoint directory, or 'latest' in --out");
    app.add_flag("--plan", o.plan_only, "print the plan (model, recipe, memory) and exit");
    app.add_flag("--no-save", o.no_save, "write no checkpoint and no export, only log.jsonl and summary.json (benchmarks)");
    app.add_option("--gpu-memory-gb", o.gpu_memory_gb, "device memory the plan fits into")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--attention", o.attention, "fused (FlashAttention-2 style, bf16, head size <= 64) | products "
                                               "(cuBLASLt products, T x T scores; the float32 and CPU builds) | cudnn "
                                               "(make train USE_CUDNN=1); default: fused where it can be")
        ->check(CLI::IsMember({"fused", "products", "cudnn"}));
    app.add_option("--peak-tflops", o.peak_tflops, "one GPU's dense bf16 peak for the MFU column (default: from the "
                                                   "GPU's datasheet, lnfree/gpu_peaks.h)")
        ->check(CLI::PositiveNumber);
    app.add_flag("--eval-suite", o.eval_suite, "at the end, evaluate the original and the trained model side by side "
                                               "(train_gpt2_lnfree eval's default sets) into OUT/eval.json");
    app.add_option("--eval-data", o.eval_data, "NAME=GLOB for --eval-suite (repeatable; implies it)");
    app.add_option("--hellaswag", o.hellaswag, "NAME=FILE or FILE for --eval-suite (repeatable; implies it)");
    app.add_option("--samples", o.samples, "continuations printed before and after training (0: none)")
        ->capture_default_str()
        ->check(CLI::Range(0, 64));
    app.add_option("--sample-tokens", o.sample_tokens, "tokens per sample")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    app.add_option("--prompt", o.prompt, "the samples' prompt (default: none, from <|endoftext|>)");
#if defined(CUDA_HOST_EMU)
    app.add_option("--threads", o.threads, "CPU threads for the emulated kernels and the matrix products, 1 to " +
                                               std::to_string(kMaxCpuThreads) + " (default: this process's cores, " +
                                               "divided among the processes mpirun started on the node)")
        ->check(CLI::Range(1, kMaxCpuThreads));
#endif
    app.add_option("--gpus", o.gpus, "processes (GPUs) the plan is for (default: this launch's; mpirun -np N runs N)")
        ->check(CLI::Range(1, 4096));
    return parse_command(app, argc, argv, exit_code);
}

Recipe resolve_recipe(const Options& o, int L) {
    Recipe r;
    static const std::vector<std::string> sizes = {"small", "medium", "large", "xl"};
    const bool file = o.recipe.size() > 5 && o.recipe.substr(o.recipe.size() - 5) == ".json";
    if (o.recipe.empty() || file) {
        r = derive_recipe(L, 120);
        for (const std::string& s : sizes)
            if (known_shape(s).L == L) r = preset_recipe(s, L);
    } else {
        r = preset_recipe(o.recipe, L);
    }
    if (file) {
        const nlohmann::json j = nlohmann::json::parse(read_text_file(o.recipe), nullptr, false);
        if (j.is_discarded()) throw Error(o.recipe + ": not valid JSON");
        apply_recipe_json(r, j, o.recipe);
    }
    if (o.steps >= 0) r.steps = o.steps;
    if (o.seq_len > 0) r.seq_len = o.seq_len;
    if (o.micro_batch > 0 || o.total_batch > 0) {
        const int total = o.total_batch > 0 ? o.total_batch : r.micro_batch * r.grad_accum;
        if (o.micro_batch > 0) r.micro_batch = o.micro_batch;
        if (total % r.micro_batch != 0)
            throw Error("--total-batch " + std::to_string(total) + " is not a multiple of --micro-batch " + std::to_string(r.micro_batch));
        r.grad_accum = total / r.micro_batch;
    }
    return r;
}

void print_plan(const GPT2Config& c, const Recipe& r, const Options& o, int processes) {
    const double gb = 1e9;
    const size_t memory = (size_t)(o.gpu_memory_gb * gb);
    std::printf("model      %s: L=%d C=%d NH=%d V=%d (padded %d) context %d\n", o.model.c_str(), c.L, c.C, c.NH, c.V, c.Vp, c.maxT);
    std::printf("recipe     %s: %d steps, %d x %d sequences of %d tokens, lr %.3g -> %.3g (warmup %d, schedule %d), "
                "w_aux %.3g, momentum %.4g, dropout %.2g\n", r.name.c_str(), r.steps, r.micro_batch, r.grad_accum,
                r.seq_len, r.lr.peak, r.lr.floor, r.lr.warmup, r.lr.length, r.w_aux, r.momentum_ln1, r.dropout);
    for (const RemovalEvent& e : r.events)
        std::printf("removal    %-5s from step %d%s\n", path_kind_name(e.kind), e.start,
                    e.kind == PathKind::LNF ? "" : (", every " + std::to_string(e.gap) + " steps per layer").c_str());
    if (r.events.empty()) std::printf("removal    none: LayerNorm is kept\n");
    const std::string split = split_error(r, processes);
    if (split.empty())
        std::printf("processes  %d, each running %d of the %d micro-batches of a step\n", processes, r.grad_accum / processes,
                    r.grad_accum);
    else
        std::printf("processes  %d: %s\n", processes, split.c_str());
    // the GPU build: bf16 activations and weight copy, and the fused attention unless asked otherwise
    const AttentionKernels attention = choose_attention_kernels(o.attention, kernels::flash_attention_supports(c.C / c.NH));
    std::printf("attention  (GPU) %s\n",
                attention == AttentionKernels::fused   ? "fused (kernels/flash_attention.cuh): no T x T scores in memory"
                : attention == AttentionKernels::cudnn ? "cudnn: a T x T workspace for its backward"
                                                       : "products (kernels/attention.cuh): T x T scores in a scratch");
    const MemoryPlan m = memory_plan(c, r.seq_len, 2, processes, attention);
    std::printf("memory     (per GPU, bf16, %d GPU%s) parameters %.2f GB, gradients %.2f GB, optimizer %.2f GB, "
                "activations %.2f GB/sequence\n", processes, processes > 1 ? "s" : "", m.parameters / gb, m.gradients / gb,
                m.optimizer / gb, m.activations_per_sequence / gb);
    std::printf("memory     (per GPU, bf16) micro-batch %d needs %.2f GB; at most %d fit in %.0f GB\n", r.micro_batch,
                m.total(r.micro_batch) / gb, m.max_micro_batch(memory), o.gpu_memory_gb);
    std::printf("memory     GPUs  per GPU at micro-batch %d  largest micro-batch in %.0f GB (ZeRO-1: master weights and "
                "moments sharded)\n", r.micro_batch, o.gpu_memory_gb);
    for (int gpus : {1, 2, 4, 8}) {
        const MemoryPlan g = memory_plan(c, r.seq_len, 2, gpus, attention);
        std::printf("memory     %4d  %8.2f GB  %8d\n", gpus, g.total(r.micro_batch) / gb, g.max_micro_batch(memory));
    }
}

// ---- evaluation: mean cross-entropy over every target of consecutive T-token windows (EOT included) ---------
// Process p evaluates batches p, p + P, ...; each batch's sum is gathered and the sums added in batch order, so the
// result does not depend on P.

template <typename T>
double evaluate(DeviceGPT2<T>& model, DeviceActivations<T>& acts, kernels::MatmulContext& mm, const LayerNormPaths& paths,
                const TokenChunks& val, int B, int max_batches, int eot, ProcessGroup& group) {
    const int Tn = acts.Tn, P = group.size();
    std::vector<int> idx((size_t)B * Tn), targets((size_t)B * Tn);
    const size_t batches = std::min<size_t>(val.size() / B, max_batches < 0 ? SIZE_MAX : (size_t)max_batches);
    if (batches == 0) throw Error("validation data: fewer than one batch of " + std::to_string(B) + " sequences");
    const size_t slots = (batches + P - 1) / P;
    std::vector<double> own(2 * slots, 0.0);  // (sum, count) of this process's batches
    for (size_t k = group.rank(); k < batches; k += P) {
        for (int b = 0; b < B; b++) val.read(k * B + b, idx.data() + (size_t)b * Tn, targets.data() + (size_t)b * Tn);
        DeviceMicroBatch mb;
        mb.eot = eot;
        mb.ignore_eot = false;
        mb.backward = false;
        gpt2_device_step(model, acts, mm, paths, idx.data(), targets.data(), mb, nullptr);
        const std::vector<float> losses = acts.losses.to_host();
        double* slot = own.data() + 2 * (k / P);
        for (size_t i = 0; i < losses.size(); i++)
            if (targets[i] >= 0) { slot[0] += losses[i]; slot[1] += 1.0; }
    }
    std::vector<double> all(own.size() * P);  // batch k at rank k % P, slot k / P
    group.all_gather_host(own.data(), own.size(), all.data());
    double sum = 0.0, count = 0.0;
    for (size_t k = 0; k < batches; k++) {
        const double* slot = all.data() + (k % P) * own.size() + 2 * (k / P);
        sum += slot[0];
        count += slot[1];
    }
    return sum / count;
}

// ---- the run ------------------------------------------------------------------------------------------------

// One GPU's peak FLOP/s for MFU: --peak-tflops, else this GPU's datasheet entry; 0 when unknown (and on the CPU).
double peak_flops(const Options& o, const Console& out) {
    if (o.peak_tflops > 0) return o.peak_tflops * 1e12;
#if defined(__CUDACC__)
    int dev = 0;
    cudaDeviceProp prop{};
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return 0;
    if (const PeakEntry* e = find_peak(prop.major, prop.minor, prop.multiProcessorCount, prop.name)) {
        out.line("gpu        %s: %s (MFU's denominator)\n", prop.name, e->source);
        return e->bf16_tflops * 1e12;
    }
    out.line("gpu        %s: no datasheet peak known; give --peak-tflops for MFU\n", prop.name);
#else
    (void)out;
#endif
    return 0;
}

SampleSettings sample_settings(const Options& o) {
    SampleSettings s;
    s.count = o.samples;
    s.tokens = o.sample_tokens;
    s.seed = o.seed;
    return s;
}

// The tokenizer the samples need, or none (no samples asked, or no vocab.json beside the model: a note says so).
std::unique_ptr<Tokenizer> sample_tokenizer(const Options& o, const EvalModel& original, const Console& out) {
    if (o.samples == 0 || !out.on) return nullptr;
    if (original.tokenizer_dir.empty()) {
        out.line("sample     none: no tokenizer (vocab.json) beside %s\n", original.path.c_str());
        return nullptr;
    }
    return std::make_unique<Tokenizer>(model_tokenizer(original, ""));
}

int run(const Options& o, ProcessGroup& group, const std::string& resume_command) {
    using clock = std::chrono::steady_clock;
    const auto started = clock::now();
    const Console out{group.rank() == 0};
    const int P = group.size();

    // 1. model and recipe (the plan needs only their shapes)
    const GPT2Config shape = known_shape(o.model);
    const int plan_gpus = o.gpus > 0 ? o.gpus : P;
    if (!o.plan_only && o.gpus > 0 && o.gpus != P)
        throw Error("--gpus " + std::to_string(o.gpus) + " sizes --plan; this launch has " + std::to_string(P) +
                    " processes (mpirun -np " + std::to_string(o.gpus) + " runs " + std::to_string(o.gpus) + ")");
    if (o.plan_only && shape.L > 0) {
        if (out.on) print_plan(shape, resolve_recipe(o, shape.L), o, plan_gpus);
        return 0;
    }
    const ModelSource source = resolve_model(o.model, o.train_data, o.val_data);
    const bool hf_dir = fs::is_directory(source.path);
    ParameterSet<float> host = hf_dir ? ParameterSet<float>(read_hf_config(source.path)) : load_model(source.path);
    const Recipe recipe = resolve_recipe(o, host.config.L);
    if (recipe.random_init) host = init_gpt2(host.config, o.seed);  // pretraining needs only the config
    else if (hf_dir) host = load_hf_checkpoint(source.path);
    const GPT2Config c = host.config;
    if (out.on) print_plan(c, recipe, o, o.plan_only ? plan_gpus : P);
    if (o.plan_only) return 0;
    if (const std::string split = split_error(recipe, P); !split.empty()) throw Error(split);
    if (recipe.seq_len > c.maxT) throw Error("--seq-len " + std::to_string(recipe.seq_len) + " exceeds the model's context " + std::to_string(c.maxT));
    const int eot = c.V - 1;
    if (out.on) claim_output_directory(o.out, !o.resume.empty(), o.overwrite);

    // 2. data: every process opens the same shards and reads its own micro-batches of each step
    const TokenChunks train(source.train, recipe.seq_len, c.V), val(source.val, recipe.seq_len, c.V);
    TrainBatches batches(train, o.seed, recipe.sampling == Recipe::Sampling::random_windows);
    out.line("data       train %zu sequences (%s), val %zu sequences (%s)\n", train.size(), source.train.c_str(), val.size(),
             source.val.c_str());
#if defined(CUDA_HOST_EMU)
    out.line("cpu        %s\n", cpu_threads_description().c_str());
#endif

    // 3. the device model, its optimizer state sharded over the processes; sigma read from the recipe's sigma_file,
    //    or seeded with the model's own statistics on the first batch (global micro-batch 0, on every process)
    if (out.on) make_directories(o.out);
    const bool suite = o.eval_suite || !o.eval_data.empty() || !o.hellaswag.empty();
    // the model as it started, for the samples before training and the suite's reference (weights only if needed)
    EvalModel original{"original", source.path, {}, LayerNormPaths(c.L), SigmaState(c.L),
                       hf_dir && fs::exists(source.path + "/vocab.json") ? source.path : ""};
    original.params = suite ? host : ParameterSet<float>();
    original.params.config = c;
    const std::unique_ptr<Tokenizer> tokenizer = sample_tokenizer(o, original, out);
    if (tokenizer && o.resume.empty()) {
        EvalModel before = original;
        before.params = host;
        print_samples<floatX>(before, *tokenizer, o.prompt, sample_settings(o), o.attention, out, "sample     before");
    }
    // owned here so that the evaluation at the end can free the device memory training held
    auto model_owner = std::make_unique<DeviceGPT2<floatX>>(host, group.rank(), P);
    DeviceGPT2<floatX>& model = *model_owner;
    const bool fusable = can_fuse_attention<floatX>(c);
    if (o.attention == "fused" && !fusable)
        throw Error("--attention fused needs the GPU build (bf16) and a head size of at most " +
                    std::to_string(kernels::kFlashMaxHead) + "; this is " +
                    (sizeof(floatX) == 4 ? std::string("the float32 build") : "head size " + std::to_string(c.C / c.NH)));
    if (o.attention == "cudnn" && !can_use_cudnn_attention<floatX>())
        throw Error("--attention cudnn needs the GPU build made with cuDNN: make train USE_CUDNN=1");
    auto acts_owner = std::make_unique<DeviceActivations<floatX>>(c, recipe.micro_batch, recipe.seq_len, P,
                                                                 choose_attention_kernels(o.attention, fusable));
    DeviceActivations<floatX>& acts = *acts_owner;
    kernels::MatmulContext mm;
    out.line("memory     this process: %.1f MB of device buffers; optimizer state %zu bytes (master weights and moments "
             "of parameters %zu..%zu of %zu)\n", device::buffer_bytes() / 1e6, model.optimizer_state_bytes(),
             model.shard.first, std::min(model.shard.last, model.num_params), model.num_params);
    // room for one checkpoint, and a writable directory, before any training time is spent
    if (out.on && !o.no_save) check_output_directory(o.out, checkpoint_bytes(model.num_params, sizeof(floatX)));
    const int N = recipe.micro_batch * recipe.seq_len;
    std::vector<int> idx(N), targets(N);
    RunState state;
    state.paths = LayerNormPaths(c.L);
    if (!o.resume.empty()) {
        const bool latest = o.resume == "latest";
        const std::string dir = latest ? latest_checkpoint(o.out, out.on) : o.resume;
        load_checkpoint(dir, model, state, out.on, latest);
        out.line("resumed    %s at step %d\n", dir.c_str(), state.step);
    } else if (!recipe.sigma_file.empty()) {
        model.set_sigma(read_sigma_file(recipe.sigma_file, c.L));
        out.line("sigma      from %s\n", recipe.sigma_file.c_str());
    } else {
        SigmaEstimator measure{0.0, 0.0, 0.0, 2};
        batches.fill(0, 0, recipe.grad_accum, recipe.micro_batch, idx.data(), targets.data());
        DeviceMicroBatch mb;
        mb.eot = eot;
        mb.backward = false;
        mb.estimator = &measure;
        gpt2_device_step(model, acts, mm, state.paths, idx.data(), targets.data(), mb, nullptr);
    }

    // 4. evaluate, train, evaluate; rank 0 writes the log
    std::ofstream log;
    const std::string log_path = o.out + "/log.jsonl";
    if (out.on) log.open(log_path, std::ios::app);
    auto log_line = [&](const nlohmann::json& j) {
        if (!out.on) return;
        log << j.dump() << "\n";
        log.flush();
        if (!log) throw Error(log_path + ": cannot write (disk full or not writable); free space or give another -o, "
                                         "then resume with --resume latest");
    };
    if (std::isnan(state.val_loss_initial)) {
        state.val_loss_initial = evaluate(model, acts, mm, state.paths, val, recipe.micro_batch, o.eval_batches, eot, group);
        log_line({{"step", state.step}, {"val_loss", state.val_loss_initial}});
    }
    out.line("eval       step %d val loss %.4f\n", state.step, state.val_loss_initial);
    const long tokens_per_step = (long)recipe.micro_batch * recipe.grad_accum * recipe.seq_len;  // all processes
    const double peak = peak_flops(o, out), flops_per_token = training_flops_per_token(c, recipe.seq_len);
    auto mfu = [&](double tokens_per_second) { return peak > 0 ? tokens_per_second / P * flops_per_token / peak : NAN; };
    double val_loss = state.val_loss_initial;
    const int first_step = state.step;
    const auto train_started = clock::now();
    const BatchSource next_batch = [&](int step, int micro, int* i, int* t) {
        batches.fill(step, micro, recipe.grad_accum, recipe.micro_batch, i, t);
    };
    StepMonitor monitor(o.max_nonfinite, recipe.spike_factor);
    const std::vector<int> poison = test_nonfinite_steps();
    for (int step = state.step; step < recipe.steps; step++) {
        const auto t0 = clock::now();
        const TrainStepResult r = gpt2_device_train_step(model, acts, mm, state.paths, recipe, o.seed, eot, step, next_batch,
                                                         group, nullptr, poison);
        const std::vector<std::string>& switched = r.switched;
        state.step = step + 1;
        const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
        const double elapsed = std::chrono::duration<double>(clock::now() - train_started).count();
        const double left = elapsed / (state.step - first_step) * (recipe.steps - state.step);
        const StepMonitor::Verdict verdict = monitor.observe(r.skipped, r.ce);
        std::string marks, utilisation;
        for (const std::string& sw : switched) marks += " " + sw;
        if (r.skipped) {  // nothing was applied; JSON has no NaN, so the values are written as text
            log_line({{"step", step}, {"skipped", "non-finite"}, {"switched", switched},
                      {"values", {{"loss", std::to_string(r.ce)}, {"aux_loss", std::to_string(r.aux)},
                                  {"grad_norm", std::to_string(r.grad_norm)}}}});
            out.line("step %4d/%d  SKIPPED, not finite (loss %g, aux %g, gradient norm %g): nothing applied (%d in a row, "
                     "the run stops at %d)%s%s\n", step + 1, recipe.steps, r.ce, r.aux, r.grad_norm,
                     verdict.skipped_in_a_row, o.max_nonfinite, marks.empty() ? "" : "  | fixed:", marks.c_str());
            if (verdict.stop)
                throw Error("steps " + std::to_string(step + 2 - verdict.skipped_in_a_row) + " to " + std::to_string(step + 1) +
                            ": " + std::to_string(verdict.skipped_in_a_row) + " non-finite steps in a row, none applied; "
                            "stopped (the checkpoints in " + o.out + " are as they were: resume the newest with a recipe "
                            "of a lower lr, or raise --max-nonfinite-steps)");
        } else {
            const SigmaState sigma = model.get_sigma();
            nlohmann::json line = {{"step", step}, {"loss", r.ce}, {"aux_loss", r.aux}, {"lr", r.lr}, {"grad_norm", r.grad_norm},
                                   {"tokens_per_second", tokens_per_step / seconds}, {"switched", switched},
                                   {"sigma", sigma.sigma}};
            if (peak > 0) {
                const double utilised = mfu(tokens_per_step / seconds);
                line["mfu"] = utilised;
                char text[32];
                std::snprintf(text, sizeof text, "  mfu %.1f%%", 100 * utilised);
                utilisation = text;
            }
            if (verdict.spike_ratio > 0) {
                line["spike"] = verdict.spike_ratio;
                char text[64];
                std::snprintf(text, sizeof text, "  | SPIKE x%.2f of the last 10 steps", verdict.spike_ratio);
                marks += text;
            }
            log_line(line);
            out.line("step %4d/%d  loss %.4f  aux %.4f  lr %.3g  norm %.3f  %.0f tok/s%s  %.0fs left%s%s\n", step + 1,
                     recipe.steps, r.ce, r.aux, r.lr, r.grad_norm, tokens_per_step / seconds, utilisation.c_str(), left,
                     switched.empty() ? "" : "  | fixed:", marks.c_str());
        }
        if (o.eval_interval > 0 && state.step % o.eval_interval == 0 && state.step < recipe.steps) {
            val_loss = evaluate(model, acts, mm, state.paths, val, recipe.micro_batch, o.eval_batches, eot, group);
            log_line({{"step", state.step}, {"val_loss", val_loss}});
            out.line("eval       step %d val loss %.4f\n", state.step, val_loss);
        }
        if (const int signal_number = agreed_stop_signal(group); signal_number != 0) {
            // asked to stop (preemption, Slurm's warning, Ctrl-C): this step is complete; checkpoint it and go
            if (!o.no_save) save_checkpoint(o.out, model, state, o.keep_checkpoints, group);
            out.line("stopped    by %s after step %d%s; resume with:\n%s\n", stop_signal_name(signal_number), state.step,
                     o.no_save ? " (--no-save: no checkpoint written)" : (", checkpoint " + o.out + "/checkpoint_" +
                                                                          std::to_string(state.step)).c_str(),
                     resume_command.c_str());
            return 0;
        }
        if (!o.no_save && o.checkpoint_interval > 0 && state.step % o.checkpoint_interval == 0)
            save_checkpoint(o.out, model, state, o.keep_checkpoints, group);
    }
    val_loss = evaluate(model, acts, mm, state.paths, val, recipe.micro_batch, o.eval_batches, eot, group);
    log_line({{"step", state.step}, {"val_loss", val_loss}});
    out.line("eval       step %d val loss %.4f\n", state.step, val_loss);
    const bool saved = o.checkpoint_interval > 0 && state.step % o.checkpoint_interval == 0 && state.step > first_step;
    if (!o.no_save && !saved) save_checkpoint(o.out, model, state, o.keep_checkpoints, group);

    // 5. export and summary (the master weights gathered from every process; rank 0 writes)
    const SigmaState sigma = model.get_sigma();
    const int remaining = state.paths.real_paths_remaining();
    const bool need_weights = !o.no_save || tokenizer || suite;
    const ParameterSet<float> weights = need_weights ? master_to_host(model, group) : ParameterSet<float>();  // collective
    if (!out.on) return 0;
    if (o.no_save) {
        out.line("export     none (--no-save)\n");
    } else if (remaining == 0) {
        export_lnfree(o.out + "/export", weights, sigma.sigma, hf_dir ? source.path : "");
        out.line("export     %s/export/hf and %s/export/transformer_lens (LN-free)\n", o.out.c_str(), o.out.c_str());
    } else {
        export_hf_with_layernorm(o.out + "/export/hf", weights, hf_dir ? source.path : "");
        out.line("export     %s/export/hf (LayerNorm kept: %d real paths)\n", o.out.c_str(), remaining);
    }
    const double wall = std::chrono::duration<double>(clock::now() - started).count();
    const double train_seconds = std::chrono::duration<double>(clock::now() - train_started).count();
    nlohmann::json sigma_by_site;
    for (int l = 0; l < c.L; l++) {
        sigma_by_site["blocks." + std::to_string(l) + ".ln_1"] = sigma.sigma[ln1_module(l)];
        sigma_by_site["blocks." + std::to_string(l) + ".ln_2"] = sigma.sigma[ln2_module(c.L, l)];
    }
    sigma_by_site["ln_f"] = sigma.sigma[lnf_module(c.L)];
    const double tokens_per_second = (state.step - first_step) * tokens_per_step / std::max(train_seconds, 1e-9);
    const nlohmann::json summary = {
        {"model", o.model}, {"recipe", recipe_to_json(recipe)}, {"steps", state.step},
        {"tokens", (long)state.step * tokens_per_step}, {"val_loss_initial", state.val_loss_initial},
        {"val_loss_final", val_loss}, {"real_ln_paths_remaining", remaining}, {"sigma", sigma_by_site},
        {"processes", P}, {"wall_seconds", wall}, {"tokens_per_second", tokens_per_second},
        {"mfu", peak > 0 ? nlohmann::json(mfu(tokens_per_second)) : nlohmann::json()},
        {"nonfinite_steps_skipped", monitor.skipped_total()}};
    write_text_file(o.out + "/summary.json", summary.dump(2) + "\n");
    out.line("summary    %s/summary.json: val loss %.4f -> %.4f, %d real LayerNorm paths left, %.0f s\n", o.out.c_str(),
             state.val_loss_initial, val_loss, remaining, wall);

    // 6. samples and the evaluation suite of the trained model (rank 0 alone, one device), training's memory freed
    acts_owner.reset();
    model_owner.reset();
    const EvalModel trained{remaining == 0 ? "lnfree" : "trained", o.out, weights, state.paths, sigma, original.tokenizer_dir};
    if (tokenizer) print_samples<floatX>(trained, *tokenizer, o.prompt, sample_settings(o), o.attention, out, "sample     after");
    if (suite) {
        EvalCommandOptions e;
        e.model = o.model;
        e.data = o.eval_data;
        e.hellaswag = o.hellaswag;
        e.suite.attention = o.attention;
        e.suite.seq_len = recipe.seq_len;
        e.suite.max_chunks = o.eval_batches > 0 ? (long)o.eval_batches * e.suite.batch : -1;
        e.out = o.out;
        run_eval_suite_into<floatX>(std::vector<EvalModel>{original, trained}, e, out);
    }
    return 0;
}

// The process group of this launch: one process without a launcher; under mpirun or srun NCCL on the GPU build
// (also for -np 1) and MPI on host memory on the CPU build.
std::unique_ptr<ProcessGroup> make_group(const MpiWorld& world) {
#if defined(__CUDACC__)
    if (MpiWorld::launched()) return std::make_unique<NcclGroup>(world);
#else
    if (world.size() > 1) return std::make_unique<MpiGroup>(world);
#endif
    return std::make_unique<SingleProcess>();
}

// `train_gpt2_lnfree eval ...` and `train_gpt2_lnfree sample ...`: one process, no MPI (lnfree/eval_commands.cuh)
int run_command(const std::string& command, int argc, char** argv) {
    EvalCommandOptions o;
    int exit_code = 0;
    const bool eval = command == "eval";
    if (!(eval ? parse_eval_options(argc, argv, o, exit_code) : parse_sample_options(argc, argv, o, exit_code)))
        return exit_code;
    try {
        return eval ? run_eval_command<floatX>(o, Console{}) : run_sample_command<floatX>(o, Console{});
    } catch (const std::exception& e) {
        std::fprintf(stderr, "train_gpt2_lnfree %s: %s\n", command.c_str(), e.what());
        return 1;
    }
}

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one progress line at a time, also into a pipe or a file
    if (argc > 1 && (std::string(argv[1]) == "eval" || std::string(argv[1]) == "sample"))
        return run_command(argv[1], argc - 1, argv + 1);
    Options o;
    int exit_code = 0;
    if (!parse_options(argc, argv, o, exit_code)) return exit_code;
    MpiWorld world(&argc, &argv);
    try {
#if defined(CUDA_HOST_EMU)
        use_cpu_threads(o.threads);
#endif
        std::unique_ptr<ProcessGroup> group = make_group(world);
        install_stop_signals();
        std::string resume = resume_command_line(argc, argv);
        if (world.size() > 1) resume = "mpirun -np " + std::to_string(world.size()) + " " + resume;
        return run(o, *group, resume);
    } catch (const std::exception& e) {
        // one line; in a data-parallel run it names the rank and ends every process, so none waits in a collective
        if (world.size() > 1) {
            std::fprintf(stderr, "train_gpt2_lnfree: rank %d of %d: %s\n", world.rank(), world.size(), e.what());
            std::fflush(stderr);
            world.abort(1);
        }
        std::fprintf(stderr, "train_gpt2_lnfree: %s\n", e.what());
        return 1;
    }
}
