// Run by hand: an out-of-bounds read inside a kernel must be reported by AddressSanitizer at the kernel's line.
//   g++ -std=c++20 -O1 -g -fsanitize=address -fno-omit-frame-pointer -I. -I/usr/local/cuda/include -pthread
//       test/emulation/asan_oob_demo.cpp -o build/emulation-asan/asan_oob_demo
//   ./build/emulation-asan/asan_oob_demo global          # heap-buffer-overflow READ in off_by_one_kernel
//   ./build/emulation-asan/asan_oob_demo dynamic-shared  # heap-buffer-overflow READ in dynamic_shared_overrun_kernel
//   ./build/emulation-asan/asan_oob_demo none            # the same kernels in bounds: no report, exit 0
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/launch.cuh"

// Sums x[i - 1] + x[i] + x[i + 1]; the bug: the last thread reads x[n].
__global__ void off_by_one_kernel(float* y, const float* x, int n, int bug) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float right = i + 1 < n + bug ? x[i + 1] : 0.0f;
    y[i] = (i > 0 ? x[i - 1] : 0.0f) + x[i] + right;
}

// Reads one float past the dynamic shared memory the launch asked for.
__global__ void dynamic_shared_overrun_kernel(float* y, int bug) {
    LNFREE_DYNAMIC_SHARED(float, s);
    s[threadIdx.x] = static_cast<float>(threadIdx.x);
    __syncthreads();
    y[threadIdx.x] = s[threadIdx.x + bug];
}

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "global";
    const int n = 1000;
    std::vector<float> x(n, 1.0f), y(n);
    lnfree::launch_kernel(off_by_one_kernel, dim3((n + 127) / 128), dim3(128), 0, nullptr, y.data(), x.data(), n,
                          std::strcmp(mode, "global") == 0 ? 1 : 0);
    lnfree::launch_kernel(dynamic_shared_overrun_kernel, dim3(1), dim3(64), 64 * sizeof(float), nullptr, y.data(),
                          std::strcmp(mode, "dynamic-shared") == 0 ? 1 : 0);
    std::printf("no out-of-bounds access reported (mode %s)\n", mode);
    return 0;
}
