#include "lnfree/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lnfree/error.h"
#include "lnfree/file_io.h"
#include "lnfree/unicode_classes.h"

namespace lnfree {
namespace {

const std::string kEndOfText = "<|endoftext|>";

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

// The length (1 to 4) of the well-formed UTF-8 sequence that starts at s[i], with its code point; 0 when the bytes
// there are ill-formed: a stray continuation byte, a cut-off sequence, an overlong form, a surrogate, or a value
// past U+10FFFF.
int utf8_sequence_at(const std::string& s, size_t i, uint32_t& code_point) {
    const unsigned char c = s[i];
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
    for (int k = 1; k < n; k++) {
        const unsigned char cc = s[i + k];
        if ((cc >> 6) != 2) return 0;
        cp = (cp << 6) | (cc & 0x3f);
    }
    static const uint32_t kSmallest[5] = {0, 0, 0x80, 0x800, 0x10000};  // below these, the form is overlong
    if (cp < kSmallest[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    code_point = cp;
    return n;
}

// UTF-8 -> code points; false on malformed input.
bool utf8_decode(const std::string& s, std::vector<uint32_t>& out) {
    for (size_t i = 0; i < s.size();) {
        uint32_t cp = 0;
        const int n = utf8_sequence_at(s, i, cp);
        if (n == 0) return false;
        out.push_back(cp);
        i += n;
    }
    return true;
}

// A vocab.json or merges.txt token, written in GPT-2's byte alphabet, as the bytes it stands for; false when it
// is not UTF-8 or uses a character outside the alphabet.
bool alphabet_to_bytes(const std::string& piece, std::string& bytes) {
    static const std::map<uint32_t, unsigned char> alphabet = codepoint_to_byte();
    std::vector<uint32_t> cps;
    if (!utf8_decode(piece, cps)) return false;
    bytes.clear();
    for (uint32_t cp : cps) {
        auto it = alphabet.find(cp);
        if (it == alphabet.end()) return false;
        bytes += (char)it->second;
    }
    return true;
}

// ---- GPT-2's pre-tokenizer ----

enum class CharClass { Letter, Number, Space, Other };  // \p{L}, \p{N}, \s, and everything else

template <size_t N>
bool in_ranges(const unicode::CodepointRange (&table)[N], uint32_t cp) {
    auto starts_after = [](uint32_t c, const unicode::CodepointRange& r) { return c < r.first; };
    auto after = std::upper_bound(table, table + N, cp, starts_after);  // the first range that starts past cp
    return after != table && cp <= (after - 1)->last;
}

CharClass classify(uint32_t cp) {
    if (in_ranges(unicode::kLetter, cp)) return CharClass::Letter;
    if (in_ranges(unicode::kNumber, cp)) return CharClass::Number;
    if (in_ranges(unicode::kWhiteSpace, cp)) return CharClass::Space;
    return CharClass::Other;
}

struct Character {
    size_t begin, end;  // its bytes in the text
    uint32_t code_point;
    CharClass cls;
};
constexpr uint32_t kIllFormed = 0xFFFFFFFF;  // the code point of a byte that is not part of valid UTF-8

// The text as characters. A byte that does not start a well-formed UTF-8 sequence becomes one character of its
// own in the punctuation class, so any bytes can be encoded (and decode back to themselves).
std::vector<Character> split_characters(const std::string& text) {
    std::vector<Character> chars;
    for (size_t i = 0; i < text.size();) {
        uint32_t cp = 0;
        const int n = utf8_sequence_at(text, i, cp);
        if (n == 0)
            chars.push_back({i, i + 1, kIllFormed, CharClass::Other});
        else
            chars.push_back({i, i + n, cp, classify(cp)});
        i += n == 0 ? 1 : n;
    }
    return chars;
}

// "'s|'t|'re|'ve|'m|'ll|'d" (lower case only, as in GPT-2): the number of characters matched at c[i], or 0.
size_t contraction_length(const std::vector<Character>& c, size_t i) {
    if (c[i].code_point != '\'') return 0;
    for (const char* suffix : {"s", "t", "re", "ve", "m", "ll", "d"}) {
        const size_t n = std::strlen(suffix);
        bool match = i + n < c.size();
        for (size_t k = 0; match && k < n; k++) match = c[i + 1 + k].code_point == (unsigned char)suffix[k];
        if (match) return n + 1;
    }
    return 0;
}

// " ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+": an optional space (U+0020 only), then a run of characters of one class
// other than white space. The three alternatives exclude each other, so the class of the run's first character
// picks the one that matches. Returns the end of the match, or i when none does.
size_t class_run_end(const std::vector<Character>& c, size_t i) {
    const bool space_prefix = c[i].code_point == ' ' && i + 1 < c.size() && c[i + 1].cls != CharClass::Space;
    const size_t first = space_prefix ? i + 1 : i;
    if (c[first].cls == CharClass::Space) return i;
    size_t end = first + 1;
    while (end < c.size() && c[end].cls == c[first].cls) end++;
    return end;
}

// "\s+(?!\S)|\s+" at a white-space character: the whole run when the text ends after it or it is one character
// long, else the run less its last character, which then starts the next pre-token (so " word" keeps its space).
size_t white_space_end(const std::vector<Character>& c, size_t i) {
    size_t end = i;
    while (end < c.size() && c[end].cls == CharClass::Space) end++;
    if (end < c.size() && end - i > 1) end--;
    return end;
}

// The end of the pre-token that starts at c[i]: the regex's alternatives in its order.
size_t pretoken_end(const std::vector<Character>& c, size_t i) {
    if (size_t n = contraction_length(c, i)) return i + n;
    if (size_t end = class_run_end(c, i); end > i) return end;
    return white_space_end(c, i);
}

}  // namespace

Tokenizer Tokenizer::from_vocab_json(const std::string& path) {
    nlohmann::json j = nlohmann::json::parse(read_text_file(path), nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.empty())
        throw Error(path + ": not a JSON object of token -> id; expected a GPT-2 style vocab.json");
    Tokenizer t;
    t.source_ = path;
    t.pieces_.resize(j.size());
    std::vector<bool> seen(j.size(), false);
    for (auto& [piece, id] : j.items()) {
        if (!id.is_number_unsigned() || id.get<size_t>() >= j.size() || seen[id.get<size_t>()])
            throw Error(path + ": token '" + piece + "' has an id that is not unique within [0, " + std::to_string(j.size()) + ")");
        std::vector<uint32_t> cps;
        if (!utf8_decode(piece, cps)) throw Error(path + ": token with id " + id.dump() + " is not valid UTF-8");
        std::string bytes;
        if (!alphabet_to_bytes(piece, bytes))
            throw Error(path + ": token '" + piece + "' uses a character outside GPT-2's byte-level alphabet");
        seen[id.get<size_t>()] = true;
        t.pieces_[id.get<size_t>()] = bytes;
        if (bytes == kEndOfText) t.eot_ = (int)id.get<size_t>();
    }
    t.cannot_encode_reason_ = path + ": a vocab.json alone cannot encode (the BPE merges are in merges.txt); load "
                                     "the checkpoint directory with Tokenizer::from_hf_directory, merges.txt beside it";
    return t;
}

Tokenizer Tokenizer::from_hf_directory(const std::string& dir) {
    Tokenizer t = from_vocab_json(dir + "/vocab.json");
    // GPT2TokenizerFast's bos, eos and unk tokens are "<|endoftext|>"; it appends the token when vocab.json lacks it
    // (the bundled tiny model's does: its shards use id 2047, one past vocab.json).
    if (t.eot_ < 0) {
        t.eot_ = t.size();
        t.pieces_.push_back(kEndOfText);
    }
    const std::string merges = dir + "/merges.txt";
    if (file_exists(merges)) {
        t.load_merges(merges);
        t.cannot_encode_reason_.clear();
    } else {
        t.cannot_encode_reason_ = merges + ": not found, and encoding needs it; copy the merges.txt saved with this "
                                           "vocab.json into " + dir + " (decoding works without it)";
    }
    return t;
}

void Tokenizer::load_merges(const std::string& path) {
    std::unordered_map<std::string, int> id_of;
    for (int id = 0; id < size(); id++) id_of.emplace(pieces_[id], id);
    for (int b = 0; b < 256; b++) {
        auto it = id_of.find(std::string(1, (char)b));
        byte_id_[b] = it == id_of.end() ? -1 : it->second;
    }
    std::istringstream lines(read_text_file(path));
    std::string line;
    int rank = 0;
    for (int line_number = 1; std::getline(lines, line); line_number++) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line.rfind("#version", 0) == 0) continue;
        const std::string where = path + " line " + std::to_string(line_number);
        const size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
            throw Error(where + ": expected two tokens separated by one space, as in GPT-2's merges.txt");
        auto id = [&](const std::string& piece) {
            std::string bytes;
            auto it = alphabet_to_bytes(piece, bytes) ? id_of.find(bytes) : id_of.end();
            if (it == id_of.end())
                throw Error(where + ": token '" + piece + "' is not in " + source_ +
                            "; merges.txt and vocab.json must come from the same tokenizer");
            return it->second;
        };
        const std::string left = line.substr(0, space), right = line.substr(space + 1);
        merges_.emplace(pair_key(id(left), id(right)), Merge{rank++, id(left + right)});
    }
}

Tokenizer Tokenizer::from_llmc_file(const std::string& path) {
    MappedFile f(path);
    if (f.size() < 1024) throw Error(path + ": shorter than llm.c's 1024-byte tokenizer header; the file is truncated");
    uint32_t h[256];
    std::memcpy(h, f.data(), 1024);
    if (h[0] != 20240328) throw Error(path + ": bad magic " + std::to_string(h[0]) + " (llm.c tokenizer files have 20240328)");
    if (h[1] != 1 && h[1] != 2) throw Error(path + ": tokenizer version " + std::to_string(h[1]) + " is not supported");
    Tokenizer t;
    t.source_ = path;
    size_t pos = 1024;
    for (uint32_t i = 0; i < h[2]; i++) {
        if (pos >= f.size()) throw Error(path + ": cut off at token " + std::to_string(i) + " of " + std::to_string(h[2]));
        size_t n = f.data()[pos++];
        if (n == 0 || n > f.size() - pos) throw Error(path + ": token " + std::to_string(i) + " has a bad length");
        t.pieces_.emplace_back((const char*)f.data() + pos, n);
        if (t.pieces_.back() == kEndOfText) t.eot_ = (int)i;
        pos += n;
    }
    if (pos != f.size()) throw Error(path + ": bytes left after the last token; the file is corrupt");
    t.cannot_encode_reason_ = path + ": llm.c tokenizer files hold no BPE merges and only decode; to encode, load "
                                     "the model's Hugging Face directory (vocab.json and merges.txt)";
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

std::vector<int> Tokenizer::encode(const std::string& text) const {
    if (!can_encode()) throw Error(cannot_encode_reason_);
    std::vector<int> ids;
    size_t start = 0;
    // "<|endoftext|>" is matched in the raw text before pre-tokenization, as Hugging Face does for special tokens.
    for (size_t at; (at = text.find(kEndOfText, start)) != std::string::npos; start = at + kEndOfText.size()) {
        append_ordinary_text(text.substr(start, at - start), ids);
        ids.push_back(eot_);
    }
    append_ordinary_text(text.substr(start), ids);
    return ids;
}

std::vector<std::string> Tokenizer::pretokenize(const std::string& text) {
    const std::vector<Character> chars = split_characters(text);
    std::vector<std::string> pretokens;
    for (size_t i = 0, end; i < chars.size(); i = end) {
        end = pretoken_end(chars, i);
        pretokens.push_back(text.substr(chars[i].begin, chars[end - 1].end - chars[i].begin));
    }
    return pretokens;
}

void Tokenizer::append_ordinary_text(const std::string& text, std::vector<int>& ids) const {
    std::unordered_map<std::string, std::vector<int>> cache;  // text repeats its words: BPE each once
    for (const std::string& pretoken : pretokenize(text)) {
        auto it = cache.find(pretoken);
        if (it == cache.end()) it = cache.emplace(pretoken, encode_pretoken(pretoken)).first;
        ids.insert(ids.end(), it->second.begin(), it->second.end());
    }
}

// word with every occurrence of the pair of ids packed in pair (left to right, not overlapping) replaced by merged.
std::vector<int> Tokenizer::replace_pair(const std::vector<int>& word, uint64_t pair, int merged) {
    std::vector<int> out;
    for (size_t k = 0; k < word.size(); k++) {
        if (k + 1 < word.size() && pair_key(word[k], word[k + 1]) == pair) {
            out.push_back(merged);
            k++;
        } else {
            out.push_back(word[k]);
        }
    }
    return out;
}

// BPE: start from the single bytes, merge the adjacent pair of lowest rank everywhere it occurs, repeat until no
// adjacent pair has a merge.
std::vector<int> Tokenizer::encode_pretoken(const std::string& bytes) const {
    std::vector<int> word;
    for (unsigned char b : bytes) {
        if (byte_id_[b] < 0) {
            char hex[8];
            std::snprintf(hex, sizeof(hex), "0x%02X", b);
            throw Error(source_ + ": no token for the byte " + hex + " of the text; this vocabulary cannot encode it");
        }
        word.push_back(byte_id_[b]);
    }
    while (word.size() > 1) {
        const Merge* best = nullptr;
        uint64_t best_pair = 0;
        for (size_t k = 0; k + 1 < word.size(); k++) {
            auto it = merges_.find(pair_key(word[k], word[k + 1]));
            if (it != merges_.end() && (!best || it->second.rank < best->rank)) {
                best = &it->second;
                best_pair = it->first;
            }
        }
        if (!best) break;
        word = replace_pair(word, best_pair, best->result);
    }
    return word;
}

}  // namespace lnfree
