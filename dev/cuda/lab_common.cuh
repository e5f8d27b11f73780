// Shared by the kernel lab programs of dev/cuda/ (doc/kernels.md): option parsing, the GPU's rooflines, an L2
// flush, a CUDA-event timer, correctness checks against the CPU reference, and random inputs.
//
// Every program is `int main(int argc, char** argv) { return lab::main(argc, argv, "title", body); }` where body
// takes a lab::Lab&: it checks each variant once on a small shape (lab.check), then, when benchmarking, times each
// variant at GPT-2 XL's shape (lab.bench). Kernels are launched only through lnfree::launch_kernel.
//
// Built by nvcc (dev/cuda/Makefile) it needs a GPU. Built by g++ against the project's CUDA host emulation
// (`make -C dev/cuda emu`) it runs the correctness checks on the CPU and skips the timing.
#pragma once
#include <algorithm>
#include <cstdarg>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/common.cuh"
#include "kernels/device.cuh"
#include "lnfree/gpu_peaks.h"
#include "test/kernels/host_data.h"

namespace lab {

using lnfree::launch_kernel;
using lnfree::kernels::bf16;
using lnfree::device::Buffer;

// printf into a std::string
inline std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string format(const char* fmt, ...) {
    char buf[512];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    return buf;
}

// ---- options ------------------------------------------------------------------------------------------------

// GPT-2 XL and the recipe's micro-batch (method.md 6.1) by default.
struct Options {
    int B = 18, T = 1024, C = 1600, NH = 25, L = 48, V = 50257, Vp = 50304;
    int warmup = 20, reps = 100;
    long long n = 0;       // element count for programs that take one (adamw); 0: the program's default
    bool check = true;     // run the correctness checks
    bool bench = true;     // run the timing
    double max_seconds = 3.0;  // per variant: fewer repetitions for very slow variants (at least 5)

    int N() const { return B * T; }
    int hd() const { return C / NH; }
};

inline void usage(const char* prog, const char* title) {
    std::printf(
        "%s\n"
        "usage: %s [--B n] [--T n] [--C n] [--NH n] [--L n] [--V n] [--Vp n] [--n count]\n"
        "          [--warmup n] [--reps n] [--max-seconds s] [--check-only] [--bench-only]\n"
        "defaults: GPT-2 XL at the recipe's micro-batch: --B 18 --T 1024 --C 1600 --NH 25 --L 48 --V 50257 --Vp 50304,\n"
        "          20 warm-up and 100 timed calls per variant, L2 flushed before each timed call\n",
        title, prog);
}

inline Options parse_options(int argc, char** argv, const char* title) {
    Options o;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
            return argv[++i];
        };
        auto integer = [&]() -> long long {
            const std::string v = value();
            char* end = nullptr;
            const long long x = std::strtoll(v.c_str(), &end, 10);
            if (*end || x <= 0) { std::fprintf(stderr, "%s: not a positive integer: %s\n", a.c_str(), v.c_str()); std::exit(2); }
            return x;
        };
        if (a == "--help" || a == "-h") { usage(argv[0], title); std::exit(0); }
        else if (a == "--B") o.B = (int)integer();
        else if (a == "--T") o.T = (int)integer();
        else if (a == "--C") o.C = (int)integer();
        else if (a == "--NH") o.NH = (int)integer();
        else if (a == "--L") o.L = (int)integer();
        else if (a == "--V") o.V = (int)integer();
        else if (a == "--Vp") o.Vp = (int)integer();
        else if (a == "--n") o.n = integer();
        else if (a == "--warmup") o.warmup = (int)integer();
        else if (a == "--reps") o.reps = (int)integer();
        else if (a == "--max-seconds") o.max_seconds = std::atof(value().c_str());
        else if (a == "--check-only") o.bench = false;
        else if (a == "--bench-only") o.check = false;
        else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); usage(argv[0], title); std::exit(2); }
    }
    if (o.C % o.NH != 0) { std::fprintf(stderr, "C (%d) must be a multiple of NH (%d)\n", o.C, o.NH); std::exit(2); }
    if (o.Vp < o.V) { std::fprintf(stderr, "Vp (%d) must be >= V (%d)\n", o.Vp, o.V); std::exit(2); }
    if ((long long)o.B * o.T > (1LL << 30)) { std::fprintf(stderr, "B*T too large\n"); std::exit(2); }
    return o;
}

