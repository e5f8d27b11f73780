// CUDA host emulation: g++ compiles the project's kernel headers and each launch runs its grid on the CPU.
//
// Every CUDA thread of a block is a fiber (own stack, hand-written x86-64 context switch) on one worker OS thread;
// blocks are spread over a pool of workers. A block runs in rounds: each runnable fiber runs, in the selected order
// (forward, reverse or random), until it reaches a sync point (__syncthreads, a warp operation) or exits. At the end
// of a round, complete warp operations and the block barrier are released; if nothing can be released the block is
// deadlocked and a cuda_emu::KernelError says which warps and lanes wait where. A launch declared free of
// synchronisation (Threads::plain) runs each block as a plain loop over its threads instead, in the same order,
// and any sync point such a thread reaches fails the launch. doc/emulation.md is the manual.
//
// Include kernels/launch.cuh, not this file: it picks this header under g++ and the CUDA runtime under nvcc.
#pragma once

#if defined(__CUDACC__)
#error "cuda_host_emulation.h is for host compilers; include kernels/launch.cuh instead"
#endif
#if !defined(__x86_64__) || !defined(__linux__)
#error "the CUDA host emulation needs x86-64 Linux (hand-written context switch, glibc TLS layout)"
#endif

#define CUDA_HOST_EMU 1

// The CUDA headers compile as plain host code: dim3, uint3, float4, cudaStream_t, cudaError_t, cudaFuncAttribute,
// cudaDeviceProp, and the host halves of __nv_bfloat16 / __half (conversions and operators match nvcc's host code).
#include <cuda_runtime_api.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <source_location>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include "kernels/emulation/cuda_host_profile.h"

// ---------------------------------------------------------------------------------------------------------------
// Qualifiers. host_defines.h (pulled in above) already maps most of them to nothing for a host compiler; spell it out.
#undef __global__
#undef __device__
#undef __host__
#undef __constant__
#undef __managed__
#undef __grid_constant__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
// inline: the emulated test binary includes a kernel header from several translation units (nvcc builds each
// GPU program from one), and an inline function may be defined in each
#define __global__ inline
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One block runs on one worker thread at a time, so a block-scope `static thread_local` is shared by exactly the
// fibers of that block. The layer fills it with 0xFF bytes before each block (see poison_static_shared).
#define __shared__ static thread_local

// Dynamic shared memory: `LNFREE_DYNAMIC_SHARED(float, buf);` declares `float* const buf` pointing at the launch's
// dynamic shared memory (under nvcc: an `extern __shared__` byte array, see kernels/launch.cuh).
#define LNFREE_DYNAMIC_SHARED(type, name) type* const name = reinterpret_cast<type*>(::cuda_emu::detail::dynamic_shared_memory())

// Built-in variables: real thread-local variables (not macros), switched with each fiber.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
inline constexpr int warpSize = 32;  // a variable, so that cudaDeviceProp::warpSize still compiles

