// Causal self-attention through cuDNN's fused scaled dot-product attention (SDPA), the alternative to
// kernels/flash_attention.cuh, built with `make train USE_CUDNN=1` (kernels/cudnn_attention.cpp; doc/kernels.md).
// Declarations only, in plain C++ types: the cuDNN frontend's headers take about a minute to compile, so they stay in
// that one translation unit. Same conventions as the project's attention: bf16 qkv (B,T,3C) holding q | k | v, head h
// at channels [h*hd, (h+1)*hd); out (B,T,C); scale 1/sqrt(hd); every pointer is device memory.
// Dropout on the probabilities draws from cuDNN's own Philox stream, keyed by (seed, offset): its masks are not the
// project's (lnfree/philox.h), so a run with dropout is not comparable element by element with the other kernels.
// The backward must get the forward's seed and offset. The calls share one cuDNN handle and one workspace per
// process: issue them from one host thread, on one stream at a time.
#pragma once
#include <cstdint>

#include <cuda_runtime_api.h>

namespace lnfree::kernels {

// out (B,T,C) from qkv (B,T,3C); stats (B,NH,T): each row's log-sum-exp of the scaled scores, kept for the backward.
void cudnn_attention_forward(void* out, float* stats, const void* qkv, float dropout, uint64_t seed, uint64_t offset,
                             int B, int T, int C, int NH, cudaStream_t stream);

// dqkv (B,T,3C) = the gradient of out w.r.t. qkv (written, not accumulated), from dout (B,T,C) and the forward's
// out, qkv and stats.
void cudnn_attention_backward(void* dqkv, const void* dout, const void* out, const void* qkv, const float* stats,
                              float dropout, uint64_t seed, uint64_t offset, int B, int T, int C, int NH,
                              cudaStream_t stream);

}  // namespace lnfree::kernels
