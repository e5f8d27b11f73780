// Every kernel of kernels/, on awkward shapes (sizes that are not multiples of the block or the tile, 5 and 25
// heads), against the float32 CPU reference of lnfree/reference/: float32 build <= 1e-5 and bf16 build <= 1e-2
// (||ours - ref|| / ||ref|| per tensor), in the emulator's three scheduling orders. The same source, built by nvcc
// (test/kernels/test_kernels_gpu.cu), runs these tests on a GPU.
#include "test/kernels/kernel_test_util.h"

#include "kernels/adamw.cuh"
#include "kernels/attention.cuh"
#include "kernels/aux_loss.cuh"
#include "kernels/classifier.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/encoder.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/matmul.cuh"
#include "kernels/sigma.cuh"
#include "lnfree/reference/adamw.h"
#include "lnfree/reference/gpt2.h"

using namespace lnfree;
using namespace lnfree::test;
namespace k = lnfree::kernels;
using device::Buffer;

TEMPLATE_TEST_CASE("layernorm kernels match the reference in both modes", "[kernels][layernorm]", float, bf16) {
    using T = TestType;
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    const bool fixed = GENERATE(false, true);
    const bool single = GENERATE(true, false);  // single-thread reductions (the emulator's shape) or the GPU's
    INFO(order << (fixed ? " fixed" : " real") << (single ? ", single-thread reductions" : ", warp and block reductions"));
    const int N = 37, C = 600;  // 600 channels: several per thread in the backward
    const std::vector<float> x = random_floats((size_t)N * C, 1.3f, 1, 0.4f);
    const std::vector<float> w = representable<T>(random_floats(C, 0.1f, 2, 1.0f)), b = representable<T>(random_floats(C, 0.1f, 3));
    Buffer<float> x_d = on_device(x), mean(N), stdev(N), rstd(N), sigma = on_device(std::vector<float>{0.8f});
    Buffer<T> w_d = on_device(to_type<T>(w)), b_d = on_device(to_type<T>(b)), out((size_t)N * C);
    k::layernorm_stats(mean.data(), stdev.data(), x_d.data(), N, C, nullptr, single);
    k::layernorm_normalize(out.data(), rstd.data(), x_d.data(), mean.data(), stdev.data(), w_d.data(), b_d.data(),
                           fixed ? sigma.data() : (const float*)nullptr, N, C, nullptr);
    std::vector<float> out_ref((size_t)N * C), mean_ref(N), rstd_ref(N);
    ref::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), x.data(), w.data(), b.data(), fixed ? 0.8 : 0.0, N, C);
    CHECK(rel_error(to_floats(on_host(out)), out_ref) <= tolerance<T>());
    CHECK(rel_error(on_host(mean), mean_ref) <= 1e-5);
    CHECK(rel_error(on_host(rstd), rstd_ref) <= 1e-5);
    const std::vector<float> stdev_h = on_host(stdev);
    CHECK(std::abs(ref::layernorm_statistic(x.data(), N, C) - std::accumulate(stdev_h.begin(), stdev_h.end(), 0.0) / N) <= 1e-5);

    const std::vector<float> dout = representable<T>(random_floats((size_t)N * C, 1.0f, 4));
    std::vector<float> dx_ref = random_floats((size_t)N * C, 0.5f, 5), dw_ref = random_floats(C, 0.5f, 6), db_ref = random_floats(C, 0.5f, 7);
    Buffer<float> dx = on_device(dx_ref), dw = on_device(dw_ref), db = on_device(db_ref);
    Buffer<float> scratch(2 * (size_t)k::layernorm_backward_blocks(N) * C);
    Buffer<T> dout_d = on_device(to_type<T>(dout));
    k::layernorm_backward(dx.data(), dw.data(), db.data(), scratch.data(), dout_d.data(), x_d.data(), mean.data(),
                          rstd.data(), w_d.data(), fixed, N, C, nullptr, single);
    ref::layernorm_backward(dx_ref.data(), dw_ref.data(), db_ref.data(), dout.data(), x.data(), mean_ref.data(),
                            rstd_ref.data(), w.data(), fixed, N, C);
    CHECK(rel_error(on_host(dx), dx_ref) <= 1e-5);
    CHECK(rel_error(on_host(dw), dw_ref) <= 1e-5);
    CHECK(rel_error(on_host(db), db_ref) <= 1e-5);
}

