// GPT-2's byte-level tokenizer: decoding (vocab.json, llm.c's tokenizer file) and encoding (vocab.json and
// merges.txt). test/python/test_tokenizer_encode.py matches the encoder to Hugging Face's on the same files.
#include <catch2/catch.hpp>

#include <filesystem>

#include "lnfree/error.h"
#include "lnfree/file_io.h"
#include "lnfree/token_shard.h"
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

namespace {

const std::string kTinyModel = std::string(LNFREE_SOURCE_DIR) + "/data/tiny/model";

using Pieces = std::vector<std::string>;

}  // namespace

TEST_CASE("GPT-2 pre-tokenizer splits as its regex does", "[formats][tokenizer]") {
    // contractions (lower case only), and an apostrophe otherwise joins the punctuation
    CHECK(Tokenizer::pretokenize("I'm sure they'll say it's what we've done, isn't it") ==
          Pieces{"I", "'m", " sure", " they", "'ll", " say", " it", "'s", " what", " we", "'ve", " done", ",", " isn",
                 "'t", " it"});
    CHECK(Tokenizer::pretokenize("you'd we're 'S ''s") == Pieces{"you", "'d", " we", "'re", " '", "S", " ''", "s"});
    // a run of spaces before a word leaves its last space to the word; at the end of the text it stays whole
    CHECK(Tokenizer::pretokenize("a   b") == Pieces{"a", "  ", " b"});
    CHECK(Tokenizer::pretokenize("a b  ") == Pieces{"a", " b", "  "});
    CHECK(Tokenizer::pretokenize("  x") == Pieces{" ", " x"});
    // only U+0020 prefixes a word: a tab, a newline or a no-break space stands alone
    CHECK(Tokenizer::pretokenize("a\tb\n\nc \nd") == Pieces{"a", "\t", "b", "\n", "\n", "c", " ", "\n", "d"});
    CHECK(Tokenizer::pretokenize("a\xc2\xa0" "b") == Pieces{"a", "\xc2\xa0", "b"});
    CHECK(Tokenizer::pretokenize("line\r\nnext\r\n") == Pieces{"line", "\r", "\n", "next", "\r\n"});
    // digits and letters are separate runs, and so is punctuation; each may take one leading space
    CHECK(Tokenizer::pretokenize("abc123def 456 7.5!!") == Pieces{"abc", "123", "def", " 456", " 7", ".", "5", "!!"});
    CHECK(Tokenizer::pretokenize("Hello, world... (yes)") == Pieces{"Hello", ",", " world", "...", " (", "yes", ")"});
    // Unicode classes: Greek and accented letters, CJK, Arabic-Indic digits and superscripts are \p{L} / \p{N}
    CHECK(Tokenizer::pretokenize("Καλημέρα café 中文 ٣٤ x²") ==
          Pieces{"Καλημέρα", " café", " 中文", " ٣٤", " x", "²"});
    CHECK(Tokenizer::pretokenize("\xf0\x9f\x98\x80\xf0\x9f\x98\x80 ok") == Pieces{"😀😀", " ok"});
    CHECK(Tokenizer::pretokenize("").empty());
}

TEST_CASE("GPT-2 BPE encoding of the tiny model: known ids and round trips", "[formats][tokenizer]") {
    const Tokenizer t = Tokenizer::from_hf_directory(kTinyModel);
    REQUIRE(t.can_encode());
    // vocab.json has 2047 tokens and no <|endoftext|>: like GPT2TokenizerFast, the loader appends it as 2047
    CHECK(t.size() == 2048);
    CHECK(t.eot() == 2047);
    CHECK(t.decode(2047) == "<|endoftext|>");
    // GPT2TokenizerFast.from_pretrained("data/tiny/model").encode of the same text
    CHECK(t.encode("hello<|endoftext|>world  \n\n  x") ==
          std::vector<int>{71, 577, 78, 2047, 86, 280, 323, 220, 220, 198, 198, 220, 220, 87});
    CHECK(t.encode("").empty());

    // The validation shard was tokenised chapter by chapter with <|endoftext|> after each: its text re-encodes to
    // the very same ids.
    TokenShard shard(std::string(LNFREE_SOURCE_DIR) + "/data/tiny/tiny_val_000000.bin");
    std::vector<int> tokens(shard.size());
    for (size_t i = 0; i < shard.size(); i++) tokens[i] = shard[i];
    const std::string text = t.decode(tokens);
    CHECK(text.size() > 100000);
    CHECK(t.encode(text) == tokens);

    const std::vector<std::string> unicode_texts = {
        "Καλημέρα κόσμε, ἀρχή", "中文字符和日本語のかな、한국어", "Crème brûlée à la façon de Zoë",
        "٠١٢٣ x² ½ ① Ⅻ", "emoji 😀👍🏽 👨‍👩‍👧 🇫🇷", "tabs\t\tand\r\nCRLF   "};
    for (const std::string& s : unicode_texts) {
        CAPTURE(s);
        CHECK(t.decode(t.encode(s)) == s);
    }
}

