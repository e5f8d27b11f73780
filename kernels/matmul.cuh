// Matrix products, the one op the engine does not write by hand: cuBLASLt on the GPU, OpenBLAS in the emulated
// CPU build. Row-major, llm.c's (out, in) weight layout, the same calls in both builds:
//   forward          out (N, OC; row stride ldo) = inp (N, IC) W^T + bias, optionally GELU'd with the pre-GELU
//                    values saved (cuBLASLt's GELU_AUX_BIAS epilogue; GELU is the tanh approximation)
//   backward_input   dinp (N, IC) (+)= dout (N, OC; row stride ldd) W
//   backward_weight  dweight (OC, IC, float32) += dout^T inp: gradients accumulate in float32 across micro-steps
// and bias_backward (deterministic kernels): dbias (OC, float32) += column sums of dout.
// FLOPs of one product: 2 N IC OC; GPT-2 XL's micro-batch of 18*1024 tokens runs 6 * 1.56e9 * 18432 = 1.7e14 per
// forward + backward, about 0.17 s at an H100's ~990 TFLOP/s dense bf16 peak.
#pragma once
#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "kernels/common.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/reduce.cuh"

#if defined(__CUDACC__)
#include <cublasLt.h>
#endif

namespace lnfree::kernels {

// dbias (OC, float) += column sums of dout (N, OC; row stride ldd), deterministic and parallel over rows:
// block (x, chunk) sums rows [chunk * rows, (chunk + 1) * rows) of 128 columns into partial[chunk], then
// column_sum adds the chunks in order. Reads N * OC elements once.
inline constexpr int kBiasChunks = 64;

template <typename T>
__global__ void bias_partial_kernel(float* partial, const T* dout, int ldd, int N, int OC, int rows_per_chunk) {
    const int o = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (o >= OC) return;
    const int first = chunk * rows_per_chunk, last = min(N, first + rows_per_chunk);
    float sum = 0.0f;
    for (int n = first; n < last; n++) sum += to_float(dout[(size_t)n * ldd + o]);
    partial[(size_t)chunk * OC + o] = sum;
}

// scratch: kBiasChunks * OC floats
template <typename T>
void bias_backward(float* dbias, float* scratch, const T* dout, int ldd, int N, int OC, cudaStream_t stream) {
    launch_kernel(Sync::none, bias_partial_kernel<T>, dim3(ceil_div(OC, 128), kBiasChunks), dim3(128), 0, stream, scratch, dout, ldd,
                  N, OC, ceil_div(N, kBiasChunks));
    launch_kernel(Sync::none, column_sum_kernel, dim3(ceil_div(OC, 256)), dim3(256), 0, stream, dbias, (const float*)scratch,
                  kBiasChunks, OC);
}

#if defined(__CUDACC__)

template <typename T> constexpr cudaDataType_t cuda_type();
template <> constexpr cudaDataType_t cuda_type<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t cuda_type<bf16>() { return CUDA_R_16BF; }

inline void check_cublas(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw std::runtime_error(std::string("cuBLASLt: ") + what + " failed: " + cublasLtGetStatusString(s));
}

// The cuBLASLt handle and workspace: one per device, owned by the trainer and passed explicitly.
class MatmulContext {
   public:
    MatmulContext() {
        check_cublas(cublasLtCreate(&handle_), "cublasLtCreate");
        if (cudaMalloc(&workspace_, kWorkspace) != cudaSuccess) throw std::runtime_error("cuBLASLt workspace: cudaMalloc failed");
    }
    ~MatmulContext() {
        cudaFree(workspace_);
        cublasLtDestroy(handle_);
    }
    MatmulContext(const MatmulContext&) = delete;
    MatmulContext& operator=(const MatmulContext&) = delete;

