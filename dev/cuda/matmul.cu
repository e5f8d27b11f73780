// Kernel lab: the cuBLASLt wrapper of kernels/matmul.cuh at the shapes of one GPT-2 XL layer and of the tied
// classifier: forward (with the bias and GELU-aux epilogues), backward_input, backward_weight (fp32 += ), and the
// hand-written bias_backward (split rows: per-chunk partial sums, then column_sum in a fixed order) against the
// first version, one thread per column. Run: build/cuda_lab/matmul [--B 18 --T 1024 --C 1600 --Vp 50304].
// FLOPs 2 N IC OC per product; bytes: bf16 operands once, fp32 dweight read and written, pre-GELU output if saved.
#include "dev/cuda/lab_common.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/matmul.cuh"
#include "lnfree/reference/gelu.h"
#include "lnfree/reference/matmul.h"

namespace k = lnfree::kernels;
using lab::Buffer;
using lab::bf16;

// ---- bias backward, one thread per column (the first version): each thread loops over all N rows --------------

template <typename T>
__global__ void bias_per_column_kernel(float* dbias, const T* dout, int ldd, int N, int OC) {
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float sum = 0.0f;
    for (int n = 0; n < N; n++) sum += k::to_float(dout[(size_t)n * ldd + o]);
    dbias[o] += sum;
}

void bias_backward_per_column(float* dbias, const bf16* dout, int ldd, int N, int OC, cudaStream_t s) {
    lab::launch_kernel(bias_per_column_kernel<bf16>, dim3(k::ceil_div(OC, 128)), dim3(128), 0, s, dbias, dout, ldd, N, OC);
}

// One linear layer as the trainer calls it: out (N, OC; row stride ldo, starting at column col) = inp (N, IC) W^T + b.
struct Linear {
    std::string name;
    int IC, OC, ldo, col;
    bool bias, gelu;
};

std::vector<Linear> layer_shapes(int C, int Vp) {
    return {{"qkv  (C -> 3C)", C, 3 * C, 3 * C, 0, true, false},
            {"qk   (C -> 2C of 3C, split ln_1)", C, 2 * C, 3 * C, 0, true, false},
            {"v    (C -> C of 3C, split ln_1)", C, C, 3 * C, 2 * C, true, false},
            {"attproj (C -> C)", C, C, C, 0, true, false},
            {"fc   (C -> 4C, GELU epilogue)", C, 4 * C, 4 * C, 0, true, true},
            {"fcproj (4C -> C)", 4 * C, C, C, 0, true, false},
            {"lm_head (C -> Vp, tied wte)", C, Vp, Vp, 0, false, false}};
}

// ---- correctness on 64 rows at each layer shape (the lm_head shape runs the same code: skipped, CPU time) -------