TEMPLATE_TEST_CASE("attention forward and backward with dropout match the reference", "[kernels][attention]", float,
                   bf16) {
    using T = TestType;
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    struct Shape { int B, Tn, C, NH; };
    const Shape s = GENERATE(Shape{2, 37, 40, 5}, Shape{1, 33, 200, 25}, Shape{1, 70, 128, 2});
    INFO(order << " B " << s.B << " T " << s.Tn << " C " << s.C << " NH " << s.NH);
    const DropoutKey key{0.1f, 99, 4, 1};
    const size_t nqkv = (size_t)s.B * s.Tn * 3 * s.C, nout = (size_t)s.B * s.Tn * s.C, nrows = (size_t)s.B * s.NH * s.Tn;
    const std::vector<float> qkv = representable<T>(random_floats(nqkv, 1.0f, 11));
    Buffer<T> qkv_d = on_device(to_type<T>(qkv)), out(nout), dqkv(nqkv);
    Buffer<float> lse(nrows);
    k::MatmulContext mm;
    k::AttentionScratch<T> scratch(s.B, s.Tn, s.NH);
    scratch.row_lanes = GENERATE(1, 32);  // the emulation's default and the GPU's: a warp per row, shuffles
    INFO("row lanes " << scratch.row_lanes);
    k::attention_forward(mm, scratch, out.data(), lse.data(), qkv_d.data(), key, 3, s.B, s.Tn, s.C, s.NH, nullptr);
    std::vector<float> out_ref(nout), att_ref(nrows * s.Tn);
    ref::attention_forward(out_ref.data(), att_ref.data(), qkv.data(), key, 3, s.B, s.Tn, s.C, s.NH);
    CHECK(rel_error(to_floats(on_host(out)), out_ref) <= tolerance<T>());

    const std::vector<float> dout = representable<T>(random_floats(nout, 1.0f, 12));
    Buffer<T> dout_d = on_device(to_type<T>(dout));
    std::vector<float> dqkv_ref(nqkv, 0.0f);
    k::attention_backward(mm, scratch, dqkv.data(), dout_d.data(), out.data(), qkv_d.data(), lse.data(), key, 3, s.B, s.Tn,
                          s.C, s.NH, nullptr);
    ref::attention_backward(dqkv_ref.data(), dout.data(), qkv.data(), att_ref.data(), key, 3, s.B, s.Tn, s.C, s.NH);
    CHECK(rel_error(to_floats(on_host(dqkv)), dqkv_ref) <= tolerance<T>());
}

