// Kernel lab: the two attentions, with attention-probability dropout p = 0.1 as in the recipe: the fused one of
// kernels/flash_attention.cuh (FlashAttention-2 style on mma.sync, no T x T matrix in memory) and the product-based
// one of kernels/attention.cuh (tensor-core products through cuBLASLt with the softmax, mask and dropout in row
// kernels between them; the backward recomputes the scores), against a naive forward on the fp32 CUDA cores (thread
// per query row, online softmax, K and V read from global memory). Run: build/cuda_lab/attention [--B 18 --T 1024
// --C 1600 --NH 25]. FLOPs are the products as executed: the product-based kernels run the full T x T square
// (forward 2 products, backward 5, each 2 B NH T^2 hd), the fused ones the causal half (forward 2 halves, backward
// 4 in the dk/dv kernel and 3 in the dq kernel). MB are the bytes as the launches read and write them, counting each
// input once for the fused kernels (their re-reads of k and v come from L2).
#include "dev/cuda/lab_common.cuh"
#include "kernels/attention.cuh"
#include "kernels/flash_attention.cuh"
#include "lnfree/reference/attention.h"

namespace k = lnfree::kernels;
using lab::Buffer;
using lab::bf16;
using lnfree::DropoutKey;

// ---- naive forward: one thread per query row, online softmax, K and V read from global memory -----------------

template <int HD, typename T>
__global__ void naive_attention_forward_kernel(T* out, float* lse, const T* qkv, DropoutKey key, uint32_t layer, int Tn,
                                               int C, int NH) {
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= Tn) return;
    const float scale = 1.0f / sqrtf((float)HD);
    float q[HD], o[HD];
    for (int d = 0; d < HD; d++) {
        q[d] = k::to_float(qkv[((size_t)b * Tn + t) * 3 * C + h * HD + d]) * scale;
        o[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int s = 0; s <= t; s++) {
        const T* kv = qkv + ((size_t)b * Tn + s) * 3 * C + h * HD;
        float score = 0.0f;
        for (int d = 0; d < HD; d++) score += q[d] * k::to_float(kv[C + d]);
        const float m_new = fmaxf(m, score), correction = expf(m - m_new), p = expf(score - m_new);
        const float kept = p * lnfree::dropout_scale(key, layer, lnfree::DROPOUT_ATTENTION_PROBS, (((uint64_t)bh) * Tn + t) * Tn + s);
        for (int d = 0; d < HD; d++) o[d] = o[d] * correction + kept * k::to_float(kv[2 * C + d]);
        l = l * correction + p;
        m = m_new;
    }
    for (int d = 0; d < HD; d++) out[((size_t)b * Tn + t) * C + h * HD + d] = k::from_float<T>(o[d] / l);
    lse[(size_t)bh * Tn + t] = m + logf(l);
}

void naive_attention_forward(bf16* out, float* lse, const bf16* qkv, const DropoutKey& key, uint32_t layer, int B, int Tn,
                             int C, int NH, cudaStream_t s) {
    const dim3 grid(k::ceil_div(Tn, 64), B * NH);
    auto launch = [&]<int HD>() {
        lab::launch_kernel(naive_attention_forward_kernel<HD, bf16>, grid, dim3(64), 0, s, out, lse, qkv, key, layer, Tn, C, NH);
    };
    switch (C / NH) {
        case 64: launch.template operator()<64>(); break;
        case 32: launch.template operator()<32>(); break;
        case 16: launch.template operator()<16>(); break;
        default: throw std::invalid_argument("naive attention: head dimension must be 16, 32 or 64");
    }
}

const DropoutKey kKey{0.1f, 1337, 7, 3};  // the recipe's dropout 0.1; step 7, micro-step 3
constexpr uint32_t kLayer = 5;

// ---- correctness on B = 1, T = min(T, 256) at the full width and head count ----------------------------------