void check_all(lab::Lab& lab) {
    const int N = std::min(lab.opt.N(), 64);
    lab.section("correctness on " + std::to_string(N) +
                " rows per layer shape (bf16 outputs: tol 1e-2; fp32 dweight, dbias: tol 1e-5)");
    k::MatmulContext ctx;
    for (const Linear& L : layer_shapes(lab.opt.C, lab.opt.Vp)) {
        if (!L.bias) continue;
        const int IC = L.IC, OC = L.OC, ldo = L.ldo;
        const std::vector<float> inp = lab::bf16_values(lab::random_floats((size_t)N * IC, 1.0f, 71));
        const std::vector<float> w = lab::bf16_values(lab::random_floats((size_t)OC * IC, 0.02f, 72));
        const std::vector<float> b = lab::bf16_values(lab::random_floats(OC, 0.1f, 73));
        const std::vector<float> dout = lab::bf16_values(lab::random_floats((size_t)N * ldo, 1.0f, 74));
        Buffer<bf16> inp_d(lab::to_type<bf16>(inp)), w_d(lab::to_type<bf16>(w)), b_d(lab::to_type<bf16>(b));
        Buffer<bf16> out(lab::to_type<bf16>(std::vector<float>((size_t)N * ldo, 0.0f))), pre((size_t)N * OC);
        k::matmul_forward(ctx, out.data() + L.col, ldo, L.gelu ? pre.data() : nullptr, inp_d.data(), w_d.data(), b_d.data(), N,
                          IC, OC, lab.stream);
        std::vector<float> out_ref((size_t)N * ldo, 0.0f);
        lnfree::ref::matmul_forward(out_ref.data() + L.col, ldo, inp.data(), w.data(), b.data(), N, IC, OC);
        if (L.gelu) {
            lab.check(L.name + ": forward pre-GELU", lab::to_floats(pre.to_host()), out_ref, 1e-2);
            std::vector<float> gelu_ref(out_ref.size());
            lnfree::ref::gelu_forward(gelu_ref.data(), out_ref.data(), out_ref.size());
            out_ref = gelu_ref;
        }
        lab.check(L.name + ": forward", lab::to_floats(out.to_host()), out_ref, 1e-2);

        Buffer<bf16> dout_d(lab::to_type<bf16>(dout)), dinp(lab::to_type<bf16>(std::vector<float>((size_t)N * IC, 0.0f)));
        Buffer<float> dw(std::vector<float>((size_t)OC * IC, 0.0f)), db(std::vector<float>(OC, 0.0f)),
            db2(std::vector<float>(OC, 0.0f)), partial((size_t)k::kBiasChunks * OC);
        const bf16* dout_block = dout_d.data() + L.col;
        k::matmul_backward_input(ctx, dinp.data(), dout_block, ldo, w_d.data(), N, IC, OC, false, lab.stream);
        k::matmul_backward_weight(ctx, dw.data(), dout_block, ldo, inp_d.data(), N, IC, OC, lab.stream);
        k::bias_backward(db.data(), partial.data(), dout_block, ldo, N, OC, lab.stream);
        bias_backward_per_column(db2.data(), dout_block, ldo, N, OC, lab.stream);
        std::vector<float> dinp_ref((size_t)N * IC, 0.0f), dw_ref((size_t)OC * IC, 0.0f), db_ref(OC, 0.0f);
        lnfree::ref::matmul_backward(dinp_ref.data(), dw_ref.data(), db_ref.data(), dout.data() + L.col, ldo, inp.data(),
                                     w.data(), N, IC, OC);
        lab.check(L.name + ": backward_input", lab::to_floats(dinp.to_host()), dinp_ref, 1e-2);
        lab.check(L.name + ": backward_weight", dw.to_host(), dw_ref, 1e-5);
        lab.check(L.name + ": bias_backward", db.to_host(), db_ref, 1e-5);
        lab.check(L.name + ": bias_backward, one thread per column", db2.to_host(), db_ref, 1e-5);
    }
}

// ---- timing at the full shape -------------------------------------------------------------------------------

