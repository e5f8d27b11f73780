// Kernel lab: token + position embedding with the embedding dropout (kernels/encoder.cuh) and its deterministic
// backward (host-built token buckets, one thread per (token, channel)), against a naive forward (one thread per
// position) and, on the GPU, the classic atomicAdd backward (not deterministic: the cost of determinism).
// Run: build/cuda_lab/encoder [--B 18 --T 1024 --C 1600 --Vp 50304]. Token ids follow a Zipf-like law (P(k) ~ 1/(k+1.5),
// k < V) so that buckets are as uneven as in text; the host bucketing (per micro-step in the trainer) is timed too.
#include "dev/cuda/lab_common.cuh"
#include "kernels/encoder.cuh"
#include "lnfree/reference/dropout.h"
#include "lnfree/reference/encoder.h"

namespace k = lnfree::kernels;
using lab::Buffer;
using lab::bf16;
using lnfree::DropoutKey;

// one thread per position: C channels each (uncoalesced: neighbouring threads write rows C floats apart)
template <typename T>
__global__ void naive_encoder_forward_kernel(float* x, const int* idx, const T* wte, const T* wpe, DropoutKey key, int N,
                                             int Tn, int C) {
    const int pos = blockIdx.x * blockDim.x + threadIdx.x;
    if (pos >= N) return;
    const int t = pos % Tn;
    for (int c = 0; c < C; c++) {
        const size_t i = (size_t)pos * C + c;
        const float v = k::to_float(wte[(size_t)idx[pos] * C + c]) + k::to_float(wpe[(size_t)t * C + c]);
        x[i] = v * lnfree::dropout_scale(key, 0, lnfree::DROPOUT_EMBEDDING, i);
    }
}

void naive_encoder_forward(float* x, const int* idx, const bf16* wte, const bf16* wpe, const DropoutKey& key, int B, int Tn,
                           int C, cudaStream_t s) {
    lab::launch_kernel(naive_encoder_forward_kernel<bf16>, dim3(k::ceil_div(B * Tn, 128)), dim3(128), 0, s, x, idx, wte, wpe,
                       key, B * Tn, Tn, C);
}

#if defined(__CUDACC__)  // the host emulation has no atomics
// one thread per (position, channel), float atomics into dwte and dwpe: the order of the additions varies per run
__global__ void atomic_encoder_backward_kernel(float* dwte, float* dwpe, const float* dx, const int* idx, DropoutKey key,
                                               int N, int Tn, int C) {
    const size_t total = (size_t)N * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int pos = (int)(i / C), c = (int)(i % C);
        const float d = dx[i] * lnfree::dropout_scale(key, 0, lnfree::DROPOUT_EMBEDDING, i);
        atomicAdd(&dwte[(size_t)idx[pos] * C + c], d);
        atomicAdd(&dwpe[(size_t)(pos % Tn) * C + c], d);
    }
}

void atomic_encoder_backward(float* dwte, float* dwpe, const float* dx, const int* idx, const DropoutKey& key, int B, int Tn,
                             int C, cudaStream_t s) {
    const size_t n = (size_t)B * Tn * C;
    lab::launch_kernel(atomic_encoder_backward_kernel, dim3((unsigned)std::min<size_t>((n + 255) / 256, 65535)), dim3(256),
                       0, s, dwte, dwpe, dx, idx, key, B * Tn, Tn, C);
}
#endif

const DropoutKey kKey{0.1f, 1337, 7, 3};  // the recipe's dropout 0.1

std::vector<int> zipf_tokens(int n, int V, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<int> t(n);
    for (int& x : t) x = std::min(V - 1, (int)std::floor(std::exp(u(rng) * std::log(V + 1.0))) - 1);
    return t;
}

struct DeviceBuckets {
    Buffer<int> token, start, positions;
    int count = 0;
    explicit DeviceBuckets(const k::EncoderBuckets& b)
        : token(b.token), start(b.start), positions(b.positions), count((int)b.token.size()) {}
};

// ---- correctness on B 2, T min(T, 128), full width, tokens below min(V, 2048) ---------------------------------