// ---- the GPU and its rooflines ------------------------------------------------------------------------------

struct Gpu {
    std::string name;
    int major = 0, minor = 0, sms = 0, l2_bytes = 0;
    double mem_clock_mhz = 0, bus_bits = 0;
    double peak_gbs = 0;                           // 2 (double data rate) x memory clock x bus width
    double peak_bf16_tflops = 0, peak_fp32_tflops = 0;  // 0: unknown
    std::string peak_source = "unknown";
};

#if defined(__CUDACC__)
inline Gpu query_gpu() {
    using lnfree::device::check;
    Gpu g;
    int dev = 0, v = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
    g.name = prop.name;
    check(cudaDeviceGetAttribute(&g.major, cudaDevAttrComputeCapabilityMajor, dev), "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&g.minor, cudaDevAttrComputeCapabilityMinor, dev), "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&g.sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&g.l2_bytes, cudaDevAttrL2CacheSize, dev), "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&v, cudaDevAttrMemoryClockRate, dev), "cudaDeviceGetAttribute");  // kHz
    g.mem_clock_mhz = v / 1000.0;
    check(cudaDeviceGetAttribute(&v, cudaDevAttrGlobalMemoryBusWidth, dev), "cudaDeviceGetAttribute");  // bits
    g.bus_bits = v;
    g.peak_gbs = 2.0 * g.mem_clock_mhz * 1e6 * (g.bus_bits / 8.0) / 1e9;
    if (const lnfree::PeakEntry* e = lnfree::find_peak(g.major, g.minor, g.sms, g.name)) {  // lnfree/gpu_peaks.h
        g.peak_bf16_tflops = e->bf16_tflops;
        g.peak_fp32_tflops = e->fp32_tflops;
        g.peak_source = e->source;
    }
    return g;
}
#endif

// ---- timing -------------------------------------------------------------------------------------------------

// What one call must move and compute, counted from the shapes (not measured). simt: the FLOPs run on the fp32
// CUDA cores (the hand-written attention), so the fp32 peak is their roofline; otherwise the bf16 tensor peak.
struct Cost {
    double bytes = 0, flops = 0;
    bool simt = false;
};

struct Timing {
    double mean_us = 0, min_us = 0, host_us = 0;
    int reps = 0;
};

// ---- random inputs ------------------------------------------------------------------------------------------

using lnfree::test::random_floats;
using lnfree::test::to_floats;
using lnfree::test::to_type;

// What bf16 can hold of v: the inputs the reference must see to compare like with like.
inline std::vector<float> bf16_values(const std::vector<float>& v) { return lnfree::test::representable<bf16>(v); }

// Device fill for the large timing buffers: mean + stddev * (an Irwin-Hall sum of 4 Philox uniforms, unit variance).
template <typename T>
__global__ void fill_kernel(T* p, size_t n, float mean, float stddev, uint64_t seed) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const lnfree::Philox4x32 r = lnfree::philox4x32_10((uint32_t)i, (uint32_t)(i >> 32), 0x1abu, 0u, (uint32_t)seed,
                                                           (uint32_t)(seed >> 32));
        float s = 0.0f;
        for (int k = 0; k < 4; k++) s += (float)r.word[k] * (1.0f / 4294967296.0f);
        p[i] = lnfree::kernels::from_float<T>(mean + stddev * (s - 2.0f) * 1.7320508f);
    }
}

template <typename T>
void fill(Buffer<T>& b, float mean, float stddev, uint64_t seed) {
    const size_t n = b.size();
    launch_kernel(fill_kernel<T>, dim3((unsigned)std::min<size_t>((n + 255) / 256, 65535)), dim3(256), 0, nullptr, b.data(),
                  n, mean, stddev, seed);
}

// ---- the lab ------------------------------------------------------------------------------------------------

class Lab {
   public:
    Options opt;
    Gpu gpu;
    cudaStream_t stream = nullptr;  // the legacy default stream: every launcher, the flush and the events use it

