// The evaluation's distribution kernels (kernels/distribution.cuh) against the float64 reference
// (lnfree/reference/distribution.h), in the emulator's three orders: entropy, top probability and top token per
// row, and KL both ways and JSD between two models' rows. Rows with ties (the top token must be the lowest index),
// a near-one-hot row and identical rows (divergence 0) are included.
#include "test/kernels/kernel_test_util.h"

#include "kernels/distribution.cuh"
#include "lnfree/reference/distribution.h"

using namespace lnfree;
using namespace lnfree::test;
namespace k = lnfree::kernels;
using device::Buffer;

namespace {

constexpr int N = 29, V = 1111, Vp = 1152;  // V not a multiple of the block: several entries per thread

std::vector<float> test_logits(uint32_t seed, float scale) {
    std::vector<float> z = random_floats((size_t)N * Vp, scale, seed);
    for (int n = 0; n < N; n++)
        for (int v = V; v < Vp; v++) z[(size_t)n * Vp + v] = 1e4f;  // padding: read, it would dominate everything
    for (int v = 0; v < V; v++) z[(size_t)1 * Vp + v] = v % 100 == 7 ? 3.0f : 0.0f;  // ties: top token 7
    z[(size_t)2 * Vp + 500] = 40.0f;                                                  // near one-hot
    return z;
}

}  // namespace

TEMPLATE_TEST_CASE("entropy, top probability and top token match the reference", "[kernels][distribution]", float, bf16) {
    using T = TestType;
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    const bool single = GENERATE(true, false);  // single-thread reductions (the emulator's shape) or the GPU's blocks
    INFO(order << (single ? ", single-thread reductions" : ", block reductions"));
    const std::vector<float> z = representable<T>(test_logits(61, 2.0f));
    std::vector<float> h_ref(N), c_ref(N);
    std::vector<int> top_ref(N);
    ref::distribution_stats(h_ref.data(), c_ref.data(), top_ref.data(), z.data(), N, V, Vp);
    Buffer<T> z_d = on_device(to_type<T>(z));
    Buffer<float> h(N), c(N);
    Buffer<int> top(N);
    k::distribution_stats(h.data(), c.data(), top.data(), z_d.data(), N, V, Vp, nullptr, single);
    CHECK(rel_error(on_host(h), h_ref) <= 1e-5);  // the inputs are T's values, so float32 arithmetic in both builds
    CHECK(rel_error(on_host(c), c_ref) <= 1e-5);
    CHECK(on_host(top) == top_ref);
    CHECK(top_ref[1] == 7);
    CHECK(c_ref[2] > 0.99f);
}

TEMPLATE_TEST_CASE("KL both ways and JSD between two models match the reference", "[kernels][distribution]", float, bf16) {
    using T = TestType;
    const std::string order = use_schedule(GENERATE(0, 1, 2));
    const bool single = GENERATE(true, false);  // single-thread reductions (the emulator's shape) or the GPU's blocks
    INFO(order << (single ? ", single-thread reductions" : ", block reductions"));
    const std::vector<float> p = representable<T>(test_logits(62, 2.0f));
    std::vector<float> q = p;
    const std::vector<float> noise = random_floats(q.size(), 0.5f, 63);
    for (int n = 3; n < N; n++)  // rows 0..2 identical in both models
        for (int v = 0; v < V; v++) q[(size_t)n * Vp + v] += noise[(size_t)n * Vp + v];
    q = representable<T>(q);
    std::vector<float> pq_ref(N), qp_ref(N), js_ref(N);
    ref::divergence(pq_ref.data(), qp_ref.data(), js_ref.data(), p.data(), q.data(), N, V, Vp);
    Buffer<T> p_d = on_device(to_type<T>(p)), q_d = on_device(to_type<T>(q));
    Buffer<float> pq(N), qp(N), js(N);
    k::divergence(pq.data(), qp.data(), js.data(), p_d.data(), q_d.data(), N, V, Vp, nullptr, single);
    CHECK(rel_error(on_host(pq), pq_ref) <= 1e-5);
    CHECK(rel_error(on_host(qp), qp_ref) <= 1e-5);
    CHECK(rel_error(on_host(js), js_ref) <= 1e-5);
    for (int n = 0; n < 3; n++) CHECK(std::abs(on_host(js)[n]) <= 1e-6);
    for (int n = 3; n < N; n++) CHECK(js_ref[n] <= std::log(2.0f));  // JSD is bounded by log 2
}