void check_all(lab::Lab& lab) {
    const int B = 2, Tn = std::min(lab.opt.T, 128), C = lab.opt.C, V = std::min(lab.opt.V, 2048), N = B * Tn;
    lab.section("correctness on B 2, T " + std::to_string(Tn) + ", C " + std::to_string(C) + ", " + std::to_string(V) +
                " token ids, dropout 0.1 (fp32 outputs: tol 1e-5)");
    const std::vector<int> idx = zipf_tokens(N, V, 31);
    const std::vector<float> wte = lab::bf16_values(lab::random_floats((size_t)V * C, 0.3f, 32));
    const std::vector<float> wpe = lab::bf16_values(lab::random_floats((size_t)Tn * C, 0.1f, 33));
    std::vector<float> x_ref((size_t)N * C);
    lnfree::ref::encoder_forward(x_ref.data(), idx.data(), wte.data(), wpe.data(), B, Tn, C);
    lnfree::ref::dropout_apply(x_ref.data(), x_ref.size(), kKey, 0, lnfree::DROPOUT_EMBEDDING);
    const std::vector<float> dx = lab::random_floats((size_t)N * C, 1.0f, 34);
    std::vector<float> dx_dropped = dx, dwte_ref((size_t)V * C, 0.0f), dwpe_ref((size_t)Tn * C, 0.0f);
    lnfree::ref::dropout_apply(dx_dropped.data(), dx_dropped.size(), kKey, 0, lnfree::DROPOUT_EMBEDDING);
    lnfree::ref::encoder_backward(dwte_ref.data(), dwpe_ref.data(), dx_dropped.data(), idx.data(), B, Tn, C);

    Buffer<int> idx_d(idx);
    Buffer<bf16> wte_d(lab::to_type<bf16>(wte)), wpe_d(lab::to_type<bf16>(wpe));
    Buffer<float> x((size_t)N * C), dx_d(dx);
    k::encoder_forward(x.data(), idx_d.data(), wte_d.data(), wpe_d.data(), kKey, B, Tn, C, lab.stream);
    lab.check("production forward: x", x.to_host(), x_ref, 1e-5);
    naive_encoder_forward(x.data(), idx_d.data(), wte_d.data(), wpe_d.data(), kKey, B, Tn, C, lab.stream);
    lab.check("naive forward: x", x.to_host(), x_ref, 1e-5);

    const DeviceBuckets buckets(k::build_encoder_buckets(idx.data(), N));
    Buffer<float> dwte(std::vector<float>((size_t)V * C, 0.0f)), dwpe(std::vector<float>((size_t)Tn * C, 0.0f));
    k::encoder_backward(dwte.data(), dwpe.data(), dx_d.data(), buckets.token.data(), buckets.start.data(),
                        buckets.positions.data(), buckets.count, kKey, B, Tn, C, lab.stream);
    lab.check("production backward: dwte", dwte.to_host(), dwte_ref, 1e-5);
    lab.check("production backward: dwpe", dwpe.to_host(), dwpe_ref, 1e-5);
#if defined(__CUDACC__)
    Buffer<float> dwte2(std::vector<float>((size_t)V * C, 0.0f)), dwpe2(std::vector<float>((size_t)Tn * C, 0.0f));
    atomic_encoder_backward(dwte2.data(), dwpe2.data(), dx_d.data(), idx_d.data(), kKey, B, Tn, C, lab.stream);
    lab.check("atomic backward: dwte", dwte2.to_host(), dwte_ref, 1e-5);
    lab.check("atomic backward: dwpe", dwpe2.to_host(), dwpe_ref, 1e-5);
#endif
}

// ---- timing at the full shape -------------------------------------------------------------------------------