TEMPLATE_TEST_CASE("GELU, residual dropout and dropout backward match the reference", "[kernels][elementwise]", float,
                   bf16) {
    using T = TestType;
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    INFO(order);
    const size_t n = 1000 * 3 + 7;
    const std::vector<float> u = representable<T>(random_floats(n, 2.0f, 21));
    const std::vector<float> dout = representable<T>(random_floats(n, 1.0f, 22));
    Buffer<T> u_d = on_device(to_type<T>(u)), dout_d = on_device(to_type<T>(dout)), g(n), dg(n), dbranch(n);
    k::gelu_forward(g.data(), u_d.data(), n, nullptr);
    k::gelu_backward(dg.data(), u_d.data(), dout_d.data(), n, nullptr);
    std::vector<float> g_ref(n), dg_ref(n, 0.0f);
    ref::gelu_forward(g_ref.data(), u.data(), n);
    ref::gelu_backward(dg_ref.data(), u.data(), dout.data(), n);
    CHECK(rel_error(to_floats(on_host(g)), g_ref) <= tolerance<T>());
    CHECK(rel_error(to_floats(on_host(dg)), dg_ref) <= tolerance<T>());

    const DropoutKey key{0.1f, 5, 2, 0};
    std::vector<float> x_ref = random_floats(n, 1.0f, 23), branch = dout;
    Buffer<float> x = on_device(x_ref);
    k::residual_dropout_add(x.data(), dout_d.data(), key, 2, DROPOUT_MLP_RESIDUAL, n, nullptr);
    ref::dropout_apply(branch.data(), n, key, 2, DROPOUT_MLP_RESIDUAL);
    for (size_t i = 0; i < n; i++) x_ref[i] += branch[i];
    CHECK(rel_error(on_host(x), x_ref) <= 1e-6);

    std::vector<float> dbranch_ref = x_ref;
    k::dropout_backward(dbranch.data(), x.data(), key, 2, DROPOUT_ATTENTION_RESIDUAL, n, nullptr);
    ref::dropout_apply(dbranch_ref.data(), n, key, 2, DROPOUT_ATTENTION_RESIDUAL);
    CHECK(rel_error(to_floats(on_host(dbranch)), dbranch_ref) <= tolerance<T>());
}

TEMPLATE_TEST_CASE("embedding forward with dropout and its deterministic backward match the reference",
                   "[kernels][encoder]", float, bf16) {
    using T = TestType;
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    INFO(order);
    const int B = 3, Tn = 29, C = 40, Vp = 128;
    std::vector<int> idx(B * Tn);
    std::mt19937 rng(31);
    for (int& t : idx) t = (int)(rng() % 20);  // few distinct tokens: buckets with many positions
    const std::vector<float> wte = representable<T>(random_floats((size_t)Vp * C, 0.3f, 32));
    const std::vector<float> wpe = representable<T>(random_floats((size_t)Tn * C, 0.1f, 33));
    const DropoutKey key{0.1f, 8, 1, 1};
    Buffer<int> idx_d = on_device(idx);
    Buffer<T> wte_d = on_device(to_type<T>(wte)), wpe_d = on_device(to_type<T>(wpe));
    Buffer<float> x((size_t)B * Tn * C);
    k::encoder_forward(x.data(), idx_d.data(), wte_d.data(), wpe_d.data(), key, B, Tn, C, nullptr);
    std::vector<float> x_ref(x.size());
    ref::encoder_forward(x_ref.data(), idx.data(), wte.data(), wpe.data(), B, Tn, C);
    ref::dropout_apply(x_ref.data(), x_ref.size(), key, 0, DROPOUT_EMBEDDING);
    CHECK(rel_error(on_host(x), x_ref) <= 1e-6);

    std::vector<float> dx_ref = random_floats(x.size(), 1.0f, 34);
    Buffer<float> dx = on_device(dx_ref), dwte((size_t)Vp * C), dwpe((size_t)Tn * C);
    device::zero(dwte.data(), dwte.size() * sizeof(float), nullptr);
    device::zero(dwpe.data(), dwpe.size() * sizeof(float), nullptr);
    const k::EncoderBuckets buckets = k::build_encoder_buckets(idx.data(), B * Tn);
    Buffer<int> token = on_device(buckets.token), start = on_device(buckets.start), positions = on_device(buckets.positions);
    k::encoder_backward(dwte.data(), dwpe.data(), dx.data(), token.data(), start.data(), positions.data(),
                        (int)buckets.token.size(), key, B, Tn, C, nullptr);
    std::vector<float> dwte_ref((size_t)Vp * C, 0.0f), dwpe_ref((size_t)Tn * C, 0.0f);
    ref::dropout_apply(dx_ref.data(), dx_ref.size(), key, 0, DROPOUT_EMBEDDING);
    ref::encoder_backward(dwte_ref.data(), dwpe_ref.data(), dx_ref.data(), idx.data(), B, Tn, C);
    CHECK(rel_error(on_host(dwte), dwte_ref) <= 1e-5);
    CHECK(rel_error(on_host(dwpe), dwpe_ref) <= 1e-5);
}

