// Kernel lab: the LayerNorm paths of kernels/layernorm.cuh (stats, normalize real/fixed, backward real/fixed)
// against naive one-thread-per-row kernels. Run: build/cuda_lab/layernorm [--B 18 --T 1024 --C 1600] (--help).
// Traffic counted per call with N rows of C: stats reads x (fp32); normalize reads x, writes out (bf16);
// backward reads dout (bf16) and x, reads and writes dx (fp32), plus per-block dw/db partials.
#include "dev/cuda/lab_common.cuh"
#include "kernels/layernorm.cuh"
#include "lnfree/reference/layernorm.h"

namespace k = lnfree::kernels;
using lab::Buffer;
using lab::bf16;

// ---- naive variants: one thread per row (uncoalesced: neighbouring threads read rows C floats apart) ----------

__global__ void naive_stats_kernel(float* mean, float* std_out, const float* x, int N, int C) {
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) return;
    const float* xr = x + (size_t)row * C;
    float sum = 0.0f, sq = 0.0f;
    for (int c = 0; c < C; c++) sum += xr[c];
    const float m = sum / C;
    for (int c = 0; c < C; c++) sq += (xr[c] - m) * (xr[c] - m);
    mean[row] = m;
    std_out[row] = sqrtf(sq / C + k::kLayerNormEps);
}

template <typename T>
__global__ void naive_normalize_kernel(T* out, float* rstd, const float* x, const float* mean, const float* std_in,
                                       const T* w, const T* b, const float* sigma, int N, int C) {
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) return;
    const float r = sigma ? 1.0f / *sigma : 1.0f / std_in[row], m = mean[row];
    for (int c = 0; c < C; c++)
        out[(size_t)row * C + c] = k::from_float<T>((x[(size_t)row * C + c] - m) * r * k::to_float(w[c]) + k::to_float(b[c]));
    rstd[row] = r;
}

// dx += ... one thread per row; then dw, db += one thread per column over the rows in order (deterministic)
template <typename T>
__global__ void naive_backward_dx_kernel(float* dx, const T* dout, const float* x, const float* mean, const float* rstd,
                                         const T* w, bool fixed, int N, int C) {
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) return;
    const size_t base = (size_t)row * C;
    const float m = mean[row], r = rstd[row];
    float g_sum = 0.0f, gx_sum = 0.0f;
    for (int c = 0; c < C; c++) {
        const float g = k::to_float(dout[base + c]) * k::to_float(w[c]);
        g_sum += g;
        gx_sum += g * (x[base + c] - m) * r;
    }
    const float g_mean = g_sum / C, gx_mean = fixed ? 0.0f : gx_sum / C;
    for (int c = 0; c < C; c++)
        dx[base + c] += r * (k::to_float(dout[base + c]) * k::to_float(w[c]) - g_mean - (x[base + c] - m) * r * gx_mean);
}

template <typename T>
__global__ void naive_backward_dwdb_kernel(float* dw, float* db, const T* dout, const float* x, const float* mean,
                                           const float* rstd, int N, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sw = 0.0f, sb = 0.0f;
    for (int row = 0; row < N; row++) {
        const float d = k::to_float(dout[(size_t)row * C + c]);
        sw += d * (x[(size_t)row * C + c] - mean[row]) * rstd[row];
        sb += d;
    }
    dw[c] += sw;
    db[c] += sb;
}

void naive_stats(float* mean, float* std_out, const float* x, int N, int C, cudaStream_t s) {
    lab::launch_kernel(naive_stats_kernel, dim3(k::ceil_div(N, 128)), dim3(128), 0, s, mean, std_out, x, N, C);
}
void naive_normalize(bf16* out, float* rstd, const float* x, const float* mean, const float* std_in, const bf16* w,
                     const bf16* b, const float* sigma, int N, int C, cudaStream_t s) {
    lab::launch_kernel(naive_normalize_kernel<bf16>, dim3(k::ceil_div(N, 128)), dim3(128), 0, s, out, rstd, x, mean,
                       std_in, w, b, sigma, N, C);
}
void naive_backward(float* dx, float* dw, float* db, const bf16* dout, const float* x, const float* mean, const float* rstd,
                    const bf16* w, bool fixed, int N, int C, cudaStream_t s) {
    lab::launch_kernel(naive_backward_dx_kernel<bf16>, dim3(k::ceil_div(N, 128)), dim3(128), 0, s, dx, dout, x, mean, rstd,
                       w, fixed, N, C);
    lab::launch_kernel(naive_backward_dwdb_kernel<bf16>, dim3(k::ceil_div(C, 128)), dim3(128), 0, s, dw, db, dout, x, mean,
                       rstd, N, C);
}