namespace cuda_emu {

// Everything the layer reports (bad launch configuration, deadlock, divergent warp or block synchronisation, misuse
// of an intrinsic, __trap) is a KernelError. code is what a real launch would have returned, where one applies.
class KernelError : public std::runtime_error {
public:
    explicit KernelError(const std::string& what, cudaError_t code = cudaErrorLaunchFailure)
        : std::runtime_error(what), code_(code) {}
    cudaError_t code() const noexcept { return code_; }
private:
    cudaError_t code_;
};

enum class Schedule { forward, reverse, random };

// How a launch runs its blocks. fibers: every thread a fiber, for kernels that synchronise (always correct).
// plain: the kernel's threads never meet __syncthreads or a warp operation, so each block runs its threads one
// after the other to completion, as ordinary calls on the worker's stack (no fiber set-up or switch); a thread
// that reaches a sync point fails the launch with a KernelError that names the call.
enum class Threads { fibers, plain };

inline void set_schedule(Schedule s, std::uint64_t seed = 1);  // default: LNFREE_EMU_SCHEDULE=forward|reverse|random[:seed]
inline Schedule schedule();
inline std::uint64_t schedule_seed();
inline const char* schedule_name(Schedule s);
inline void set_num_workers(unsigned n);  // default: LNFREE_EMU_WORKERS, else available_cores() up to 16
inline unsigned available_cores();        // this process's affinity mask (taskset, cgroups, Slurm)
inline unsigned num_workers();
inline void set_poison_shared(bool on);   // default: on (LNFREE_EMU_POISON=0 turns it off)
inline void set_plain_loops(bool on);     // default: on; off runs Threads::plain launches on fibers (LNFREE_EMU_PLAIN=0)
inline bool plain_loops();
inline bool static_shared_poisoning();    // whether static __shared__ can be (and is) poisoned in this process

// Each worker keeps up to 1024 fiber stacks of two mappings (guard + stack): 16 workers x 1024 threads stay far
// below vm.max_map_count. The default worker count is at most this.
inline constexpr unsigned kMaxWorkers = 16;
inline constexpr int kDefaultMaxDynamicShared = 48 * 1024;   // without cudaFuncSetAttribute, as on every GPU
inline constexpr int kDeviceMaxDynamicShared = 227 * 1024;   // opt-in limit of sm_90 (sm_80: 163 KiB)

namespace detail {

// -------------------------------------------------------------------------------------------------------------
// Context switch. lnfree_emu_switch(&save, next) pushes the callee-saved registers on the current stack, stores the
// stack pointer in *save, loads `next` and pops the registers saved there; `ret` then resumes the other context.
// It is an ordinary call to the compiler, so caller-saved registers and all memory (threadIdx, __shared__ arrays)
// are assumed clobbered across it. MXCSR and the x87 control word are not switched: kernels never change them.
// A new fiber's stack is prepared so that the first switch "returns" into lnfree_emu_fiber_start, which calls
// entry(arg) from r13/r12 with the stack 16-byte aligned; entry never returns. COMDAT + weak: one copy per binary.
extern "C" void lnfree_emu_switch(void** save_sp, void* load_sp);
extern "C" void lnfree_emu_fiber_start();
asm(R"(
    .pushsection .text.lnfree_emu_switch,"axG",@progbits,lnfree_emu_switch,comdat
    .weak lnfree_emu_switch
    .hidden lnfree_emu_switch
    .type lnfree_emu_switch,@function
lnfree_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size lnfree_emu_switch, .-lnfree_emu_switch
    .weak lnfree_emu_fiber_start
    .hidden lnfree_emu_fiber_start
    .type lnfree_emu_fiber_start,@function
lnfree_emu_fiber_start:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size lnfree_emu_fiber_start, .-lnfree_emu_fiber_start
    .popsection
)");

// Fiber stacks: mmap'd, a PROT_NONE guard page below, reused across blocks and launches.
struct Stack {
    char* map = nullptr;
    std::size_t map_size = 0;
    char* lo() const { return map + page(); }
    std::size_t size() const { return map_size - page(); }
    char* top() const { return map + map_size; }
    static std::size_t page() { static const std::size_t p = static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); return p; }
};

inline std::size_t default_stack_size() {
#if defined(__SANITIZE_ADDRESS__)
    std::size_t kib = 512;  // redzones make frames larger
#else
    std::size_t kib = 128;
#endif
    if (const char* e = std::getenv("LNFREE_EMU_STACK_KIB")) kib = std::strtoull(e, nullptr, 10);
    return std::max<std::size_t>(kib, 16) * 1024;
}

inline void stack_alloc(Stack& s, std::size_t usable) {
    const std::size_t total = (usable + Stack::page() - 1) / Stack::page() * Stack::page() + Stack::page();
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    mprotect(p, Stack::page(), PROT_NONE);
    s.map = static_cast<char*>(p);
    s.map_size = total;
}

inline void stack_free(Stack& s) {
    if (s.map) munmap(s.map, s.map_size);
    s = Stack{};
}

// Lay out a fresh stack as lnfree_emu_switch expects: r15 r14 r13(entry) r12(arg) rbx rbp, return address.
inline void* fiber_prepare(const Stack& s, void (*entry)(void*), void* arg) {
#if defined(__SANITIZE_ADDRESS__)
    ASAN_UNPOISON_MEMORY_REGION(s.lo(), s.size());  // frames abandoned by the previous block left redzones behind
#endif
    auto* top = reinterpret_cast<std::uintptr_t*>(s.top());  // page aligned
    top[-1] = reinterpret_cast<std::uintptr_t>(&lnfree_emu_fiber_start);
    top[-2] = 0;                                            // rbp
    top[-3] = 0;                                            // rbx
    top[-4] = reinterpret_cast<std::uintptr_t>(arg);        // r12
    top[-5] = reinterpret_cast<std::uintptr_t>(entry);      // r13
    top[-6] = 0;                                            // r14
    top[-7] = 0;                                            // r15
    return top - 7;
}

// AddressSanitizer must be told about every switch between stacks.
inline void asan_start_switch(void** fake_stack_save, const void* bottom, std::size_t size) {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
    (void)fake_stack_save, (void)bottom, (void)size;
#endif
}
inline void asan_finish_switch(void* fake_stack) {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
    (void)fake_stack;
#endif
}

// -------------------------------------------------------------------------------------------------------------
// Settings.

// The cores this process may run on (its affinity mask: taskset, cgroups, Slurm), else hardware_concurrency().
inline unsigned available_cores() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<unsigned>(CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

struct Settings {
    std::atomic<int> schedule{0};
    std::atomic<std::uint64_t> seed{1};
    std::atomic<bool> poison{true};
    std::atomic<unsigned> workers{0};
    std::atomic<bool> plain{true};
    Settings() {
        if (const char* e = std::getenv("LNFREE_EMU_SCHEDULE")) {
            const std::string v = e;
            if (v.rfind("reverse", 0) == 0) schedule = static_cast<int>(Schedule::reverse);
            else if (v.rfind("random", 0) == 0) schedule = static_cast<int>(Schedule::random);
            else if (v.rfind("forward", 0) != 0) std::fprintf(stderr, "cuda_emu: unknown LNFREE_EMU_SCHEDULE=%s, using forward\n", e);
            if (auto colon = v.find(':'); colon != std::string::npos) seed = std::strtoull(v.c_str() + colon + 1, nullptr, 0);
        }
        if (const char* e = std::getenv("LNFREE_EMU_POISON")) poison = std::strcmp(e, "0") != 0;
        if (const char* e = std::getenv("LNFREE_EMU_PLAIN")) plain = std::strcmp(e, "0") != 0;
        unsigned n = std::min(kMaxWorkers, available_cores());
        if (const char* e = std::getenv("LNFREE_EMU_WORKERS")) n = static_cast<unsigned>(std::strtoul(e, nullptr, 10));
        workers = n ? n : 1;
    }
};
inline Settings& settings() { static Settings s; return s; }

// -------------------------------------------------------------------------------------------------------------
// Per-launch description, shared by the workers.
struct LaunchDesc {
    void (*body)(const void* args) = nullptr;  // calls the kernel with a copy of the packed arguments
    const void* args = nullptr;
    Threads threads = Threads::fibers;
    // host tasks (parallel_for): task(context, i) for every i < nblocks, instead of blocks of a kernel
    void (*task)(void* context, std::uint64_t i) = nullptr;
    void* task_context = nullptr;
    const void* kernel = nullptr;              // for names in messages
    dim3 grid, block;
    std::size_t dynamic_smem = 0;
    std::uint64_t nblocks = 0;
    Schedule sched = Schedule::forward;
    std::uint64_t seed = 1;
    bool poison = true;
    std::atomic<std::uint64_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex error_mu;
    std::exception_ptr error;
    std::uint64_t error_block = ~0ull;
};

inline std::string kernel_name(const void* fn);

enum class Wait : std::uint8_t { ready, barrier, warp, done };
// The matrix operations (cuda_host_mma.h) come last: is_matrix_op relies on it.
enum class WarpOp : std::uint8_t {
    syncwarp, shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, any, all,
    mma_16816, ldmatrix_x2, ldmatrix_x2_trans, ldmatrix_x4, ldmatrix_x4_trans
};

inline const char* warp_op_name(WarpOp op) {
    static const char* const names[] = {"__syncwarp", "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
                                        "__shfl_xor_sync", "__ballot_sync", "__any_sync", "__all_sync",
                                        "mma_16816", "ldmatrix_x2", "ldmatrix_x2_trans", "ldmatrix_x4", "ldmatrix_x4_trans"};
    return names[static_cast<int>(op)];
}
inline bool is_matrix_op(WarpOp op) { return op >= WarpOp::mma_16816; }

struct Fiber {
    void* sp = nullptr;
    Stack stack;
    void* asan_fake = nullptr;
    unsigned linear = 0;  // linear thread index in the block
    uint3 tid{};
    Wait wait = Wait::ready;
    std::source_location site;  // where it waits
    // Warp-op operands (deposited by the lane) and result (written by the releaser before the lane resumes).
    WarpOp op = WarpOp::syncwarp;
    unsigned mask = 0;
    int b = 0, width = 32;
    std::uint64_t value = 0, result = 0;
    void* operands = nullptr;  // matrix operations: the lane's operand and result block, on its own stack
};

inline bool same_site(const std::source_location& a, const std::source_location& b) {
    return a.line() == b.line() && a.column() == b.column() && std::strcmp(a.file_name(), b.file_name()) == 0;
}

inline std::string site_str(const std::source_location& s) {
    const char* f = std::strrchr(s.file_name(), '/');
    return std::string(f ? f + 1 : s.file_name()) + ":" + std::to_string(s.line()) + ":" + std::to_string(s.column()) + " in " + s.function_name();
}

inline std::string lanes_str(std::uint32_t bits) {  // "0-15,17"
    std::string out;
    for (int i = 0; i < 32;) {
        if (!((bits >> i) & 1)) { ++i; continue; }
        int j = i;
        while (j + 1 < 32 && ((bits >> (j + 1)) & 1)) ++j;
        char buf[16];
        std::snprintf(buf, sizeof buf, j > i ? "%s%d-%d" : "%s%d", out.empty() ? "" : ",", i, j);
        out += buf;
        i = j + 1;
    }
    return out;
}

inline std::string dim_str(dim3 d) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "(%u,%u,%u)", d.x, d.y, d.z);
    return buf;
}