TEMPLATE_TEST_CASE("the fused classifier matches the reference cross-entropy and its gradient", "[kernels][classifier]",
                   float, bf16) {
    using T = TestType;
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    INFO(order);
    const int N = 45, V = 97, Vp = 128, eot = 50;
    std::vector<float> logits = representable<T>(random_floats((size_t)N * Vp, 2.0f, 41));
    for (int n = 0; n < N; n++)
        for (int v = V; v < Vp; v++) logits[(size_t)n * Vp + v] = 0.0f;
    std::vector<int> targets(N);
    std::mt19937 rng(42);
    for (int i = 0; i < N; i++) targets[i] = i % 7 == 3 ? eot : i % 9 == 8 ? -1 : (int)(rng() % V);  // -1: no target
    std::vector<float> losses_ref(N), dlogits_ref(logits.size(), 0.0f);
    ref::CrossEntropyResult ce = ref::crossentropy_forward(losses_ref.data(), logits.data(), targets.data(), eot, N, V, Vp);
    const float dloss = 1.0f / ce.counted;
    ref::crossentropy_backward(dlogits_ref.data(), logits.data(), targets.data(), eot, dloss, N, V, Vp);

    Buffer<T> z = on_device(to_type<T>(logits));
    Buffer<float> losses(N);
    Buffer<int> targets_d = on_device(targets);
    const bool single = GENERATE(true, false);
    INFO((single ? "single-thread reductions" : "block reductions"));
    k::classifier(z.data(), losses.data(), targets_d.data(), -1, 0.0f, N, V, Vp, nullptr, single);  // losses only
    CHECK(rel_error(on_host(losses), losses_ref) <= 1e-5);
    CHECK(to_floats(on_host(z)) == logits);
    k::classifier(z.data(), losses.data(), targets_d.data(), eot, dloss, N, V, Vp, nullptr, single);
    CHECK(rel_error(on_host(losses), losses_ref) <= 1e-5);
    CHECK(rel_error(to_floats(on_host(z)), dlogits_ref) <= tolerance<T>());
}

TEST_CASE("aux loss kernels match the reference", "[kernels][aux]") {
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    const bool single = GENERATE(true, false);
    INFO(order << (single ? ", single-thread reductions" : ", warp and block reductions"));
    const int B = 3, Tn = 21, C = 40, N = B * Tn, eot = 7;
    std::vector<float> h = random_floats((size_t)N * C, 1.0f, 51);
    for (int t = 0; t < Tn; t++)  // attention-sink-like rows: large std at t == 0
        for (int c = 0; c < C; c++) h[(size_t)t * C + c] *= t == 0 ? 8.0f : 1.0f;
    std::vector<int> idx(N);
    for (int i = 0; i < N; i++) idx[i] = i % 5 == 2 ? eot : i % 11;
    std::vector<float> dh_ref = random_floats(h.size(), 0.1f, 52);
    Buffer<float> h_d = on_device(h), mean(N), stdev(N), loss(1), target(1), dh = on_device(dh_ref);
    Buffer<int> mask(N), idx_d = on_device(idx);
    k::layernorm_stats(mean.data(), stdev.data(), h_d.data(), N, C, nullptr, single);
    k::aux_loss_forward(loss.data(), target.data(), mask.data(), stdev.data(), idx_d.data(), eot, B, Tn, nullptr, single);
    std::vector<double> s;
    ref::AuxLossResult r = ref::aux_loss_forward(s, h.data(), idx.data(), eot, B, Tn, C, nullptr);
    CHECK(std::abs(on_host(loss)[0] - r.loss) <= 1e-5 * r.loss);
    CHECK(std::abs(on_host(target)[0] - r.target) <= 1e-5 * r.target);
    k::aux_loss_backward(dh.data(), h_d.data(), mean.data(), stdev.data(), target.data(), 0.3f, N, C, nullptr);
    ref::aux_loss_backward(dh_ref.data(), h.data(), s, r.target, 0.3, N, C);
    CHECK(rel_error(on_host(dh), dh_ref) <= 1e-5);
}

