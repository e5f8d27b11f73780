// GPT-2 with LayerNorm removal on the device: parameters (a compute copy in T plus float32 master weights, float32
// gradients and AdamW moments; the master weights and moments sharded over the processes of a data-parallel run),
// the sigma estimator's state, and one micro-batch's forward and backward composed from the kernels of kernels/
// (the optimizer step and the whole train step: lnfree/train_step.cuh). It mirrors lnfree/reference/gpt2.h op for
// op; test/kernels/test_device_model.cpp holds the two to the same numbers. T = __nv_bfloat16 (the product) or
// float (for tight comparisons).
#pragma once
#include <array>
#include <string>
#include <vector>

#include "kernels/adamw.cuh"
#include "kernels/attention.cuh"
#include "kernels/flash_attention.cuh"
#if defined(LNFREE_CUDNN)
#include "kernels/cudnn_attention.h"
#endif
#include "kernels/aux_loss.cuh"
#include "kernels/classifier.cuh"
#include "kernels/device.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/encoder.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/matmul.cuh"
#include "kernels/sigma.cuh"
#include "lnfree/attention_kernels.h"
#include "lnfree/model.h"
#include "lnfree/process_group.h"
#include "lnfree/sigma_estimator.h"

namespace lnfree {

template <typename T>
struct DeviceGPT2 {
    GPT2Config cfg;
    std::array<size_t, NUM_PARAM_TENSORS> offset{};
    size_t num_params = 0;
    size_t padded = 0;                              // num_params rounded up to whole shards (padded_length)
    ShardRange shard;                               // this process's part of [0, padded)
    device::Buffer<T> params;                       // (padded) the compute copy the kernels read
    device::Buffer<float> grads;                    // (padded) float32 gradients
    device::Buffer<float> master, m, v;             // (shard) float32 master weights and AdamW moments: ZeRO-1
    device::Buffer<double> sigma_ema, sigma;        // (2L+1) the estimator's state, as lnfree::SigmaState
    device::Buffer<double> sigma_ema_saved, sigma_saved;  // (2L+1) that state before a step, restored if it is skipped
    device::Buffer<float> grad_norm, norm_scratch;  // the optimizer step's global gradient norm
    device::Buffer<double> grad_sum_squares;
    int adam_t = 0;

    // Process `rank` of `processes` (the defaults: the whole model in one process). Without `trainable` (evaluation
    // and sampling) only the compute copy and sigma are allocated: no gradients, master weights or moments.
    explicit DeviceGPT2(const ParameterSet<float>& host, int rank = 0, int processes = 1, bool trainable = true)
        : cfg(host.config), offset(host.offset), num_params(host.data.size()),
          padded(padded_length(num_params, processes)), shard(shard_range(padded, rank, processes)), params(padded),
          grads(trainable ? padded : 0), master(trainable ? shard.size() : 0), m(master.size()), v(master.size()),
          sigma_ema(2 * cfg.L + 1), sigma(2 * cfg.L + 1), sigma_ema_saved(2 * cfg.L + 1), sigma_saved(2 * cfg.L + 1),
          grad_norm(1), norm_scratch(kernels::kNormBlocks),
          grad_sum_squares(1) {
        std::vector<T> copy(padded, kernels::from_float<T>(0.0f));
        for (size_t i = 0; i < num_params; i++) copy[i] = kernels::from_float<T>(host.data[i]);
        device::to_device(params.data(), copy.data(), padded * sizeof(T));
        if (!trainable) return;
        std::vector<float> own(shard.size(), 0.0f);
        for (size_t i = shard.first; i < std::min(shard.last, num_params); i++) own[i - shard.first] = host.data[i];
        device::to_device(master.data(), own.data(), own.size() * sizeof(float));
        device::zero(grads.data(), padded * sizeof(float), nullptr);
        device::zero(m.data(), shard.size() * sizeof(float), nullptr);
        device::zero(v.data(), shard.size() * sizeof(float), nullptr);
    }

    T* p(int tensor, int layer = 0, size_t per_layer = 0) { return params.data() + offset[tensor] + layer * per_layer; }
    float* g(int tensor, int layer = 0, size_t per_layer = 0) { return grads.data() + offset[tensor] + layer * per_layer; }
    // bytes of the optimizer state this process holds: master weights and both moments of its shard
    size_t optimizer_state_bytes() const { return 3 * shard.size() * sizeof(float); }