void bench_all(lab::Lab& lab) {
    const int N = lab.opt.N(), C = lab.opt.C, Vp = lab.opt.Vp;
    const double n = N;
    lab.section("timing at N " + std::to_string(N) + " tokens, C " + std::to_string(C) + ", Vp " + std::to_string(Vp));
    const size_t max_in = (size_t)N * 4 * C, max_out = (size_t)N * std::max(4 * C, Vp), max_w = (size_t)std::max(4 * C, Vp) * C;
    Buffer<bf16> inp(max_in), out(max_out), pre(max_in), dout(max_out), dinp(max_in), w(max_w), b(std::max(4 * C, Vp));
    Buffer<float> dw(max_w), db(std::max(4 * C, Vp)), partial((size_t)k::kBiasChunks * std::max(4 * C, Vp));
    lab::fill(inp, 0.0f, 1.0f, 71);
    lab::fill(w, 0.0f, 0.02f, 72);
    lab::fill(b, 0.0f, 0.1f, 73);
    lab::fill(dout, 0.0f, 1.0f, 74);
    lab::fill(dw, 0.0f, 0.0f, 0);
    k::MatmulContext ctx;
    const cudaStream_t s = lab.stream;
    double layer_us = 0, layer_flops = 0, head_us = 0, head_flops = 0, bias_us = 0, bias_split_us = 0;
    for (const Linear& L : layer_shapes(C, Vp)) {
        const double IC = L.IC, OC = L.OC, flops = 2 * n * IC * OC;
        const bool in_layer = L.name.rfind("qkv", 0) == 0 || L.name.rfind("attproj", 0) == 0 || L.name.rfind("fc", 0) == 0;
        const bool head = !L.bias;
        double sum = 0;
        sum += lab.bench(L.name + " forward", [&] {
            k::matmul_forward(ctx, out.data() + L.col, L.ldo, L.gelu ? pre.data() : nullptr, inp.data(), w.data(),
                              L.bias ? b.data() : nullptr, N, L.IC, L.OC, s);
        }, lab::Cost{2 * n * IC + 2 * OC * IC + 2 * OC + 2 * n * OC * (L.gelu ? 2 : 1), flops}).mean_us;
        sum += lab.bench(L.name + " backward_input", [&] {
            k::matmul_backward_input(ctx, dinp.data(), dout.data() + L.col, L.ldo, w.data(), N, L.IC, L.OC, false, s);
        }, lab::Cost{2 * n * OC + 2 * OC * IC + 2 * n * IC, flops}).mean_us;
        sum += lab.bench(L.name + " backward_weight", [&] {
            k::matmul_backward_weight(ctx, dw.data(), dout.data() + L.col, L.ldo, inp.data(), N, L.IC, L.OC, s);
        }, lab::Cost{2 * n * OC + 2 * n * IC + 8 * OC * IC, flops}).mean_us;
        if (L.bias) {
            const double t = lab.bench(L.name + " bias_backward", [&] {
                k::bias_backward(db.data(), partial.data(), dout.data() + L.col, L.ldo, N, L.OC, s);
            }, lab::Cost{2 * n * OC + 8 * OC}).mean_us;
            const double t2 = lab.bench(L.name + " bias_backward, one thread per column", [&] {
                bias_backward_per_column(db.data(), dout.data() + L.col, L.ldo, N, L.OC, s);
            }, lab::Cost{2 * n * OC + 8 * OC + 8.0 * k::kBiasChunks * OC}).mean_us;
            if (in_layer) { bias_us += t; bias_split_us += t2; }
        }
        if (in_layer) { layer_us += sum; layer_flops += 3 * flops; }
        if (head) { head_us += sum; head_flops += 3 * flops; }
    }
    const double peak = lab.gpu.peak_bf16_tflops;
    auto pct = [&](double flops, double us) {
        return peak > 0 ? lab::format("%.1f%% of %.0f", 100.0 * flops / (us * 1e-6) / 1e12 / peak, peak) : std::string("peak unknown");
    };
    std::printf("\n  one layer's matmuls (qkv, attproj, fc, fcproj; forward + backward_input + backward_weight): %.3f ms, "
                "%.1f TFLOP/s (%s)\n", layer_us / 1e3, layer_flops / (layer_us * 1e-6) / 1e12, pct(layer_flops, layer_us).c_str());
    std::printf("  + their 4 bias_backward: %.3f ms as shipped, %.3f ms one thread per column\n", bias_us / 1e3, bias_split_us / 1e3);
    std::printf("  classifier matmuls (lm_head forward + backward): %.3f ms, %.1f TFLOP/s (%s)\n", head_us / 1e3,
                head_flops / (head_us * 1e-6) / 1e12, pct(head_flops, head_us).c_str());
    std::printf("  per micro-step, %d layers + classifier: %.1f ms of matmul (bias_backward as shipped: + %.1f ms)\n",
                lab.opt.L, (lab.opt.L * layer_us + head_us) / 1e3, lab.opt.L * bias_us / 1e3);
}

int main(int argc, char** argv) {
    return lab::main(argc, argv, "matmul: the cuBLASLt wrapper at GPT-2 XL's layer and classifier shapes", [](lab::Lab& lab) {
        if (lab.checking()) check_all(lab);
        if (lab.benchmarking()) bench_all(lab);
    });
}
