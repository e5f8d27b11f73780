// Kernel lab: the fused classifier of kernels/classifier.cuh (softmax + cross-entropy with the ignore rule + the
// logits' gradient written in place over the bf16 logits) against a naive one-thread-per-row kernel.
// Run: build/cuda_lab/classifier [--B 18 --T 1024 --V 50257 --Vp 50304].
// Traffic that must move per call (training): read the N x V logits once, write the N x Vp gradient; the production
// kernel reads each row twice (the second read from L2 at best), so up to 3 x 2 N Vp bytes reach DRAM.
#include "dev/cuda/lab_common.cuh"
#include "kernels/classifier.cuh"
#include "lnfree/reference/losses.h"

namespace k = lnfree::kernels;
using lab::Buffer;
using lab::bf16;

// one thread per row: max, sum of exp, loss, then the gradient over the padded row (uncoalesced: rows Vp apart)
template <typename T>
__global__ void naive_classifier_kernel(T* logits, float* losses, const int* targets, int ignore_id, float dloss, int N,
                                        int V, int Vp) {
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) return;
    T* z = logits + (size_t)row * Vp;
    float m = -INFINITY, sum = 0.0f;
    for (int v = 0; v < V; v++) m = fmaxf(m, k::to_float(z[v]));
    for (int v = 0; v < V; v++) sum += expf(k::to_float(z[v]) - m);
    const float lse = m + logf(sum);
    const int target = targets[row];
    losses[row] = lse - k::to_float(z[target]);
    if (dloss == 0.0f) return;
    const float scale = target == ignore_id ? 0.0f : dloss;
    for (int v = 0; v < Vp; v++) {
        const float p = v < V ? expf(k::to_float(z[v]) - lse) : 0.0f;
        z[v] = k::from_float<T>(scale * (p - (v == target ? 1.0f : 0.0f)));
    }
}

void naive_classifier(bf16* logits, float* losses, const int* targets, int ignore_id, float dloss, int N, int V, int Vp,
                      cudaStream_t s) {
    lab::launch_kernel(naive_classifier_kernel<bf16>, dim3(k::ceil_div(N, 64)), dim3(64), 0, s, logits, losses, targets,
                       ignore_id, dloss, N, V, Vp);
}

using Classifier = void (*)(bf16*, float*, const int*, int, float, int, int, int, cudaStream_t);

std::vector<int> make_targets(int N, int V, int eot, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int> t(N);
    for (int i = 0; i < N; i++) t[i] = i % 11 == 3 ? eot : (int)(rng() % V);  // about 9% end-of-text targets: ignored
    return t;
}

// ---- correctness on min(N, 64) rows at the full vocabulary ---------------------------------------------------

void check_all(lab::Lab& lab) {
    const int N = std::min(lab.opt.N(), 64), V = lab.opt.V, Vp = lab.opt.Vp, eot = std::min(50256, V - 1);
    lab.section("correctness on " + std::to_string(N) + " rows x V " + std::to_string(V) + " (Vp " + std::to_string(Vp) +
                "), end-of-text targets ignored (losses: tol 1e-5; bf16 gradient: tol 1e-2)");
    std::vector<float> logits = lab::bf16_values(lab::random_floats((size_t)N * Vp, 2.0f, 41));
    for (int n = 0; n < N; n++)
        for (int v = V; v < Vp; v++) logits[(size_t)n * Vp + v] = 0.0f;
    const std::vector<int> targets = make_targets(N, V, eot, 42);
    std::vector<float> losses_ref(N), dlogits_ref(logits.size(), 0.0f);
    const lnfree::ref::CrossEntropyResult ce =
        lnfree::ref::crossentropy_forward(losses_ref.data(), logits.data(), targets.data(), eot, N, V, Vp);
    const float dloss = 1.0f / ce.counted;
    lnfree::ref::crossentropy_backward(dlogits_ref.data(), logits.data(), targets.data(), eot, dloss, N, V, Vp);

    Buffer<int> targets_d(targets);
    Buffer<float> losses(N);
    const Classifier production = [](bf16* z, float* losses, const int* targets, int ignore_id, float dloss, int N, int V,
                                     int Vp, cudaStream_t s) { k::classifier(z, losses, targets, ignore_id, dloss, N, V, Vp, s); };
    const std::pair<const char*, Classifier> variants[] = {{"production", production}, {"naive", naive_classifier}};
    for (const auto& [name, fn] : variants) {
        const std::string v = name;
        Buffer<bf16> z(lab::to_type<bf16>(logits));
        fn(z.data(), losses.data(), targets_d.data(), -1, 0.0f, N, V, Vp, lab.stream);  // evaluation: losses only
        lab.check(v + " evaluation (dloss 0): losses", losses.to_host(), losses_ref, 1e-5);
        lab.check_true(v + " evaluation (dloss 0): logits untouched", lab::to_floats(z.to_host()) == logits);
        fn(z.data(), losses.data(), targets_d.data(), eot, dloss, N, V, Vp, lab.stream);
        lab.check(v + " training: losses", losses.to_host(), losses_ref, 1e-5);
        lab.check(v + " training: dlogits in place", lab::to_floats(z.to_host()), dlogits_ref, 1e-2);
    }
}

// ---- timing at the full shape -------------------------------------------------------------------------------

void bench_all(lab::Lab& lab) {
    const int N = lab.opt.N(), V = lab.opt.V, Vp = lab.opt.Vp, eot = std::min(50256, V - 1);
    lab.section("timing at N " + std::to_string(N) + " rows x Vp " + std::to_string(Vp) + " (bf16 logits)");
    Buffer<bf16> logits((size_t)N * Vp);
    Buffer<float> losses(N);
    Buffer<int> targets(make_targets(N, V, eot, 42));
    lab::fill(logits, 0.0f, 2.0f, 41);
    const cudaStream_t s = lab.stream;
    const float dloss = 1.0f / N;
    // the gradient overwrites the logits, so repeated calls run on gradients: the work per call is the same
    const lab::Cost train{2.0 * N * V + 2.0 * N * Vp + 8.0 * N}, eval{2.0 * N * V + 8.0 * N};
    lab.bench("classifier, training (block per row)", [&] {
        k::classifier(logits.data(), losses.data(), targets.data(), eot, dloss, N, V, Vp, s);
    }, train);
    lab.bench("classifier, evaluation (dloss 0: losses only)", [&] {
        k::classifier(logits.data(), losses.data(), targets.data(), -1, 0.0f, N, V, Vp, s);
    }, eval);
    lab.bench("naive classifier, training (thread per row)", [&] {
        naive_classifier(logits.data(), losses.data(), targets.data(), eot, dloss, N, V, Vp, s);
    }, train);
    std::printf("  (the production kernel reads each row twice: %.0f MB reach DRAM per training call if the second\n"
                "   read misses L2, against the %.0f MB that must move)\n", 3 * 2.0 * N * Vp / 1e6, train.bytes / 1e6);
}

int main(int argc, char** argv) {
    return lab::main(argc, argv, "classifier: fused softmax cross-entropy and its gradient in place", [](lab::Lab& lab) {
        if (lab.checking()) check_all(lab);
        if (lab.benchmarking()) bench_all(lab);
    });
}
