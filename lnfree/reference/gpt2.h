// GPT-2 forward and backward for one micro-batch, composed from the ops beside this file, with every LayerNorm
// path real or fixed and ln_1 split into its QK and V paths. Float32 or float64 (for finite differences).
#pragma once
#include <vector>

#include "lnfree/model.h"
#include "lnfree/philox.h"
#include "lnfree/reference/attention.h"
#include "lnfree/reference/dropout.h"
#include "lnfree/reference/encoder.h"
#include "lnfree/reference/gelu.h"
#include "lnfree/reference/layernorm.h"
#include "lnfree/reference/losses.h"
#include "lnfree/reference/matmul.h"
#include "lnfree/sigma_estimator.h"

namespace lnfree::ref {

// What one micro-batch needs beyond the model: dropout key, the loss rules and the aux weight.
struct MicroBatchOptions {
    DropoutKey dropout;
    int eot = -1;               // end-of-text id: the aux loss's sinks, and ignored targets when ignore_eot
    bool ignore_eot = true;     // training: end-of-text targets are not predicted (method.md 7.1)
    double w_aux = 0.0;         // weight of the auxiliary loss in the training loss
    // The aux target gets no gradient; finite differences hold it at this value instead of re-measuring it.
    const double* frozen_aux_target = nullptr;
};

// Saved for the backward. One LayerNorm application: its output and per-row mean and 1/scale.
template <typename real>
struct NormActs {
    std::vector<real> out, mean, rstd;
    double sigma = 0.0;  // > 0: the fixed mode with this sigma; 0: real
    void resize(size_t N, size_t C) { out.resize(N * C); mean.resize(N); rstd.resize(N); }
};

template <typename real>
struct LayerActs {
    std::vector<real> resid_pre;   // (B,T,C) input of the block
    NormActs<real> ln1_qk, ln1_v;  // ln1_v is unused (same as ln1_qk) when both paths are in the same mode
    bool ln1_split = false;
    std::vector<real> qkv;         // (B,T,3C)
    std::vector<real> att;         // (B,NH,T,T) probabilities before dropout
    std::vector<real> atty;        // (B,T,C) attention output before c_proj
    std::vector<real> resid_mid;   // (B,T,C)
    NormActs<real> ln2;
    std::vector<real> fch, fch_gelu;  // (B,T,4C)
};

template <typename real>
struct Activations {
    int B = 0, T = 0;
    std::vector<LayerActs<real>> layers;
    std::vector<real> resid_final;   // (B,T,C) the ln_f input h, read by the aux loss
    NormActs<real> lnf;
    std::vector<real> logits;        // (B,T,Vp)
    std::vector<real> losses;        // (B,T) per-token cross-entropy
    std::vector<double> aux_std;     // (B,T) per-position std of h
    double aux_target = 0.0;
};

struct ForwardResult {
    double ce = 0.0;              // mean cross-entropy over counted targets
    int counted = 0;
    double aux = 0.0;             // unweighted auxiliary loss
    double loss = 0.0;            // ce + w_aux * aux
    std::vector<double> stats;    // (2L+1) the estimator's statistic per module
};

// Applies one LayerNorm path; sigma > 0 selects the fixed mode.
template <typename real>
void norm_forward(NormActs<real>& a, const real* x, const real* w, const real* b, double sigma, int N, int C) {
    a.resize(N, C);
    a.sigma = sigma;
    layernorm_forward(a.out.data(), a.mean.data(), a.rstd.data(), x, w, b, sigma, N, C);
}

// Forward of one micro-batch. `estimator` null: sigma is read, not updated (evaluation, finite differences).
// targets may be null (no cross-entropy).
template <typename real>
ForwardResult gpt2_forward(Activations<real>& acts, const ParameterSet<real>& params, const LayerNormPaths& paths,
                           SigmaState& sigma, const SigmaEstimator* estimator, const int* idx, const int* targets,
                           int B, int T, const MicroBatchOptions& opt) {
    const GPT2Config& cfg = params.config;
    const int L = cfg.L, C = cfg.C, NH = cfg.NH, N = B * T;
    const size_t NC = (size_t)N * C;
    ForwardResult r;
    r.stats.assign(2 * L + 1, 0.0);
    acts.B = B;
    acts.T = T;
    acts.layers.resize(L);

    std::vector<real> x(NC);  // the residual stream
    encoder_forward(x.data(), idx, params.tensor(WTE), params.tensor(WPE), B, T, C);
    dropout_apply(x.data(), NC, opt.dropout, 0, DROPOUT_EMBEDDING);

    for (int l = 0; l < L; l++) {
        LayerActs<real>& a = acts.layers[l];
        a.resid_pre = x;
        const real* ln1w = params.tensor(LN1W) + (size_t)l * C;
        const real* ln1b = params.tensor(LN1B) + (size_t)l * C;
        const real* qkvw = params.tensor(QKVW) + (size_t)l * 3 * C * C;
        const real* qkvb = params.tensor(QKVB) + (size_t)l * 3 * C;

        // ln_1, split: QK and V paths share w, b and sigma but may differ in mode
        double stat = layernorm_statistic(x.data(), N, C);
        r.stats[ln1_module(l)] = stat;
        double sigma_qk = sigma.sigma[ln1_module(l)], sigma_v = sigma_qk;
        if (estimator) estimator->ln1(sigma, l, stat, paths.ln1qk_fixed[l], paths.ln1v_fixed[l], &sigma_qk, &sigma_v);
        double s_qk = paths.ln1qk_fixed[l] ? sigma_qk : 0.0, s_v = paths.ln1v_fixed[l] ? sigma_v : 0.0;
        norm_forward(a.ln1_qk, x.data(), ln1w, ln1b, s_qk, N, C);
        a.ln1_split = s_qk != s_v;
        if (a.ln1_split) norm_forward(a.ln1_v, x.data(), ln1w, ln1b, s_v, N, C);
        const real* xv = a.ln1_split ? a.ln1_v.out.data() : a.ln1_qk.out.data();

        a.qkv.resize((size_t)N * 3 * C);
        matmul_forward(a.qkv.data(), 3 * C, a.ln1_qk.out.data(), qkvw, qkvb, N, C, 2 * C);
        matmul_forward(a.qkv.data() + 2 * C, 3 * C, xv, qkvw + (size_t)2 * C * C, qkvb + 2 * C, N, C, C);

        a.att.resize((size_t)B * NH * T * T);
        a.atty.resize(NC);
        attention_forward(a.atty.data(), a.att.data(), a.qkv.data(), opt.dropout, l, B, T, C, NH);
        std::vector<real> branch(NC);
        matmul_forward(branch.data(), C, a.atty.data(), params.tensor(ATTPROJW) + (size_t)l * C * C,
                       params.tensor(ATTPROJB) + (size_t)l * C, N, C, C);
        dropout_apply(branch.data(), NC, opt.dropout, l, DROPOUT_ATTENTION_RESIDUAL);
        for (size_t i = 0; i < NC; i++) x[i] += branch[i];
        a.resid_mid = x;

        // ln_2 and the MLP
        stat = layernorm_statistic(x.data(), N, C);
        r.stats[ln2_module(L, l)] = stat;
        double s2 = sigma.sigma[ln2_module(L, l)];
        if (estimator) s2 = SigmaEstimator::call(sigma, ln2_module(L, l), estimator->momentum_ln2, stat, paths.ln2_fixed[l]);
        norm_forward(a.ln2, x.data(), params.tensor(LN2W) + (size_t)l * C, params.tensor(LN2B) + (size_t)l * C,
                     paths.ln2_fixed[l] ? s2 : 0.0, N, C);
        a.fch.resize(NC * 4);
        a.fch_gelu.resize(NC * 4);
        matmul_forward(a.fch.data(), 4 * C, a.ln2.out.data(), params.tensor(FCW) + (size_t)l * 4 * C * C,
                       params.tensor(FCB) + (size_t)l * 4 * C, N, C, 4 * C);
        gelu_forward(a.fch_gelu.data(), a.fch.data(), NC * 4);
        matmul_forward(branch.data(), C, a.fch_gelu.data(), params.tensor(FCPROJW) + (size_t)l * C * 4 * C,
                       params.tensor(FCPROJB) + (size_t)l * C, N, 4 * C, C);
        dropout_apply(branch.data(), NC, opt.dropout, l, DROPOUT_MLP_RESIDUAL);
        for (size_t i = 0; i < NC; i++) x[i] += branch[i];
    }

    // the aux loss reads h = the ln_f input; ln_f and the tied unembedding give the logits
    acts.resid_final = x;
    AuxLossResult aux = aux_loss_forward(acts.aux_std, x.data(), idx, opt.eot, B, T, C, opt.frozen_aux_target);
    acts.aux_target = aux.target;
    r.aux = aux.loss;
    double stat = layernorm_statistic(x.data(), N, C);
    r.stats[lnf_module(L)] = stat;
    double sf = sigma.sigma[lnf_module(L)];
    if (estimator) sf = SigmaEstimator::call(sigma, lnf_module(L), estimator->momentum_lnf, stat, paths.lnf_fixed);
    norm_forward(acts.lnf, x.data(), params.tensor(LNFW), params.tensor(LNFB), paths.lnf_fixed ? sf : 0.0, N, C);
    acts.logits.resize((size_t)N * cfg.Vp);
    matmul_forward(acts.logits.data(), cfg.Vp, acts.lnf.out.data(), params.tensor(WTE), (const real*)nullptr, N, C,
                   cfg.Vp);
    if (targets) {
        acts.losses.resize(N);
        CrossEntropyResult ce = crossentropy_forward(acts.losses.data(), acts.logits.data(), targets,
                                                     opt.ignore_eot ? opt.eot : -1, N, cfg.V, cfg.Vp);
        r.ce = ce.mean;
        r.counted = ce.counted;
    }
    r.loss = r.ce + opt.w_aux * r.aux;
    return r;
}

// Backward of one LayerNorm path into dx, dw, db.
template <typename real>
void norm_backward(real* dx, real* dw, real* db, const real* dout, const real* x, const NormActs<real>& a,
                   const real* w, int N, int C) {
    layernorm_backward(dx, dw, db, dout, x, a.mean.data(), a.rstd.data(), w, a.sigma > 0, N, C);
}

// grads += d(loss_scale * (ce + w_aux * aux)) / d(params), for the micro-batch of the last gpt2_forward.
template <typename real>
void gpt2_backward(ParameterSet<real>& grads, const ParameterSet<real>& params, const Activations<real>& acts,
                   const int* idx, const int* targets, const MicroBatchOptions& opt, const ForwardResult& fwd,
                   double loss_scale) {
    const GPT2Config& cfg = params.config;
    const int L = cfg.L, C = cfg.C, NH = cfg.NH, B = acts.B, T = acts.T, N = B * T;
    const size_t NC = (size_t)N * C;

    // cross-entropy -> logits -> ln_f and the tied unembedding
    std::vector<real> dlogits((size_t)N * cfg.Vp, real(0));
    if (targets && fwd.counted > 0)
        crossentropy_backward(dlogits.data(), acts.logits.data(), targets, opt.ignore_eot ? opt.eot : -1,
                              loss_scale / fwd.counted, N, cfg.V, cfg.Vp);
    std::vector<real> dlnf(NC, real(0)), dx(NC, real(0));
    matmul_backward(dlnf.data(), grads.tensor(WTE), (real*)nullptr, dlogits.data(), cfg.Vp, acts.lnf.out.data(),
                    params.tensor(WTE), N, C, cfg.Vp);
    norm_backward(dx.data(), grads.tensor(LNFW), grads.tensor(LNFB), dlnf.data(), acts.resid_final.data(), acts.lnf,
                  params.tensor(LNFW), N, C);
    aux_loss_backward(dx.data(), acts.resid_final.data(), acts.aux_std, acts.aux_target, loss_scale * opt.w_aux, N, C);

    std::vector<real> dbranch(NC), dnorm(NC), dqkv((size_t)N * 3 * C), datty(NC), dfch(NC * 4), dfch_gelu(NC * 4);
    for (int l = L - 1; l >= 0; l--) {
        const LayerActs<real>& a = acts.layers[l];
        // MLP branch: x_out = resid_mid + dropout(fcproj(gelu(fc(ln2(resid_mid)))))
        dbranch = dx;
        dropout_apply(dbranch.data(), NC, opt.dropout, l, DROPOUT_MLP_RESIDUAL);
        std::fill(dfch_gelu.begin(), dfch_gelu.end(), real(0));
        matmul_backward(dfch_gelu.data(), grads.tensor(FCPROJW) + (size_t)l * C * 4 * C,
                        grads.tensor(FCPROJB) + (size_t)l * C, dbranch.data(), C, a.fch_gelu.data(),
                        params.tensor(FCPROJW) + (size_t)l * C * 4 * C, N, 4 * C, C);
        std::fill(dfch.begin(), dfch.end(), real(0));
        gelu_backward(dfch.data(), a.fch.data(), dfch_gelu.data(), NC * 4);
        std::fill(dnorm.begin(), dnorm.end(), real(0));
        matmul_backward(dnorm.data(), grads.tensor(FCW) + (size_t)l * 4 * C * C, grads.tensor(FCB) + (size_t)l * 4 * C,
                        dfch.data(), 4 * C, a.ln2.out.data(), params.tensor(FCW) + (size_t)l * 4 * C * C, N, C, 4 * C);
        norm_backward(dx.data(), grads.tensor(LN2W) + (size_t)l * C, grads.tensor(LN2B) + (size_t)l * C, dnorm.data(),
                      a.resid_mid.data(), a.ln2, params.tensor(LN2W) + (size_t)l * C, N, C);

        // attention branch: resid_mid = resid_pre + dropout(attproj(attention(qkv(ln1_qk, ln1_v))))
        dbranch = dx;
        dropout_apply(dbranch.data(), NC, opt.dropout, l, DROPOUT_ATTENTION_RESIDUAL);
        std::fill(datty.begin(), datty.end(), real(0));
        matmul_backward(datty.data(), grads.tensor(ATTPROJW) + (size_t)l * C * C, grads.tensor(ATTPROJB) + (size_t)l * C,
                        dbranch.data(), C, a.atty.data(), params.tensor(ATTPROJW) + (size_t)l * C * C, N, C, C);
        std::fill(dqkv.begin(), dqkv.end(), real(0));
        attention_backward(dqkv.data(), datty.data(), a.qkv.data(), a.att.data(), opt.dropout, l, B, T, C, NH);

        const real* qkvw = params.tensor(QKVW) + (size_t)l * 3 * C * C;
        real* dqkvw = grads.tensor(QKVW) + (size_t)l * 3 * C * C;
        real* dqkvb = grads.tensor(QKVB) + (size_t)l * 3 * C;
        const real* ln1w = params.tensor(LN1W) + (size_t)l * C;
        real* dln1w = grads.tensor(LN1W) + (size_t)l * C;
        real* dln1b = grads.tensor(LN1B) + (size_t)l * C;
        const NormActs<real>& ln1_v = a.ln1_split ? a.ln1_v : a.ln1_qk;
        std::fill(dnorm.begin(), dnorm.end(), real(0));
        matmul_backward(dnorm.data(), dqkvw, dqkvb, dqkv.data(), 3 * C, a.ln1_qk.out.data(), qkvw, N, C, 2 * C);
        if (a.ln1_split) {  // two normalised inputs: backpropagate each path through its own mode
            norm_backward(dx.data(), dln1w, dln1b, dnorm.data(), a.resid_pre.data(), a.ln1_qk, ln1w, N, C);
            std::fill(dnorm.begin(), dnorm.end(), real(0));
        }
        matmul_backward(dnorm.data(), dqkvw + (size_t)2 * C * C, dqkvb + 2 * C, dqkv.data() + 2 * C, 3 * C,
                        ln1_v.out.data(), qkvw + (size_t)2 * C * C, N, C, C);
        norm_backward(dx.data(), dln1w, dln1b, dnorm.data(), a.resid_pre.data(), ln1_v, ln1w, N, C);
    }

    // embedding dropout, then the embeddings
    dropout_apply(dx.data(), NC, opt.dropout, 0, DROPOUT_EMBEDDING);
    encoder_backward(grads.tensor(WTE), grads.tensor(WPE), dx.data(), idx, B, T, C);
}

}  // namespace lnfree::ref