    void set_sigma(const SigmaState& s) {
        device::to_device(sigma_ema.data(), s.ema.data(), s.ema.size() * sizeof(double));
        device::to_device(sigma.data(), s.sigma.data(), s.sigma.size() * sizeof(double));
    }
    SigmaState get_sigma() const {
        SigmaState s(cfg.L);
        device::to_host(s.ema.data(), sigma_ema.data(), s.ema.size() * sizeof(double));
        device::to_host(s.sigma.data(), sigma.data(), s.sigma.size() * sizeof(double));
        return s;
    }
};

// Every process's shard of `state` (master, m or v of `model`) gathered into one host array of num_params, on
// every process. The gradient buffer is the scratch, so call it between optimizer steps (checkpoints, exports).
template <typename T>
std::vector<float> gather_optimizer_state(DeviceGPT2<T>& model, const device::Buffer<float>& state, ProcessGroup& group) {
    device::copy(model.grads.data() + model.shard.first, state.data(), model.shard.size() * sizeof(float), nullptr);
    group.all_gather(model.grads.data(), sizeof(float), model.padded, nullptr);
    std::vector<float> out(model.num_params);
    device::to_host(out.data(), model.grads.data(), model.num_params * sizeof(float));
    return out;
}

template <typename T>
ParameterSet<float> master_to_host(DeviceGPT2<T>& model, ProcessGroup& group) {
    ParameterSet<float> out(model.cfg);
    out.data = gather_optimizer_state(model, model.master, group);
    return out;
}

// What one micro-batch needs besides the model (as ref::MicroBatchOptions, plus the estimator).
struct DeviceMicroBatch {
    DropoutKey dropout;
    int eot = -1;
    bool ignore_eot = true;
    double w_aux = 0.0;
    double loss_scale = 1.0;              // d(step loss)/d(micro-batch loss): 1 / grad_accum
    const SigmaEstimator* estimator = nullptr;  // null: sigma is read, not updated (evaluation)
    bool backward = true;                 // false: forward and losses only
    ProcessGroup* group = nullptr;        // data parallelism: the sigma statistics are gathered over it
};

template <typename T>
bool can_fuse_attention(const GPT2Config& c) {
    return std::is_same_v<T, kernels::bf16> && kernels::flash_attention_supports(c.C / c.NH);
}
// The kernels --attention names ("" : fused where it can be), given whether the fused ones can run.
inline AttentionKernels choose_attention_kernels(const std::string& option, bool fusable) {
    if (option == "cudnn") return AttentionKernels::cudnn;
    return option == "products" || !fusable ? AttentionKernels::products : AttentionKernels::fused;
}
template <typename T>
constexpr bool can_use_cudnn_attention() {
#if defined(LNFREE_CUDNN)
    return std::is_same_v<T, kernels::bf16>;
#else
    return false;
#endif
}

// cuDNN draws its dropout masks from (seed, offset): one seed per (run, step, micro-batch, layer).
inline uint64_t cudnn_dropout_seed(const DropoutKey& key, int layer) {
    uint64_t x = key.seed;
    for (uint64_t word : {(uint64_t)key.step, (uint64_t)key.micro_step, (uint64_t)layer}) {
        x ^= word + 0x9E3779B97F4A7C15ull + (x << 6) + (x >> 2);
        x = (x ^ (x >> 31)) * 0xBF58476D1CE4E5B9ull;
    }
    return x;
}

// Activations of one micro-batch of B x T tokens, kept for the backward; scratch shared by all layers.
template <typename T>
struct DeviceActivations {
    int B, Tn, N;
    struct Layer {
        device::Buffer<float> resid, resid_mid, mean1, std1, rstd_qk, rstd_v, mean2, std2, rstd2, lse, used1, used2;
        device::Buffer<T> ln1_qk, ln1_v, qkv, atty, ln2, fch;
        bool split = false;
    };
    std::vector<Layer> layers;
    device::Buffer<float> resid_final, meanf, stdf, rstdf, usedf, losses, stats, ce, aux, aux_target, dx, ln_scratch,
        bias_scratch;
    device::Buffer<float> step_losses;  // (ce, aux) of each micro-batch of the optimizer step (lnfree/train_step.cuh)
    AttentionKernels attention_kernels;
    kernels::AttentionScratch<T> attention;  // the product-based kernels' scores (empty with the others)
    device::Buffer<float> attention_D;      // the fused backward's rowsum(dout * out), (B, NH, T)
    device::Buffer<T> lnf, logits, branch, fch_gelu, dnorm, dbranch, dfch, datty, dqkv;
    device::Buffer<int> idx, targets, aux_mask, ce_mask, bucket_token, bucket_start, bucket_positions;
    // the host's arrays of a micro-batch on their way to those buffers (idx, targets, ce_mask, then the buckets:
    // 6N + 1 ints): two page-locked slots, so the host fills one while the other's copies may still be queued
    struct Upload {
        device::PinnedBuffer<int> ints;
        device::Event copied;
    };
    std::array<Upload, 2> uploads;
    int next_upload = 0;

