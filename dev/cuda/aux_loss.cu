// Kernel lab: the auxiliary loss of kernels/aux_loss.cuh on the ln_f input h (method.md section 5): forward = mask,
// masked mean (the target) and the loss value, three small launches on N per-row stds that layernorm_stats wrote;
// backward = dh += ... over N x C, against a naive one-thread-per-row backward.
// Run: build/cuda_lab/aux_loss [--B 18 --T 1024 --C 1600]. Bytes: forward about 20 N (idx, mask, std); backward
// reads h (fp32) and reads and writes dh (fp32): 12 N C.
#include "dev/cuda/lab_common.cuh"
#include "kernels/aux_loss.cuh"
#include "kernels/layernorm.cuh"
#include "lnfree/reference/losses.h"

namespace k = lnfree::kernels;
using lab::Buffer;

__global__ void naive_aux_backward_kernel(float* dh, const float* h, const float* mean, const float* std_in,
                                          const float* target, float dloss, int N, int C) {
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) return;
    const float ds = dloss * 2.0f * (std_in[row] - *target) / N, m = mean[row], scale = ds / (C * std_in[row]);
    for (int c = 0; c < C; c++) dh[(size_t)row * C + c] += (h[(size_t)row * C + c] - m) * scale;
}

void naive_aux_backward(float* dh, const float* h, const float* mean, const float* std_in, const float* target, float dloss,
                        int N, int C, cudaStream_t s) {
    lab::launch_kernel(naive_aux_backward_kernel, dim3(k::ceil_div(N, 128)), dim3(128), 0, s, dh, h, mean, std_in, target,
                       dloss, N, C);
}

constexpr int kEot = 50256;
constexpr float kDloss = 0.01f;  // w_aux of GPT-2 XL (method.md 6.1) times a loss scale of 1

std::vector<float> make_h(int B, int Tn, int C) {  // attention-sink-like rows: a large std at t == 0
    std::vector<float> h = lab::random_floats((size_t)B * Tn * C, 1.0f, 51);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) h[((size_t)b * Tn) * C + c] *= 8.0f;
    return h;
}

std::vector<int> make_idx(int N) {
    std::vector<int> idx(N);
    for (int i = 0; i < N; i++) idx[i] = i % 37 == 5 ? kEot : (i * 7919) % 50000;
    return idx;
}

// ---- correctness on B 3, T min(T, 64), full width -------------------------------------------------------------

void check_all(lab::Lab& lab) {
    const int B = 3, Tn = std::min(lab.opt.T, 64), C = lab.opt.C, N = B * Tn;
    lab.section("correctness on B 3, T " + std::to_string(Tn) + ", C " + std::to_string(C) + " (tol 1e-5)");
    const std::vector<float> h = make_h(B, Tn, C);
    const std::vector<int> idx = make_idx(N);
    const std::vector<float> dh0 = lab::random_floats(h.size(), 1e-7f, 52);  // about the size of the aux gradient itself
    std::vector<double> s;
    const lnfree::ref::AuxLossResult r = lnfree::ref::aux_loss_forward(s, h.data(), idx.data(), kEot, B, Tn, C, nullptr);
    std::vector<float> dh_ref = dh0;
    lnfree::ref::aux_loss_backward(dh_ref.data(), h.data(), s, r.target, kDloss, N, C);

    Buffer<float> h_d(h), mean(N), stdev(N), loss(1), target(1);
    Buffer<int> mask(N), idx_d(idx);
    k::layernorm_stats(mean.data(), stdev.data(), h_d.data(), N, C, lab.stream);
    k::aux_loss_forward(loss.data(), target.data(), mask.data(), stdev.data(), idx_d.data(), kEot, B, Tn, lab.stream);
    lab.check("aux_loss_forward: target", target.to_host(), {(float)r.target}, 1e-5);
    lab.check("aux_loss_forward: loss", loss.to_host(), {(float)r.loss}, 1e-5);
    Buffer<float> dh(dh0);
    k::aux_loss_backward(dh.data(), h_d.data(), mean.data(), stdev.data(), target.data(), kDloss, N, C, lab.stream);
    lab.check("aux_loss_backward: dh", dh.to_host(), dh_ref, 1e-5);
    Buffer<float> dh2(dh0);
    naive_aux_backward(dh2.data(), h_d.data(), mean.data(), stdev.data(), target.data(), kDloss, N, C, lab.stream);
    lab.check("naive backward: dh", dh2.to_host(), dh_ref, 1e-5);
}

// ---- timing at the full shape -------------------------------------------------------------------------------

void bench_all(lab::Lab& lab) {
    const int B = lab.opt.B, Tn = lab.opt.T, C = lab.opt.C, N = B * Tn;
    const double NC = (double)N * C;
    lab.section("timing at N " + std::to_string(N) + " x C " + std::to_string(C));
    Buffer<float> h((size_t)N * C), dh((size_t)N * C), mean(N), stdev(N), loss(1), target(1);
    Buffer<int> mask(N), idx(make_idx(N));
    lab::fill(h, 0.0f, 1.0f, 51);
    lab::fill(dh, 0.0f, 0.1f, 52);
    const cudaStream_t s = lab.stream;
    k::layernorm_stats(mean.data(), stdev.data(), h.data(), N, C, s);
    k::aux_loss_forward(loss.data(), target.data(), mask.data(), stdev.data(), idx.data(), kEot, B, Tn, s);
    lab.bench("aux_loss_forward (3 launches, 2 of one block)", [&] {
        k::aux_loss_forward(loss.data(), target.data(), mask.data(), stdev.data(), idx.data(), kEot, B, Tn, s);
    }, lab::Cost{20.0 * N});
    lab.bench("aux_loss_backward (thread per element)", [&] {
        k::aux_loss_backward(dh.data(), h.data(), mean.data(), stdev.data(), target.data(), kDloss, N, C, s);
    }, lab::Cost{12 * NC + 8.0 * N});
    lab.bench("naive backward (thread per row)", [&] {
        naive_aux_backward(dh.data(), h.data(), mean.data(), stdev.data(), target.data(), kDloss, N, C, s);
    }, lab::Cost{12 * NC + 8.0 * N});
}

int main(int argc, char** argv) {
    return lab::main(argc, argv, "aux_loss: target, loss and gradient of the residual-std auxiliary loss", [](lab::Lab& lab) {
        if (lab.checking()) check_all(lab);
        if (lab.benchmarking()) bench_all(lab);
    });
}
