// Tensor-core warp operations for the CUDA host emulation: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 and
// ldmatrix.sync.aligned.m8n8.{x2,x4}{,.trans}.shared.b16, which kernels/mma.cuh wraps for kernels. Like the shuffles
// they are warp operations: each lane leaves a pointer to its operand block (on its own stack) and waits; once all
// 32 lanes of the warp wait at the same call, the releaser computes every lane's result from the whole warp's
// operands. Included by cuda_host_emulation.h.
//
// Layouts as in the PTX ISA (release 8.7: 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with floating point type",
// 9.7.14.5.15 "Warp-level matrix load instruction: ldmatrix"). With g = lane >> 2, t = lane & 3, and half h of a
// register (h = 0: the low 16 bits):
//   A (16x16 bf16, 4 registers):  half h of register i is A[g + 8 (i & 1)][2t + h + 8 (i >> 1)]
//   B (16x8 bf16, k by n, 2 registers):                   B[2t + h + 8 i][g]
//   C, D (16x8 float, 4 registers): register i is          C[g + 8 (i >> 1)][2t + (i & 1)]
//   ldmatrix: lanes 8i..8i+7 give the addresses of rows 0..7 of the 8x8 bf16 matrix M_i (16 bytes each, 16-byte
//             aligned, in shared memory); half h of register i of lane l is M_i[l/4][2(l%4) + h], with .trans
//             M_i[2(l%4) + h][l/4]. x2 loads M_0 and M_1 and ignores the addresses of lanes 16-31.
#pragma once

#if !defined(CUDA_HOST_EMU)
#error "include kernels/launch.cuh (or kernels/emulation/cuda_host_emulation.h), not this file"
#endif

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <source_location>
#include <string>

