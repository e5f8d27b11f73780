// libFuzzer target: lnfree::load_llmc_model (llm.c model file) on arbitrary bytes (dev/fuzz.sh builds and runs
// it). The loader takes a path and maps the file, so each input is written to one temporary file first
// (fuzz_tmp.h: $LNFREE_FUZZ_TMP, else /dev/shm or /tmp); that costs tens of microseconds an input. Bad input must
// end in lnfree::Error; anything else (including an allocation over libFuzzer's -malloc_limit_mb) is a finding.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "lnfree/checkpoint.h"
#include "lnfree/error.h"
#include "test/fuzz/fuzz_check.h"
#include "test/fuzz/fuzz_tmp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string& path = fuzz::input_file("llmc", ".bin");
    fuzz::write_file(path, data, size);
    try {
        lnfree::ParameterSet<float> p = lnfree::load_llmc_model(path);
        const lnfree::GPT2Config& c = p.config;
        FUZZ_CHECK(c.L > 0 && c.C > 0 && c.NH > 0 && c.V > 0 && c.Vp >= c.V && c.maxT > 0 && c.C % c.NH == 0);
        size_t total = 0;
        for (int i = 0; i < lnfree::NUM_PARAM_TENSORS; i++) total += p.numel(i);
        FUZZ_CHECK(p.data.size() == total);
        FUZZ_CHECK(size == 1024 + total * 4 || size == 1024 + total * 2);
        for (float v : p.data) FUZZ_CHECK(std::isfinite(v));
    } catch (const lnfree::Error&) {
    }
    return 0;
}