inline std::uint64_t splitmix64(std::uint64_t& s) {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

struct Worker;
inline thread_local Worker* tls_worker = nullptr;
inline thread_local unsigned char tls_probe = 0;  // zero-initialised: locates this module's .tbss (see below)

// -------------------------------------------------------------------------------------------------------------
// One worker thread: runs blocks, one at a time, each as a set of fibers.
struct Worker {
    std::vector<std::unique_ptr<Fiber>> fibers;
    std::vector<unsigned> order;      // permutation of fiber indices for the current round
    std::size_t pos = 0;              // position in `order` of the running fiber
    unsigned nthreads = 0;
    std::size_t stack_size = default_stack_size();
    Fiber* current = nullptr;
    bool plain = false;               // running a Threads::plain block: `current` is plain_thread, no fibers
    Fiber plain_thread;               // the running thread's index, for messages
    std::vector<uint3> plain_tids;    // threadIdx of each linear index, for the block shape plain_shape
    dim3 plain_shape{0, 0, 0};
    void* sched_sp = nullptr;         // the worker's own context while fibers run
    void* sched_fake = nullptr;
    const void* sched_stack_lo = nullptr;
    std::size_t sched_stack_size = 0;
    LaunchDesc* launch = nullptr;
    bool abort = false;
    std::exception_ptr fiber_error;
    std::uint64_t rng = 0;
    struct AlignedDelete { void operator()(unsigned char* p) const { ::operator delete[](p, std::align_val_t{128}); } };
    std::unique_ptr<unsigned char[], AlignedDelete> dyn_owner;  // exactly the launch's dynamic shared memory (ASan sees overruns)
    unsigned char* dyn = nullptr;
    std::size_t dyn_size = ~std::size_t{0};
    char* tbss_lo = nullptr;          // this thread's zero-initialised TLS of the module holding the kernels
    std::size_t tbss_len = 0;

    ~Worker() { for (auto& f : fibers) stack_free(f->stack); }

    // Static __shared__ arrays are block-scope `static thread_local`s without initialiser, so they live in the
    // zero-initialised part (.tbss) of the module's TLS block. Before each block the layer fills this thread's
    // copy of that whole part with 0xFF, so that shared memory nothing wrote reads as NaN / -1. The only other
    // .tbss variables here are the layer's own (restored after the fill): kernels have no thread_locals of their
    // own, and libc, libstdc++ and the sanitizers keep theirs in their own modules. If the layout is not what
    // this expects (static linking, kernels in a dlopen'ed library), static poisoning is switched off.
    void locate_tbss() {
        struct Query { const char* probe; char* lo; std::size_t len; } q{reinterpret_cast<const char*>(&tls_probe), nullptr, 0};
        dl_iterate_phdr([](dl_phdr_info* info, std::size_t, void* data) -> int {
            auto* q = static_cast<Query*>(data);
            if (!info->dlpi_tls_data) return 0;
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const auto& ph = info->dlpi_phdr[i];
                char* blk = static_cast<char*>(info->dlpi_tls_data);
                if (ph.p_type == PT_TLS && q->probe >= blk + ph.p_filesz && q->probe < blk + ph.p_memsz) {
                    q->lo = blk + ph.p_filesz;
                    q->len = ph.p_memsz - ph.p_filesz;
                    return 1;
                }
            }
            return 0;
        }, &q);
        auto inside = [&](const void* p) { return q.lo && p >= q.lo && p < q.lo + q.len; };
        if (!q.lo || inside(&errno) || inside(abi::__cxa_get_globals())) return;
        tbss_lo = q.lo;
        tbss_len = q.len;
    }

    void thread_init() {
        tls_worker = this;
        locate_tbss();
        pthread_attr_t attr;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            void* lo = nullptr;
            std::size_t size = 0;
            pthread_attr_getstack(&attr, &lo, &size);
            sched_stack_lo = lo;
            sched_stack_size = size;
            pthread_attr_destroy(&attr);
        }
    }

    void poison_static_shared() {
        Worker* self = tls_worker;
        std::memset(tbss_lo, 0xFF, tbss_len);
        tls_worker = self;
    }

    [[noreturn]] void fail(const std::string& headline, cudaError_t code = cudaErrorLaunchFailure) const;
    std::string describe_block() const;

    static void fiber_main(void* arg);
    void yield(Fiber* self);
    Fiber* next_ready() {
        while (++pos < order.size()) {
            Fiber* f = fibers[order[pos]].get();
            if (f->wait == Wait::ready) return f;
        }
        return nullptr;
    }
    void run_launch(LaunchDesc& L);
    void begin_block(const LaunchDesc& L, std::uint64_t b);
    void run_block(LaunchDesc& L, std::uint64_t b);
    void run_block_plain(LaunchDesc& L, std::uint64_t b);
    void fill_order(const LaunchDesc& L, std::uint64_t b);
    void shuffle_order(const LaunchDesc& L);
    bool settle_warps();
    void settle_matrix_op(unsigned base);  // cuda_host_mma.h
    bool in_shared(const void* p, std::size_t n) const;
    bool settle_barrier();
};