// ---- correctness: every variant once, on min(N, 256) rows at the full width, against lnfree/reference ---------

void check_all(lab::Lab& lab) {
    const int N = std::min(lab.opt.N(), 256), C = lab.opt.C;
    const float sigma_value = 1.1f;
    lab.section("correctness on " + std::to_string(N) + " rows x " + std::to_string(C) +
                " (bf16 outputs: tol 1e-2; fp32 outputs: tol 1e-5)");
    const std::vector<float> x = lab::random_floats((size_t)N * C, 1.3f, 1, 0.4f);
    const std::vector<float> w = lab::bf16_values(lab::random_floats(C, 0.1f, 2, 1.0f)), b = lab::bf16_values(lab::random_floats(C, 0.1f, 3));
    const std::vector<float> dout = lab::bf16_values(lab::random_floats((size_t)N * C, 1.0f, 4));
    const std::vector<float> dx0 = lab::random_floats((size_t)N * C, 0.5f, 5), dw0 = lab::random_floats(C, 0.5f, 6), db0 = lab::random_floats(C, 0.5f, 7);
    Buffer<float> x_d(x), sigma(std::vector<float>{sigma_value}), mean(N), stdev(N), rstd(N);
    Buffer<bf16> w_d(lab::to_type<bf16>(w)), b_d(lab::to_type<bf16>(b)), dout_d(lab::to_type<bf16>(dout)), out((size_t)N * C);
    Buffer<float> scratch(2 * (size_t)k::layernorm_backward_blocks(N) * C);

    for (const bool naive : {false, true}) {
        const std::string v = naive ? "naive" : "production";
        if (naive) naive_stats(mean.data(), stdev.data(), x_d.data(), N, C, lab.stream);
        else k::layernorm_stats(mean.data(), stdev.data(), x_d.data(), N, C, lab.stream);
        std::vector<float> s_ref(N), m_ref(N);
        for (int n = 0; n < N; n++) {
            double m, var;
            lnfree::ref::row_mean_var(x.data() + (size_t)n * C, C, &m, &var);
            m_ref[n] = (float)m;
            s_ref[n] = (float)std::sqrt(var + lnfree::ref::kLayerNormEps);
        }
        lab.check(v + " stats: mean", mean.to_host(), m_ref, 1e-5);
        lab.check(v + " stats: std", stdev.to_host(), s_ref, 1e-5);
        for (const bool fixed : {false, true}) {
            const std::string vm = v + (fixed ? " fixed" : " real");
            const float* sig = fixed ? sigma.data() : nullptr;
            if (naive) naive_normalize(out.data(), rstd.data(), x_d.data(), mean.data(), stdev.data(), w_d.data(), b_d.data(), sig, N, C, lab.stream);
            else k::layernorm_normalize(out.data(), rstd.data(), x_d.data(), mean.data(), stdev.data(), w_d.data(), b_d.data(), sig, N, C, lab.stream);
            std::vector<float> out_ref((size_t)N * C), mean_ref(N), rstd_ref(N);
            lnfree::ref::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), x.data(), w.data(), b.data(),
                                           fixed ? (double)sigma_value : 0.0, N, C);
            lab.check(vm + " normalize: out (bf16)", lab::to_floats(out.to_host()), out_ref, 1e-2);
            lab.check(vm + " normalize: rstd", rstd.to_host(), rstd_ref, 1e-5);

            Buffer<float> dx(dx0), dw(dw0), db(db0);
            if (naive) naive_backward(dx.data(), dw.data(), db.data(), dout_d.data(), x_d.data(), mean.data(), rstd.data(), w_d.data(), fixed, N, C, lab.stream);
            else k::layernorm_backward(dx.data(), dw.data(), db.data(), scratch.data(), dout_d.data(), x_d.data(), mean.data(), rstd.data(), w_d.data(), fixed, N, C, lab.stream);
            std::vector<float> dx_ref = dx0, dw_ref = dw0, db_ref = db0;
            lnfree::ref::layernorm_backward(dx_ref.data(), dw_ref.data(), db_ref.data(), dout.data(), x.data(), mean_ref.data(),
                                            rstd_ref.data(), w.data(), fixed, N, C);
            lab.check(vm + " backward: dx", dx.to_host(), dx_ref, 1e-5);
            lab.check(vm + " backward: dw", dw.to_host(), dw_ref, 1e-5);
            lab.check(vm + " backward: db", db.to_host(), db_ref, 1e-5);
        }
    }
}