void check_all(lab::Lab& lab) {
    const int B = 1, Tn = std::min(lab.opt.T, 256), C = lab.opt.C, NH = lab.opt.NH;
    lab.section("correctness on B 1, T " + std::to_string(Tn) + ", C " + std::to_string(C) + ", NH " + std::to_string(NH) +
                ", dropout 0.1 (bf16 outputs: tol 1e-2)");
    const size_t nqkv = (size_t)B * Tn * 3 * C, nout = (size_t)B * Tn * C, nrows = (size_t)B * NH * Tn;
    const std::vector<float> qkv = lab::bf16_values(lab::random_floats(nqkv, 1.0f, 11));
    const std::vector<float> dout = lab::bf16_values(lab::random_floats(nout, 1.0f, 12));
    std::vector<float> out_ref(nout), att_ref(nrows * Tn), dqkv_ref(nqkv, 0.0f);
    lnfree::ref::attention_forward(out_ref.data(), att_ref.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH);
    lnfree::ref::attention_backward(dqkv_ref.data(), dout.data(), qkv.data(), att_ref.data(), kKey, kLayer, B, Tn, C, NH);

    Buffer<bf16> qkv_d(lab::to_type<bf16>(qkv)), dout_d(lab::to_type<bf16>(dout)), out(nout), dqkv(nqkv);
    Buffer<float> lse(nrows);
    naive_attention_forward(out.data(), lse.data(), qkv_d.data(), kKey, kLayer, B, Tn, C, NH, lab.stream);
    lab.check("naive forward: out", lab::to_floats(out.to_host()), out_ref, 1e-2);
    const std::vector<float> lse_naive = lse.to_host();
    k::MatmulContext mm;
    k::AttentionScratch<bf16> scratch(B, Tn, NH);
    k::attention_forward(mm, scratch, out.data(), lse.data(), qkv_d.data(), kKey, kLayer, B, Tn, C, NH, lab.stream);
    lab.check("product-based forward: out", lab::to_floats(out.to_host()), out_ref, 1e-2);
    lab.check("product-based forward: lse vs naive forward's (scores in bf16)", lse.to_host(), lse_naive, 1e-3);
    k::attention_backward(mm, scratch, dqkv.data(), dout_d.data(), out.data(), qkv_d.data(), lse.data(), kKey, kLayer, B, Tn,
                          C, NH, lab.stream);
    lab.check("product-based backward: dqkv", lab::to_floats(dqkv.to_host()), dqkv_ref, 1e-2);
    if (!k::flash_attention_supports(C / NH)) return;
    Buffer<float> D(nrows);
    k::flash_attention_forward(out.data(), lse.data(), qkv_d.data(), kKey, kLayer, B, Tn, C, NH, lab.stream);
    lab.check("fused forward: out", lab::to_floats(out.to_host()), out_ref, 1e-2);
    lab.check("fused forward: lse vs naive forward's", lse.to_host(), lse_naive, 1e-3);
    k::flash_attention_backward(dqkv.data(), D.data(), dout_d.data(), out.data(), qkv_d.data(), lse.data(), kKey, kLayer, B,
                                Tn, C, NH, lab.stream);
    lab.check("fused backward: dqkv", lab::to_floats(dqkv.to_host()), dqkv_ref, 1e-2);
}

// ---- timing at the full shape -------------------------------------------------------------------------------