TEMPLATE_TEST_CASE("gradient norm, clipping and AdamW match the reference", "[kernels][adamw]", float, bf16) {
    using T = TestType;
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    INFO(order);
    const size_t n = 5000 + 13;
    const std::vector<float> master0 = random_floats(n, 0.5f, 61), grad = random_floats(n, 0.05f, 62), m0 = random_floats(n, 0.01f, 63);
    std::vector<float> v0(n);
    for (size_t i = 0; i < n; i++) v0[i] = 1e-4f * (1.0f + (float)(i % 7));
    Buffer<float> grad_d = on_device(grad), norm(1), scratch(k::kNormBlocks);
    for (bool single : {false, true}) {  // single-thread reductions, and the GPU's blocks of 512
        k::global_norm(norm.data(), scratch.data(), grad_d.data(), n, nullptr, single);
        double exact = 0.0;
        for (float g : grad) exact += (double)g * g;
        CHECK(std::abs(on_host(norm)[0] - std::sqrt(exact)) <= 1e-5 * std::sqrt(exact));
    }
    k::global_norm(norm.data(), scratch.data(), grad_d.data(), n, nullptr);
    double norm_ref = 0.0;
    for (float g : grad) norm_ref += (double)g * g;
    norm_ref = std::sqrt(norm_ref);
    CHECK(std::abs(on_host(norm)[0] - norm_ref) <= 1e-5 * norm_ref);

    const double clip = 1.0;
    REQUIRE(norm_ref > clip);  // the clipped branch is exercised
    k::AdamWStep step{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, (float)clip, 3, false, 7, 2};
    Buffer<T> param(n);
    Buffer<float> master = on_device(master0), m = on_device(m0), v = on_device(v0);
    k::adamw(param.data(), master.data(), m.data(), v.data(), grad_d.data(), norm.data(), step, n, nullptr);
    std::vector<float> clipped = grad, master_ref = master0, m_ref = m0, v_ref = v0;
    for (float& g : clipped) g = (float)(g * (clip / (norm_ref + 1e-6)));
    ref::adamw_update(master_ref.data(), clipped.data(), m_ref.data(), v_ref.data(), n, 1e-3,
                      ref::AdamWHyper{0.9, 0.999, 1e-8, 0.01}, 3, true);
    const std::vector<float> master_h = on_host(master);
    CHECK(rel_error(master_h, master_ref) <= 1e-6);
    CHECK(rel_error(on_host(m), m_ref) <= 1e-5);
    CHECK(rel_error(on_host(v), v_ref) <= 1e-5);
    CHECK(to_floats(on_host(param)) == representable<T>(master_h));  // round to nearest

    if constexpr (std::is_same_v<T, bf16>) {  // stochastic rounding: a neighbour, unbiased on average, reproducible
        step.stochastic_rounding = true;
        auto rounded = [&]() {
            Buffer<float> master2 = on_device(master0), m2 = on_device(m0), v2 = on_device(v0);
            Buffer<T> p(n);
            k::adamw(p.data(), master2.data(), m2.data(), v2.data(), grad_d.data(), norm.data(), step, n, nullptr);
            return to_floats(on_host(p));
        };
        const std::vector<float> p = rounded();
        double bias = 0.0;
        for (size_t i = 0; i < n; i++) {
            REQUIRE(std::abs(p[i] - master_h[i]) <= std::abs(master_h[i]) * (1.0f / 128.0f));
            bias += p[i] - master_h[i];
        }
        CHECK(std::abs(bias / n) <= 1e-4);
        CHECK(rounded() == p);
    }
}