inline void Worker::fiber_main(void* arg) {
    asan_finish_switch(nullptr);
    Fiber* self = static_cast<Fiber*>(arg);
    Worker* w = tls_worker;
    try {
        w->launch->body(w->launch->args);
    } catch (...) {
        if (!w->fiber_error) w->fiber_error = std::current_exception();
        w->abort = true;
    }
    self->wait = Wait::done;
    w->yield(self);  // never comes back
    __builtin_unreachable();
}

// Called by a fiber that waits or exits: run the next ready fiber of this round, or go back to the worker.
inline void Worker::yield(Fiber* self) {
    const bool exiting = self->wait == Wait::done;
    Fiber* next = abort ? nullptr : next_ready();
    if (next) {
        current = next;
        threadIdx = next->tid;
        asan_start_switch(exiting ? nullptr : &self->asan_fake, next->stack.lo(), next->stack.size());
        lnfree_emu_switch(&self->sp, next->sp);
    } else {
        current = nullptr;
        asan_start_switch(exiting ? nullptr : &self->asan_fake, sched_stack_lo, sched_stack_size);
        lnfree_emu_switch(&self->sp, sched_sp);
    }
    asan_finish_switch(self->asan_fake);
}

inline void Worker::run_launch(LaunchDesc& L) {
    launch = &L;
    if (!L.task && L.dynamic_smem != dyn_size) {
        dyn_owner.reset(new (std::align_val_t{128}) unsigned char[L.dynamic_smem]);
        dyn = dyn_owner.get();
        dyn_size = L.dynamic_smem;
    }
    for (;;) {
        if (L.failed.load(std::memory_order_relaxed)) break;
        const std::uint64_t b = L.next.fetch_add(1);
        if (b >= L.nblocks) break;
        try {
            if (L.task) L.task(L.task_context, b);
            else if (L.threads == Threads::plain) run_block_plain(L, b);
            else run_block(L, b);
        } catch (...) {
            std::lock_guard<std::mutex> g(L.error_mu);
            if (b < L.error_block) { L.error = std::current_exception(); L.error_block = b; }
            L.failed = true;
            break;
        }
    }
    launch = nullptr;
    current = nullptr;
}

// What both ways of running a block do first: poison shared memory, set the block's built-in variables.
inline void Worker::begin_block(const LaunchDesc& L, std::uint64_t b) {
    if (L.poison && tbss_lo) poison_static_shared();
    if (L.poison && dyn_size) std::memset(dyn, 0xFF, dyn_size);
    blockIdx = uint3{static_cast<unsigned>(b % L.grid.x), static_cast<unsigned>(b / L.grid.x % L.grid.y),
                     static_cast<unsigned>(b / (std::uint64_t{L.grid.x} * L.grid.y))};
    blockDim = L.block;
    gridDim = L.grid;
    nthreads = L.block.x * L.block.y * L.block.z;
}

// A block's first order: 0..n-1 (forward, and random before its first shuffle) or n-1..0 (reverse); and the
// block's generator, seeded by (seed, block), for the random schedule's permutations.
inline void Worker::fill_order(const LaunchDesc& L, std::uint64_t b) {
    order.resize(nthreads);
    for (unsigned i = 0; i < nthreads; ++i) order[i] = L.sched == Schedule::reverse ? nthreads - 1 - i : i;
    rng = L.seed * 0x9E3779B97F4A7C15ull ^ b;
}

// The random schedule: a fresh permutation (fibers: every round; plain loops: once per block).
inline void Worker::shuffle_order(const LaunchDesc& L) {
    if (L.sched == Schedule::random)
        for (unsigned i = nthreads - 1; i > 0; --i) std::swap(order[i], order[splitmix64(rng) % (i + 1)]);
}

// A Threads::plain block: each thread runs the kernel to its end before the next starts, in the schedule's order;
// the same results as one fiber round in which no thread waits. A sync point fails (see sync_point).
inline void Worker::run_block_plain(LaunchDesc& L, std::uint64_t b) {
    begin_block(L, b);
    fill_order(L, b);
    shuffle_order(L);
    struct Leave {  // also when a thread throws
        Worker& w;
        ~Leave() { w.plain = false; w.current = nullptr; }
    } leave{*this};
    if (plain_shape.x != L.block.x || plain_shape.y != L.block.y || plain_shape.z != L.block.z) {  // no divisions per thread
        plain_shape = L.block;
        plain_tids.resize(nthreads);
        for (unsigned t = 0; t < nthreads; ++t)
            plain_tids[t] = uint3{t % L.block.x, t / L.block.x % L.block.y, t / (L.block.x * L.block.y)};
    }
    plain = true;
    current = &plain_thread;
    for (unsigned i = 0; i < nthreads; ++i) {
        const unsigned t = order[i];
        plain_thread.linear = t;
        plain_thread.tid = threadIdx = plain_tids[t];
        L.body(L.args);
    }
}

inline void Worker::run_block(LaunchDesc& L, std::uint64_t b) {
    begin_block(L, b);
    abort = false;
    fiber_error = nullptr;
    while (fibers.size() < nthreads) {
        fibers.push_back(std::make_unique<Fiber>());
        stack_alloc(fibers.back()->stack, stack_size);
    }
    for (unsigned i = 0; i < nthreads; ++i) {
        Fiber& f = *fibers[i];
        f.linear = i;
        f.tid = uint3{i % L.block.x, i / L.block.x % L.block.y, i / (L.block.x * L.block.y)};
        f.wait = Wait::ready;
        f.asan_fake = nullptr;
        f.sp = fiber_prepare(f.stack, &Worker::fiber_main, &f);
    }
    fill_order(L, b);
    for (;;) {
        shuffle_order(L);
        pos = static_cast<std::size_t>(-1);
        if (Fiber* first = next_ready()) {
            current = first;
            threadIdx = first->tid;
            asan_start_switch(&sched_fake, first->stack.lo(), first->stack.size());
            lnfree_emu_switch(&sched_sp, first->sp);  // returns when no fiber of this round is ready any more
            asan_finish_switch(sched_fake);
        }
        if (abort) std::rethrow_exception(fiber_error);
        bool all_done = true;
        for (unsigned i = 0; i < nthreads; ++i) all_done = all_done && fibers[i]->wait == Wait::done;
        if (all_done) return;
        if (!settle_warps() && !settle_barrier()) {
            bool warp_waits = false;
            for (unsigned i = 0; i < nthreads; ++i) warp_waits = warp_waits || fibers[i]->wait == Wait::warp;
            fail(warp_waits ? "no thread can make progress (deadlock): a warp operation waits for lanes that wait elsewhere "
                              "(divergent warp operation)"
                            : "no thread can make progress (deadlock)");
        }
    }
}

