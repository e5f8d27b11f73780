// nvcc compile check of a kernel header written to the emulation conventions (nothing runs here):
//   nvcc -std=c++20 -arch=sm_80 -I. -c test/emulation/example_nvcc.cu -o build/emulation/example_nvcc.o
// test/emulation/test_emulation.cpp and test_mma.cpp run the same header on the CPU through g++.
#include "test/emulation/example_kernels.cuh"

void lnfree_example_row_sum(float* out, const float* x, int rows, int cols, cudaStream_t stream) {
    lnfree::set_max_dynamic_shared_memory(lnfree::example::row_sum_kernel, 64 * 1024);
    lnfree::example::row_sum(out, x, rows, cols, 1.0f, 256, stream);
}

void lnfree_example_mma_tile(float* o, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                             float scale, int tiles, cudaStream_t stream) {
    lnfree::example::mma_tile(o, q, k, v, scale, tiles, stream);
}
