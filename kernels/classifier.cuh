// The fused classifier: per row of the logits, softmax + cross-entropy with the ignore rule + the logits' gradient
// written in place, never materialising the probabilities; per-token losses out (evaluation reads them).
// One block per row; reads the row twice and writes it once: at GPT-2 XL's micro-batch (N = 18*1024, Vp = 50304)
// about 3 * 2 * N * Vp bytes in bf16, the largest memory traffic of any non-matmul op.
#pragma once
#include <cmath>

#include "kernels/common.cuh"

namespace lnfree::kernels {

// Max over a block (see block_sum; one thread: the value itself)
__device__ inline float block_max(float v, float* scratch) {
    if (blockDim.x == 1) return v;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < warps; w++) m = fmaxf(m, scratch[w]);
    __syncthreads();
    return m;
}

// losses (N) = logsumexp(logits[row, 0:V]) - logits[row, target] (0 where target < 0: no target). If dloss != 0,
// logits (N,Vp) is overwritten by its gradient: dloss * (softmax - onehot) for counted rows (target >= 0 and
// != ignore_id), 0 for the other rows and for the padding.
template <typename T>
__global__ void classifier_kernel(T* logits, float* losses, const int* targets, int ignore_id, float dloss, int N, int V,
                                  int Vp) {
    __shared__ float scratch[32];
    for (int row = blockIdx.x; row < N; row += gridDim.x) {
        T* z = logits + (size_t)row * Vp;
        float m = -INFINITY, s = 0.0f;  // this thread's running max and sum of exp(z - m)
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            const float x = to_float(z[v]);
            if (x > m) { s = s * expf(m - x) + 1.0f; m = x; }
            else s += expf(x - m);
        }
        const float row_max = block_max(m, scratch);
        const float sum = block_sum(s == 0.0f ? 0.0f : s * expf(m - row_max), scratch);
        const float lse = row_max + logf(sum);
        const int target = targets[row];
        if (threadIdx.x == 0) losses[row] = target >= 0 ? lse - to_float(z[target]) : 0.0f;
        if (blockDim.x > 1) __syncthreads();  // every thread has read z[target] before the gradient overwrites the row
        if (dloss == 0.0f) continue;
        const float scale = target == ignore_id || target < 0 ? 0.0f : dloss;
        for (int v = threadIdx.x; v < Vp; v += blockDim.x) {
            const float p = v < V ? expf(to_float(z[v]) - lse) : 0.0f;
            z[v] = from_float<T>(scale * (p - (v == target ? 1.0f : 0.0f)));
        }
    }
}

// dloss: d(total loss)/d(one counted row's loss), e.g. loss_scale / counted; 0 computes losses only (evaluation)
template <typename T>
void classifier(T* logits, float* losses, const int* targets, int ignore_id, float dloss, int N, int V, int Vp,
                cudaStream_t stream, bool single_thread = kSingleThreadReductions) {
    launch_kernel(reduction_sync(single_thread), classifier_kernel<T>, stride_grid(N, 1),
                  dim3(single_thread ? 1 : row_block(512, V, 64)), 0, stream, logits, losses, targets,
                  ignore_id, dloss, N, V, Vp);
}

}  // namespace lnfree::kernels