// Release every warp operation whose mask lanes all wait at an operation of the same kind with the same mask.
// The releaser computes each lane's result before any lane resumes, so a lane that runs on to its next warp
// operation cannot overwrite a value another lane still has to read. Source lanes follow PTX shfl.sync:
//   segmask = (32 - width), maxLane = (lane & segmask) | (clamp & ~segmask), minLane = lane & segmask
//   up: j = lane - b, ok if j >= maxLane;  down: j = lane + b;  bfly: j = lane ^ b;  idx: j = minLane | (b & ~segmask)
//   (down, bfly, idx: ok if j <= maxLane); a lane whose j is not ok reads its own value.
// The matrix operations (mma, ldmatrix) need the whole warp's operands at once: settle_matrix_op computes them.
inline bool Worker::settle_warps() {
    bool released = false;
    for (unsigned base = 0; base < nthreads; base += 32) {
        const unsigned n = std::min(32u, nthreads - base);
        const std::uint32_t exist = n == 32 ? ~0u : (1u << n) - 1;
        auto lane = [&](unsigned l) -> Fiber& { return *fibers[base + l]; };
        std::uint32_t pending = 0;
        for (unsigned l = 0; l < n; ++l)
            if (lane(l).wait == Wait::warp) pending |= 1u << l;
        while (pending) {
            const Fiber& a = lane(static_cast<unsigned>(std::countr_zero(pending)));
            const std::uint32_t m = a.mask & exist;
            std::uint32_t match = 0, exited = 0;
            for (unsigned j = 0; j < n; ++j) {
                if (!((m >> j) & 1)) continue;
                const Fiber& g = lane(j);
                if (g.wait == Wait::warp && g.op == a.op && (g.mask & exist) == m) match |= 1u << j;
                else if (g.wait == Wait::done) exited |= 1u << j;
            }
            pending &= ~match & ~(1u << a.linear % 32);
            if (exited)
                fail("divergent warp operation: lanes " + lanes_str(match) + " of warp " + std::to_string(base / 32) +
                     " wait at " + warp_op_name(a.op) + " but lanes " + lanes_str(exited) + " of its mask exited");
            if (match != m) continue;  // not all there yet; a deadlock if nothing else moves
            released = true;
            if (is_matrix_op(a.op)) {
                settle_matrix_op(base);
                continue;
            }
            std::uint32_t votes = 0;
            for (unsigned j = 0; j < n; ++j)
                if (((m >> j) & 1) && lane(j).value) votes |= 1u << j;
            for (unsigned i = 0; i < n; ++i) {
                if (!((m >> i) & 1)) continue;
                Fiber& f = lane(i);
                switch (f.op) {
                case WarpOp::syncwarp: break;
                case WarpOp::ballot: f.result = votes; break;
                case WarpOp::any: f.result = votes != 0; break;
                case WarpOp::all: f.result = votes == m; break;
                default: {
                    const int up = f.op == WarpOp::shfl_up;
                    const int segmask = (32 - f.width) & 31, clamp = up ? 0 : 31, bval = f.b & 31;
                    const int maxl = (static_cast<int>(i) & segmask) | (clamp & ~segmask);
                    const int minl = static_cast<int>(i) & segmask;
                    int j = static_cast<int>(i);
                    bool ok = false;
                    switch (f.op) {
                    case WarpOp::shfl_up: j = static_cast<int>(i) - bval; ok = j >= maxl; break;
                    case WarpOp::shfl_down: j = static_cast<int>(i) + bval; ok = j <= maxl; break;
                    case WarpOp::shfl_xor: j = static_cast<int>(i) ^ bval; ok = j <= maxl; break;
                    default: j = minl | (bval & ~segmask); ok = j <= maxl; break;
                    }
                    if (!ok) j = static_cast<int>(i);
                    if (!((m >> j) & 1))
                        fail(std::string(warp_op_name(f.op)) + ": lane " + std::to_string(i) + " of warp " +
                             std::to_string(base / 32) + " reads lane " + std::to_string(j) +
                             ((exist >> j) & 1 ? ", which is not in the mask" : ", which does not exist (partial warp)") +
                             " (at " + site_str(f.site) + ")");
                    f.result = lane(static_cast<unsigned>(j)).value;
                }
                }
                f.wait = Wait::ready;
            }
        }
    }
    return released;
}

// Release __syncthreads once every thread that has not exited waits there (exited threads count as arrived).
// All must wait at the same call: different __syncthreads calls meeting is divergent code, which CUDA leaves
// undefined. result = number of threads with a non-zero predicate, and the number of threads, for _count/_and/_or.
inline bool Worker::settle_barrier() {
    const Fiber* first = nullptr;
    std::uint64_t count = 0, total = 0;
    for (unsigned i = 0; i < nthreads; ++i) {
        const Fiber& f = *fibers[i];
        if (f.wait == Wait::done) continue;
        if (f.wait != Wait::barrier) return false;
        if (!first) first = &f;
        else if (!same_site(first->site, f.site))
            fail("divergent __syncthreads: threads wait at different __syncthreads calls");
        count += f.value != 0;
        ++total;
    }
    if (!first) return false;
    for (unsigned i = 0; i < nthreads; ++i) {
        Fiber& f = *fibers[i];
        if (f.wait == Wait::barrier) { f.result = count | total << 32; f.wait = Wait::ready; }
    }
    return true;
}