TEST_CASE("GPT-2 BPE encoding takes invalid UTF-8 without failing", "[formats][tokenizer]") {
    const Tokenizer t = Tokenizer::from_hf_directory(kTinyModel);
    // stray continuation bytes, a cut-off sequence, an overlong NUL, a surrogate, a code point past U+10FFFF,
    // and bytes that never occur in UTF-8
    const std::string bad = "ab\xff\xfe c\xe4\xb8 d\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80\x80 \xe4\xb8\xad";
    std::vector<int> ids;
    REQUIRE_NOTHROW(ids = t.encode(bad));
    CHECK(t.decode(ids) == bad);
    // each bad byte is one punctuation-class character: it joins a run of punctuation, never a word
    CHECK(Tokenizer::pretokenize("a\xff\xfe!b \x80" "c") == Pieces{"a", "\xff\xfe!", "b", " \x80", "c"});
    CHECK(Tokenizer::pretokenize("\xe4\xb8" "a") == Pieces{"\xe4\xb8", "a"});
}

TEST_CASE("Tokenizers without merges decode but refuse to encode, naming what to load", "[formats][tokenizer]") {
    const std::string dir = std::string(LNFREE_SOURCE_DIR) + "/build/test_scratch/tokenizer_no_merges";
    std::filesystem::create_directories(dir);
    write_text_file(dir + "/vocab.json", read_text_file(kTinyModel + "/vocab.json"));
    std::filesystem::remove(dir + "/merges.txt");
    const Tokenizer no_merges = Tokenizer::from_hf_directory(dir);
    CHECK_FALSE(no_merges.can_encode());
    CHECK(no_merges.decode(std::vector<int>{71, 577, 78}) == "hello");
    CHECK_THROWS_WITH(no_merges.encode("hello"), Catch::Contains(dir + "/merges.txt: not found") &&
                                                     Catch::Contains("copy the merges.txt"));

    const Tokenizer vocab_only = Tokenizer::from_vocab_json(kTinyModel + "/vocab.json");
    CHECK_FALSE(vocab_only.can_encode());
    CHECK(vocab_only.eot() == -1);  // only from_hf_directory appends <|endoftext|>, as GPT2TokenizerFast does
    CHECK_THROWS_WITH(vocab_only.encode("hello"), Catch::Contains("from_hf_directory"));

    uint32_t h[256] = {20240328, 2, 2, 1};
    std::string bytes((const char*)h, sizeof(h));
    write_text_file(dir + "/tok.bin", bytes + "\x02hi" + "\x0d<|endoftext|>");
    const Tokenizer llmc = Tokenizer::from_llmc_file(dir + "/tok.bin");
    CHECK(llmc.eot() == 1);
    CHECK_THROWS_WITH(llmc.encode("hi"), Catch::Contains("llm.c tokenizer files") && Catch::Contains("merges.txt"));

    // merges.txt from another tokenizer: the line and the unknown token are named
    write_text_file(dir + "/merges.txt", "#version: 0.2\nt h\n\xe4\xb8\xad x\n");
    CHECK_THROWS_WITH(Tokenizer::from_hf_directory(dir), Catch::Contains("merges.txt line 3") &&
                                                             Catch::Contains("same tokenizer"));
    write_text_file(dir + "/merges.txt", "#version: 0.2\nh e l\n");
    CHECK_THROWS_WITH(Tokenizer::from_hf_directory(dir), Catch::Contains("line 2: expected two tokens"));
}
