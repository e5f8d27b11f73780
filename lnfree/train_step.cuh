// One optimizer step of a run on the device, for one process or P of them (ZeRO-1): the micro-batches of
// lnfree/gpt2_device.cuh, the gradients' reduce-scatter, the global norm, AdamW on this process's shard and the
// all-gather of the compute copy. The trainer and the tests call these same functions.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernels/adamw.cuh"
#include "lnfree/error.h"
#include "lnfree/gpt2_device.cuh"
#include "lnfree/process_group.h"
#include "lnfree/recipe.h"

namespace lnfree {

// Fills idx and targets (B*T, host) for global micro-batch `micro` (of the recipe's grad_accum) of optimizer step
// `step`.
using BatchSource = std::function<void(int step, int micro, int* idx, int* targets)>;

struct TrainStepResult {
    double ce = 0.0, aux = 0.0;  // means over the step's micro-batches (aux unweighted)
    double lr = 0.0, grad_norm = 0.0;
    std::vector<std::string> switched;
    bool skipped = false;  // the loss or the gradient norm was not finite: nothing of the step was applied
};

// A test's way to make a step's gradient non-finite (the trainer reads LNFREE_TEST_NONFINITE_STEPS): every
// process poisons its first gradient before the norm, so the real guard below sees it.
inline bool poisoned_step(const std::vector<int>& steps, int step) {
    return std::find(steps.begin(), steps.end(), step) != steps.end();
}

// AdamW over this process's shard of the parameters (all of them in a single process), clipping folded in, then
// the shards gathered back into every process's compute copy. model.grad_norm must hold the global gradient norm
// and the shard of model.grads the summed gradients.
template <typename T>
void gpt2_device_optimizer_step(DeviceGPT2<T>& model, const Recipe& r, double lr, uint64_t seed, ProcessGroup& group,
                                cudaStream_t s) {
    model.adam_t++;
    const ShardRange& shard = model.shard;
    const std::array<bool, NUM_PARAM_TENSORS> decay = decay_mask(r);
    const bool stochastic = r.stochastic_rounding && sizeof(T) == 2;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const size_t first = std::max(shard.first, model.offset[i]);
        const size_t last = std::min(shard.last, model.offset[i] + param_numel(model.cfg, i));
        if (first >= last) continue;
        kernels::AdamWStep a{(float)lr, (float)r.beta1, (float)r.beta2, (float)r.eps,
                             decay[i] ? (float)r.weight_decay : 0.0f, (float)r.clip, model.adam_t, stochastic, seed,
                             (uint32_t)i, first - model.offset[i]};
        const size_t local = first - shard.first;  // master, m and v hold the shard only
        kernels::adamw(model.params.data() + first, model.master.data() + local, model.m.data() + local,
                       model.v.data() + local, model.grads.data() + first, model.grad_norm.data(), a, last - first, s);
    }
    group.all_gather(model.params.data(), sizeof(T), model.padded, s);
}

// LNFREE_TEST_NONFINITE_STEPS="5,6": the steps whose gradient the tests make non-finite (0-based; lnfree/train_step.cuh)
inline std::vector<int> test_nonfinite_steps() {
    std::vector<int> steps;
    const char* list = std::getenv("LNFREE_TEST_NONFINITE_STEPS");
    for (std::string rest = list ? list : ""; !rest.empty();) {
        const size_t comma = rest.find(',');
        try {
            steps.push_back(std::stoi(rest.substr(0, comma)));
        } catch (const std::exception&) {
            throw Error("LNFREE_TEST_NONFINITE_STEPS=" + std::string(list) + ": give step numbers separated by commas");
        }
        rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    }
    return steps;
}

// "" when each of `processes` runs a whole number of the recipe's micro-batches, else the error line, with the
// micro-batches that would divide the total.
inline std::string split_error(const Recipe& r, int processes) {
    if (r.grad_accum % processes == 0) return "";
    const int total = r.micro_batch * r.grad_accum;
    std::string fits;
    for (int b = r.micro_batch; b >= 1 && fits.size() < 24; b--)
        if (total % (b * processes) == 0) fits += (fits.empty() ? "" : ", ") + std::to_string(b);
    const std::string head = "--total-batch " + std::to_string(total) + " is not a multiple of --micro-batch " +
                             std::to_string(r.micro_batch) + " x " + std::to_string(processes) + " processes; ";
    if (fits.empty()) return head + "use a --total-batch that is a multiple of " + std::to_string(processes);
    return head + "micro-batches that divide it: " + fits;
}

// The recipe's grad_accum micro-batches split over the processes: each runs grad_accum / P of them.
inline int micro_batches_per_process(const Recipe& r, int processes) {
    if (const std::string e = split_error(r, processes); !e.empty()) throw Error(e);
    return r.grad_accum / processes;
}