// ---- timing at the full shape -------------------------------------------------------------------------------

void bench_all(lab::Lab& lab) {
    const int N = lab.opt.N(), C = lab.opt.C;
    const double NC = (double)N * C;
    lab.section("timing at N = " + std::to_string(N) + " rows x C = " + std::to_string(C));
    Buffer<float> x((size_t)N * C), mean(N), stdev(N), rstd(N), sigma(std::vector<float>{1.1f});
    Buffer<float> dx((size_t)N * C), dw(C), db(C), scratch(2 * (size_t)k::layernorm_backward_blocks(N) * C);
    Buffer<bf16> w(C), b(C), out((size_t)N * C), dout((size_t)N * C);
    lab::fill(x, 0.4f, 1.3f, 1);
    lab::fill(w, 1.0f, 0.1f, 2);
    lab::fill(b, 0.0f, 0.1f, 3);
    lab::fill(dout, 0.0f, 1.0f, 4);
    lab::fill(dx, 0.0f, 0.5f, 5);
    lab::fill(dw, 0.0f, 0.5f, 6);
    lab::fill(db, 0.0f, 0.5f, 7);
    const cudaStream_t s = lab.stream;
    k::layernorm_stats(mean.data(), stdev.data(), x.data(), N, C, s);  // valid statistics for the other kernels
    lab.synchronize();

    const lab::Cost stats{4 * NC + 8.0 * N};                                   // x; mean, std
    const lab::Cost normalize{4 * NC + 2 * NC + 12.0 * N + 4.0 * C};           // x, out; mean, std, rstd; w, b
    const double partials = 2.0 * k::layernorm_backward_blocks(N) * C * 4 * 2;  // written, then read by column_sum
    const lab::Cost backward{2 * NC + 4 * NC + 8 * NC + 8.0 * N + partials + 16.0 * C + 4.0 * C};
    const lab::Cost naive_backward_cost{2 * NC + 4 * NC + 8 * NC + 8.0 * N + 16.0 * C + 4.0 * C};

    lab.bench("layernorm_stats (warp per row)", [&] { k::layernorm_stats(mean.data(), stdev.data(), x.data(), N, C, s); }, stats);
    lab.bench("naive stats (thread per row)", [&] { naive_stats(mean.data(), stdev.data(), x.data(), N, C, s); }, stats);
    for (const bool fixed : {false, true}) {
        const float* sig = fixed ? sigma.data() : nullptr;
        const std::string m = fixed ? " fixed" : " real";
        lab.bench("layernorm_normalize" + m + " (thread per element)", [&] {
            k::layernorm_normalize(out.data(), rstd.data(), x.data(), mean.data(), stdev.data(), w.data(), b.data(), sig, N, C, s);
        }, normalize);
        lab.bench("naive normalize" + m + " (thread per row)", [&] {
            naive_normalize(out.data(), rstd.data(), x.data(), mean.data(), stdev.data(), w.data(), b.data(), sig, N, C, s);
        }, normalize);
    }
    for (const bool fixed : {false, true}) {
        const std::string m = fixed ? " fixed" : " real";
        lab.bench("layernorm_backward" + m + " (block per row)", [&] {
            k::layernorm_backward(dx.data(), dw.data(), db.data(), scratch.data(), dout.data(), x.data(), mean.data(),
                                  rstd.data(), w.data(), fixed, N, C, s);
        }, backward);
        lab.bench("naive backward" + m + " (thread per row/col)", [&] {
            naive_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), mean.data(), rstd.data(), w.data(), fixed, N, C, s);
        }, naive_backward_cost);
    }
}

int main(int argc, char** argv) {
    return lab::main(argc, argv, "layernorm: stats, normalize (real, fixed), backward (real, fixed)", [](lab::Lab& lab) {
        if (lab.checking()) check_all(lab);
        if (lab.benchmarking()) bench_all(lab);
    });
}
