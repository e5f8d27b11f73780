// cuDNN's fused attention (kernels/cudnn_attention.cpp) against the project's fused kernels
// (kernels/flash_attention.cuh) and the CPU reference, forward and backward, on causal shapes with a T that is not a
// multiple of a tile and with 25 heads: out, dq, dk and dv within 1e-2 per tensor (bf16), the statistics within 1e-3
// of the fused kernels' log-sum-exp. cuDNN's dropout masks are its own, so with dropout the test reads them off a
// probe: the dropped fraction against p, the kept factor against 1/(1-p), and forward and backward against a CPU
// attention that applies the probed mask. Built only by `make test-gpu-build USE_CUDNN=1`: the emulated builds
// compile every test/kernels/*.cpp with g++, and see an empty file.
#if defined(LNFREE_CUDNN)
#include "test/kernels/kernel_test_util.h"

#include "kernels/cudnn_attention.h"
#include "kernels/flash_attention.cuh"
#include "lnfree/reference/attention.h"

using namespace lnfree;
using namespace lnfree::test;
namespace k = lnfree::kernels;
using device::Buffer;

namespace {

struct Shape { int B, Tn, C, NH; };

// Channels [part*C, (part+1)*C) of every row of a (rows, 3C) tensor: dq, dk or dv on its own.
std::vector<float> part_of(const std::vector<float>& x, int part, size_t rows, int C) {
    std::vector<float> out;
    for (size_t row = 0; row < rows; row++)
        out.insert(out.end(), x.begin() + row * 3 * C + part * C, x.begin() + row * 3 * C + (part + 1) * C);
    return out;
}

// cuDNN's dropout factors (0 or 1/(1-p)) for element ((b*NH + h)*T + t)*T + s of the probabilities, read off a
// probe: q = 0 makes every row's probabilities uniform, 1/(t+1), and v = the identity inside each head (key s is 1
// in the head's channel s) makes out[t][s] = factor(t, s) / (t+1), exactly 0 where dropped. NaN where the probe
// cannot see: s > t, or s >= hd. Philox is counter-based, so these are the factors any input of this shape gets
// with this seed and offset.
std::vector<float> cudnn_dropout_factors(const Shape& s, float p, uint64_t seed, uint64_t offset) {
    const int hd = s.C / s.NH;
    std::vector<float> qkv((size_t)s.B * s.Tn * 3 * s.C, 0.0f);
    for (int b = 0; b < s.B; b++)
        for (int t = 0; t < std::min(s.Tn, hd); t++)
            for (int h = 0; h < s.NH; h++) qkv[((size_t)b * s.Tn + t) * 3 * s.C + 2 * s.C + h * hd + t] = 1.0f;
    Buffer<k::bf16> qkv_d = on_device(to_type<k::bf16>(qkv)), out((size_t)s.B * s.Tn * s.C);
    Buffer<float> stats((size_t)s.B * s.NH * s.Tn);
    k::cudnn_attention_forward(out.data(), stats.data(), qkv_d.data(), p, seed, offset, s.B, s.Tn, s.C, s.NH, nullptr);
    const std::vector<float> o = to_floats(on_host(out));
    std::vector<float> factors((size_t)s.B * s.NH * s.Tn * s.Tn, NAN);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.NH; h++)
            for (int t = 0; t < s.Tn; t++)
                for (int j = 0; j <= std::min(t, hd - 1); j++)
                    factors[(((size_t)b * s.NH + h) * s.Tn + t) * s.Tn + j] =
                        o[((size_t)b * s.Tn + t) * s.C + h * hd + j] * (float)(t + 1);
    return factors;
}

// Which elements the probe saw dropped (1), kept (0) or not at all (-1).
std::vector<int> dropped_pattern(const std::vector<float>& factors) {
    std::vector<int> pattern(factors.size());
    for (size_t i = 0; i < factors.size(); i++) pattern[i] = std::isnan(factors[i]) ? -1 : factors[i] == 0.0f;
    return pattern;
}

// The fraction of elements seen in both patterns that one drops and the other keeps.
double disagreement(const std::vector<int>& a, const std::vector<int>& b) {
    size_t seen = 0, differ = 0;
    for (size_t i = 0; i < a.size(); i++)
        if (a[i] >= 0 && b[i] >= 0) { seen++; differ += a[i] != b[i]; }
    return seen ? (double)differ / seen : 0.0;
}

