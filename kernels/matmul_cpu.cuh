// The matrix products of kernels/matmul.cuh in the emulated CPU build: OpenBLAS's sgemm in float32 (lnfree/cpu_blas.h,
// one thread per call) with the same epilogues as cuBLASLt, each product split into one slice of rows per
// emulator worker (cuda_emu::parallel_for), so that kernels and products share one set of threads. A slice's
// elements are computed exactly as the whole product's would be; float32 operands are used in place (bf16 ones,
// which only the kernel tests use, are converted per slice). Included by kernels/matmul.cuh; not for nvcc.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/common.cuh"
#include "kernels/elementwise.cuh"
#include "lnfree/cpu_blas.h"

namespace lnfree::kernels {

struct MatmulContext {};

// fn(first, last) for one contiguous range of [0, n) per worker, run in parallel
template <typename F>
void for_row_slices(int n, F&& fn) {
    const int parts = std::max(1, std::min<int>(n, (int)cuda_emu::num_workers()));
    cuda_emu::parallel_for((std::uint64_t)parts, [&](std::uint64_t p) {
        fn((int)((std::int64_t)n * p / parts), (int)((std::int64_t)n * (p + 1) / parts));
    });
}

// A (rows, cols; ld) matrix of T as float32: the matrix itself when T is float, else a converted copy.
template <typename T>
class FloatMatrix {
public:
    FloatMatrix(const T* src, int rows, int cols, int ld) {
        if constexpr (std::is_same_v<T, float>) {
            data_ = src;
            ld_ = ld;
        } else {
            copy_.resize((size_t)rows * cols);
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) copy_[(size_t)r * cols + c] = to_float(src[(size_t)r * ld + c]);
            data_ = copy_.data();
            ld_ = cols;
        }
    }
    FloatMatrix(const FloatMatrix&) = delete;
    FloatMatrix& operator=(const FloatMatrix&) = delete;
    const float* data() const { return data_; }
    int ld() const { return ld_; }
private:
    const float* data_;
    int ld_;
    std::vector<float> copy_;
};

// out (N, OC; ldo) = inp W^T + bias, GELU'd with the pre-GELU values saved when pre_gelu is given
template <typename T>
void matmul_forward(MatmulContext&, T* out, int ldo, T* pre_gelu, const T* inp, const T* weight, const T* bias, int N,
                    int IC, int OC, cudaStream_t) {
    cuda_emu::ProfileScope profiled("host: matmul_forward");
    const FloatMatrix<T> w(weight, OC, IC, IC);
    for_row_slices(N, [&](int n0, int n1) {
        const int rows = n1 - n0;
        if (rows == 0) return;
        const FloatMatrix<T> a(inp + (size_t)n0 * IC, rows, IC, IC);
        std::vector<float> scratch;
        float* c = nullptr;
        int ldc = OC;
        if constexpr (std::is_same_v<T, float>) {
            c = out + (size_t)n0 * ldo;
            ldc = ldo;
        } else {
            scratch.resize((size_t)rows * OC);
            c = scratch.data();
        }
        cpu_blas::sgemm(false, true, rows, OC, IC, 1.0f, a.data(), a.ld(), w.data(), w.ld(), 0.0f, c, ldc);
        for (int n = 0; n < rows; n++)
            for (int o = 0; o < OC; o++) {
                float v = c[(size_t)n * ldc + o] + (bias ? to_float(bias[o]) : 0.0f);
                if (pre_gelu) {
                    const T stored = from_float<T>(v);
                    pre_gelu[(size_t)(n0 + n) * OC + o] = stored;
                    v = gelu_tanh(to_float(stored));
                }
                out[(size_t)(n0 + n) * ldo + o] = from_float<T>(v);
            }
    });
}

// dinp (N, IC) (+)= dout (N, OC; ldd) W
template <typename T>
void matmul_backward_input(MatmulContext&, T* dinp, const T* dout, int ldd, const T* weight, int N, int IC, int OC,
                           bool accumulate, cudaStream_t) {
    cuda_emu::ProfileScope profiled("host: matmul_backward_input");
    const FloatMatrix<T> w(weight, OC, IC, IC);
    for_row_slices(N, [&](int n0, int n1) {
        const int rows = n1 - n0;
        if (rows == 0) return;
        const FloatMatrix<T> d(dout + (size_t)n0 * ldd, rows, OC, ldd);
        if constexpr (std::is_same_v<T, float>) {
            cpu_blas::sgemm(false, false, rows, IC, OC, 1.0f, d.data(), d.ld(), w.data(), w.ld(), accumulate ? 1.0f : 0.0f,
                            dinp + (size_t)n0 * IC, IC);
        } else {
            std::vector<float> c((size_t)rows * IC);
            cpu_blas::sgemm(false, false, rows, IC, OC, 1.0f, d.data(), d.ld(), w.data(), w.ld(), 0.0f, c.data(), IC);
            T* dst = dinp + (size_t)n0 * IC;
            for (size_t i = 0; i < c.size(); i++) dst[i] = from_float<T>(c[i] + (accumulate ? to_float(dst[i]) : 0.0f));
        }
    });
}

// dweight (OC, IC, float32) += dout^T inp: each worker a slice of dweight's rows (output channels)
template <typename T>
void matmul_backward_weight(MatmulContext&, float* dweight, const T* dout, int ldd, const T* inp, int N, int IC, int OC,
                            cudaStream_t) {
    cuda_emu::ProfileScope profiled("host: matmul_backward_weight");
    const FloatMatrix<T> a(inp, N, IC, IC);
    const FloatMatrix<T> d(dout, N, OC, ldd);
    for_row_slices(OC, [&](int o0, int o1) {
        if (o1 > o0)
            cpu_blas::sgemm(true, false, o1 - o0, IC, N, 1.0f, d.data() + o0, d.ld(), a.data(), a.ld(), 1.0f,
                            dweight + (size_t)o0 * IC, IC);
    });
}

// D (M, N; ldd) = alpha op(A) op(B) for one matrix of a batch, on the calling thread
template <typename T, typename TD>
void matmul_one(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const T* A, int lda, const T* B, int ldb,
                TD* D, int ldd) {
    const FloatMatrix<T> a(A, trans_a ? K : M, trans_a ? M : K, lda), b(B, trans_b ? N : K, trans_b ? K : N, ldb);
    if constexpr (std::is_same_v<TD, float>) {
        cpu_blas::sgemm(trans_a, trans_b, M, N, K, alpha, a.data(), a.ld(), b.data(), b.ld(), 0.0f, D, ldd);
    } else {
        std::vector<float> d((size_t)M * N);
        cpu_blas::sgemm(trans_a, trans_b, M, N, K, alpha, a.data(), a.ld(), b.data(), b.ld(), 0.0f, d.data(), N);
        for (int r = 0; r < M; r++)
            for (int c = 0; c < N; c++) D[(long long)r * ldd + c] = from_float<TD>(d[(size_t)r * N + c]);
    }
}

// the batch's matrices spread over the workers
template <typename T, typename TD>
void batched_matmul(MatmulContext&, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const T* A, int lda,
                    long long stride_a, const T* B, int ldb, long long stride_b, TD* D, int ldd, long long stride_d,
                    int batch, cudaStream_t) {
    cuda_emu::ProfileScope profiled("host: batched_matmul");
    cuda_emu::parallel_for((std::uint64_t)batch, [&](std::uint64_t i) {
        matmul_one(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, D + i * stride_d, ldd);
    });
}

}  // namespace lnfree::kernels
