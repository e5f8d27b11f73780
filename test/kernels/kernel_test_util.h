// Shared by the kernel tests: random inputs, conversions between the activation type T and float, the
// per-tensor relative error, the tolerance for T (float32 1e-5, bf16 1e-2), and running a test in every
// scheduling order of the emulator (forward, reverse, random): a missing barrier shows up as wrong output.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/common.cuh"
#include "kernels/device.cuh"
#include "test/kernels/host_data.h"
#include "test/fixtures.h"

namespace lnfree::test {

using kernels::bf16;

template <typename T> constexpr double tolerance();
template <> constexpr double tolerance<float>() { return 1e-5; }
template <> constexpr double tolerance<bf16>() { return 1e-2; }

// Selects the emulator's scheduling order for the rest of the test case (GENERATE'd by the caller); on a GPU
// the hardware schedules, and the three runs repeat the same test.
inline std::string use_schedule(int which) {
    static const char* names[] = {"forward", "reverse", "random"};
#if !defined(__CUDACC__)
    cuda_emu::set_schedule(which == 0 ? cuda_emu::Schedule::forward
                           : which == 1 ? cuda_emu::Schedule::reverse : cuda_emu::Schedule::random, 12345);
#endif
    return names[which];
}

// Device copies of host data and back: the tests run unchanged on a GPU (nvcc) and under the emulator (g++).
template <typename T>
device::Buffer<T> on_device(const std::vector<T>& host) { return device::Buffer<T>(host); }
template <typename T>
std::vector<T> on_host(const device::Buffer<T>& buffer) { return buffer.to_host(); }

}  // namespace lnfree::test