    Lab(const Options& o, const char* title) : opt(o) {
        std::printf("== %s\n", title);
        std::printf("shape: B %d  T %d  C %d  NH %d (head dim %d)  L %d  V %d  Vp %d  -> N = B*T = %d tokens\n", opt.B, opt.T,
                    opt.C, opt.NH, opt.hd(), opt.L, opt.V, opt.Vp, opt.N());
#if defined(__CUDACC__)
        gpu = query_gpu();
        std::printf("GPU: %s, compute capability %d.%d, %d SMs, L2 %.1f MiB\n", gpu.name.c_str(), gpu.major, gpu.minor,
                    gpu.sms, gpu.l2_bytes / 1048576.0);
        std::printf("roofline: memory %.0f GB/s (2 x %.0f MHz x %.0f-bit bus, cudaDeviceGetAttribute); ", gpu.peak_gbs,
                    gpu.mem_clock_mhz, gpu.bus_bits);
        if (gpu.peak_bf16_tflops > 0)
            std::printf("bf16 dense %.0f TFLOP/s, fp32 %.1f TFLOP/s (%s)\n", gpu.peak_bf16_tflops, gpu.peak_fp32_tflops,
                        gpu.peak_source.c_str());
        else
            std::printf("bf16 dense and fp32 TFLOP/s unknown (no table entry for cc %d.%d with %d SMs)\n", gpu.major,
                        gpu.minor, gpu.sms);
        // a buffer twice the L2, written before every timed call, so each call starts with a cold L2
        flush_ = Buffer<unsigned char>(2 * (size_t)gpu.l2_bytes);
        lnfree::device::check(cudaEventCreate(&start_), "cudaEventCreate");
        lnfree::device::check(cudaEventCreate(&stop_), "cudaEventCreate");
#else
        std::printf("emulated build (g++, kernels/emulation): correctness checks only, on the CPU; no timing\n");
        opt.bench = false;
#endif
    }
    ~Lab() {
#if defined(__CUDACC__)
        if (start_) cudaEventDestroy(start_);
        if (stop_) cudaEventDestroy(stop_);
#endif
    }
    Lab(const Lab&) = delete;
    Lab& operator=(const Lab&) = delete;

    bool checking() const { return opt.check; }
    bool benchmarking() const { return opt.bench; }

    void section(const std::string& what) { std::printf("\n-- %s\n", what.c_str()); }

    // rel = ||got - ref|| / ||ref|| (as test/kernels), PASS when <= tol. Prints one line; counts failures.
    bool check(const std::string& what, const std::vector<float>& got, const std::vector<float>& ref, double tol) {
        double diff = 0.0, norm = 0.0, max_abs = 0.0;
        bool finite = got.size() == ref.size();
        for (size_t i = 0; i < ref.size() && i < got.size(); i++) {
            const double d = (double)got[i] - (double)ref[i];
            if (!std::isfinite(got[i])) finite = false;
            diff += d * d;
            norm += (double)ref[i] * ref[i];
            max_abs = std::max(max_abs, std::abs(d));
        }
        const double rel = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
        const bool pass = finite && rel <= tol;
        std::printf("  check %-60s rel err %9.2e  max abs %9.2e  (tol %.0e)  %s\n", what.c_str(), rel, max_abs, tol,
                    pass ? "PASS" : "FAIL");
        if (!pass) failures_++;
        return pass;
    }
    // A condition that must hold exactly.
    bool check_true(const std::string& what, bool ok) {
        std::printf("  check %-60s %s\n", what.c_str(), ok ? "PASS" : "FAIL");
        if (!ok) failures_++;
        return ok;
    }

