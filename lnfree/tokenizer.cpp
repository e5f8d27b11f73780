#include "lnfree/tokenizer.h"

#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "lnfree/error.h"
#include "lnfree/file_io.h"

namespace lnfree {
namespace {

// GPT-2's byte-level alphabet: printable bytes stand for themselves, the other 68 bytes for code points 256...
std::map<uint32_t, unsigned char> codepoint_to_byte() {
    std::map<uint32_t, unsigned char> m;
    int next = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        m[printable ? (uint32_t)b : (uint32_t)(256 + next++)] = (unsigned char)b;
    }
    return m;
}

// UTF-8 -> code points; false on malformed input.
bool utf8_decode(const std::string& s, std::vector<uint32_t>& out) {
    for (size_t i = 0; i < s.size();) {
        unsigned char c = s[i];
        int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        for (int k = 1; k < n; k++) {
            unsigned char cc = s[i + k];
            if ((cc >> 6) != 2) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        out.push_back(cp);
        i += n;
    }
    return true;
}

}  // namespace

Tokenizer Tokenizer::from_vocab_json(const std::string& path) {
    nlohmann::json j = nlohmann::json::parse(read_text_file(path), nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.empty())
        throw Error(path + ": not a JSON object of token -> id; expected a GPT-2 style vocab.json");
    static const std::map<uint32_t, unsigned char> alphabet = codepoint_to_byte();
    Tokenizer t;
    t.pieces_.resize(j.size());
    std::vector<bool> seen(j.size(), false);
    for (auto& [piece, id] : j.items()) {
        if (!id.is_number_unsigned() || id.get<size_t>() >= j.size() || seen[id.get<size_t>()])
            throw Error(path + ": token '" + piece + "' has an id that is not unique within [0, " + std::to_string(j.size()) + ")");
        std::vector<uint32_t> cps;
        if (!utf8_decode(piece, cps)) throw Error(path + ": token with id " + id.dump() + " is not valid UTF-8");
        std::string bytes;
        for (uint32_t cp : cps) {
            auto it = alphabet.find(cp);
            if (it == alphabet.end())
                throw Error(path + ": token '" + piece + "' uses a character outside GPT-2's byte-level alphabet");
            bytes += (char)it->second;
        }
        seen[id.get<size_t>()] = true;
        t.pieces_[id.get<size_t>()] = bytes;
    }
    return t;
}

Tokenizer Tokenizer::from_llmc_file(const std::string& path) {
    MappedFile f(path);
    if (f.size() < 1024) throw Error(path + ": shorter than llm.c's 1024-byte tokenizer header; the file is truncated");
    uint32_t h[256];
    std::memcpy(h, f.data(), 1024);
    if (h[0] != 20240328) throw Error(path + ": bad magic " + std::to_string(h[0]) + " (llm.c tokenizer files have 20240328)");
    if (h[1] != 1 && h[1] != 2) throw Error(path + ": tokenizer version " + std::to_string(h[1]) + " is not supported");
    Tokenizer t;
    size_t pos = 1024;
    for (uint32_t i = 0; i < h[2]; i++) {
        if (pos >= f.size()) throw Error(path + ": cut off at token " + std::to_string(i) + " of " + std::to_string(h[2]));
        size_t n = f.data()[pos++];
        if (n == 0 || n > f.size() - pos) throw Error(path + ": token " + std::to_string(i) + " has a bad length");
        t.pieces_.emplace_back((const char*)f.data() + pos, n);
        pos += n;
    }
    if (pos != f.size()) throw Error(path + ": bytes left after the last token; the file is corrupt");
    return t;
}

std::string Tokenizer::decode(int id) const {
    if (id < 0 || id >= size()) return "<|" + std::to_string(id) + "|>";
    return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
    std::string s;
    for (int id : ids) s += decode(id);
    return s;
}

}  // namespace lnfree
