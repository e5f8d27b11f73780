// The fused attention (kernels/flash_attention.cuh: bf16 on the tensor cores, through the emulator's mma.sync)
// against the CPU reference, forward and backward, with and without dropout, in the emulator's three thread
// orders; shapes whose T is not a multiple of the 64-row tile, head sizes 8, 32 and 64, and causal tiles skipped;
// T = 96, a multiple of 4, takes the dropout path where neighbouring lanes share Philox calls.
// Tolerance 1e-2 per tensor (bf16 operands and probabilities, float32 accumulation).
#include "test/kernels/kernel_test_util.h"

#include "kernels/flash_attention.cuh"
#include "lnfree/reference/attention.h"

using namespace lnfree;
using namespace lnfree::test;
namespace k = lnfree::kernels;
using device::Buffer;

TEST_CASE("fused attention forward and backward match the reference", "[kernels][attention][flash]") {
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    struct Shape { int B, Tn, C, NH; };
    const Shape s = GENERATE(Shape{2, 37, 40, 5}, Shape{1, 70, 128, 2}, Shape{1, 130, 64, 2}, Shape{1, 96, 64, 2});
    const float p = GENERATE(0.0f, 0.1f);
    INFO(order << " B " << s.B << " T " << s.Tn << " C " << s.C << " NH " << s.NH << " dropout " << p);
    const DropoutKey key{p, 99, 4, 1};
    const size_t nqkv = (size_t)s.B * s.Tn * 3 * s.C, nout = (size_t)s.B * s.Tn * s.C, nrows = (size_t)s.B * s.NH * s.Tn;
    const std::vector<float> qkv = representable<k::bf16>(random_floats(nqkv, 1.0f, 11));
    Buffer<k::bf16> qkv_d = on_device(to_type<k::bf16>(qkv)), out(nout), dqkv(nqkv);
    Buffer<float> lse(nrows), D(nrows);
    k::flash_attention_forward(out.data(), lse.data(), qkv_d.data(), key, 3, s.B, s.Tn, s.C, s.NH, nullptr);
    std::vector<float> out_ref(nout), att_ref(nrows * s.Tn);
    ref::attention_forward(out_ref.data(), att_ref.data(), qkv.data(), key, 3, s.B, s.Tn, s.C, s.NH);
    CHECK(rel_error(to_floats(on_host(out)), out_ref) <= 1e-2);
    // the log-sum-exp of each row, from the reference's scores
    const int hd = s.C / s.NH;
    std::vector<float> lse_ref(nrows);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.NH; h++)
            for (int t = 0; t < s.Tn; t++) {
                double sum = 0.0, mx = -INFINITY;
                std::vector<double> row(t + 1);
                for (int j = 0; j <= t; j++) {
                    double dot = 0.0;
                    for (int i = 0; i < hd; i++)
                        dot += (double)qkv[((size_t)b * s.Tn + t) * 3 * s.C + h * hd + i] *
                               qkv[((size_t)b * s.Tn + j) * 3 * s.C + s.C + h * hd + i];
                    row[j] = dot / std::sqrt((double)hd);
                    mx = std::max(mx, row[j]);
                }
                for (double v : row) sum += std::exp(v - mx);
                lse_ref[((size_t)b * s.NH + h) * s.Tn + t] = (float)(mx + std::log(sum));
            }
    CHECK(rel_error(on_host(lse), lse_ref) <= 1e-3);

    const std::vector<float> dout = representable<k::bf16>(random_floats(nout, 1.0f, 12));
    Buffer<k::bf16> dout_d = on_device(to_type<k::bf16>(dout));
    k::flash_attention_backward(dqkv.data(), D.data(), dout_d.data(), out.data(), qkv_d.data(), lse.data(), key, 3, s.B,
                                s.Tn, s.C, s.NH, nullptr);
    std::vector<float> dqkv_ref(nqkv, 0.0f);
    ref::attention_backward(dqkv_ref.data(), dout.data(), qkv.data(), att_ref.data(), key, 3, s.B, s.Tn, s.C, s.NH);
    const std::vector<float> got = to_floats(on_host(dqkv));
    for (int part = 0; part < 3; part++) {  // dq, dk, dv each on its own
        INFO((part == 0 ? "dq" : part == 1 ? "dk" : "dv"));
        std::vector<float> a, r;
        for (size_t row = 0; row < (size_t)s.B * s.Tn; row++)
            for (int c = 0; c < s.C; c++) {
                a.push_back(got[row * 3 * s.C + part * s.C + c]);
                r.push_back(dqkv_ref[row * 3 * s.C + part * s.C + c]);
            }
        CHECK(rel_error(a, r) <= 1e-2);
    }
}

TEST_CASE("fused attention refuses head sizes above 64", "[kernels][attention][flash]") {
    CHECK(k::flash_attention_supports(64));
    CHECK_FALSE(k::flash_attention_supports(65));
    CHECK_THROWS_WITH(k::flash_attention_forward(nullptr, nullptr, nullptr, DropoutKey{}, 0, 1, 8, 2 * 80, 2, nullptr),
                      Catch::Contains("head size 80"));
}