// Causal attention that multiplies the probabilities by the given factors (element ((b*NH + h)*T + t)*T + s),
// forward and backward, in double: out (B,T,C) and dqkv (B,T,3C).
void attention_with_factors(std::vector<float>& out, std::vector<float>& dqkv, const std::vector<float>& qkv,
                            const std::vector<float>& dout, const std::vector<float>& factors, const Shape& s) {
    const int T = s.Tn, C = s.C, hd = C / s.NH;
    const double scale = 1.0 / std::sqrt((double)hd);
    out.assign((size_t)s.B * T * C, 0.0f);
    dqkv.assign((size_t)s.B * T * 3 * C, 0.0f);
    auto head = [&](int b, int t, int part, int h) { return ((size_t)b * T + t) * 3 * C + part * C + h * hd; };
    auto dot = [&](const float* x, const float* y) {
        double sum = 0.0;
        for (int i = 0; i < hd; i++) sum += (double)x[i] * y[i];
        return sum;
    };
    std::vector<double> P(T), dP(T), acc(hd);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.NH; h++)
            for (int t = 0; t < T; t++) {
                const float* q = &qkv[head(b, t, 0, h)];
                const float* z = &factors[(((size_t)b * s.NH + h) * T + t) * T];
                const float* g = &dout[((size_t)b * T + t) * C + h * hd];
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j <= t; j++) mx = std::max(mx, P[j] = dot(q, &qkv[head(b, j, 1, h)]) * scale);
                for (int j = 0; j <= t; j++) sum += P[j] = std::exp(P[j] - mx);
                std::fill(acc.begin(), acc.end(), 0.0);
                double D = 0.0;
                for (int j = 0; j <= t; j++) {
                    P[j] /= sum;
                    const float* v = &qkv[head(b, j, 2, h)];
                    float* dv = &dqkv[head(b, j, 2, h)];
                    for (int i = 0; i < hd; i++) {
                        acc[i] += P[j] * z[j] * v[i];
                        dv[i] += (float)(P[j] * z[j] * g[i]);
                    }
                    dP[j] = z[j] * dot(g, v);
                    D += P[j] * dP[j];
                }
                for (int i = 0; i < hd; i++) out[((size_t)b * T + t) * C + h * hd + i] = (float)acc[i];
                float* dq = &dqkv[head(b, t, 0, h)];
                for (int j = 0; j <= t; j++) {
                    const double dS = P[j] * (dP[j] - D) * scale;
                    const float* kj = &qkv[head(b, j, 1, h)];
                    float* dk = &dqkv[head(b, j, 1, h)];
                    for (int i = 0; i < hd; i++) {
                        dq[i] += (float)(dS * kj[i]);
                        dk[i] += (float)(dS * q[i]);
                    }
                }
            }
}

}  // namespace

TEST_CASE("cuDNN attention matches the fused kernels and the reference", "[kernels][attention][cudnn]") {
    const Shape s = GENERATE(Shape{2, 100, 128, 2}, Shape{2, 256, 128, 2}, Shape{2, 128, 1600, 25});
    INFO("B " << s.B << " T " << s.Tn << " C " << s.C << " NH " << s.NH);
    const DropoutKey none{};
    const size_t rows = (size_t)s.B * s.Tn, nqkv = rows * 3 * s.C, nout = rows * s.C, nstats = (size_t)s.B * s.NH * s.Tn;
    const std::vector<float> qkv = representable<k::bf16>(random_floats(nqkv, 1.0f, 21));
    Buffer<k::bf16> qkv_d = on_device(to_type<k::bf16>(qkv)), out(nout), out_fused(nout), dqkv(nqkv), dqkv_fused(nqkv);
    Buffer<float> stats(nstats), lse(nstats), D(nstats);
    k::cudnn_attention_forward(out.data(), stats.data(), qkv_d.data(), 0.0f, 0, 0, s.B, s.Tn, s.C, s.NH, nullptr);
    k::flash_attention_forward(out_fused.data(), lse.data(), qkv_d.data(), none, 0, s.B, s.Tn, s.C, s.NH, nullptr);
    std::vector<float> out_ref(nout), att_ref(nstats * s.Tn);
    ref::attention_forward(out_ref.data(), att_ref.data(), qkv.data(), none, 0, s.B, s.Tn, s.C, s.NH);
    const std::vector<float> got = to_floats(on_host(out));
    CHECK(rel_error(got, out_ref) <= 1e-2);
    CHECK(rel_error(got, to_floats(on_host(out_fused))) <= 1e-2);
    // cuDNN's statistics: the natural-log log-sum-exp of each row's scaled scores, as the fused kernels' lse
    CHECK(rel_error(on_host(stats), on_host(lse)) <= 1e-3);

    const std::vector<float> dout = representable<k::bf16>(random_floats(nout, 1.0f, 22));
    Buffer<k::bf16> dout_d = on_device(to_type<k::bf16>(dout));
    k::cudnn_attention_backward(dqkv.data(), dout_d.data(), out.data(), qkv_d.data(), stats.data(), 0.0f, 0, 0, s.B,
                                s.Tn, s.C, s.NH, nullptr);
    k::flash_attention_backward(dqkv_fused.data(), D.data(), dout_d.data(), out_fused.data(), qkv_d.data(), lse.data(),
                                none, 0, s.B, s.Tn, s.C, s.NH, nullptr);
    std::vector<float> dqkv_ref(nqkv, 0.0f);
    ref::attention_backward(dqkv_ref.data(), dout.data(), qkv.data(), att_ref.data(), none, 0, s.B, s.Tn, s.C, s.NH);
    const std::vector<float> grad = to_floats(on_host(dqkv)), grad_fused = to_floats(on_host(dqkv_fused));
    for (int part = 0; part < 3; part++) {
        INFO((part == 0 ? "dq" : part == 1 ? "dk" : "dv"));
        const std::vector<float> ours = part_of(grad, part, rows, s.C);
        CHECK(rel_error(ours, part_of(dqkv_ref, part, rows, s.C)) <= 1e-2);
        CHECK(rel_error(ours, part_of(grad_fused, part, rows, s.C)) <= 1e-2);
    }
}