    // Column-major D (m, n; ldd) = alpha op(A) op(B) + beta C with C = D; A, B in TA, D in TD; epilogue optional;
    // `batch` products at element strides stride_a, stride_b, stride_d (strided batched GEMM).
    template <typename TA, typename TD>
    void gemm(bool trans_a, bool trans_b, int m, int n, int k, const TA* A, int lda, const TA* B, int ldb, TD* D, int ldd,
              float beta, cublasLtEpilogue_t epilogue, const TA* bias, TA* aux, int ld_aux, cudaStream_t stream,
              float alpha = 1.0f, int batch = 1, long long stride_a = 0, long long stride_b = 0, long long stride_d = 0) {
        cublasLtMatmulDesc_t desc;
        check_cublas(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate");
        cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
        check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "TRANSA");
        check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "TRANSB");
        check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)), "EPILOGUE");
        if (bias) {
            cudaDataType_t bias_type = cuda_type<TA>();
            check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)), "BIAS_TYPE");
            check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), "BIAS");
        }
        if (aux) {
            int64_t ld = ld_aux;
            check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)), "AUX");
            check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)), "AUX_LD");
        }
        cublasLtMatrixLayout_t la, lb, ld;
        check_cublas(cublasLtMatrixLayoutCreate(&la, cuda_type<TA>(), trans_a ? k : m, trans_a ? m : k, lda), "layout A");
        check_cublas(cublasLtMatrixLayoutCreate(&lb, cuda_type<TA>(), trans_b ? n : k, trans_b ? k : n, ldb), "layout B");
        check_cublas(cublasLtMatrixLayoutCreate(&ld, cuda_type<TD>(), m, n, ldd), "layout D");
        if (batch > 1) {
            const std::pair<cublasLtMatrixLayout_t, long long> layouts[] = {{la, stride_a}, {lb, stride_b}, {ld, stride_d}};
            for (auto [layout, stride] : layouts) {
                check_cublas(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch)), "BATCH_COUNT");
                check_cublas(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)), "BATCH_OFFSET");
            }
        }
        // cuBLASLt assumes 256-byte aligned matrices unless told: the attention's heads are column slices (hd * 2
        // bytes apart) and a batch's matrices sit `stride` elements apart, so give each operand its real alignment
        const auto alignment = [](const void* p, long long stride_bytes) {
            const uintptr_t bits = (uintptr_t)p | (uintptr_t)stride_bytes | 256u;
            return (uint32_t)(bits & (~bits + 1));  // the lowest set bit: the largest power of two dividing all
        };
        const uint32_t align_a = alignment(A, stride_a * (long long)sizeof(TA)), align_b = alignment(B, stride_b * (long long)sizeof(TA)),
                       align_d = alignment(D, stride_d * (long long)sizeof(TD));
        // the heuristic's choice depends only on what describes the product, so it is asked once per description
        const AlgoKey key{trans_a, trans_b, m, n, k, lda, ldb, ldd, cuda_type<TA>(), cuda_type<TD>(), epilogue, bias != nullptr,
                          aux != nullptr, ld_aux, batch, stride_a, stride_b, stride_d, align_a, align_b, align_d};
        auto cached = algos_.find(key);
        if (cached == algos_.end()) {
            cublasLtMatmulPreference_t pref;
            check_cublas(cublasLtMatmulPreferenceCreate(&pref), "PreferenceCreate");
            size_t ws = kWorkspace;
            check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)), "workspace");
            check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)), "align A");
            check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)), "align B");
            check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof(align_d)), "align C");
            check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d)), "align D");
            cublasLtMatmulHeuristicResult_t heuristic;
            int found = 0;
            check_cublas(cublasLtMatmulAlgoGetHeuristic(handle_, desc, la, lb, ld, ld, pref, 1, &heuristic, &found), "heuristic");
            cublasLtMatmulPreferenceDestroy(pref);
            if (found == 0) throw std::runtime_error("cuBLASLt: no algorithm for this matmul (check alignment of leading dimensions)");
            cached = algos_.emplace(key, heuristic.algo).first;
        }
        check_cublas(cublasLtMatmul(handle_, desc, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &cached->second, workspace_,
                                    kWorkspace, stream), "cublasLtMatmul");
        cublasLtMatrixLayoutDestroy(la);
        cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(ld);
        cublasLtMatmulDescDestroy(desc);
    }

   private:
    using AlgoKey = std::tuple<bool, bool, int, int, int, int, int, int, cudaDataType_t, cudaDataType_t, cublasLtEpilogue_t,
                               bool, bool, int, int, long long, long long, long long, uint32_t, uint32_t, uint32_t>;
    static constexpr size_t kWorkspace = 32u << 20;
    cublasLtHandle_t handle_ = nullptr;
    void* workspace_ = nullptr;
    std::map<AlgoKey, cublasLtMatmulAlgo_t> algos_;  // the heuristic's first choice per product description
};

// Row-major out (N, OC) = inp (N, IC) W^T is column-major out^T (OC, N) = W^T(as stored: IC x OC col-major)^T inp^T.
template <typename T>
void matmul_forward(MatmulContext& ctx, T* out, int ldo, T* pre_gelu, const T* inp, const T* weight, const T* bias, int N,
                    int IC, int OC, cudaStream_t stream) {
    cublasLtEpilogue_t e = pre_gelu ? (bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                                    : (bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
    ctx.gemm<T, T>(true, false, OC, N, IC, weight, IC, inp, IC, out, ldo, 0.0f, e, bias, pre_gelu, OC, stream);
}

template <typename T>
void matmul_backward_input(MatmulContext& ctx, T* dinp, const T* dout, int ldd, const T* weight, int N, int IC, int OC,
                           bool accumulate, cudaStream_t stream) {
    ctx.gemm<T, T>(false, false, IC, N, OC, weight, IC, dout, ldd, dinp, IC, accumulate ? 1.0f : 0.0f,
                   CUBLASLT_EPILOGUE_DEFAULT, nullptr, nullptr, 0, stream);
}

template <typename T>
void matmul_backward_weight(MatmulContext& ctx, float* dweight, const T* dout, int ldd, const T* inp, int N, int IC, int OC,
                            cudaStream_t stream) {
    ctx.gemm<T, float>(false, true, IC, OC, N, inp, IC, dout, ldd, dweight, IC, 1.0f, CUBLASLT_EPILOGUE_DEFAULT, nullptr,
                       nullptr, 0, stream);
}

// Row-major D[i] (M, N; ldd) = alpha op(A[i]) op(B[i]) for i < batch, op(X) = X or X^T as stored row-major, with
// element strides between the batch's matrices: the attention's products over (batch, head). As column-major,
// D^T = op(B)^T op(A)^T, so the operands swap.
template <typename T, typename TD>
void batched_matmul(MatmulContext& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const T* A, int lda,
                    long long stride_a, const T* B, int ldb, long long stride_b, TD* D, int ldd, long long stride_d,
                    int batch, cudaStream_t stream) {
    ctx.gemm<T, TD>(trans_b, trans_a, N, M, K, B, ldb, A, lda, D, ldd, 0.0f, CUBLASLT_EPILOGUE_DEFAULT, nullptr, nullptr,
                    0, stream, alpha, batch, stride_b, stride_a, stride_d);
}

#endif

}  // namespace lnfree::kernels

#if !defined(__CUDACC__)
#include "kernels/matmul_cpu.cuh"  // the same calls in the emulated CPU build: OpenBLAS in float32
#endif
