// Kernel lab: the hand-written causal flash attention of kernels/attention.cuh (forward; backward = row dot + dk/dv
// + dq), with attention-probability dropout p = 0.1 as in the recipe, against a naive forward that reads K and V
// straight from global memory (no shared-memory tiles). Run: build/cuda_lab/attention [--B 18 --T 1024 --C 1600 --NH 25].
// FLOPs counted per causal (query, key) pair: forward 4 hd (q.k, p v); backward 14 hd as the kernels execute them
// (dk/dv kernel: q.k, do.v, dv, dk = 8 hd; dq kernel recomputes q.k and do.v, then dq = 6 hd). They run on the fp32
// CUDA cores (no tensor cores), so the fp32 roofline is the relevant one ('f' in the %peak column).
#include "dev/cuda/lab_common.cuh"
#include "kernels/attention.cuh"
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
    k::dispatch_head_dim(C / NH, [&]<int HD>() {
        lab::launch_kernel(naive_attention_forward_kernel<HD, bf16>, grid, dim3(64), 0, s, out, lse, qkv, key, layer, Tn, C, NH);
    });
}

// The three launches of k::attention_backward one at a time, with its grids, to see where the time goes.
enum class BackwardPart { rowdot, dkv, dq };
void attention_backward_part(BackwardPart part, bf16* dqkv, float* D, const bf16* dout, const bf16* out, const bf16* qkv,
                             const float* lse, const DropoutKey& key, uint32_t layer, int B, int Tn, int C, int NH,
                             cudaStream_t s) {
    if (part == BackwardPart::rowdot) {
        lab::launch_kernel(k::attention_backward_rowdot_kernel<bf16>, dim3(k::ceil_div((long)B * NH * Tn, 256)), dim3(256),
                           0, s, D, dout, out, B, Tn, C, NH, C / NH);
        return;
    }
    const dim3 grid(k::ceil_div(Tn, k::kAttentionTile), B * NH);
    k::dispatch_head_dim(C / NH, [&]<int HD>() {
        if (part == BackwardPart::dkv)
            lab::launch_kernel(k::attention_backward_dkv_kernel<HD, bf16>, grid, dim3(k::kAttentionTile), 0, s, dqkv, qkv,
                               dout, lse, (const float*)D, key, layer, Tn, C, NH);
        else
            lab::launch_kernel(k::attention_backward_dq_kernel<HD, bf16>, grid, dim3(k::kAttentionTile), 0, s, dqkv, qkv,
                               dout, lse, (const float*)D, key, layer, Tn, C, NH);
    });
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
    Buffer<float> lse(nrows), D(nrows);
    naive_attention_forward(out.data(), lse.data(), qkv_d.data(), kKey, kLayer, B, Tn, C, NH, lab.stream);
    lab.check("naive forward: out", lab::to_floats(out.to_host()), out_ref, 1e-2);
    const std::vector<float> lse_naive = lse.to_host();
    k::attention_forward(out.data(), lse.data(), qkv_d.data(), kKey, kLayer, B, Tn, C, NH, lab.stream);
    lab.check("production forward: out", lab::to_floats(out.to_host()), out_ref, 1e-2);
    lab.check("production forward: lse vs naive forward's", lse.to_host(), lse_naive, 1e-5);
    k::attention_backward(dqkv.data(), D.data(), dout_d.data(), out.data(), qkv_d.data(), lse.data(), kKey, kLayer, B, Tn, C,
                          NH, lab.stream);
    lab.check("production backward: dqkv", lab::to_floats(dqkv.to_host()), dqkv_ref, 1e-2);
    Buffer<bf16> dqkv2(nqkv);
    for (BackwardPart p : {BackwardPart::rowdot, BackwardPart::dkv, BackwardPart::dq})
        attention_backward_part(p, dqkv2.data(), D.data(), dout_d.data(), out.data(), qkv_d.data(), lse.data(), kKey, kLayer,
                                B, Tn, C, NH, lab.stream);
    lab.check("backward launched part by part: dqkv", lab::to_floats(dqkv2.to_host()), dqkv_ref, 1e-2);
}

// ---- timing at the full shape -------------------------------------------------------------------------------