TEST_CASE("the device sigma estimator follows the host estimator call by call", "[kernels][sigma]") {
    for (unsigned mask : {0u, 1u, 3u, 2u, 7u}) {
        SigmaState host(1);
        host.ema[0] = 0.7;
        host.sigma[0] = 0.9;
        Buffer<double> ema = on_device(std::vector<double>{0.7}), sigma = on_device(std::vector<double>{0.9});
        Buffer<float> used(3), stat = on_device(std::vector<float>{1.25f});
        k::sigma_calls(ema.data(), sigma.data(), used.data(), stat.data(), 1, 0, 0.9, 3, mask, nullptr);
        double expect[3];  // the same three calls on the host: QK (bit 0), V (bit 1), V again (bit 2)
        for (int c = 0; c < 3; c++) expect[c] = SigmaEstimator::call(host, 0, 0.9, 1.25f, mask >> c & 1u);
        CHECK(on_host(ema)[0] == Approx(host.ema[0]).epsilon(1e-12));
        CHECK(on_host(sigma)[0] == Approx(host.sigma[0]).epsilon(1e-12));
        const std::vector<float> used_h = on_host(used);
        for (int c = 0; c < 3; c++) CHECK(used_h[c] == Approx(expect[c]).epsilon(1e-7));
    }
}

TEST_CASE("the device sigma estimator applies every process's statistic in global order and reads its own slot",
          "[kernels][sigma]") {
    // three processes' micro-batches of one micro-step, against one process running them one after the other
    const std::vector<float> stats = {1.25f, 0.5f, 2.0f};
    for (unsigned mask : {0u, 1u, 3u}) {
        SigmaState serial(1);
        serial.ema[0] = 0.7;
        serial.sigma[0] = 0.9;
        std::vector<std::vector<double>> serial_used(3, std::vector<double>(3));
        for (int j = 0; j < 3; j++)
            for (int c = 0; c < 3; c++) serial_used[j][c] = SigmaEstimator::call(serial, 0, 0.9, stats[j], mask >> c & 1u);
        for (int own = 0; own < 3; own++) {
            Buffer<double> ema = on_device(std::vector<double>{0.7}), sigma = on_device(std::vector<double>{0.9});
            Buffer<float> used(3), stat = on_device(stats);
            k::sigma_calls(ema.data(), sigma.data(), used.data(), stat.data(), 3, own, 0.9, 3, mask, nullptr);
            CHECK(on_host(ema)[0] == serial.ema[0]);
            CHECK(on_host(sigma)[0] == serial.sigma[0]);
            const std::vector<float> used_h = on_host(used);
            for (int c = 0; c < 3; c++) CHECK(used_h[c] == (float)serial_used[own][c]);
        }
    }
}

TEST_CASE("the sharded gradient norm is the whole one: shards' sums of squares added, then the root",
          "[kernels][adamw]") {
    const size_t n = 10000;
    const std::vector<float> g = random_floats(n, 0.3f, 93);
    Buffer<float> g_d = on_device(g), scratch(k::kNormBlocks), whole(1), norm(1);
    Buffer<double> sum(1);
    for (bool single : {false, true}) {
        k::global_norm(whole.data(), scratch.data(), g_d.data(), n, nullptr, single);
        k::sum_squares(sum.data(), scratch.data(), g_d.data(), n, nullptr, single);  // one process: bit for bit
        k::norm_from_sum_squares(norm.data(), sum.data(), nullptr);
        CHECK(on_host(norm)[0] == on_host(whole)[0]);
    }
    double total = 0.0, exact = 0.0;
    for (int p = 0; p < 3; p++) {  // three shards, their sums added as the processes would
        const size_t first = p * n / 3, last = (p + 1) * n / 3;
        k::sum_squares(sum.data(), scratch.data(), g_d.data() + first, last - first, nullptr);
        total += on_host(sum)[0];
    }
    for (float x : g) exact += (double)x * x;
    CHECK(std::abs(total / exact - 1) <= 1e-6);
}

