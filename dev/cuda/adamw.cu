// Kernel lab: the optimizer step of kernels/adamw.cuh on float32 master weights: global_norm (two deterministic
// launches), then AdamW writing the bf16 compute copy with round-to-nearest or stochastic rounding; as one launch
// over every parameter, and as the 16 per-tensor launches a trainer with a weight-decay mask makes.
// Run: build/cuda_lab/adamw [--L 48 --C 1600 --Vp 50304 --T 1024] (the parameter count of that GPT-2; maxT = T) or
// [--n count]. Bytes per parameter: global_norm reads the fp32 gradient (4); AdamW reads grad, master, m, v (16) and
// writes master, m, v (12) and the bf16 copy (2): 30. At GPT-2 XL's 1.56e9 parameters the buffers take 28 GB.
#include "dev/cuda/lab_common.cuh"
#include "kernels/adamw.cuh"
#include "lnfree/model.h"
#include "lnfree/reference/adamw.h"

namespace k = lnfree::kernels;
using lab::Buffer;
using lab::bf16;

k::AdamWStep make_step(bool stochastic) {  // GPT-2 XL's recipe: peak lr 1e-4, betas (0.9, 0.999), eps 1e-8, wd 0.01
    return k::AdamWStep{1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f, 3, stochastic, 1337, 0};
}

// ---- correctness on 5013 parameters (as test/kernels) ---------------------------------------------------------

void check_all(lab::Lab& lab) {
    const size_t n = 5013;
    lab.section("correctness on " + std::to_string(n) + " parameters, clipping active (fp32 state: tol 1e-6 / 1e-5)");
    const std::vector<float> master0 = lab::random_floats(n, 0.5f, 61), grad = lab::random_floats(n, 0.05f, 62), m0 = lab::random_floats(n, 0.01f, 63);
    std::vector<float> v0(n);
    for (size_t i = 0; i < n; i++) v0[i] = 1e-4f * (1.0f + (float)(i % 7));
    Buffer<float> grad_d(grad), norm(1), scratch(k::kNormBlocks);
    k::global_norm(norm.data(), scratch.data(), grad_d.data(), n, lab.stream);
    double norm_ref = 0.0;
    for (float g : grad) norm_ref += (double)g * g;
    norm_ref = std::sqrt(norm_ref);
    lab.check("global_norm", norm.to_host(), {(float)norm_ref}, 1e-5);

    k::AdamWStep step = make_step(false);
    std::vector<float> clipped = grad, master_ref = master0, m_ref = m0, v_ref = v0;
    for (float& g : clipped) g = (float)(g * std::min(1.0, step.clip / (norm_ref + 1e-6)));
    lnfree::ref::adamw_update(master_ref.data(), clipped.data(), m_ref.data(), v_ref.data(), n, step.lr,
                              lnfree::ref::AdamWHyper{step.beta1, step.beta2, step.eps, step.weight_decay}, step.t, true);
    Buffer<bf16> param(n);
    Buffer<float> master(master0), m(m0), v(v0);
    k::adamw(param.data(), master.data(), m.data(), v.data(), grad_d.data(), norm.data(), step, n, lab.stream);
    const std::vector<float> master_h = master.to_host();
    lab.check("adamw round-to-nearest: master", master_h, master_ref, 1e-6);
    lab.check("adamw round-to-nearest: m", m.to_host(), m_ref, 1e-5);
    lab.check("adamw round-to-nearest: v", v.to_host(), v_ref, 1e-5);
    lab.check_true("adamw round-to-nearest: bf16 copy == bf16(master)", lab::to_floats(param.to_host()) == lab::bf16_values(master_h));

    step.stochastic_rounding = true;
    auto rounded = [&] {
        Buffer<float> master2(master0), m2(m0), v2(v0);
        Buffer<bf16> p(n);
        k::adamw(p.data(), master2.data(), m2.data(), v2.data(), grad_d.data(), norm.data(), step, n, lab.stream);
        return lab::to_floats(p.to_host());
    };
    const std::vector<float> p = rounded();
    bool neighbours = true;
    double bias = 0.0;
    for (size_t i = 0; i < n; i++) {
        neighbours = neighbours && std::abs(p[i] - master_h[i]) <= std::abs(master_h[i]) * (1.0f / 128.0f);
        bias += p[i] - master_h[i];
    }
    lab.check_true("adamw stochastic: within one bf16 step of master", neighbours);
    lab.check_true("adamw stochastic: mean rounding error below 1e-4", std::abs(bias / n) <= 1e-4);
    lab.check_true("adamw stochastic: a rerun rounds identically", rounded() == p);
}

