// libFuzzer target: lnfree::read_sigma_file on arbitrary bytes, both of its forms (a JSON object of sigma per
// module, or a run's summary.json holding one under "sigma"); dev/fuzz.sh builds and runs it. The reader takes a
// path, so each input is written to a temporary file first (fuzz_tmp.h). It is read for depths 0, 1, 2 and 12:
// bad input must end in lnfree::Error, and what one depth accepts every smaller depth accepts too, with the same
// value per module (their names are a subset); every sigma is positive and finite, and the running estimate equals it.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "lnfree/error.h"
#include "lnfree/model.h"
#include "lnfree/recipe.h"
#include "test/fuzz/fuzz_check.h"
#include "test/fuzz/fuzz_tmp.h"

namespace {

constexpr int kDepths[] = {12, 2, 1, 0};  // largest first

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string& path = fuzz::input_file("sigma", ".json");
    fuzz::write_file(path, data, size);
    bool accepted_deeper = false;
    lnfree::SigmaState deeper;
    int deeper_L = 0;
    for (int L : kDepths) {
        try {
            lnfree::SigmaState s = lnfree::read_sigma_file(path, L);
            FUZZ_CHECK(s.sigma.size() == (size_t)(2 * L + 1) && s.ema == s.sigma);
            for (double v : s.sigma) FUZZ_CHECK(v > 0 && std::isfinite(v));
            if (accepted_deeper) {
                for (int l = 0; l < L; l++) {
                    FUZZ_CHECK(s.sigma[lnfree::ln1_module(l)] == deeper.sigma[lnfree::ln1_module(l)]);
                    FUZZ_CHECK(s.sigma[lnfree::ln2_module(L, l)] == deeper.sigma[lnfree::ln2_module(deeper_L, l)]);
                }
                FUZZ_CHECK(s.sigma[lnfree::lnf_module(L)] == deeper.sigma[lnfree::lnf_module(deeper_L)]);
            }
            accepted_deeper = true;
            deeper = s;
            deeper_L = L;
        } catch (const lnfree::Error&) {
            FUZZ_CHECK(!accepted_deeper);  // a smaller depth needs only some of the modules a larger one read
        }
    }
    return 0;
}
