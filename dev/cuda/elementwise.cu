// Kernel lab: the elementwise kernels of kernels/elementwise.cuh: GELU forward/backward on the MLP's N x 4C
// activations, the residual add fused with the branch dropout and the dropout backward on the N x C residual stream.
// Compared: a GELU forward with 16-byte loads (8 bf16 per thread per step), and each dropout kernel with p = 0
// (no Philox), which shows what the counter-based mask costs. Run: build/cuda_lab/elementwise [--B 18 --T 1024 --C 1600].
// Bytes per element: GELU forward 2 + 2, backward 2 + 2 + 2; residual_dropout_add 4 + 4 (fp32 x) + 2; dropout
// backward 4 (fp32 dx) + 2.
#include "dev/cuda/lab_common.cuh"
#include "kernels/elementwise.cuh"
#include "lnfree/reference/dropout.h"
#include "lnfree/reference/gelu.h"

namespace k = lnfree::kernels;
using lab::Buffer;
using lab::bf16;
using lnfree::DropoutKey;

// GELU forward with one 16-byte load and store per 8 elements; the n % 8 tail by the first threads of block 0
struct alignas(16) Pack8 {
    bf16 v[8];
};

__global__ void gelu_forward_vec8_kernel(bf16* out, const bf16* in, size_t n) {
    const size_t packs = n / 8;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < packs; i += (size_t)gridDim.x * blockDim.x) {
        const Pack8 a = reinterpret_cast<const Pack8*>(in)[i];
        Pack8 r;
        for (int j = 0; j < 8; j++) r.v[j] = k::from_float<bf16>(k::gelu_tanh(k::to_float(a.v[j])));
        reinterpret_cast<Pack8*>(out)[i] = r;
    }
    if (blockIdx.x == 0 && threadIdx.x < n % 8) {
        const size_t i = packs * 8 + threadIdx.x;
        out[i] = k::from_float<bf16>(k::gelu_tanh(k::to_float(in[i])));
    }
}

void gelu_forward_vec8(bf16* out, const bf16* in, size_t n, cudaStream_t s) {
    lab::launch_kernel(gelu_forward_vec8_kernel, k::stride_grid(std::max<size_t>(n / 8, 1), 256), dim3(256), 0, s, out,
                       in, n);
}

const DropoutKey kKey{0.1f, 1337, 7, 3}, kNoDropout{0.0f, 1337, 7, 3};
constexpr uint32_t kLayer = 5;

// ---- correctness on min(N * 4C, 2^20 + 7) elements -----------------------------------------------------------

void check_all(lab::Lab& lab) {
    const size_t n = std::min<size_t>((size_t)lab.opt.N() * 4 * lab.opt.C, (1u << 20) + 7);
    lab.section("correctness on " + std::to_string(n) + " elements, dropout 0.1 (bf16 outputs: tol 1e-2; fp32: 1e-6)");
    const std::vector<float> u = lab::bf16_values(lab::random_floats(n, 2.0f, 21)), dout = lab::bf16_values(lab::random_floats(n, 1.0f, 22));
    Buffer<bf16> u_d(lab::to_type<bf16>(u)), dout_d(lab::to_type<bf16>(dout)), g(n), dg(n), dbranch(n);
    std::vector<float> g_ref(n), dg_ref(n, 0.0f);
    lnfree::ref::gelu_forward(g_ref.data(), u.data(), n);
    lnfree::ref::gelu_backward(dg_ref.data(), u.data(), dout.data(), n);
    k::gelu_forward(g.data(), u_d.data(), n, lab.stream);
    lab.check("gelu_forward", lab::to_floats(g.to_host()), g_ref, 1e-2);
    gelu_forward_vec8(g.data(), u_d.data(), n, lab.stream);
    lab.check("gelu_forward, 16-byte loads", lab::to_floats(g.to_host()), g_ref, 1e-2);
    k::gelu_backward(dg.data(), u_d.data(), dout_d.data(), n, lab.stream);
    lab.check("gelu_backward", lab::to_floats(dg.to_host()), dg_ref, 1e-2);

    for (const DropoutKey& key : {kKey, kNoDropout}) {
        const std::string p = key.p > 0 ? " (p 0.1)" : " (p 0)";
        const std::vector<float> x0 = lab::random_floats(n, 1.0f, 23);
        std::vector<float> x_ref = x0, branch = dout;
        lnfree::ref::dropout_apply(branch.data(), n, key, kLayer, lnfree::DROPOUT_MLP_RESIDUAL);
        for (size_t i = 0; i < n; i++) x_ref[i] += branch[i];
        Buffer<float> x(x0);
        k::residual_dropout_add(x.data(), dout_d.data(), key, kLayer, lnfree::DROPOUT_MLP_RESIDUAL, n, lab.stream);
        lab.check("residual_dropout_add" + p, x.to_host(), x_ref, 1e-6);

        std::vector<float> dbranch_ref = x_ref;
        lnfree::ref::dropout_apply(dbranch_ref.data(), n, key, kLayer, lnfree::DROPOUT_ATTENTION_RESIDUAL);
        k::dropout_backward(dbranch.data(), x.data(), key, kLayer, lnfree::DROPOUT_ATTENTION_RESIDUAL, n, lab.stream);
        lab.check("dropout_backward" + p, lab::to_floats(dbranch.to_host()), dbranch_ref, 1e-2);
    }
}

// ---- timing at the full shape -------------------------------------------------------------------------------

void bench_all(lab::Lab& lab) {
    const size_t nc = (size_t)lab.opt.N() * lab.opt.C, n4 = 4 * nc;
    lab.section("timing: GELU on N x 4C = " + std::to_string(n4) + " elements, residual stream N x C = " + std::to_string(nc));
    Buffer<bf16> u(n4), g(n4), dg(n4), dout(n4), branch(nc), dbranch(nc);
    Buffer<float> x(nc);
    lab::fill(u, 0.0f, 2.0f, 21);
    lab::fill(dout, 0.0f, 1.0f, 22);
    lab::fill(branch, 0.0f, 1.0f, 23);
    lab::fill(x, 0.0f, 1.0f, 24);
    const cudaStream_t s = lab.stream;
    lab.bench("gelu_forward (N x 4C)", [&] { k::gelu_forward(g.data(), u.data(), n4, s); }, lab::Cost{4.0 * n4});
    lab.bench("gelu_forward, 16-byte loads", [&] { gelu_forward_vec8(g.data(), u.data(), n4, s); }, lab::Cost{4.0 * n4});
    lab.bench("gelu_backward (N x 4C)", [&] { k::gelu_backward(dg.data(), u.data(), dout.data(), n4, s); }, lab::Cost{6.0 * n4});
    for (const DropoutKey& key : {kKey, kNoDropout}) {
        const std::string p = key.p > 0 ? " (p 0.1)" : " (p 0, no Philox)";
        lab.bench("residual_dropout_add" + p, [&] {
            k::residual_dropout_add(x.data(), branch.data(), key, kLayer, lnfree::DROPOUT_MLP_RESIDUAL, nc, s);
        }, lab::Cost{10.0 * nc});
        lab.bench("dropout_backward" + p, [&] {
            k::dropout_backward(dbranch.data(), x.data(), key, kLayer, lnfree::DROPOUT_MLP_RESIDUAL, nc, s);
        }, lab::Cost{6.0 * nc});
    }
}

int main(int argc, char** argv) {
    return lab::main(argc, argv, "elementwise: GELU forward/backward, residual_dropout_add, dropout_backward", [](lab::Lab& lab) {
        if (lab.checking()) check_all(lab);
        if (lab.benchmarking()) bench_all(lab);
    });
}