    // Times fn: opt.warmup calls, then opt.reps calls (fewer when one call takes long), each after an L2 flush and
    // between two CUDA events on the stream; host_us is the host time to enqueue one call. Prints one row.
    Timing bench(const std::string& name, const std::function<void()>& fn, const Cost& cost) {
        Timing t;
#if defined(__CUDACC__)
        using lnfree::device::check;
        if (!header_printed_) {
            std::printf("  %-58s %10s %10s %8s %10s %9s %7s %9s %9s %7s\n", "variant", "us/call", "min us", "host us",
                        "MB moved", "GB/s", "%BW", "GFLOP", "TFLOP/s", "%peak");
            header_printed_ = true;
        }
        auto one = [&](bool timed) {
            check(cudaMemsetAsync(flush_.data(), flush_value_++ & 0xff, flush_.size(), stream), "L2 flush");
            check(cudaEventRecord(start_, stream), "cudaEventRecord");
            const auto h0 = std::chrono::steady_clock::now();
            fn();
            const auto h1 = std::chrono::steady_clock::now();
            check(cudaEventRecord(stop_, stream), "cudaEventRecord");
            check(cudaEventSynchronize(stop_), "cudaEventSynchronize");
            float ms = 0.0f;
            check(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
            if (timed) {
                t.mean_us += ms * 1e3;
                t.min_us = t.reps == 0 ? ms * 1e3 : std::min(t.min_us, (double)ms * 1e3);
                t.host_us += std::chrono::duration<double, std::micro>(h1 - h0).count();
                t.reps++;
            }
            return ms * 1e-3;
        };
        one(false);  // the first call may include lazy module loading: the estimate comes from the second
        const double call_s = one(false);
        int reps = opt.reps, warmup = opt.warmup;
        if (call_s * (reps + warmup) > opt.max_seconds) {  // a slow variant: keep its total near max_seconds
            reps = std::max(5, (int)(opt.max_seconds / std::max(call_s, 1e-9)));
            warmup = std::min(warmup, 2);
        }
        for (int i = 2; i < warmup; i++) one(false);
        for (int i = 0; i < reps; i++) one(true);
        check(cudaGetLastError(), "after timing");
        t.mean_us /= t.reps;
        t.host_us /= t.reps;

        char gbs[64] = "", bw[32] = "", gflop[32] = "", tfs[32] = "", pk[32] = "";
        if (cost.bytes > 0) {
            const double rate = cost.bytes / (t.mean_us * 1e-6) / 1e9;
            std::snprintf(gbs, sizeof gbs, "%9.1f", rate);
            std::snprintf(bw, sizeof bw, "%6.1f%%", 100.0 * rate / gpu.peak_gbs);
        }
        if (cost.flops > 0) {
            const double rate = cost.flops / (t.mean_us * 1e-6) / 1e12;
            const double peak = cost.simt ? gpu.peak_fp32_tflops : gpu.peak_bf16_tflops;
            std::snprintf(gflop, sizeof gflop, "%9.1f", cost.flops / 1e9);
            std::snprintf(tfs, sizeof tfs, "%9.2f", rate);
            if (peak > 0) std::snprintf(pk, sizeof pk, "%5.1f%%%s", 100.0 * rate / peak, cost.simt ? "f" : "");
            else std::snprintf(pk, sizeof pk, "unknown");
        }
        std::printf("  %-58s %10.2f %10.2f %8.1f %10.1f %9s %7s %9s %9s %7s%s\n", name.c_str(), t.mean_us, t.min_us, t.host_us,
                    cost.bytes / 1e6, gbs, bw, gflop, tfs, pk, t.reps < opt.reps ? "  (fewer reps: slow)" : "");
#else
        (void)name; (void)fn; (void)cost;
#endif
        return t;
    }

    void synchronize() { lnfree::device::synchronize(stream); }

    int finish() {
        if (opt.bench)
            std::printf("\n(us/call: mean over timed calls with a cold L2; %%BW of the memory roofline; %%peak of the bf16\n"
                        " dense tensor roofline, or with 'f' of the fp32 CUDA-core roofline; MB and GFLOP are counted from\n"
                        " the shapes as doc/kernels.md does, not measured)\n");
        std::printf("%s: %d check(s) failed\n", failures_ ? "FAIL" : "OK", failures_);
        return failures_ ? 1 : 0;
    }

   private:
    int failures_ = 0;
    bool header_printed_ = false;
    unsigned flush_value_ = 0;
    Buffer<unsigned char> flush_;
#if defined(__CUDACC__)
    cudaEvent_t start_ = nullptr, stop_ = nullptr;
#endif
};

// Parses the options, runs body, turns any exception (a CUDA error, a launcher's invalid_argument) into a message
// and exit status 1.
inline int main(int argc, char** argv, const char* title, const std::function<void(Lab&)>& body) {
    const Options opt = parse_options(argc, argv, title);
    try {
        Lab lab(opt, title);
        body(lab);
        return lab.finish();
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}

}  // namespace lab