// One optimizer step of a run, as ref::train does it (a step whose loss or gradient norm is not finite is not
// applied: weights, moments, the update count and the sigma estimator's state stay as they were; the step still
// counts, so the data, dropout masks, learning rate and removal events stay on the recipe's timeline): the removal events due at `step`, the recipe's micro-batches
// (each gradient scaled by 1/grad_accum), the gradients summed over the processes into each one's shard, the global
// norm, and AdamW with clipping folded in. Process p's micro-batch m is the step's global micro-batch m * P + p
// (its data and its dropout masks), so P processes of A / P micro-batches run what one process of A does; the
// losses are added in global micro-batch order, as one process adds them. The trainer and the tests call this.
template <typename T>
TrainStepResult gpt2_device_train_step(DeviceGPT2<T>& model, DeviceActivations<T>& acts, kernels::MatmulContext& mm,
                                       LayerNormPaths& paths, const Recipe& r, uint64_t seed, int eot, int step,
                                       const BatchSource& next_batch, ProcessGroup& group, cudaStream_t s,
                                       const std::vector<int>& poison_steps = {}) {
    TrainStepResult out;
    const int P = group.size(), local = micro_batches_per_process(r, P);
    out.switched = apply_removal_events(r.events, step, paths);
    const size_t sigma_bytes = model.sigma.size() * sizeof(double);  // the estimator's state, restored if skipped
    device::copy(model.sigma_ema_saved.data(), model.sigma_ema.data(), sigma_bytes, s);
    device::copy(model.sigma_saved.data(), model.sigma.data(), sigma_bytes, s);
    const SigmaEstimator estimator{r.momentum_ln1, r.momentum_ln2, r.momentum_lnf, r.ln1_calls};
    std::vector<int> idx(acts.N), targets(acts.N);
    device::zero(model.grads.data(), model.padded * sizeof(float), s);
    // (ce, aux) of this process's micro-batches, gathered on the device and read once, after the last one
    if (acts.step_losses.size() < 2 * (size_t)local) acts.step_losses = device::Buffer<float>(2 * (size_t)local);
    for (int micro = 0; micro < local; micro++) {
        const int global = micro * P + group.rank();
        next_batch(step, global, idx.data(), targets.data());
        DeviceMicroBatch mb;
        mb.dropout = DropoutKey{(float)r.dropout, seed, (uint32_t)step, (uint32_t)global};
        mb.eot = eot;
        mb.ignore_eot = r.ignore_eot_targets;
        mb.w_aux = r.w_aux;
        mb.loss_scale = 1.0 / r.grad_accum;
        mb.estimator = &estimator;
        mb.group = &group;
        gpt2_device_step(model, acts, mm, paths, idx.data(), targets.data(), mb, s);
        device::copy(acts.step_losses.data() + 2 * micro, acts.ce.data(), sizeof(float), s);
        device::copy(acts.step_losses.data() + 2 * micro + 1, acts.aux.data(), sizeof(float), s);
    }
    const std::vector<float> device_losses = acts.step_losses.to_host();
    const std::vector<double> losses(device_losses.begin(), device_losses.begin() + 2 * local);
    std::vector<double> all(losses.size() * P);  // rank p's micro m at [p * local + m]: global micro m * P + p
    group.all_gather_host(losses.data(), losses.size(), all.data());
    for (int g = 0; g < r.grad_accum; g++) {
        const size_t at = 2 * ((size_t)(g % P) * local + g / P);
        out.ce += all[at] / r.grad_accum;
        out.aux += all[at + 1] / r.grad_accum;
    }
    group.reduce_scatter_sum(model.grads.data(), model.padded, s);
    if (poisoned_step(poison_steps, step)) {
        const float nan = NAN;
        device::to_device(model.grads.data() + model.shard.first, &nan, sizeof(float));
    }
    out.lr = r.lr.at(step);
    kernels::sum_squares(model.grad_sum_squares.data(), model.norm_scratch.data(), model.grads.data() + model.shard.first,
                         model.shard.size(), s);
    group.all_reduce_sum(model.grad_sum_squares.data(), 1, s);
    kernels::norm_from_sum_squares(model.grad_norm.data(), model.grad_sum_squares.data(), s);
    // every process has the same losses and norm, so all decide alike
    out.grad_norm = model.grad_norm.to_host()[0];
    out.skipped = !std::isfinite(out.ce) || !std::isfinite(out.aux) || !std::isfinite(out.grad_norm);
    if (out.skipped) {
        device::copy(model.sigma_ema.data(), model.sigma_ema_saved.data(), sigma_bytes, s);
        device::copy(model.sigma.data(), model.sigma_saved.data(), sigma_bytes, s);
        return out;
    }
    gpt2_device_optimizer_step(model, r, out.lr, seed, group, s);
    return out;
}

}  // namespace lnfree
