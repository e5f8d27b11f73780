// Host-side test data for kernels, shared by the kernel tests and the kernel lab: seeded normal samples and
// conversions between the activation type T and float.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/common.cuh"

namespace lnfree::test {

inline std::vector<float> random_floats(size_t n, float stddev, uint32_t seed, float mean = 0.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(mean, stddev);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
}

template <typename T>
std::vector<T> to_type(const std::vector<float>& v) {
    std::vector<T> out(v.size());
    for (size_t i = 0; i < v.size(); i++) out[i] = kernels::from_float<T>(v[i]);
    return out;
}

template <typename T>
std::vector<float> to_floats(const std::vector<T>& v) {
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); i++) out[i] = kernels::to_float(v[i]);
    return out;
}

// What T can hold of v: the inputs the reference must see to compare like with like.
template <typename T>
std::vector<float> representable(const std::vector<float>& v) { return to_floats(to_type<T>(v)); }

}  // namespace lnfree::test
