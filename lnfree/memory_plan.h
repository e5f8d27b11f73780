// How much device memory each process of a run needs (method.md 6.1 sizes; the buffers of lnfree/gpt2_device.cuh),
// computed on the host without loading weights: parameters (compute copy + float32 master), gradients, AdamW
// moments, and the activations of one micro-batch, so the trainer can print the plan and the largest micro-batch
// that fits. With P processes (ZeRO-1) each holds the whole compute copy and gradients but 1/P of the master
// weights and moments.
#pragma once
#include <cstddef>

#include "lnfree/attention_kernels.h"
#include "lnfree/model.h"
#include "lnfree/process_group.h"

namespace lnfree {

struct MemoryPlan {
    size_t parameters = 0, gradients = 0, optimizer = 0, activations_per_sequence = 0, fixed_scratch = 0;
    size_t total(int micro_batch) const {
        return parameters + gradients + optimizer + fixed_scratch + activations_per_sequence * (size_t)micro_batch;
    }
    // the largest micro-batch whose total fits in `bytes` (0 if none)
    int max_micro_batch(size_t bytes) const {
        const size_t fixed = parameters + gradients + optimizer + fixed_scratch;
        return bytes <= fixed || activations_per_sequence == 0 ? 0 : (int)((bytes - fixed) / activations_per_sequence);
    }
};

// compute_bytes: 2 for bf16 activations and weight copy, 4 for the float32 build
inline MemoryPlan memory_plan(const GPT2Config& c, int T, size_t compute_bytes, int processes = 1,
                              AttentionKernels attention_kernels = AttentionKernels::fused) {
    size_t n = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) n += param_numel(c, i);
    const size_t P = padded_length(n, processes), shard = P / processes;
    MemoryPlan m;
    m.parameters = P * compute_bytes + shard * 4;
    m.gradients = P * 4;
    m.optimizer = shard * 8;
    const size_t C = c.C, L = c.L, NH = c.NH, Vp = c.Vp, t = T, X = compute_bytes;
    // per layer and token: resid, resid_mid (float); ln1_qk, ln1_v, qkv (3), atty, ln2, fch (4) in X; ~12 float stats
    const size_t per_layer_token = 2 * 4 * C + (1 + 1 + 3 + 1 + 1 + 4) * C * X + 12 * 4 + NH * 4;
    // final: resid, dx (float); lnf, logits, and the shared scratch (branch, fch_gelu, dnorm, dbranch, dfch, datty, dqkv)
    const size_t final_token = 2 * 4 * C + C * X + Vp * X + (1 + 4 + 1 + 1 + 4 + 1 + 3) * C * X + 16 * 4;
    // the attention's scratch: the fused kernels' D; the product-based kernels' scores and probabilities in X
    // (kernels/attention.cuh); cuDNN's deterministic backward's workspace, dP in bf16 (kernels/cudnn_attention.cpp)
    const size_t scores_ld = (t + 7) / 8 * 8;
    const size_t attention = attention_kernels == AttentionKernels::products ? NH * t * (scores_ld * 2 * X + 4)
                             : attention_kernels == AttentionKernels::cudnn  ? NH * t * t * 2
                                                                             : NH * t * 4;
    m.activations_per_sequence = t * (L * per_layer_token + final_token) + attention;
    // the CUDA context, cuBLASLt's kernels and workspace, reduction scratch: an H100 measured 0.5 GB (small) to
    // 1.2 GB (XL) above the rest of this plan (nvidia-smi's peak, dev/gpu_check.sh)
    m.fixed_scratch = (size_t)1200 << 20;
    return m;
}

}  // namespace lnfree