TEMPLATE_TEST_CASE("the matmul wrapper and bias backward match the reference", "[kernels][matmul]", float, bf16) {
    using T = TestType;
    const int N = 29, IC = 40, OC = 3 * 40;
    const std::vector<float> inp = representable<T>(random_floats((size_t)N * IC, 1.0f, 71));
    const std::vector<float> w = representable<T>(random_floats((size_t)OC * IC, 0.2f, 72));
    const std::vector<float> bias = representable<T>(random_floats(OC, 0.1f, 73));
    Buffer<T> inp_d = on_device(to_type<T>(inp)), w_d = on_device(to_type<T>(w)), bias_d = on_device(to_type<T>(bias));
    k::MatmulContext ctx;
    // a column block of a wider output, as ln_1's V path writes its part of qkv
    const int ldo = OC + 8;
    Buffer<T> out = on_device(to_type<T>(std::vector<float>((size_t)N * ldo, 0.0f))), pre((size_t)N * OC), gelu_out((size_t)N * OC);
    k::matmul_forward(ctx, out.data(), ldo, (T*)nullptr, inp_d.data(), w_d.data(), bias_d.data(), N, IC, OC, nullptr);
    std::vector<float> out_ref((size_t)N * ldo, 0.0f);
    ref::matmul_forward(out_ref.data(), ldo, inp.data(), w.data(), bias.data(), N, IC, OC);
    CHECK(rel_error(to_floats(on_host(out)), out_ref) <= tolerance<T>());

    k::matmul_forward(ctx, gelu_out.data(), OC, pre.data(), inp_d.data(), w_d.data(), bias_d.data(), N, IC, OC, nullptr);
    std::vector<float> pre_ref((size_t)N * OC), gelu_ref((size_t)N * OC);
    ref::matmul_forward(pre_ref.data(), OC, inp.data(), w.data(), bias.data(), N, IC, OC);
    ref::gelu_forward(gelu_ref.data(), pre_ref.data(), pre_ref.size());
    CHECK(rel_error(to_floats(on_host(pre)), pre_ref) <= tolerance<T>());
    CHECK(rel_error(to_floats(on_host(gelu_out)), gelu_ref) <= tolerance<T>());

    const std::vector<float> dout = representable<T>(random_floats((size_t)N * OC, 1.0f, 74));
    std::vector<float> dinp_ref = representable<T>(random_floats((size_t)N * IC, 1.0f, 75));
    std::vector<float> dw_ref = random_floats((size_t)OC * IC, 1.0f, 76), db_ref = random_floats(OC, 1.0f, 77);
    Buffer<T> dout_d = on_device(to_type<T>(dout)), dinp = on_device(to_type<T>(dinp_ref));
    Buffer<float> dw = on_device(dw_ref), db = on_device(db_ref);
    k::matmul_backward_input(ctx, dinp.data(), dout_d.data(), OC, w_d.data(), N, IC, OC, true, nullptr);
    k::matmul_backward_weight(ctx, dw.data(), dout_d.data(), OC, inp_d.data(), N, IC, OC, nullptr);
    Buffer<float> bias_scratch((size_t)k::kBiasChunks * OC);
    k::bias_backward(db.data(), bias_scratch.data(), dout_d.data(), OC, N, OC, nullptr);
    ref::matmul_backward(dinp_ref.data(), dw_ref.data(), db_ref.data(), dout.data(), OC, inp.data(), w.data(), N, IC, OC);
    CHECK(rel_error(to_floats(on_host(dinp)), dinp_ref) <= tolerance<T>());
    CHECK(rel_error(on_host(dw), dw_ref) <= 1e-5);
    CHECK(rel_error(on_host(db), db_ref) <= 1e-5);
}