void bench_all(lab::Lab& lab) {
    const int B = lab.opt.B, Tn = lab.opt.T, C = lab.opt.C, NH = lab.opt.NH, hd = C / NH, ld = k::attention_scores_ld(Tn);
    const double N = (double)B * Tn, NC = N * C, R = (double)B * NH * Tn, RT = R * ld;
    lab.section("timing at B " + std::to_string(B) + ", T " + std::to_string(Tn) + ", C " + std::to_string(C) + ", NH " +
                std::to_string(NH) + ", dropout 0.1; scratch " +
                std::to_string(k::AttentionScratch<bf16>::bytes(B, Tn, NH) >> 20) + " MiB");
    Buffer<bf16> qkv((size_t)N * 3 * C), out((size_t)NC), dout((size_t)NC), dqkv((size_t)N * 3 * C);
    Buffer<float> lse((size_t)R);
    lab::fill(qkv, 0.0f, 1.0f, 11);
    lab::fill(dout, 0.0f, 1.0f, 12);
    const cudaStream_t s = lab.stream;
    k::MatmulContext mm;
    k::AttentionScratch<bf16> w(B, Tn, NH);
    k::attention_forward(mm, w, out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);
    lab.synchronize();

    const double product = 2.0 * R * Tn * hd;  // one T x T x hd product over every (batch, head)
    const lab::Cost forward{8 * NC + 8 * RT + 4 * R, 2 * product, false};
    lab.bench("attention_forward (2 products + softmax)", [&] {
        k::attention_forward(mm, w, out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);
    }, forward);
    const DropoutKey no_dropout{0.0f, kKey.seed, kKey.step, kKey.micro_step};
    lab.bench("attention_forward, dropout off (p = 0)", [&] {
        k::attention_forward(mm, w, out.data(), lse.data(), qkv.data(), no_dropout, kLayer, B, Tn, C, NH, s);
    }, forward);
    const k::HeadMatrix<const bf16> q{qkv.data(), 3 * C, (long long)Tn * 3 * C, hd}, kk{qkv.data() + C, 3 * C, (long long)Tn * 3 * C, hd};
    lab.bench("  its product S = q k^T", [&] {
        k::head_products<bf16, bf16>(mm, false, true, Tn, Tn, hd, 1.0f / std::sqrt((float)hd), q, kk,
                                     k::HeadMatrix<bf16>{w.scores.data(), ld, (long long)NH * Tn * ld, (long long)Tn * ld},
                                     B, NH, s);
    }, lab::Cost{4 * NC + 2 * RT, product, false});
    lab.bench("  its softmax row kernel (mask, lse, dropout)", [&] {
        lab::launch_kernel(k::attention_softmax_forward_kernel<bf16>, k::attention_row_grid((int)R, w.row_lanes), dim3(256),
                           0, s, w.probs.data(), lse.data(), (const bf16*)w.scores.data(), ld, Tn, (int)R, kKey, kLayer,
                           w.row_lanes);
    }, lab::Cost{2 * RT + 2 * RT + 4 * R, 0, false});
    lab.bench("naive forward (fp32 cores, thread per query)", [&] {
        naive_attention_forward(out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);
    }, lab::Cost{8 * NC + 4 * R, product, true});
    k::attention_forward(mm, w, out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);  // the production lse
    const lab::Cost backward{26 * NC + 22 * RT + 8 * R, 5 * product, false};
    lab.bench("attention_backward (5 products + 3 row kernels)", [&] {
        k::attention_backward(mm, w, dqkv.data(), dout.data(), out.data(), qkv.data(), lse.data(), kKey, kLayer, B, Tn, C, NH, s);
    }, backward);
    lab.bench("attention_backward, dropout off (p = 0)", [&] {
        k::attention_backward(mm, w, dqkv.data(), dout.data(), out.data(), qkv.data(), lse.data(), no_dropout, kLayer, B, Tn,
                              C, NH, s);
    }, backward);
    std::printf("  (forward %.3g FLOP executed, half of it above the diagonal and discarded; backward %.3g)\n",
                2 * product, 5 * product);

    if (!k::flash_attention_supports(hd)) return;
    Buffer<float> D((size_t)R);
    k::flash_attention_forward(out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);
    lab.bench("flash_attention_forward (fused)", [&] {
        k::flash_attention_forward(out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);
    }, lab::Cost{8 * NC + 4 * R, product, false});
    lab.bench("flash_attention_forward, dropout off (p = 0)", [&] {
        k::flash_attention_forward(out.data(), lse.data(), qkv.data(), no_dropout, kLayer, B, Tn, C, NH, s);
    }, lab::Cost{8 * NC + 4 * R, product, false});
    k::flash_attention_forward(out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);
    const lab::Cost fused_backward{6 * NC + 4 * NC + 6 * NC + 12 * R, 3.5 * product, false};
    lab.bench("flash_attention_backward (rowdot + dk/dv + dq kernels)", [&] {
        k::flash_attention_backward(dqkv.data(), D.data(), dout.data(), out.data(), qkv.data(), lse.data(), kKey, kLayer, B, Tn,
                                    C, NH, s);
    }, fused_backward);
    lab.bench("flash_attention_backward, dropout off (p = 0)", [&] {
        k::flash_attention_backward(dqkv.data(), D.data(), dout.data(), out.data(), qkv.data(), lse.data(), no_dropout, kLayer,
                                    B, Tn, C, NH, s);
    }, fused_backward);
    std::printf("  (fused: forward %.3g FLOP executed, backward %.3g; FlashAttention-2's published H100 rate for causal "
                "head size 64 at T 1024, about 192 TFLOP/s forward + backward, would take %.2f ms per layer)\n",
                product, 3.5 * product, (product * 3.5) / 192e12 * 1e3);
}

int main(int argc, char** argv) {
    return lab::main(argc, argv, "attention: causal attention forward and backward on the tensor cores, dropout 0.1", [](lab::Lab& lab) {
        if (lab.checking()) check_all(lab);
        if (lab.benchmarking()) bench_all(lab);
    });
}