    // processes: of a data-parallel run, whose sigma statistics `stats` gathers ((2L+1) x processes); kernels: the
    // attention's, fused by default where it can be
    DeviceActivations(const GPT2Config& c, int B_, int T_, int processes = 1)
        : DeviceActivations(c, B_, T_, processes, can_fuse_attention<T>(c) ? AttentionKernels::fused : AttentionKernels::products) {}
    DeviceActivations(const GPT2Config& c, int B_, int T_, int processes, AttentionKernels kernels)
        : B(B_), Tn(T_), N(B_ * T_), layers(c.L), attention_kernels(kernels) {
        if (kernels == AttentionKernels::fused && !can_fuse_attention<T>(c))
            throw std::invalid_argument("the fused attention needs bf16 and a head size of at most 64");
        if (kernels == AttentionKernels::cudnn && !can_use_cudnn_attention<T>())
            throw std::invalid_argument("cuDNN's attention needs the bf16 GPU build made with USE_CUDNN=1");
        const size_t NC = (size_t)N * c.C;
        for (Layer& a : layers) {
            a.resid = device::Buffer<float>(NC); a.resid_mid = device::Buffer<float>(NC);
            for (auto* b : {&a.mean1, &a.std1, &a.rstd_qk, &a.rstd_v, &a.mean2, &a.std2, &a.rstd2}) *b = device::Buffer<float>(N);
            a.lse = device::Buffer<float>((size_t)B * c.NH * Tn);
            a.used1 = device::Buffer<float>(8); a.used2 = device::Buffer<float>(1);
            a.ln1_qk = device::Buffer<T>(NC); a.ln1_v = device::Buffer<T>(NC); a.qkv = device::Buffer<T>(3 * NC);
            a.atty = device::Buffer<T>(NC); a.ln2 = device::Buffer<T>(NC); a.fch = device::Buffer<T>(4 * NC);
        }
        resid_final = device::Buffer<float>(NC);
        for (auto* b : {&meanf, &stdf, &rstdf, &losses}) *b = device::Buffer<float>(N);
        usedf = device::Buffer<float>(1); stats = device::Buffer<float>((2 * c.L + 1) * (size_t)processes);
        ce = device::Buffer<float>(1); aux = device::Buffer<float>(1); aux_target = device::Buffer<float>(1);
        dx = device::Buffer<float>(NC);
        ln_scratch = device::Buffer<float>(2 * (size_t)kernels::layernorm_backward_blocks(N) * c.C);
        if (attention_kernels == AttentionKernels::fused) attention_D = device::Buffer<float>((size_t)B * c.NH * Tn);
        if (attention_kernels == AttentionKernels::products) attention = kernels::AttentionScratch<T>(B, Tn, c.NH);
        bias_scratch = device::Buffer<float>((size_t)kernels::kBiasChunks * 4 * c.C);
        lnf = device::Buffer<T>(NC); logits = device::Buffer<T>((size_t)N * c.Vp);
        branch = device::Buffer<T>(NC); fch_gelu = device::Buffer<T>(4 * NC); dnorm = device::Buffer<T>(NC);
        dbranch = device::Buffer<T>(NC); dfch = device::Buffer<T>(4 * NC); datty = device::Buffer<T>(NC);
        dqkv = device::Buffer<T>(3 * NC);
        idx = device::Buffer<int>(N); targets = device::Buffer<int>(N); aux_mask = device::Buffer<int>(N);
        ce_mask = device::Buffer<int>(N);
        bucket_token = device::Buffer<int>(N); bucket_start = device::Buffer<int>(N + 1);
        bucket_positions = device::Buffer<int>(N);
        for (Upload& u : uploads) u.ints = device::PinnedBuffer<int>(6 * (size_t)N + 1);
    }
};

// The attention of one layer through the kernels `acts` was built for.
template <typename T>
void attention_forward(kernels::MatmulContext& mm, DeviceActivations<T>& acts, T* out, float* lse, const T* qkv,
                       const DropoutKey& key, int layer, int C, int NH, cudaStream_t s) {
    if constexpr (std::is_same_v<T, kernels::bf16>) {
        if (acts.attention_kernels == AttentionKernels::fused)
            return kernels::flash_attention_forward(out, lse, qkv, key, layer, acts.B, acts.Tn, C, NH, s);
#if defined(LNFREE_CUDNN)
        if (acts.attention_kernels == AttentionKernels::cudnn)
            return kernels::cudnn_attention_forward(out, lse, qkv, key.p, cudnn_dropout_seed(key, layer), 0, acts.B, acts.Tn,
                                                    C, NH, s);
#endif
    }
    kernels::attention_forward(mm, acts.attention, out, lse, qkv, key, layer, acts.B, acts.Tn, C, NH, s);
}
template <typename T>
void attention_backward(kernels::MatmulContext& mm, DeviceActivations<T>& acts, T* dqkv, const T* dout, const T* out,
                        const T* qkv, const float* lse, const DropoutKey& key, int layer, int C, int NH, cudaStream_t s) {
    if constexpr (std::is_same_v<T, kernels::bf16>) {
        if (acts.attention_kernels == AttentionKernels::fused)
            return kernels::flash_attention_backward(dqkv, acts.attention_D.data(), dout, out, qkv, lse, key, layer, acts.B,
                                                     acts.Tn, C, NH, s);
#if defined(LNFREE_CUDNN)
        if (acts.attention_kernels == AttentionKernels::cudnn)
            return kernels::cudnn_attention_backward(dqkv, dout, out, qkv, lse, key.p, cudnn_dropout_seed(key, layer), 0,
                                                     acts.B, acts.Tn, C, NH, s);
#endif
    }
    kernels::attention_backward(mm, acts.attention, dqkv, dout, out, qkv, lse, key, layer, acts.B, acts.Tn, C, NH, s);
}

// Forward (and, unless mb.backward is false, backward into model.grads) of one micro-batch whose tokens are idx,
// targets (B*T, host). Losses stay on the device (acts.ce, acts.aux, acts.losses, acts.stats).
template <typename T>
void gpt2_device_step(DeviceGPT2<T>& model, DeviceActivations<T>& acts, kernels::MatmulContext& mm,
                      const LayerNormPaths& paths, const int* idx, const int* targets, const DeviceMicroBatch& mb,
                      cudaStream_t s) {
    namespace k = kernels;
    const GPT2Config& c = model.cfg;
    const int L = c.L, C = c.C, NH = c.NH, B = acts.B, Tn = acts.Tn, N = acts.N;
    const size_t NC = (size_t)N * C, CC = (size_t)C * C;
    const DropoutKey& key = mb.dropout;
    const int ignore = mb.ignore_eot ? mb.eot : -1;

    // the batch, and what the host knows of it (counted targets, positions grouped by token), staged in page-locked
    // memory and copied asynchronously: the host does not wait for the GPU here
    auto& up = acts.uploads[acts.next_upload];
    acts.next_upload ^= 1;
    up.copied.synchronize();  // this slot's previous copies have landed
    int* staged = up.ints.data();
    int *h_idx = staged, *h_targets = staged + N, *h_counted = staged + 2 * N;
    std::copy(idx, idx + N, h_idx);
    std::copy(targets, targets + N, h_targets);
    int count = 0;
    for (int i = 0; i < N; i++) count += h_counted[i] = targets[i] >= 0 && targets[i] != ignore;
    const kernels::EncoderBuckets buckets = kernels::build_encoder_buckets(idx, N);
    int *h_token = staged + 3 * N, *h_start = h_token + buckets.token.size(), *h_positions = h_start + buckets.start.size();
    std::copy(buckets.token.begin(), buckets.token.end(), h_token);
    std::copy(buckets.start.begin(), buckets.start.end(), h_start);
    std::copy(buckets.positions.begin(), buckets.positions.end(), h_positions);
    device::to_device_async(acts.idx.data(), h_idx, N * sizeof(int), s);
    device::to_device_async(acts.targets.data(), h_targets, N * sizeof(int), s);
    device::to_device_async(acts.ce_mask.data(), h_counted, N * sizeof(int), s);
    device::to_device_async(acts.bucket_token.data(), h_token, buckets.token.size() * sizeof(int), s);
    device::to_device_async(acts.bucket_start.data(), h_start, buckets.start.size() * sizeof(int), s);
    device::to_device_async(acts.bucket_positions.data(), h_positions, buckets.positions.size() * sizeof(int), s);
    up.copied.record(s);

    // one LayerNorm module's statistic and estimator calls; writes used[k] per call. Training in a data-parallel run
    // gathers every process's statistic and applies them in global micro-batch order (kernels/sigma.cuh).
    const bool gather = mb.estimator && mb.group && mb.group->size() > 1;
    const int slots = gather ? mb.group->size() : 1, own = gather ? mb.group->rank() : 0;
    auto estimate = [&](float* std_rows, int module, double momentum, int calls, unsigned fixed_mask, float* used) {
        float* stats = acts.stats.data() + (size_t)module * slots;
        k::masked_mean(stats + own, std_rows, nullptr, N, s);
        if (gather) mb.group->all_gather(stats, sizeof(float), slots, s);
        if (mb.estimator)
            k::sigma_calls(model.sigma_ema.data() + module, model.sigma.data() + module, used, stats, slots, own, momentum,
                           calls, fixed_mask, s);
        else  // evaluation: every call divides by the module's sigma as it is
            k::sigma_calls(model.sigma_ema.data() + module, model.sigma.data() + module, used, stats, 1, 0, 1.0, calls,
                           (1u << calls) - 1, s);
    };
    const SigmaEstimator none;
    const SigmaEstimator& est = mb.estimator ? *mb.estimator : none;

    // ---- forward -------------------------------------------------------------------------------------------------
    k::encoder_forward(acts.layers[0].resid.data(), acts.idx.data(), model.p(WTE), model.p(WPE), key, B, Tn, C, s);
    for (int l = 0; l < L; l++) {
        auto& a = acts.layers[l];
        const bool qk_fixed = paths.ln1qk_fixed[l], v_fixed = paths.ln1v_fixed[l];
        k::layernorm_stats(a.mean1.data(), a.std1.data(), a.resid.data(), N, C, s);
        const int calls = mb.estimator ? est.ln1_calls : 2;
        unsigned mask = qk_fixed ? 1u : 0u;
        for (int call = 1; call < calls; call++) mask |= v_fixed ? 1u << call : 0u;
        estimate(a.std1.data(), ln1_module(l), est.momentum_ln1, calls, mask, a.used1.data());
        k::layernorm_normalize(a.ln1_qk.data(), a.rstd_qk.data(), a.resid.data(), a.mean1.data(), a.std1.data(),
                               model.p(LN1W, l, C), model.p(LN1B, l, C), qk_fixed ? a.used1.data() : nullptr, N, C, s);
        a.split = qk_fixed != v_fixed;
        if (a.split)
            k::layernorm_normalize(a.ln1_v.data(), a.rstd_v.data(), a.resid.data(), a.mean1.data(), a.std1.data(),
                                   model.p(LN1W, l, C), model.p(LN1B, l, C), v_fixed ? a.used1.data() + 1 : nullptr, N, C, s);
        const T* xv = a.split ? a.ln1_v.data() : a.ln1_qk.data();
        T* qkvw = model.p(QKVW, l, 3 * CC);
        T* qkvb = model.p(QKVB, l, 3 * C);
        k::matmul_forward(mm, a.qkv.data(), 3 * C, (T*)nullptr, a.ln1_qk.data(), qkvw, qkvb, N, C, 2 * C, s);
        k::matmul_forward(mm, a.qkv.data() + 2 * C, 3 * C, (T*)nullptr, xv, qkvw + 2 * CC, qkvb + 2 * C, N, C, C, s);
        attention_forward(mm, acts, a.atty.data(), a.lse.data(), a.qkv.data(), key, l, C, NH, s);
        k::matmul_forward(mm, acts.branch.data(), C, (T*)nullptr, a.atty.data(), model.p(ATTPROJW, l, CC),
                          model.p(ATTPROJB, l, C), N, C, C, s);
        device::copy(a.resid_mid.data(), a.resid.data(), NC * sizeof(float), s);
        k::residual_dropout_add(a.resid_mid.data(), acts.branch.data(), key, l, DROPOUT_ATTENTION_RESIDUAL, NC, s);

        k::layernorm_stats(a.mean2.data(), a.std2.data(), a.resid_mid.data(), N, C, s);
        estimate(a.std2.data(), ln2_module(L, l), est.momentum_ln2, 1, paths.ln2_fixed[l] ? 1u : 0u, a.used2.data());
        k::layernorm_normalize(a.ln2.data(), a.rstd2.data(), a.resid_mid.data(), a.mean2.data(), a.std2.data(),
                               model.p(LN2W, l, C), model.p(LN2B, l, C), paths.ln2_fixed[l] ? a.used2.data() : nullptr, N, C, s);
        k::matmul_forward(mm, acts.fch_gelu.data(), 4 * C, a.fch.data(), a.ln2.data(), model.p(FCW, l, 4 * CC),
                          model.p(FCB, l, 4 * C), N, C, 4 * C, s);
        k::matmul_forward(mm, acts.branch.data(), C, (T*)nullptr, acts.fch_gelu.data(), model.p(FCPROJW, l, 4 * CC),
                          model.p(FCPROJB, l, C), N, 4 * C, C, s);
        float* next = l + 1 < L ? acts.layers[l + 1].resid.data() : acts.resid_final.data();
        device::copy(next, a.resid_mid.data(), NC * sizeof(float), s);
        k::residual_dropout_add(next, acts.branch.data(), key, l, DROPOUT_MLP_RESIDUAL, NC, s);
    }
    k::layernorm_stats(acts.meanf.data(), acts.stdf.data(), acts.resid_final.data(), N, C, s);
    k::aux_loss_forward(acts.aux.data(), acts.aux_target.data(), acts.aux_mask.data(), acts.stdf.data(), acts.idx.data(),
                        mb.eot, B, Tn, s);
    estimate(acts.stdf.data(), lnf_module(L), est.momentum_lnf, 1, paths.lnf_fixed ? 1u : 0u, acts.usedf.data());
    k::layernorm_normalize(acts.lnf.data(), acts.rstdf.data(), acts.resid_final.data(), acts.meanf.data(), acts.stdf.data(),
                           model.p(LNFW), model.p(LNFB), paths.lnf_fixed ? acts.usedf.data() : nullptr, N, C, s);
    k::matmul_forward(mm, acts.logits.data(), c.Vp, (T*)nullptr, acts.lnf.data(), model.p(WTE), (const T*)nullptr, N, C,
                      c.Vp, s);
    const float dloss = mb.backward && count > 0 ? (float)(mb.loss_scale / count) : 0.0f;
    k::classifier(acts.logits.data(), acts.losses.data(), acts.targets.data(), ignore, dloss, N, c.V, c.Vp, s);
    k::masked_mean(acts.ce.data(), acts.losses.data(), acts.ce_mask.data(), N, s);
    if (!mb.backward) return;

    // ---- backward: acts.logits now holds d(loss)/d(logits) ---------------------------------------------------------
    float* dx = acts.dx.data();
    k::matmul_backward_input(mm, acts.dnorm.data(), acts.logits.data(), c.Vp, model.p(WTE), N, C, c.Vp, false, s);
    k::matmul_backward_weight(mm, model.g(WTE), acts.logits.data(), c.Vp, acts.lnf.data(), N, C, c.Vp, s);
    device::zero(dx, NC * sizeof(float), s);
    k::layernorm_backward(dx, model.g(LNFW), model.g(LNFB), acts.ln_scratch.data(), acts.dnorm.data(),
                          acts.resid_final.data(), acts.meanf.data(), acts.rstdf.data(), model.p(LNFW), paths.lnf_fixed, N, C, s);
    k::aux_loss_backward(dx, acts.resid_final.data(), acts.meanf.data(), acts.stdf.data(), acts.aux_target.data(),
                         (float)(mb.loss_scale * mb.w_aux), N, C, s);
    for (int l = L - 1; l >= 0; l--) {
        auto& a = acts.layers[l];
        // MLP branch
        k::dropout_backward(acts.dbranch.data(), dx, key, l, DROPOUT_MLP_RESIDUAL, NC, s);
        k::gelu_forward(acts.fch_gelu.data(), a.fch.data(), 4 * NC, s);  // recomputed, not stored
        k::matmul_backward_input(mm, acts.dfch.data(), acts.dbranch.data(), C, model.p(FCPROJW, l, 4 * CC), N, 4 * C, C, false, s);
        k::matmul_backward_weight(mm, model.g(FCPROJW, l, 4 * CC), acts.dbranch.data(), C, acts.fch_gelu.data(), N, 4 * C, C, s);
        k::bias_backward(model.g(FCPROJB, l, C), acts.bias_scratch.data(), acts.dbranch.data(), C, N, C, s);
        k::gelu_backward(acts.fch_gelu.data(), a.fch.data(), acts.dfch.data(), 4 * NC, s);  // fch_gelu := d(fch)
        k::matmul_backward_input(mm, acts.dnorm.data(), acts.fch_gelu.data(), 4 * C, model.p(FCW, l, 4 * CC), N, C, 4 * C, false, s);
        k::matmul_backward_weight(mm, model.g(FCW, l, 4 * CC), acts.fch_gelu.data(), 4 * C, a.ln2.data(), N, C, 4 * C, s);
        k::bias_backward(model.g(FCB, l, 4 * C), acts.bias_scratch.data(), acts.fch_gelu.data(), 4 * C, N, 4 * C, s);
        k::layernorm_backward(dx, model.g(LN2W, l, C), model.g(LN2B, l, C), acts.ln_scratch.data(), acts.dnorm.data(),
                              a.resid_mid.data(), a.mean2.data(), a.rstd2.data(), model.p(LN2W, l, C), paths.ln2_fixed[l], N, C, s);
        // attention branch
        k::dropout_backward(acts.dbranch.data(), dx, key, l, DROPOUT_ATTENTION_RESIDUAL, NC, s);
        k::matmul_backward_input(mm, acts.datty.data(), acts.dbranch.data(), C, model.p(ATTPROJW, l, CC), N, C, C, false, s);
        k::matmul_backward_weight(mm, model.g(ATTPROJW, l, CC), acts.dbranch.data(), C, a.atty.data(), N, C, C, s);
        k::bias_backward(model.g(ATTPROJB, l, C), acts.bias_scratch.data(), acts.dbranch.data(), C, N, C, s);
        attention_backward(mm, acts, acts.dqkv.data(), acts.datty.data(), a.atty.data(), a.qkv.data(), a.lse.data(), key, l,
                           C, NH, s);
        T* qkvw = model.p(QKVW, l, 3 * CC);
        float* dqkvw = model.g(QKVW, l, 3 * CC);
        k::bias_backward(model.g(QKVB, l, 3 * C), acts.bias_scratch.data(), acts.dqkv.data(), 3 * C, N, 3 * C, s);
        k::matmul_backward_input(mm, acts.dnorm.data(), acts.dqkv.data(), 3 * C, qkvw, N, C, 2 * C, false, s);
        k::matmul_backward_weight(mm, dqkvw, acts.dqkv.data(), 3 * C, a.ln1_qk.data(), N, C, 2 * C, s);
        const bool qk_fixed = paths.ln1qk_fixed[l], v_fixed = paths.ln1v_fixed[l];
        if (a.split)  // two normalised inputs: each path's gradient goes through its own mode
            k::layernorm_backward(dx, model.g(LN1W, l, C), model.g(LN1B, l, C), acts.ln_scratch.data(), acts.dnorm.data(),
                                  a.resid.data(), a.mean1.data(), a.rstd_qk.data(), model.p(LN1W, l, C), qk_fixed, N, C, s);
        const T* xv = a.split ? a.ln1_v.data() : a.ln1_qk.data();
        k::matmul_backward_input(mm, acts.dnorm.data(), acts.dqkv.data() + 2 * C, 3 * C, qkvw + 2 * CC, N, C, C, !a.split, s);
        k::matmul_backward_weight(mm, dqkvw + 2 * CC, acts.dqkv.data() + 2 * C, 3 * C, xv, N, C, C, s);
        k::layernorm_backward(dx, model.g(LN1W, l, C), model.g(LN1B, l, C), acts.ln_scratch.data(), acts.dnorm.data(),
                              a.resid.data(), a.mean1.data(), a.split ? a.rstd_v.data() : a.rstd_qk.data(),
                              model.p(LN1W, l, C), a.split ? v_fixed : qk_fixed, N, C, s);
    }
    k::encoder_backward(model.g(WTE), model.g(WPE), dx, acts.bucket_token.data(), acts.bucket_start.data(),
                        acts.bucket_positions.data(), (int)buckets.token.size(), key, B, Tn, C, s);
}

}  // namespace lnfree