// ---- timing at the full parameter count ---------------------------------------------------------------------

void bench_all(lab::Lab& lab) {
    lnfree::GPT2Config cfg;
    cfg.L = lab.opt.L; cfg.C = lab.opt.C; cfg.NH = lab.opt.NH; cfg.V = lab.opt.V; cfg.Vp = lab.opt.Vp; cfg.maxT = lab.opt.T;
    std::vector<size_t> sizes;
    size_t total = 0;
    for (int i = 0; i < lnfree::NUM_PARAM_TENSORS; i++) total += sizes.emplace_back(lnfree::param_numel(cfg, i));
    if (lab.opt.n) sizes = {total = (size_t)lab.opt.n};
    const size_t n = total;
    lab.section(lab::format("timing on %zu parameters (%.1f GB of buffers)", n, 18.0 * n / 1e9));
    Buffer<float> grad(n), master(n), m(n), v(n), norm(1), scratch(k::kNormBlocks);
    Buffer<bf16> param(n);
    lab::fill(grad, 0.0f, 1e-3f, 62);
    lab::fill(master, 0.0f, 0.02f, 61);
    lab::fill(m, 0.0f, 1e-4f, 63);
    lab::fill(v, 1e-6f, 0.0f, 0);
    const cudaStream_t s = lab.stream;
    k::global_norm(norm.data(), scratch.data(), grad.data(), n, s);
    const lab::Cost adamw_cost{30.0 * n};
    lab.bench("global_norm (256 blocks + 1 thread)", [&] { k::global_norm(norm.data(), scratch.data(), grad.data(), n, s); },
              lab::Cost{4.0 * n + 8.0 * k::kNormBlocks});
    for (const bool stochastic : {false, true}) {
        const k::AdamWStep step = make_step(stochastic);
        lab.bench(std::string("adamw, one launch, ") + (stochastic ? "stochastic rounding" : "round to nearest"), [&] {
            k::adamw(param.data(), master.data(), m.data(), v.data(), grad.data(), norm.data(), step, n, s);
        }, adamw_cost);
    }
    if (sizes.size() > 1)
        lab.bench("adamw, 16 per-tensor launches, stochastic", [&] {
            size_t offset = 0;
            for (size_t i = 0; i < sizes.size(); i++) {
                k::AdamWStep step = make_step(true);
                step.tensor = (uint32_t)i;
                const bool decayed = i == lnfree::WTE || i == lnfree::WPE || i == lnfree::QKVW || i == lnfree::ATTPROJW ||
                                     i == lnfree::FCW || i == lnfree::FCPROJW;
                step.weight_decay = decayed ? 0.01f : 0.0f;  // biases and LayerNorm parameters are not decayed
                k::adamw(param.data() + offset, master.data() + offset, m.data() + offset, v.data() + offset,
                         grad.data() + offset, norm.data(), step, sizes[i], s);
                offset += sizes[i];
            }
        }, adamw_cost);
}

int main(int argc, char** argv) {
    return lab::main(argc, argv, "adamw: global gradient norm and AdamW on fp32 master weights", [](lab::Lab& lab) {
        if (lab.checking()) check_all(lab);
        if (lab.benchmarking()) bench_all(lab);
    });
}