namespace cuda_emu {
namespace detail {

// What a lane contributes. The releaser reads every lane's block before it writes any result.
struct MmaLane {
    const std::uint32_t* a;  // 4 registers
    const std::uint32_t* b;  // 2 registers
    float* acc;              // 4 floats: C in, D out
};
struct LdmatrixLane {
    const void* row;    // the address of one matrix row
    std::uint32_t* r;   // 2 or 4 registers out
};

struct RowCol { int row, col; };
inline RowCol mma_a_element(unsigned lane, int i, int h) {
    return {static_cast<int>(lane >> 2) + 8 * (i & 1), 2 * static_cast<int>(lane & 3) + h + 8 * (i >> 1)};
}
inline RowCol mma_b_element(unsigned lane, int i, int h) {
    return {2 * static_cast<int>(lane & 3) + h + 8 * i, static_cast<int>(lane >> 2)};
}
inline RowCol mma_c_element(unsigned lane, int i) {
    return {static_cast<int>(lane >> 2) + 8 * (i >> 1), 2 * static_cast<int>(lane & 3) + (i & 1)};
}
inline float bf16_half(std::uint32_t reg, int h) {
    return std::bit_cast<float>(h ? reg & 0xffff0000u : reg << 16);
}

inline void matrix_op(WarpOp op, void* operands, const std::source_location& loc) {
    Worker& w = sync_point(warp_op_name(op), loc);
    Fiber* f = w.current;
    const unsigned base = f->linear / 32 * 32;
    if (base + 32 > w.nthreads)
        w.fail(std::string(warp_op_name(op)) + " needs a whole warp, and warp " + std::to_string(base / 32) + " has " +
               std::to_string(w.nthreads - base) + " threads (at " + site_str(loc) + ")");
    f->wait = Wait::warp;
    f->op = op;
    f->mask = ~0u;
    f->operands = operands;
    f->site = loc;
    w.yield(f);
}

// Whether [p, p + n) lies in this block's shared memory: the dynamic buffer or the static __shared__ arrays (this
// thread's .tbss, see locate_tbss). Where the static ones could not be located, every address passes.
inline bool Worker::in_shared(const void* p, std::size_t n) const {
    const auto inside = [&](const void* lo, std::size_t len) {
        const auto a = reinterpret_cast<std::uintptr_t>(p), l = reinterpret_cast<std::uintptr_t>(lo);
        return a >= l && a + n <= l + len;
    };
    return !tbss_lo || inside(dyn, dyn_size) || inside(tbss_lo, tbss_len);
}

// All 32 lanes of the warp at `base` wait at the same kind of matrix operation: compute every lane's result from
// the whole warp's operands, then let the warp run on.
inline void Worker::settle_matrix_op(unsigned base) {
    auto lane = [&](unsigned l) -> Fiber& { return *fibers[base + l]; };
    const WarpOp op = lane(0).op;
    const auto of_warp = [&] { return " of warp " + std::to_string(base / 32); };  // for messages only
    std::uint32_t elsewhere = 0;
    for (unsigned l = 1; l < 32; ++l)
        if (!same_site(lane(l).site, lane(0).site)) elsewhere |= 1u << l;
    if (elsewhere)  // .aligned: all lanes must execute the same instruction, not just the same kind
        fail("divergent warp operation: lanes " + lanes_str(~elsewhere) + of_warp() + " wait at " + warp_op_name(op) + " [" +
             site_str(lane(0).site) + "] but lanes " + lanes_str(elsewhere) + " at another call of it");

    if (op == WarpOp::mma_16816) {
        float A[16][16], B[16][8], C[16][8];
        for (unsigned l = 0; l < 32; ++l) {
            const MmaLane& o = *static_cast<const MmaLane*>(lane(l).operands);
            for (int i = 0; i < 4; ++i)
                for (int h = 0; h < 2; ++h) {
                    const RowCol e = mma_a_element(l, i, h);
                    A[e.row][e.col] = bf16_half(o.a[i], h);
                }
            for (int i = 0; i < 2; ++i)
                for (int h = 0; h < 2; ++h) {
                    const RowCol e = mma_b_element(l, i, h);
                    B[e.row][e.col] = bf16_half(o.b[i], h);
                }
            for (int i = 0; i < 4; ++i) {
                const RowCol e = mma_c_element(l, i);
                C[e.row][e.col] = o.acc[i];
            }
        }
        // The products of bf16 values are exact in float; they are added to the accumulator in the order of k.
        for (unsigned l = 0; l < 32; ++l) {
            const MmaLane& o = *static_cast<const MmaLane*>(lane(l).operands);
            for (int i = 0; i < 4; ++i) {
                const RowCol e = mma_c_element(l, i);
                float d = C[e.row][e.col];
                for (int k = 0; k < 16; ++k) d += A[e.row][k] * B[k][e.col];
                o.acc[i] = d;
            }
        }
    } else {
        const int num = op == WarpOp::ldmatrix_x2 || op == WarpOp::ldmatrix_x2_trans ? 2 : 4;
        const bool trans = op == WarpOp::ldmatrix_x2_trans || op == WarpOp::ldmatrix_x4_trans;
        const char* rows[4][8];
        for (int i = 0; i < num; ++i)
            for (int j = 0; j < 8; ++j) {
                const unsigned l = static_cast<unsigned>(8 * i + j);
                const void* p = static_cast<const LdmatrixLane*>(lane(l).operands)->row;
                const bool aligned = reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
                if (!aligned || !in_shared(p, 16)) {
                    char addr[32];
                    std::snprintf(addr, sizeof addr, "%p", p);
                    fail(std::string(warp_op_name(op)) + ": lane " + std::to_string(l) + of_warp() +
                         " gives the row address " + addr + (aligned ? ", which is not in shared memory" : ", which is not 16-byte aligned") +
                         " (at " + site_str(lane(l).site) + ")");
                }
                rows[i][j] = static_cast<const char*>(p);
            }
        std::uint32_t out[32][4];
        for (unsigned l = 0; l < 32; ++l)
            for (int i = 0; i < num; ++i) {
                const auto element = [&](int row, int col) {
                    std::uint16_t v;
                    std::memcpy(&v, rows[i][row] + 2 * col, sizeof v);
                    return std::uint32_t{v};
                };
                const int r = static_cast<int>(l / 4), c = 2 * static_cast<int>(l % 4);
                out[l][i] = trans ? element(c, r) | element(c + 1, r) << 16 : element(r, c) | element(r, c + 1) << 16;
            }
        for (unsigned l = 0; l < 32; ++l)
            std::memcpy(static_cast<LdmatrixLane*>(lane(l).operands)->r, out[l], sizeof(std::uint32_t) * num);
    }
    for (unsigned l = 0; l < 32; ++l) lane(l).wait = Wait::ready;
}

}  // namespace detail

// The emulator's side of kernels/mma.cuh, with the layouts above; `loc` names the kernel's call in reports.
// acc += A B: 4 accumulator floats, 4 registers of A, 2 of B per lane.
inline void mma_16816(float (&acc)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                      const std::source_location& loc) {
    detail::MmaLane lane{a, b, acc};
    detail::matrix_op(detail::WarpOp::mma_16816, &lane, loc);
}
// ldmatrix .x2 (N = 2) or .x4 (N = 4), transposed or not; `row` is this lane's row address.
template <int N>
void ldmatrix(std::uint32_t (&r)[N], bool trans, const void* row, const std::source_location& loc) {
    static_assert(N == 2 || N == 4, "ldmatrix loads 2 or 4 matrices here");
    using detail::WarpOp;
    detail::LdmatrixLane lane{row, r};
    detail::matrix_op(N == 2 ? (trans ? WarpOp::ldmatrix_x2_trans : WarpOp::ldmatrix_x2)
                             : (trans ? WarpOp::ldmatrix_x4_trans : WarpOp::ldmatrix_x4),
                      &lane, loc);
}

}  // namespace cuda_emu
