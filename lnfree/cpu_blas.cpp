#include "lnfree/cpu_blas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <stdexcept>

namespace lnfree::cpu_blas {
namespace {

// cblas.h's values, so that the header (libopenblas-dev) is not needed to build
enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);

bool cpu_has_avx512() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

struct OpenBlas {
    SgemmFn sgemm = nullptr;
    std::string description;

    OpenBlas() {
        std::string why = "chosen by OpenBLAS";
        if (const char* user = std::getenv("OPENBLAS_CORETYPE")) {
            why = std::string("OPENBLAS_CORETYPE=") + user + " set by the user";
        } else if (cpu_has_avx512()) {
            setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
            why = "OPENBLAS_CORETYPE=SkylakeX set by lnfree: the CPU has AVX-512";
        }
        setenv("OPENBLAS_NUM_THREADS", "1", 1);  // our workers own the cores (read by OpenBLAS when it loads)
        void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
        if (!lib) lib = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
        if (!lib)
            throw std::runtime_error(std::string("cannot load OpenBLAS (libopenblas.so.0): ") + dlerror() +
                                     "; install it with `bash dev/setup.sh` (Debian package libopenblas0)");
        sgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "cblas_sgemm"));
        auto set_threads = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"));
        auto core = reinterpret_cast<char* (*)()>(dlsym(lib, "openblas_get_corename"));
        auto config = reinterpret_cast<char* (*)()>(dlsym(lib, "openblas_get_config"));
        if (!sgemm) throw std::runtime_error("libopenblas.so.0 has no cblas_sgemm: install Debian's libopenblas0");
        if (set_threads) set_threads(1);  // in case it was loaded before us, with more threads
        std::string version = config ? config() : "OpenBLAS";
        if (auto space = version.find(' ', version.find(' ') + 1); space != std::string::npos) version.resize(space);
        description = version + ", " + (core ? core() : "unknown") + " kernels (" + why + "), 1 thread per call";
    }
};

const OpenBlas& openblas() {
    static const OpenBlas lib;  // thread-safe initialisation: the first product loads it
    return lib;
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
           float beta, float* C, int ldc) {
    openblas().sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, M, N, K, alpha, A, lda, B, ldb,
                     beta, C, ldc);
}

std::string description() { return openblas().description; }

}  // namespace lnfree::cpu_blas