// Where every unfinished warp of the block is: lanes grouped by (state, operation, mask, call site).
inline std::string Worker::describe_block() const {
    std::string out;
    if (plain) return out;  // no fibers: the threads before this one ran to their end, the rest have not started
    for (unsigned base = 0; base < nthreads; base += 32) {
        const unsigned n = std::min(32u, nthreads - base);
        std::uint32_t seen = 0, done = 0;
        std::string line;
        for (unsigned i = 0; i < n; ++i) {
            const Fiber& a = *fibers[base + i];
            if (a.wait == Wait::done) done |= 1u << i;
            if (((seen >> i) & 1) || a.wait == Wait::done) continue;
            std::uint32_t group = 0;
            for (unsigned j = i; j < n; ++j) {
                const Fiber& g = *fibers[base + j];
                if (g.wait == a.wait && (a.wait != Wait::warp || (g.op == a.op && g.mask == a.mask)) &&
                    (a.wait == Wait::ready || same_site(g.site, a.site)))
                    group |= 1u << j;
            }
            seen |= group;
            line += line.empty() ? "" : "; ";
            line += "lanes " + lanes_str(group);
            char mask[32];
            std::snprintf(mask, sizeof mask, "(mask 0x%08x)", a.mask);
            if (a.wait == Wait::barrier) line += " wait at __syncthreads() [" + site_str(a.site) + "]";
            else if (a.wait == Wait::warp) line += std::string(" wait at ") + warp_op_name(a.op) + mask + " [" + site_str(a.site) + "]";
            else line += " are ready to run";
        }
        if (line.empty()) continue;  // the whole warp exited
        if (done) line += "; lanes " + lanes_str(done) + " exited";
        out += "\n  warp " + std::to_string(base / 32) + " (threads " + std::to_string(base) + "-" +
               std::to_string(base + n - 1) + "): " + line;
    }
    return out;
}

[[noreturn]] inline void Worker::fail(const std::string& headline, cudaError_t code) const {
    const LaunchDesc& L = *launch;
    std::string msg = "cuda_emu: kernel " + kernel_name(L.kernel) + ", block " +
                      dim_str(dim3(blockIdx.x, blockIdx.y, blockIdx.z)) + " of grid " + dim_str(L.grid) +
                      ", block size " + dim_str(L.block) + ", schedule " + schedule_name(L.sched) + ": " + headline;
    if (current) msg += " [thread " + dim_str(dim3(current->tid.x, current->tid.y, current->tid.z)) + "]";
    throw KernelError(msg + describe_block(), code);
}

// -------------------------------------------------------------------------------------------------------------
// Entry points used by the intrinsics from inside a fiber.
inline Worker& in_kernel(const char* what) {
    Worker* w = tls_worker;
    if (!w || !w->current) throw KernelError(std::string("cuda_emu: ") + what + " called outside a kernel");
    return *w;
}

inline unsigned char* dynamic_shared_memory() { return in_kernel("dynamic shared memory").dyn; }

// Every sync point enters here: a thread of a Threads::plain launch must never reach one (its block has no fibers
// to wait with), so the launch fails and says where, instead of computing without the synchronisation.
inline Worker& sync_point(const char* what, const std::source_location& loc) {
    Worker& w = in_kernel(what);
    if (w.plain)
        w.fail(std::string(what) + " reached at " + site_str(loc) + " in a launch declared free of synchronisation "
               "(Sync::none / cuda_emu::Threads::plain), whose blocks run as plain loops: launch this kernel with "
               "Sync::may_sync");
    return w;
}

inline std::uint64_t block_barrier(int pred, const std::source_location& loc) {
    Worker& w = sync_point("__syncthreads", loc);
    Fiber* f = w.current;
    f->wait = Wait::barrier;
    f->site = loc;
    f->value = pred != 0;
    w.yield(f);
    return f->result;
}

inline std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int b, int width, const std::source_location& loc) {
    Worker& w = sync_point(warp_op_name(op), loc);
    Fiber* f = w.current;
    const unsigned lane = f->linear % 32;
    if (!((mask >> lane) & 1))
        w.fail(std::string(warp_op_name(op)) + ": the calling lane " + std::to_string(lane) + " is not in its mask (at " +
               site_str(loc) + ")");
    if (width < 1 || width > 32 || (width & (width - 1)))
        w.fail(std::string(warp_op_name(op)) + ": width " + std::to_string(width) + " is not a power of two <= 32 (at " +
               site_str(loc) + ")");
    f->wait = Wait::warp;
    f->op = op;
    f->mask = mask;
    f->value = value;
    f->b = b;
    f->width = width;
    f->site = loc;
    w.yield(f);
    return f->result;
}

template <typename T>
T shuffle(WarpOp op, unsigned mask, T var, int b, int width, const std::source_location& loc) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move trivially copyable values of at most 8 bytes");
    std::uint64_t bits = 0;
    std::memcpy(&bits, static_cast<const void*>(&var), sizeof(T));
    bits = warp_op(op, mask, bits, b, width, loc);
    std::memcpy(static_cast<void*>(&var), &bits, sizeof(T));
    return var;
}

// -------------------------------------------------------------------------------------------------------------
// Worker pool. Launches are serialised; the calling thread waits (blocks never run on it: its TLS is not poisoned).
class Pool {
public:
    explicit Pool(unsigned n) { start(n); }
    ~Pool() { stop(); }
    unsigned size() const { return static_cast<unsigned>(workers_.size()); }

    void run(LaunchDesc& L) {
        std::lock_guard<std::mutex> serial(launch_mu_);
        std::unique_lock<std::mutex> lk(mu_);
        job_ = &L;
        busy_ = size();
        ++generation_;
        work_cv_.notify_all();
        done_cv_.wait(lk, [&] { return busy_ == 0; });
        job_ = nullptr;
    }

    void resize(unsigned n) {
        std::lock_guard<std::mutex> serial(launch_mu_);
        stop();
        start(n);
    }

private:
    void start(unsigned n) {
        stop_ = false;
        for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
        for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this, w = workers_[i].get()] { loop(w); });
    }
    void stop() {
        { std::lock_guard<std::mutex> lk(mu_); stop_ = true; }
        work_cv_.notify_all();
        for (auto& t : threads_) t.join();
        threads_.clear();
        workers_.clear();
    }
    void loop(Worker* w) {
        w->thread_init();
        std::uint64_t seen = 0;
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            work_cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            LaunchDesc* L = job_;
            lk.unlock();
            w->run_launch(*L);
            lk.lock();
            if (--busy_ == 0) done_cv_.notify_all();
        }
    }

    std::mutex launch_mu_, mu_;
    std::condition_variable work_cv_, done_cv_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<std::thread> threads_;
    LaunchDesc* job_ = nullptr;
    std::uint64_t generation_ = 0;
    unsigned busy_ = 0;
    bool stop_ = false;
};

inline Pool& pool() { static Pool p(settings().workers); return p; }

// Per-kernel cudaFuncAttributeMaxDynamicSharedMemorySize.
struct FuncAttributes {
    std::mutex mu;
    std::unordered_map<const void*, int> max_dynamic_smem;
};
inline FuncAttributes& func_attributes() { static FuncAttributes a; return a; }