void bench_all(lab::Lab& lab) {
    const int B = lab.opt.B, Tn = lab.opt.T, C = lab.opt.C, V = lab.opt.V, Vp = lab.opt.Vp, N = B * Tn;
    const double NC = (double)N * C;
    const std::vector<int> idx = zipf_tokens(N, V, 31);

    // the host side of the backward: bucketing the micro-batch's tokens and uploading the buckets
    const int host_reps = 20;
    double build_ms = 0, upload_ms = 0;
    k::EncoderBuckets eb;
    for (int r = 0; r < host_reps; r++) {
        const auto t0 = std::chrono::steady_clock::now();
        eb = k::build_encoder_buckets(idx.data(), N);
        const auto t1 = std::chrono::steady_clock::now();
        const DeviceBuckets uploaded(eb);
        const auto t2 = std::chrono::steady_clock::now();
        build_ms += std::chrono::duration<double, std::milli>(t1 - t0).count() / host_reps;
        upload_ms += std::chrono::duration<double, std::milli>(t2 - t1).count() / host_reps;
    }
    const DeviceBuckets buckets(eb);
    size_t largest = 0;
    for (size_t u = 0; u + 1 < eb.start.size(); u++) largest = std::max<size_t>(largest, eb.start[u + 1] - eb.start[u]);
    const double U = buckets.count;

    lab.section("timing at B " + std::to_string(B) + ", T " + std::to_string(Tn) + ", C " + std::to_string(C) + ": " +
                std::to_string(buckets.count) + " distinct tokens, the largest bucket " + std::to_string(largest) + " positions");
    std::printf("  host: build_encoder_buckets %.3f ms, upload of the buckets (3 cudaMalloc + cudaMemcpy) %.3f ms per micro-step\n",
                build_ms, upload_ms);
    Buffer<int> idx_d(idx);
    Buffer<bf16> wte((size_t)Vp * C), wpe((size_t)Tn * C);
    Buffer<float> x((size_t)N * C), dx((size_t)N * C), dwte((size_t)Vp * C), dwpe((size_t)Tn * C);
    lab::fill(wte, 0.0f, 0.3f, 32);
    lab::fill(wpe, 0.0f, 0.1f, 33);
    lab::fill(dx, 0.0f, 1.0f, 34);
    lab::fill(dwte, 0.0f, 0.0f, 0);
    lab::fill(dwpe, 0.0f, 0.0f, 0);
    const cudaStream_t s = lab.stream;

    const lab::Cost forward{4.0 * N + 2 * NC + 2.0 * Tn * C + 4 * NC};           // idx, wte rows, wpe, x
    const lab::Cost backward{4 * NC + 8 * U * C + 8.0 * Tn * C + 4 * (2 * U + 1 + N)};  // dx; dwte rows, dwpe r/w; buckets
    lab.bench("encoder_forward (thread per element)", [&] {
        k::encoder_forward(x.data(), idx_d.data(), wte.data(), wpe.data(), kKey, B, Tn, C, s);
    }, forward);
    lab.bench("naive forward (thread per position)", [&] {
        naive_encoder_forward(x.data(), idx_d.data(), wte.data(), wpe.data(), kKey, B, Tn, C, s);
    }, forward);
    lab.bench("encoder_backward (buckets; wte + wpe kernels)", [&] {
        k::encoder_backward(dwte.data(), dwpe.data(), dx.data(), buckets.token.data(), buckets.start.data(),
                            buckets.positions.data(), buckets.count, kKey, B, Tn, C, s);
    }, backward);
#if defined(__CUDACC__)
    lab.bench("atomic backward (not deterministic)", [&] {
        atomic_encoder_backward(dwte.data(), dwpe.data(), dx.data(), idx_d.data(), kKey, B, Tn, C, s);
    }, lab::Cost{4 * NC + 4.0 * N + 8 * U * C + 8.0 * Tn * C});
#endif
    std::printf("  (the production backward reads dx twice, once per kernel: %.0f MB against the %.0f MB counted)\n",
                (backward.bytes + 4 * NC) / 1e6, backward.bytes / 1e6);
}

int main(int argc, char** argv) {
    return lab::main(argc, argv, "encoder: embedding forward with dropout, deterministic backward", [](lab::Lab& lab) {
        if (lab.checking()) check_all(lab);
        if (lab.benchmarking()) bench_all(lab);
    });
}
