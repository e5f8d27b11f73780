// libFuzzer target: the Hugging Face tokenizer files, lnfree::Tokenizer::from_hf_directory and from_vocab_json
// (dev/fuzz.sh builds and runs it). An input is  vocab.json [NUL merges.txt [NUL text]]: split at the first two
// NUL bytes (which neither file can hold usefully) and written into a temporary directory (fuzz_tmp.h); without a
// NUL there is no merges.txt, and the tokenizer only decodes. The result encodes and decodes a few fixed strings
// and the input's text part. Bad input must end in lnfree::Error; anything else is a finding. Invariants: encoding
// fails only for a byte the vocabulary has no token for, its ids are in the vocabulary and decode to the text;
// the pre-tokens are non-empty and put together give the text; vocab.json alone gives the same tokens.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "lnfree/error.h"
#include "lnfree/tokenizer.h"
#include "test/fuzz/fuzz_check.h"
#include "test/fuzz/fuzz_tmp.h"

namespace {

using namespace std::string_literals;

std::string g_dir;

void remove_tmp() {
    ::unlink((g_dir + "/vocab.json").c_str());
    ::unlink((g_dir + "/merges.txt").c_str());
    ::rmdir(g_dir.c_str());
}

// Contractions, runs of spaces, digits, "<|endoftext|>", letters outside ASCII, an emoji, and bytes that are not UTF-8.
const std::vector<std::string> kTexts = {
    "Hello world, it's 2024!"s,
    "  the  thing's\tin\n\nthe<|endoftext|>end<|endoftext|>"s,
    "caf\xc3\xa9 \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x99\x82 \xd9\xa3\xd9\xa4"s,
    "\xff\xc3(\xed\xa0\x80\x80 \x00x"
    "\xf4\x90\x80\x80"s,
    ""s,
};

void check_pretokens(const std::string& text) {
    std::string joined;
    for (const std::string& p : lnfree::Tokenizer::pretokenize(text)) {
        FUZZ_CHECK(!p.empty());
        joined += p;
    }
    FUZZ_CHECK(joined == text);
}

void check_encode(const lnfree::Tokenizer& t, const std::vector<bool>& has_byte, const std::string& text) {
    bool encodable = t.can_encode();
    for (unsigned char b : text) encodable = encodable && has_byte[b];
    try {
        const std::vector<int> ids = t.encode(text);
        for (int id : ids) FUZZ_CHECK(id >= 0 && id < t.size());
        FUZZ_CHECK(t.decode(ids) == text);
    } catch (const lnfree::Error&) {
        FUZZ_CHECK(!encodable);
    }
}

void use(const lnfree::Tokenizer& t, const std::string& text) {
    FUZZ_CHECK(t.size() > 0);
    FUZZ_CHECK(t.eot() == -1 || (t.eot() < t.size() && t.decode(t.eot()) == "<|endoftext|>"));
    FUZZ_CHECK(t.decode(-1) == "<|-1|>" && t.decode(t.size()) == "<|" + std::to_string(t.size()) + "|>");
    std::vector<bool> has_byte(256, false);
    for (int id = 0; id < t.size(); id++) {
        const std::string piece = t.decode(id);
        if (piece.size() == 1) has_byte[(unsigned char)piece[0]] = true;
    }
    for (const std::string& s : kTexts) check_encode(t, has_byte, s);
    check_encode(t, has_byte, text);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    g_dir = fuzz::tmp_path("tokenizer");
    FUZZ_CHECK(::mkdir(g_dir.c_str(), 0700) == 0 || errno == EEXIST);  // a crashed run's, under a reused pid
    std::atexit(remove_tmp);
    for (const std::string& s : kTexts) check_pretokens(s);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input((const char*)data, size);
    const size_t cut1 = input.find('\0');
    const size_t cut2 = cut1 == std::string::npos ? cut1 : input.find('\0', cut1 + 1);
    const std::string vocab = input.substr(0, cut1);
    fuzz::write_file(g_dir + "/vocab.json", vocab.data(), vocab.size());
    std::string text;
    if (cut1 == std::string::npos) {
        ::unlink((g_dir + "/merges.txt").c_str());
    } else {
        const std::string merges = input.substr(cut1 + 1, cut2 == std::string::npos ? cut2 : cut2 - cut1 - 1);
        fuzz::write_file(g_dir + "/merges.txt", merges.data(), merges.size());
        if (cut2 != std::string::npos) text = input.substr(cut2 + 1);
    }
    check_pretokens(text);

    bool vocab_ok = false;
    int vocab_size = 0, vocab_eot = -1;
    try {
        const lnfree::Tokenizer v = lnfree::Tokenizer::from_vocab_json(g_dir + "/vocab.json");
        FUZZ_CHECK(!v.can_encode());
        use(v, text);
        vocab_ok = true;
        vocab_size = v.size();
        vocab_eot = v.eot();
    } catch (const lnfree::Error&) {
    }
    try {
        const lnfree::Tokenizer t = lnfree::Tokenizer::from_hf_directory(g_dir);
        FUZZ_CHECK(vocab_ok);  // the directory reads the same vocab.json
        FUZZ_CHECK(t.can_encode() == (cut1 != std::string::npos));
        // "<|endoftext|>" appended when vocab.json lacks it, as GPT2TokenizerFast does
        FUZZ_CHECK(vocab_eot >= 0 ? t.size() == vocab_size && t.eot() == vocab_eot
                                  : t.size() == vocab_size + 1 && t.eot() == vocab_size);
        use(t, text);
    } catch (const lnfree::Error&) {
    }
    return 0;
}