inline cudaError_t func_set_attribute(const void* fn, cudaFuncAttribute attr, int value) {
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || value > kDeviceMaxDynamicShared) return cudaErrorInvalidValue;
        std::lock_guard<std::mutex> g(func_attributes().mu);
        func_attributes().max_dynamic_smem[fn] = value;
        return cudaSuccess;
    }
    return attr == cudaFuncAttributePreferredSharedMemoryCarveout ? cudaSuccess : cudaErrorInvalidValue;
}

inline int max_dynamic_smem(const void* fn) {
    std::lock_guard<std::mutex> g(func_attributes().mu);
    auto it = func_attributes().max_dynamic_smem.find(fn);
    return it == func_attributes().max_dynamic_smem.end() ? kDefaultMaxDynamicShared : it->second;
}

template <typename F>
const void* fn_address(F* fn) { return reinterpret_cast<const void*>(fn); }

// The kernel's name for messages: the dynamic symbol table (dladdr), else the ELF symbol table of its file.
inline std::string demangle(const char* s) {
    int status = 0;
    char* d = abi::__cxa_demangle(s, nullptr, nullptr, &status);
    std::string out = status == 0 && d ? d : s;
    std::free(d);
    return out;
}

inline std::string kernel_name(const void* fn) {
    Dl_info info{};
    if (!dladdr(fn, &info)) return "<unknown kernel>";
    if (info.dli_sname && info.dli_saddr == fn) return demangle(info.dli_sname);
    // dli_fname is the path the loader used; /proc/self/exe if that no longer opens (relative, cwd changed).
    int fd = info.dli_fname ? open(info.dli_fname, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct stat st{};
    void* map = fd >= 0 && fstat(fd, &st) == 0 ? mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (fd >= 0) close(fd);
    std::string found;
    if (map != MAP_FAILED) {
        const auto* base = static_cast<const unsigned char*>(map);
        const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
        const std::uintptr_t bias = eh->e_type == ET_EXEC ? 0 : reinterpret_cast<std::uintptr_t>(info.dli_fbase);
        const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
        for (int i = 0; i < eh->e_shnum && found.empty(); ++i) {
            if (sh[i].sh_type != SHT_SYMTAB) continue;
            const auto* sym = reinterpret_cast<const Elf64_Sym*>(base + sh[i].sh_offset);
            const char* names = reinterpret_cast<const char*>(base + sh[sh[i].sh_link].sh_offset);
            for (std::size_t k = 0; k < sh[i].sh_size / sizeof(Elf64_Sym) && found.empty(); ++k)
                if (ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC && sym[k].st_value + bias == reinterpret_cast<std::uintptr_t>(fn))
                    found = demangle(names + sym[k].st_name);
        }
        munmap(map, static_cast<std::size_t>(st.st_size));
    }
    if (!found.empty()) return found;
    char buf[48];
    std::snprintf(buf, sizeof buf, "<kernel at %p>", fn);
    return buf;
}

inline void launch_raw(LaunchDesc& L) {
    auto bad = [&](const std::string& why, cudaError_t code) {
        throw KernelError("cuda_emu: launch of " + kernel_name(L.kernel) + " with grid " + dim_str(L.grid) + ", block " +
                          dim_str(L.block) + ", " + std::to_string(L.dynamic_smem) + " bytes of dynamic shared memory failed: " + why,
                          code);
    };
    if (tls_worker) bad("kernels cannot launch kernels (no dynamic parallelism in the emulator)", cudaErrorNotSupported);
    const dim3 g = L.grid, b = L.block;
    if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z) bad("a grid or block dimension is zero", cudaErrorInvalidConfiguration);
    if (std::uint64_t{b.x} * b.y * b.z > 1024) bad("more than 1024 threads per block", cudaErrorInvalidConfiguration);
    if (b.x > 1024 || b.y > 1024 || b.z > 64) bad("block dimensions over (1024, 1024, 64)", cudaErrorInvalidConfiguration);
    if (g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535) bad("grid dimensions over (2^31-1, 65535, 65535)", cudaErrorInvalidConfiguration);
    const int limit = max_dynamic_smem(L.kernel);
    if (L.dynamic_smem > static_cast<std::size_t>(limit))
        bad("more dynamic shared memory than the kernel's limit of " + std::to_string(limit) +
            " bytes (raise it with cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n), up to " +
            std::to_string(kDeviceMaxDynamicShared) + ")", cudaErrorInvalidValue);
    L.nblocks = std::uint64_t{g.x} * g.y * g.z;
    L.sched = static_cast<Schedule>(settings().schedule.load());
    L.seed = settings().seed;
    L.poison = settings().poison;
    if (!settings().plain) L.threads = Threads::fibers;
    const auto t0 = std::chrono::steady_clock::now();
    pool().run(L);
    if (Profile::enabled()) profile().add(L.kernel, L.threads == Threads::plain ? "plain" : "fibers", L.nblocks, seconds_since(t0));
    if (L.error) std::rethrow_exception(L.error);
}

}  // namespace detail

inline void Profile::print() const {
    print_with([](const void* key, const Entry& e) {
        return std::strcmp(e.how, "host") == 0 ? std::string(static_cast<const char*>(key)) : detail::kernel_name(key);
    });
}

// Runs the whole grid before returning; the arguments are converted to the kernel's parameter types and copied
// once, and every CUDA thread gets its own copy of them (as from the kernel parameter space). `threads`: see
// Threads (Threads::plain only for kernels that never synchronise: a sync point fails the launch).
template <typename... Params, typename... Args>
void launch(Threads threads, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t dynamic_smem, Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "wrong number of kernel arguments");
    static_assert((std::is_trivially_copyable_v<Params> && ...), "kernel parameters must be trivially copyable values");
    struct Packed {
        void (*kernel)(Params...);
        std::tuple<Params...> args;
    };
    const Packed packed{kernel, std::tuple<Params...>(std::forward<Args>(args)...)};
    detail::LaunchDesc L;
    L.body = [](const void* p) {
        const Packed& k = *static_cast<const Packed*>(p);
        std::apply(k.kernel, k.args);
    };
    L.args = &packed;
    L.kernel = detail::fn_address(kernel);
    L.grid = grid;
    L.block = block;
    L.dynamic_smem = dynamic_smem;
    L.threads = threads;
    detail::launch_raw(L);
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t dynamic_smem, Args&&... args) {
    launch(Threads::fibers, kernel, grid, block, dynamic_smem, std::forward<Args>(args)...);
}

