// Compile gate: nvcc builds every kernel of kernels/ in both precisions for the target GPUs, and ptxas reports
// each kernel's registers and spills (dev/check_kernels.sh fails on any spill). Nothing here runs.
#include "kernels/adamw.cuh"
#include "kernels/attention.cuh"
#include "kernels/aux_loss.cuh"
#include "kernels/classifier.cuh"
#include "kernels/distribution.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/encoder.cuh"
#include "kernels/flash_attention.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/matmul.cuh"
#include "kernels/sigma.cuh"

namespace lnfree::kernels {

template <typename T>
void instantiate_all(MatmulContext& ctx) {
    T* t = nullptr;
    float* f = nullptr;
    int* i = nullptr;
    double* d = nullptr;
    const DropoutKey key{};
    layernorm_stats(f, f, f, 1, 1, nullptr);
    layernorm_normalize<T>(t, f, f, f, f, t, t, f, 1, 1, nullptr);
    layernorm_backward<T>(f, f, f, f, t, f, f, f, t, false, 1, 1, nullptr);
    (void)&attention_forward<T>;  // their scratch cannot be faked: taking the address instantiates them
    (void)&attention_backward<T>;
    gelu_forward<T>(t, t, 1, nullptr);
    gelu_backward<T>(t, t, t, 1, nullptr);
    residual_dropout_add<T>(f, t, key, 0, 0, 1, nullptr);
    dropout_backward<T>(t, f, key, 0, 0, 1, nullptr);
    encoder_forward<T>(f, i, t, t, key, 1, 1, 1, nullptr);
    encoder_backward(f, f, f, i, i, i, 1, key, 1, 1, 1, nullptr);
    classifier<T>(t, f, i, -1, 0.0f, 1, 1, 1, nullptr);
    distribution_stats<T>(f, f, i, t, 1, 1, 1, nullptr);
    divergence<T>(f, f, f, t, t, 1, 1, 1, nullptr);
    aux_loss_forward(f, f, i, f, i, 0, 1, 1, nullptr);
    aux_loss_backward(f, f, f, f, f, 0.0f, 1, 1, nullptr);
    global_norm(f, f, f, 1, nullptr);
    adamw<T>(t, f, f, f, f, f, AdamWStep{}, 1, nullptr);
    sigma_calls(d, d, f, f, 1, 0, 0.9, 1, 0u, nullptr);
    sum_squares(d, f, f, 1, nullptr);
    norm_from_sum_squares(f, d, nullptr);
    matmul_forward<T>(ctx, t, 1, t, t, t, t, 1, 1, 1, nullptr);
    matmul_backward_input<T>(ctx, t, t, 1, t, 1, 1, 1, false, nullptr);
    matmul_backward_weight<T>(ctx, f, t, 1, t, 1, 1, 1, nullptr);
    bias_backward<T>(f, f, t, 1, 1, 1, nullptr);
}

// the fused attention is bf16 only; one instance per padded head size
void instantiate_flash_attention() {
    bf16* t = nullptr;
    float* f = nullptr;
    for (int hd : {16, 32, 64}) {
        flash_attention_forward(t, f, t, DropoutKey{}, 0, 1, 1, hd, 1, nullptr);
        flash_attention_backward(t, f, t, t, t, f, DropoutKey{}, 0, 1, 1, hd, 1, nullptr);
    }
}

template void instantiate_all<float>(MatmulContext&);
template void instantiate_all<bf16>(MatmulContext&);

}  // namespace lnfree::kernels
