// libFuzzer target: lnfree::Tokenizer::from_llmc_file (llm.c's tokenizer file: a 1024-byte header, magic 20240328,
// version 1 or 2, the token count; then per token a length byte and its bytes) on arbitrary bytes (dev/fuzz.sh
// builds and runs it). The reader maps a path, so each input is written to a temporary file first (fuzz_tmp.h).
// Bad input must end in lnfree::Error; anything else is a finding. A file that loads has exactly the header's
// token count, its tokens laid end to end fill the file, every id decodes, and encoding is refused with an Error.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "lnfree/error.h"
#include "lnfree/tokenizer.h"
#include "test/fuzz/fuzz_check.h"
#include "test/fuzz/fuzz_tmp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string& path = fuzz::input_file("llmc_tokenizer", ".bin");
    fuzz::write_file(path, data, size);
    try {
        const lnfree::Tokenizer t = lnfree::Tokenizer::from_llmc_file(path);
        FUZZ_CHECK(size >= 1024);
        uint32_t h[3];
        std::memcpy(h, data, sizeof(h));
        FUZZ_CHECK(h[0] == 20240328 && (h[1] == 1 || h[1] == 2) && (uint32_t)t.size() == h[2]);
        size_t bytes = 1024;
        for (int id = 0; id < t.size(); id++) {
            const std::string piece = t.decode(id);
            FUZZ_CHECK(!piece.empty() && piece.size() < 256 && bytes + 1 + piece.size() <= size);
            FUZZ_CHECK(std::memcmp(data + bytes + 1, piece.data(), piece.size()) == 0);
            bytes += 1 + piece.size();
        }
        FUZZ_CHECK(bytes == size);
        FUZZ_CHECK(t.eot() == -1 || t.decode(t.eot()) == "<|endoftext|>");
        FUZZ_CHECK(t.decode(t.size()) == "<|" + std::to_string(t.size()) + "|>");
        FUZZ_CHECK(!t.can_encode());
        try {
            (void)t.encode("hi");
            FUZZ_CHECK(false);
        } catch (const lnfree::Error&) {
        }
    } catch (const lnfree::Error&) {
    }
    return 0;
}
