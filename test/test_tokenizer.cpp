// Decoding token ids for printing samples: GPT-2's byte-level vocab.json and llm.c's tokenizer file.
#include <catch2/catch.hpp>

#include <filesystem>

#include "lnfree/error.h"
#include "lnfree/file_io.h"
#include "lnfree/tokenizer.h"

using namespace lnfree;

TEST_CASE("GPT-2 byte-level vocab.json decodes to the original bytes", "[formats][tokenizer]") {
    const std::string dir = std::string(LNFREE_SOURCE_DIR) + "/build/test_scratch/tokenizer";
    std::filesystem::create_directories(dir);
    // space -> U+0120 "Ġ", newline -> U+010A "Ċ", tab -> U+0109 "ĉ"; é is bytes C3 A9, both printable ("Ã©")
    write_text_file(dir + "/vocab.json",
                    "{\"\\u0120hello\": 0, \"\\u010a\": 1, \"<|endoftext|>\": 2, \"caf\\u00c3\\u00a9\": 3, \"\\u0109x\": 4}");
    Tokenizer t = Tokenizer::from_vocab_json(dir + "/vocab.json");
    CHECK(t.size() == 5);
    CHECK(t.decode(std::vector<int>{3, 0, 1}) == "caf\xc3\xa9 hello\n");
    CHECK(t.decode(2) == "<|endoftext|>");
    CHECK(t.decode(4) == "\tx");
    CHECK(t.decode(99) == "<|99|>");

    write_text_file(dir + "/bad.json", "{\"a\": 0, \"b\": 0}");
    CHECK_THROWS_WITH(Tokenizer::from_vocab_json(dir + "/bad.json"), Catch::Contains("not unique"));
    write_text_file(dir + "/alien.json", "{\"\\u4e2d\": 0}");
    CHECK_THROWS_WITH(Tokenizer::from_vocab_json(dir + "/alien.json"), Catch::Contains("byte-level alphabet"));
}

TEST_CASE("llm.c tokenizer files decode", "[formats][tokenizer]") {
    const std::string dir = std::string(LNFREE_SOURCE_DIR) + "/build/test_scratch/tokenizer";
    std::filesystem::create_directories(dir);
    uint32_t h[256] = {20240328, 2, 3, 2};
    std::string bytes((const char*)h, sizeof(h));
    bytes += std::string("\x02hi") + "\x01 " + "\x0d<|endoftext|>";
    write_text_file(dir + "/tok.bin", bytes);
    Tokenizer t = Tokenizer::from_llmc_file(dir + "/tok.bin");
    CHECK(t.decode(std::vector<int>{0, 1, 0, 2}) == "hi hi<|endoftext|>");
    write_text_file(dir + "/cut.bin", bytes.substr(0, bytes.size() - 4));
    CHECK_THROWS_AS(Tokenizer::from_llmc_file(dir + "/cut.bin"), Error);
}