void bench_all(lab::Lab& lab) {
    const int B = lab.opt.B, Tn = lab.opt.T, C = lab.opt.C, NH = lab.opt.NH, hd = C / NH;
    const double N = (double)B * Tn, NC = N * C, R = (double)B * NH * Tn;
    const double pairs = (double)B * NH * Tn * (Tn + 1.0) / 2.0;  // causal (query, key) pairs
    lab.section("timing at B " + std::to_string(B) + ", T " + std::to_string(Tn) + ", C " + std::to_string(C) + ", NH " +
                std::to_string(NH) + ", dropout 0.1");
    Buffer<bf16> qkv((size_t)N * 3 * C), out((size_t)NC), dout((size_t)NC), dqkv((size_t)N * 3 * C);
    Buffer<float> lse((size_t)R), D((size_t)R);
    lab::fill(qkv, 0.0f, 1.0f, 11);
    lab::fill(dout, 0.0f, 1.0f, 12);
    const cudaStream_t s = lab.stream;
    k::attention_forward(out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);
    lab.synchronize();

    const lab::Cost forward{6 * NC + 2 * NC + 4 * R, 4.0 * hd * pairs, true};  // qkv in; out, lse out
    lab.bench("attention_forward (tiled, thread per query)", [&] {
        k::attention_forward(out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);
    }, forward);
    const DropoutKey no_dropout{0.0f, kKey.seed, kKey.step, kKey.micro_step};
    lab.bench("attention_forward, dropout off (p = 0)", [&] {
        k::attention_forward(out.data(), lse.data(), qkv.data(), no_dropout, kLayer, B, Tn, C, NH, s);
    }, forward);
    lab.bench("naive forward (no shared memory)", [&] {
        naive_attention_forward(out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);
    }, forward);
    k::attention_forward(out.data(), lse.data(), qkv.data(), kKey, kLayer, B, Tn, C, NH, s);  // lse of the production kernel
    // the whole backward at its minimum traffic (qkv, out, dout, lse in; dqkv out); its parts at their own operands
    lab.bench("attention_backward (all three launches)", [&] {
        k::attention_backward(dqkv.data(), D.data(), dout.data(), out.data(), qkv.data(), lse.data(), kKey, kLayer, B, Tn, C,
                              NH, s);
    }, lab::Cost{6 * NC + 2 * NC + 2 * NC + 4 * R + 6 * NC, 14.0 * hd * pairs, true});
    lab.bench("attention_backward, dropout off (p = 0)", [&] {
        k::attention_backward(dqkv.data(), D.data(), dout.data(), out.data(), qkv.data(), lse.data(), no_dropout, kLayer, B,
                              Tn, C, NH, s);
    }, lab::Cost{6 * NC + 2 * NC + 2 * NC + 4 * R + 6 * NC, 14.0 * hd * pairs, true});
    const lab::Cost parts[] = {{4 * NC + 4 * R, 2.0 * hd * R, true},
                               {6 * NC + 2 * NC + 8 * R + 4 * NC, 8.0 * hd * pairs, true},
                               {6 * NC + 2 * NC + 8 * R + 2 * NC, 6.0 * hd * pairs, true}};
    const char* names[] = {"  part 1: row dot D = rowsum(dout * out)", "  part 2: dk, dv (thread per key row)",
                           "  part 3: dq (thread per query row)"};
    for (int p = 0; p < 3; p++)
        lab.bench(names[p], [&] {
            attention_backward_part((BackwardPart)p, dqkv.data(), D.data(), dout.data(), out.data(), qkv.data(), lse.data(),
                                    kKey, kLayer, B, Tn, C, NH, s);
        }, parts[p]);
    std::printf("  (causal pairs %.3g; forward %.3g FLOP; backward executed %.3g FLOP = 3.5x the forward, where a flash\n"
                "   backward that accumulates dq atomically executes 2.5x; Philox dropout and exp are not counted as FLOPs)\n",
                pairs, 4.0 * hd * pairs, 14.0 * hd * pairs);
}

int main(int argc, char** argv) {
    return lab::main(argc, argv, "attention: causal flash attention forward and backward, dropout 0.1", [](lab::Lab& lab) {
        if (lab.checking()) check_all(lab);
        if (lab.benchmarking()) bench_all(lab);
    });
}
