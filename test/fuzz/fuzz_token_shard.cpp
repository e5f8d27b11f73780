// libFuzzer target: lnfree::TokenShard and lnfree::parse_multiple_choice on the same arbitrary bytes
// (dev/fuzz.sh builds and runs it). Bad input must end in lnfree::Error; anything else is a finding.
#include <cstdint>
#include <string>
#include <vector>

#include "lnfree/error.h"
#include "lnfree/token_shard.h"
#include "test/fuzz/fuzz_check.h"

namespace {

constexpr int kVocab = 50257;

// Returns whether the bytes parse as a shard with this vocabulary; reads every token when they do.
bool shard(const uint8_t* data, size_t size, int vocab) {
    try {
        lnfree::TokenShard s("fuzz.bin", data, size, vocab);
        FUZZ_CHECK(size >= 1024 && s.size() == (size - 1024) / 2 && size % 2 == 0);
        unsigned sum = 0;
        for (size_t i = 0; i < s.size(); i++) {
            const uint16_t t = s[i];
            FUZZ_CHECK(vocab == 0 || t < vocab);
            sum += t;
        }
        volatile unsigned sink = sum;
        (void)sink;
        return true;
    } catch (const lnfree::Error&) {
        return false;
    }
}

bool eval_file(const uint8_t* data, size_t size, int vocab) {
    try {
        std::vector<lnfree::MultipleChoiceExample> ex = lnfree::parse_multiple_choice("fuzz.bin", data, size, vocab);
        for (const auto& e : ex) {
            FUZZ_CHECK(!e.completions.empty());
            FUZZ_CHECK(e.label >= 0 && (size_t)e.label < e.completions.size());
            for (uint16_t t : e.context) FUZZ_CHECK(vocab == 0 || t < vocab);
            for (const auto& c : e.completions)
                for (uint16_t t : c) FUZZ_CHECK(vocab == 0 || t < vocab);
        }
        return true;
    } catch (const lnfree::Error&) {
        return false;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const bool any_vocab = shard(data, size, 0);
    const bool gpt2_vocab = shard(data, size, kVocab);
    FUZZ_CHECK(any_vocab || !gpt2_vocab);  // the vocabulary check only ever adds a refusal
    const bool mc_any = eval_file(data, size, 0);
    const bool mc_gpt2 = eval_file(data, size, kVocab);
    FUZZ_CHECK(mc_any || !mc_gpt2);
    FUZZ_CHECK(!(any_vocab && mc_any));  // the two formats have different magic numbers
    return 0;
}
