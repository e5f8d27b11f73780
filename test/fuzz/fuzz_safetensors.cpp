// libFuzzer target: lnfree::SafetensorsFile on arbitrary bytes (dev/fuzz.sh builds and runs it).
// Bad input must end in lnfree::Error; any other exception, a crash, a sanitizer report, a hang or a broken
// invariant below is a finding. When the header parses, every tensor is read with the accessor for its dtype
// (which must then succeed, except I64 values outside int32) and with the mismatched accessors (which may throw).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "lnfree/error.h"
#include "lnfree/safetensors.h"
#include "test/fuzz/fuzz_check.h"

namespace {

bool is_float_dtype(const std::string& d) { return d == "F32" || d == "F16" || d == "BF16" || d == "F64"; }
bool same_value(float a, double b) { return (std::isnan(a) && std::isnan(b)) || a == (float)b; }

void read_tensor(const lnfree::SafetensorsFile& f, const std::string& name, const lnfree::SafetensorsTensor& t) {
    const size_t elem = lnfree::safetensors_dtype_size(t.dtype);
    FUZZ_CHECK(elem > 0);
    FUZZ_CHECK(t.begin <= t.end);
    FUZZ_CHECK(t.end - t.begin == t.numel() * elem);
    FUZZ_CHECK(&f.info(name) == &t);

    if (is_float_dtype(t.dtype)) {
        std::vector<float> v = f.floats(name);  // must not throw for a floating-point dtype
        std::vector<double> d = f.doubles(name);
        FUZZ_CHECK(v.size() == t.numel() && d.size() == t.numel());
        for (size_t i = 0; i < v.size(); i++) FUZZ_CHECK(same_value(v[i], d[i]));
        try {
            (void)f.ints(name);  // the wrong accessor: an Error is fine (an empty tensor may read as {})
        } catch (const lnfree::Error&) {
        }
    } else if (t.dtype == "I32" || t.dtype == "I64") {
        try {
            std::vector<int> v = f.ints(name);
            FUZZ_CHECK(v.size() == t.numel());
        } catch (const lnfree::Error&) {
            FUZZ_CHECK(t.dtype == "I64");  // only I64 may hold values outside int32
        }
        try {
            (void)f.floats(name);
        } catch (const lnfree::Error&) {
        }
    } else {  // U8, BOOL, ...: no accessor reads them, both must refuse (or return nothing for an empty tensor)
        for (int which = 0; which < 2; which++) {
            try {
                size_t n = which ? f.ints(name).size() : f.floats(name).size();
                FUZZ_CHECK(n == 0 && t.numel() == 0);
            } catch (const lnfree::Error&) {
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        lnfree::SafetensorsFile f("fuzz.safetensors", data, size);
        for (const auto& [name, t] : f.tensors()) read_tensor(f, name, t);
        (void)f.metadata("format");
        (void)f.metadata("config");
        FUZZ_CHECK(!f.has("\x01 no such tensor"));
        try {
            (void)f.info("\x01 no such tensor");
            FUZZ_CHECK(false);
        } catch (const lnfree::Error&) {
        }
    } catch (const lnfree::Error&) {
    }
    return 0;
}
