// Tensor-core warp operations for hand-written kernels (the flash attention): the bf16 mma.sync.m16n8k16 with float32
// accumulation, and the ldmatrix loads that fill its fragments from shared memory. Under nvcc each is one PTX
// instruction; under the host emulation each is a warp operation of the emulator (kernels/emulation/cuda_host_mma.h)
// that computes the same from the whole warp's registers and reports lanes that do not take part. Every lane of the
// warp must execute the same call, as with the shuffles. doc/emulation.md has the details.
//
// Fragment layouts, checked against the PTX ISA (release 8.7: 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with
// floating point type" and 9.7.14.5.15 "Warp-level matrix load instruction: ldmatrix"). With g = lane >> 2,
// t = lane & 3, and {x, y} a register holding bf16 x in its low 16 bits and y in its high 16 bits:
//   A (16x16, row-major): r[0] = {A[g][2t], A[g][2t+1]},     r[1] = {A[g+8][2t], A[g+8][2t+1]},
//                         r[2] = {A[g][2t+8], A[g][2t+9]},   r[3] = {A[g+8][2t+8], A[g+8][2t+9]}
//   B (16x8, k by n):     r[0] = {B[2t][g], B[2t+1][g]},     r[1] = {B[2t+8][g], B[2t+9][g]}
//   C, D (16x8, float):   r[0] = C[g][2t], r[1] = C[g][2t+1], r[2] = C[g+8][2t], r[3] = C[g+8][2t+1]
//   ldmatrix: lanes 8i..8i+7 give the addresses of rows 0..7 of the 8x8 matrix M_i (16 bytes each, 16-byte aligned,
//     in shared memory); lane l receives r[i] = {M_i[l/4][2(l%4)], M_i[l/4][2(l%4)+1]}, with .trans
//     {M_i[2(l%4)][l/4], M_i[2(l%4)+1][l/4]}. x2 loads M_0 and M_1 from lanes 0..15's addresses.
// Hence, for tiles in shared memory (row-major, rows 16-byte aligned):
//   A fragment:   ldmatrix_x4 with lane l at &A[l%8 + 8(l/8%2)][8(l/16)]  (A stored k by m: ldmatrix_x4_trans with
//                 lane l at &At[l%8 + 8(l/16)][8(l/8%2)])
//   B fragment:   ldmatrix_x2_trans with lane l at &B[l%16][0] (B stored k by n, like V in P V), or ldmatrix_x2 with
//                 lane l at &Bt[l%8][8(l/8%2)] (B stored n by k, like K in Q K^T); ldmatrix_x4_trans with lane l at
//                 &B[l%16][8(l/16)] gives the fragments of two neighbouring 8-column tiles, r[0..1] and r[2..3]
//   C to A:       the C fragments of two neighbouring 16x8 tiles, packed pairwise with pack_bf16, are the A fragment
//                 of their 16x16 concatenation: {pack(left 0, 1), pack(left 2, 3), pack(right 0, 1), pack(right 2, 3)}
#pragma once
#include "kernels/common.cuh"

#include <cstdint>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "kernels/mma.cuh needs sm_80 or newer (mma.sync with bf16 operands)"
#endif

namespace lnfree::kernels {

struct MmaA { uint32_t r[4]; };  // A fragment of a 16x16 bf16 tile (row-major), two bf16 per register
struct MmaB { uint32_t r[2]; };  // B fragment of a 16x8 bf16 tile ("col" layout)
struct MmaC { float r[4]; };     // C/D fragment of a 16x8 float tile

// two bf16 in one register, `lo` in the low 16 bits (round to nearest even)
__host__ __device__ inline uint32_t pack_bf16(float lo, float hi) {
    return uint32_t{__bfloat16_as_ushort(__float2bfloat16_rn(lo))} |
           uint32_t{__bfloat16_as_ushort(__float2bfloat16_rn(hi))} << 16;
}
__host__ __device__ inline float bf16_lo(uint32_t r) {
    return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(r & 0xffffu)));
}
__host__ __device__ inline float bf16_hi(uint32_t r) {
    return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(r >> 16)));
}

#if defined(__CUDACC__)
// acc += a * b: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (bf16 in, float32 accumulate)
__device__ __forceinline__ void mma_16816(MmaC& acc, const MmaA& a, const MmaB& b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(acc.r[0]), "+f"(acc.r[1]), "+f"(acc.r[2]), "+f"(acc.r[3])
                 : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[0]), "r"(b.r[1]));
}

// ldmatrix.sync.aligned.m8n8.{x2,x4}{,.trans}.shared.b16 from a generic pointer into shared memory. No "memory"
// clobber (as in CUTLASS): shared memory that other threads wrote is ordered by the __syncthreads/__syncwarp that
// the kernel needs before the load anyway.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(row))));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(row))));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(row))));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(row))));
}
#elif defined(CUDA_HOST_EMU)
// The emulator's warp operations; `loc` names the kernel's call in deadlock and divergence reports.
inline void mma_16816(MmaC& acc, const MmaA& a, const MmaB& b, std::source_location loc = std::source_location::current()) {
    cuda_emu::mma_16816(acc.r, a.r, b.r, loc);
}
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row, std::source_location loc = std::source_location::current()) {
    cuda_emu::ldmatrix(r, false, row, loc);
}
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row, std::source_location loc = std::source_location::current()) {
    cuda_emu::ldmatrix(r, true, row, loc);
}
inline void ldmatrix_x2(uint32_t (&r)[2], const void* row, std::source_location loc = std::source_location::current()) {
    cuda_emu::ldmatrix(r, false, row, loc);
}
inline void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row, std::source_location loc = std::source_location::current()) {
    cuda_emu::ldmatrix(r, true, row, loc);
}
#endif

}  // namespace lnfree::kernels
