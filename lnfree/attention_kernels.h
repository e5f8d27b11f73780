// Which attention kernels a run uses (--attention):
//  - fused: kernels/flash_attention.cuh, written here (bf16, head sizes up to 64), the GPU build's default;
//  - products: kernels/attention.cuh, cuBLASLt products around row kernels with the T x T scores in a scratch (the
//    float32 and CPU builds, where it is the faster of the two under the emulation);
//  - cudnn: cuDNN's fused attention (kernels/cudnn_attention.h, `make train USE_CUDNN=1`), with its own dropout
//    masks and a backward workspace of B NH T^2 bf16.
#pragma once

namespace lnfree {

enum class AttentionKernels { fused, products, cudnn };

}  // namespace lnfree
