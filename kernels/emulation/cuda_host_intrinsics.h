// Device intrinsics for the CUDA host emulation: atomics, cache-hinted loads and stores, math and bit intrinsics,
// CUDA's overloaded min/max. Included by cuda_host_emulation.h (the synchronisation and warp intrinsics live there).
#pragma once

#if !defined(CUDA_HOST_EMU)
#error "include kernels/launch.cuh (or kernels/emulation/cuda_host_emulation.h), not this file"
#endif

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

// ---------------------------------------------------------------------------------------------------------------
// Atomics: real atomics (blocks run in parallel). They return the old value, as in CUDA.
namespace cuda_emu::detail {
template <typename T, typename F>
T atomic_update(T* address, F f) {  // compare-and-swap loop on the value's bits
    using Bits = std::conditional_t<sizeof(T) == 2, std::uint16_t, std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;
    static_assert(sizeof(T) == sizeof(Bits));
    std::atomic_ref<Bits> ref(*reinterpret_cast<Bits*>(address));
    Bits old_bits = ref.load(std::memory_order_relaxed);
    for (;;) {
        const T old = std::bit_cast<T>(old_bits);
        if (ref.compare_exchange_weak(old_bits, std::bit_cast<Bits>(static_cast<T>(f(old))), std::memory_order_seq_cst))
            return old;
    }
}
}  // namespace cuda_emu::detail

#define LNFREE_EMU_ATOMIC_INT(T)                                                                                   \
    inline T atomicAdd(T* a, T v) { return std::atomic_ref<T>(*a).fetch_add(v); }                              \
    inline T atomicSub(T* a, T v) { return std::atomic_ref<T>(*a).fetch_sub(v); }                              \
    inline T atomicAnd(T* a, T v) { return std::atomic_ref<T>(*a).fetch_and(v); }                              \
    inline T atomicOr(T* a, T v) { return std::atomic_ref<T>(*a).fetch_or(v); }                                \
    inline T atomicXor(T* a, T v) { return std::atomic_ref<T>(*a).fetch_xor(v); }                              \
    inline T atomicExch(T* a, T v) { return std::atomic_ref<T>(*a).exchange(v); }                              \
    inline T atomicCAS(T* a, T compare, T v) { std::atomic_ref<T>(*a).compare_exchange_strong(compare, v); return compare; } \
    inline T atomicMax(T* a, T v) { return cuda_emu::detail::atomic_update(a, [v](T o) { return o < v ? v : o; }); } \
    inline T atomicMin(T* a, T v) { return cuda_emu::detail::atomic_update(a, [v](T o) { return v < o ? v : o; }); }
LNFREE_EMU_ATOMIC_INT(int)
LNFREE_EMU_ATOMIC_INT(unsigned int)
LNFREE_EMU_ATOMIC_INT(unsigned long long int)
LNFREE_EMU_ATOMIC_INT(long long int)
#undef LNFREE_EMU_ATOMIC_INT

inline float atomicAdd(float* a, float v) { return std::atomic_ref<float>(*a).fetch_add(v); }
inline double atomicAdd(double* a, double v) { return std::atomic_ref<double>(*a).fetch_add(v); }
inline float atomicExch(float* a, float v) { return std::atomic_ref<float>(*a).exchange(v); }
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* a, __nv_bfloat16 v) {
    return cuda_emu::detail::atomic_update(a, [v](__nv_bfloat16 o) { return __float2bfloat16(__bfloat162float(o) + __bfloat162float(v)); });
}
inline __half atomicAdd(__half* a, __half v) {
    return cuda_emu::detail::atomic_update(a, [v](__half o) { return __float2half(__half2float(o) + __half2float(v)); });
}

// ---------------------------------------------------------------------------------------------------------------
// Cache-hinted loads and stores: plain accesses on the CPU (any type: scalars, float4, int4, __nv_bfloat162, ...).
template <typename T> inline T __ldg(const T* p) { return *p; }
template <typename T> inline T __ldcg(const T* p) { return *p; }
template <typename T> inline T __ldca(const T* p) { return *p; }
template <typename T> inline T __ldcs(const T* p) { return *p; }
template <typename T> inline T __ldlu(const T* p) { return *p; }
template <typename T> inline T __ldcv(const T* p) { return *p; }
template <typename T> inline void __stcg(T* p, T v) { *p = v; }
template <typename T> inline void __stcs(T* p, T v) { *p = v; }
template <typename T> inline void __stwb(T* p, T v) { *p = v; }
template <typename T> inline void __stwt(T* p, T v) { *p = v; }

// ---------------------------------------------------------------------------------------------------------------
// Math and bit intrinsics. The fast-math versions (__expf, __logf, __fdividef) are the accurate host functions:
// compare with tolerances (doc/emulation.md).
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return x ? std::countr_zero(static_cast<unsigned>(x)) + 1 : 0; }
inline int __ffsll(long long x) { return x ? std::countr_zero(static_cast<unsigned long long>(x)) + 1 : 0; }
inline unsigned __brev(unsigned x) {
    x = (x >> 1 & 0x55555555u) | (x & 0x55555555u) << 1;
    x = (x >> 2 & 0x33333333u) | (x & 0x33333333u) << 2;
    x = (x >> 4 & 0x0F0F0F0Fu) | (x & 0x0F0F0F0Fu) << 4;
    return __builtin_bswap32(x);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return static_cast<unsigned>((std::uint64_t{a} * b) >> 32); }

// CUDA's overloaded min/max (crt/math_functions.hpp): mixed signedness goes unsigned, mixed float/double double.
#define LNFREE_EMU_MINMAX(R, A, B)                                                                                 \
    inline R min(A a, B b) { return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); } \
    inline R max(A a, B b) { return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(b) : static_cast<R>(a); }
LNFREE_EMU_MINMAX(int, int, int)
LNFREE_EMU_MINMAX(unsigned, unsigned, unsigned)
LNFREE_EMU_MINMAX(unsigned, int, unsigned)
LNFREE_EMU_MINMAX(unsigned, unsigned, int)
LNFREE_EMU_MINMAX(long, long, long)
LNFREE_EMU_MINMAX(unsigned long, unsigned long, unsigned long)
LNFREE_EMU_MINMAX(unsigned long, long, unsigned long)
LNFREE_EMU_MINMAX(unsigned long, unsigned long, long)
LNFREE_EMU_MINMAX(long long, long long, long long)
LNFREE_EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
LNFREE_EMU_MINMAX(unsigned long long, long long, unsigned long long)
LNFREE_EMU_MINMAX(unsigned long long, unsigned long long, long long)
#undef LNFREE_EMU_MINMAX
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
inline double min(float a, double b) { return std::fmin(static_cast<double>(a), b); }
inline double max(float a, double b) { return std::fmax(static_cast<double>(a), b); }
inline double min(double a, float b) { return std::fmin(a, static_cast<double>(b)); }
inline double max(double a, float b) { return std::fmax(a, static_cast<double>(b)); }