// Host work on the emulator's workers, so that the CPU build has one set of threads for kernels and its matrix
// products: fn(i) for every i < n, spread over the workers, before it returns. After an exception no further index
// starts, and the exception of the lowest failing index that ran is rethrown. From inside a worker (nested) it runs
// the loop itself.
template <typename F>
void parallel_for(std::uint64_t n, F&& fn) {
    if (n == 0) return;
    if (detail::tls_worker || n == 1 || detail::pool().size() == 1) {
        for (std::uint64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    detail::LaunchDesc L;
    L.task = [](void* f, std::uint64_t i) { (*static_cast<std::remove_reference_t<F>*>(f))(i); };
    L.task_context = const_cast<void*>(static_cast<const void*>(&fn));
    L.nblocks = n;
    detail::pool().run(L);
    if (L.error) std::rethrow_exception(L.error);
}

inline void set_schedule(Schedule s, std::uint64_t seed) {
    detail::settings().schedule = static_cast<int>(s);
    detail::settings().seed = seed;
}
inline Schedule schedule() { return static_cast<Schedule>(detail::settings().schedule.load()); }
inline std::uint64_t schedule_seed() { return detail::settings().seed; }
inline const char* schedule_name(Schedule s) {
    return s == Schedule::forward ? "forward" : s == Schedule::reverse ? "reverse" : "random";
}
inline unsigned available_cores() { return detail::available_cores(); }
inline void set_num_workers(unsigned n) {
    detail::settings().workers = n ? n : 1;
    detail::pool().resize(n ? n : 1);
}
inline unsigned num_workers() { return detail::pool().size(); }
inline void set_poison_shared(bool on) { detail::settings().poison = on; }
inline void set_plain_loops(bool on) { detail::settings().plain = on; }
inline bool plain_loops() { return detail::settings().plain; }
inline bool static_shared_poisoning() {
    static const bool located = [] {  // the TLS layout is the same for every thread the layer starts
        bool ok = false;
        std::thread([&] { detail::Worker w; w.locate_tbss(); ok = w.tbss_lo != nullptr; }).join();
        return ok;
    }();
    return located && detail::settings().poison;
}

}  // namespace cuda_emu

// cudaFuncSetAttribute for kernel pointers (the runtime API's `const void*` overload would need libcudart).
template <typename... Params>
inline cudaError_t cudaFuncSetAttribute(void (*kernel)(Params...), cudaFuncAttribute attr, int value) {
    return cuda_emu::detail::func_set_attribute(cuda_emu::detail::fn_address(kernel), attr, value);
}

// ---------------------------------------------------------------------------------------------------------------
// Synchronisation. The source_location parameters name the call in deadlock and divergence reports.
inline void __syncthreads(std::source_location loc = std::source_location::current()) {
    cuda_emu::detail::block_barrier(0, loc);
}
inline int __syncthreads_count(int pred, std::source_location loc = std::source_location::current()) {
    return static_cast<int>(cuda_emu::detail::block_barrier(pred, loc) & 0xffffffffu);
}
inline int __syncthreads_and(int pred, std::source_location loc = std::source_location::current()) {
    const std::uint64_t r = cuda_emu::detail::block_barrier(pred, loc);
    return (r & 0xffffffffu) == (r >> 32);
}
inline int __syncthreads_or(int pred, std::source_location loc = std::source_location::current()) {
    return (cuda_emu::detail::block_barrier(pred, loc) & 0xffffffffu) != 0;
}
inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location loc = std::source_location::current()) {
    cuda_emu::detail::warp_op(cuda_emu::detail::WarpOp::syncwarp, mask, 0, 0, 32, loc);
}

// Warp shuffles and votes: every lane in the mask must execute the same kind of operation with the same mask.
template <typename T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize, std::source_location loc = std::source_location::current()) {
    return cuda_emu::detail::shuffle(cuda_emu::detail::WarpOp::shfl_idx, mask, var, srcLane, width, loc);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, std::source_location loc = std::source_location::current()) {
    return cuda_emu::detail::shuffle(cuda_emu::detail::WarpOp::shfl_up, mask, var, static_cast<int>(delta), width, loc);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, std::source_location loc = std::source_location::current()) {
    return cuda_emu::detail::shuffle(cuda_emu::detail::WarpOp::shfl_down, mask, var, static_cast<int>(delta), width, loc);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize, std::source_location loc = std::source_location::current()) {
    return cuda_emu::detail::shuffle(cuda_emu::detail::WarpOp::shfl_xor, mask, var, laneMask, width, loc);
}
inline unsigned __ballot_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
    return static_cast<unsigned>(cuda_emu::detail::warp_op(cuda_emu::detail::WarpOp::ballot, mask, pred != 0, 0, 32, loc));
}
inline int __any_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
    return static_cast<int>(cuda_emu::detail::warp_op(cuda_emu::detail::WarpOp::any, mask, pred != 0, 0, 32, loc));
}
inline int __all_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
    return static_cast<int>(cuda_emu::detail::warp_op(cuda_emu::detail::WarpOp::all, mask, pred != 0, 0, 32, loc));
}
// The lanes of the caller's warp that exist and have not exited (no synchronisation, as on the GPU).
inline unsigned __activemask(std::source_location loc = std::source_location::current()) {
    cuda_emu::detail::Worker& w = cuda_emu::detail::sync_point("__activemask", loc);
    const unsigned base = w.current->linear / 32 * 32;
    unsigned mask = 0;
    for (unsigned l = 0; l < 32 && base + l < w.nthreads; ++l)
        if (w.fibers[base + l]->wait != cuda_emu::detail::Wait::done) mask |= 1u << l;
    return mask;
}

// Memory fences: blocks run on different OS threads; the fibers of one block share a thread.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_signal_fence(std::memory_order_seq_cst); }

[[noreturn]] inline void __trap() {
    cuda_emu::detail::Worker& w = cuda_emu::detail::in_kernel("__trap");
    w.fail("__trap() called", cudaErrorLaunchFailure);
}

// Atomics, cache-hinted loads and stores, math and bit intrinsics, CUDA's min/max.
#include "kernels/emulation/cuda_host_intrinsics.h"
// The tensor-core warp operations mma.sync and ldmatrix (wrapped for kernels by kernels/mma.cuh).
#include "kernels/emulation/cuda_host_mma.h"
