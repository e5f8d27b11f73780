// The smallest complete LayerNorm-removal loop: per optimizer step, apply the removal events due at this step,
// accumulate gradients over the micro-batches (each scaled by 1/grad_accum), clip, and take an AdamW step.
// The trainer of train_gpt2_lnfree.cu does the same on the GPU; tests compare the two.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "lnfree/reference/adamw.h"
#include "lnfree/reference/gpt2.h"
#include "lnfree/schedule.h"

namespace lnfree::ref {

struct TrainOptions {
    int B = 1, T = 1, grad_accum = 1, steps = 0;
    LRSchedule lr;
    AdamWHyper adamw;
    std::array<bool, NUM_PARAM_TENSORS> decay{};  // per tensor
    double clip = 1.0;
    float dropout = 0.0f;
    uint64_t seed = 0;
    SigmaEstimator estimator;
    double w_aux = 0.0;
    int eot = -1;
    bool ignore_eot = true;
    std::vector<RemovalEvent> events;
};

struct StepRecord {
    double ce = 0.0, aux = 0.0;  // means over the step's micro-batches (aux unweighted)
    double lr = 0.0, grad_norm = 0.0;
    std::vector<double> sigma;   // (2L+1) after the step
    std::vector<std::string> switched;
};

// Fills idx (B,T) and targets (B,T) for micro-batch `micro` of step `step`.
using BatchSource = std::function<void(int step, int micro, int* idx, int* targets)>;

template <typename real>
std::vector<StepRecord> train(ParameterSet<real>& params, LayerNormPaths& paths, SigmaState& sigma,
                              const TrainOptions& opt, const BatchSource& next_batch) {
    ParameterSet<real> grads(params.config);
    AdamWState<real> adam(params.config);
    Activations<real> acts;
    std::vector<int> idx(opt.B * opt.T), targets(opt.B * opt.T);
    std::vector<StepRecord> records;

    for (int step = 0; step < opt.steps; step++) {
        StepRecord rec;
        rec.switched = apply_removal_events(opt.events, step, paths);
        grads.zero();
        for (int micro = 0; micro < opt.grad_accum; micro++) {
            next_batch(step, micro, idx.data(), targets.data());
            MicroBatchOptions mb;
            mb.dropout = DropoutKey{opt.dropout, opt.seed, (uint32_t)step, (uint32_t)micro};
            mb.eot = opt.eot;
            mb.ignore_eot = opt.ignore_eot;
            mb.w_aux = opt.w_aux;
            ForwardResult fwd = gpt2_forward(acts, params, paths, sigma, &opt.estimator, idx.data(), targets.data(),
                                             opt.B, opt.T, mb);
            gpt2_backward(grads, params, acts, idx.data(), targets.data(), mb, fwd, 1.0 / opt.grad_accum);
            rec.ce += fwd.ce / opt.grad_accum;
            rec.aux += fwd.aux / opt.grad_accum;
        }
        rec.grad_norm = global_grad_norm(grads);
        clip_gradients(grads, rec.grad_norm, opt.clip);
        rec.lr = opt.lr.at(step);
        adamw_step(params, grads, adam, rec.lr, opt.adamw, opt.decay);
        rec.sigma = sigma.sigma;
        records.push_back(rec);
    }
    return records;
}

}  // namespace lnfree::ref