TEST_CASE("cuDNN attention's dropout drops p of the probabilities and scales the rest", "[kernels][attention][cudnn]") {
    const Shape s{2, 256, 128, 2};
    const float p = 0.1f;
    const std::vector<float> factors = cudnn_dropout_factors(s, p, 1234, 0);
    size_t seen = 0, dropped = 0;
    double worst_scale = 0.0;
    for (float f : factors) {
        if (std::isnan(f)) continue;
        seen++;
        if (f == 0.0f) dropped++;
        else worst_scale = std::max(worst_scale, std::abs(f * (1.0 - p) - 1.0));
    }
    // the dropped count is binomial(seen, p): within 5 standard deviations (about 0.006 here, seen = 57472)
    const double fraction = (double)dropped / seen, sigma = std::sqrt(p * (1.0 - p) / seen);
    INFO("seen " << seen << ", dropped fraction " << fraction << ", 5 sigma " << 5 * sigma);
    CHECK(std::abs(fraction - p) <= 5 * sigma);
    CHECK(worst_scale <= 2e-2);  // kept: 1/(1-p), through at most two bf16 roundings

    // the same seed and offset draw the same mask (the backward relies on it); another seed, and another head, draw
    // an independent one: they disagree on about 2p(1-p) = 0.18 of the elements
    const std::vector<int> pattern = dropped_pattern(factors);
    CHECK(dropped_pattern(cudnn_dropout_factors(s, p, 1234, 0)) == pattern);
    CHECK(disagreement(dropped_pattern(cudnn_dropout_factors(s, p, 1235, 0)), pattern) >= 0.1);
    const size_t per_head = (size_t)s.Tn * s.Tn;
    const std::vector<int> head0(pattern.begin(), pattern.begin() + per_head), head1(pattern.begin() + per_head,
                                                                                     pattern.begin() + 2 * per_head);
    CHECK(disagreement(head0, head1) >= 0.1);
}

TEST_CASE("cuDNN attention's forward and backward apply one dropout mask", "[kernels][attention][cudnn]") {
    const Shape s{2, 64, 128, 2};  // T = hd: the probe sees every factor
    const float p = 0.1f;
    const uint64_t seed = 77, offset = 3;
    std::vector<float> factors = cudnn_dropout_factors(s, p, seed, offset);
    for (float& f : factors) f = std::isnan(f) || f == 0.0f ? 0.0f : 1.0f / (1.0f - p);  // exact, not bf16

    const size_t rows = (size_t)s.B * s.Tn, nqkv = rows * 3 * s.C, nout = rows * s.C;
    const std::vector<float> qkv = representable<k::bf16>(random_floats(nqkv, 1.0f, 31));
    const std::vector<float> dout = representable<k::bf16>(random_floats(nout, 1.0f, 32));
    Buffer<k::bf16> qkv_d = on_device(to_type<k::bf16>(qkv)), dout_d = on_device(to_type<k::bf16>(dout)), out(nout),
                    dqkv(nqkv);
    Buffer<float> stats((size_t)s.B * s.NH * s.Tn);
    k::cudnn_attention_forward(out.data(), stats.data(), qkv_d.data(), p, seed, offset, s.B, s.Tn, s.C, s.NH, nullptr);
    k::cudnn_attention_backward(dqkv.data(), dout_d.data(), out.data(), qkv_d.data(), stats.data(), p, seed, offset, s.B,
                                s.Tn, s.C, s.NH, nullptr);
    std::vector<float> out_ref, dqkv_ref;
    attention_with_factors(out_ref, dqkv_ref, qkv, dout, factors, s);
    CHECK(rel_error(to_floats(on_host(out)), out_ref) <= 1e-2);
    const std::vector<float> grad = to_floats(on_host(dqkv));
    for (int part = 0; part < 3; part++) {
        INFO((part == 0 ? "dq" : part == 1 ? "dk" : "dv"));
        CHECK(rel_error(part_of(grad, part, rows, s.C), part_of(dqkv_ref, part, rows, s.C)) <= 1e-2);
    }
}

TEST_CASE("cuDNN attention names bad input", "[kernels][attention][cudnn]") {
    CHECK_THROWS_WITH(k::cudnn_attention_forward(nullptr, nullptr, nullptr, 0.0f, 0, 0, 1, 8, 130, 4, nullptr),
                      Catch::Contains("cuDNN attention forward") && Catch::Contains("C must be a multiple of NH"));
    CHECK_THROWS_WITH(k::cudnn_attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, 1.0f, 0, 0, 1, 8, 128, 2,
                                                  nullptr),
                      Catch::Contains("dropout must be in [0, 1)"));
}
#endif
