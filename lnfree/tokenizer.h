// GPT-2's byte-level BPE tokenizer: decoding token ids to text for printing samples, and encoding a user's text
// (a prompt) to exactly the ids Hugging Face's GPT2TokenizerFast gives.
//
// Sources: a Hugging Face checkpoint directory (vocab.json, and merges.txt to encode; any byte-level BPE in GPT-2's
// format, the bundled tiny model's included), a vocab.json alone, or llm.c's tokenizer file (magic 20240328,
// version 2: per token a length byte and raw bytes). The last two hold no merges: they decode only.
//
// Encoding, as GPT2TokenizerFast does it: the text is cut at each "<|endoftext|>" (which becomes its id); each piece
// in between is split by GPT-2's pre-tokenizer regex
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (hand-written here, with the Unicode classes of lnfree/unicode_classes.h), and each pre-token's bytes are merged
// by BPE, lowest merge rank first. Text that is not valid UTF-8 does not fail: each byte of an ill-formed sequence
// counts as one character of the punctuation class ([^\s\p{L}\p{N}]) and is encoded as its byte token, so
// decode(encode(text)) == text for any bytes (Hugging Face takes only valid UTF-8, so there is nothing to match).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace lnfree {

class Tokenizer {
   public:
    // dir/vocab.json, and dir/merges.txt when present (without it the tokenizer only decodes). Like
    // GPT2TokenizerFast, appends "<|endoftext|>" as the next id when vocab.json lacks it. Throws lnfree::Error.
    static Tokenizer from_hf_directory(const std::string& dir);
    static Tokenizer from_vocab_json(const std::string& path);  // decodes only
    static Tokenizer from_llmc_file(const std::string& path);   // decodes only

    int size() const { return (int)pieces_.size(); }
    // The id of "<|endoftext|>", or -1 when the vocabulary has none.
    int eot() const { return eot_; }
    // The bytes of one token; ids outside the vocabulary decode to "<|id|>" (so printing never fails).
    std::string decode(int id) const;
    std::string decode(const std::vector<int>& ids) const;

    bool can_encode() const { return cannot_encode_reason_.empty(); }
    // GPT2TokenizerFast's ids for text; throws lnfree::Error when !can_encode() (the message says why and what to
    // load instead) or when the vocabulary has no token for one of the text's bytes.
    std::vector<int> encode(const std::string& text) const;
    // GPT-2's pre-tokens of text (the regex's matches, in order; "<|endoftext|>" is not special here): the units
    // that BPE merges within, never across.
    static std::vector<std::string> pretokenize(const std::string& text);

   private:
    struct Merge {
        int rank;    // line order in merges.txt: lower merges first
        int result;  // the id of the merged token
    };
    static uint64_t pair_key(int left, int right) { return (uint64_t)(uint32_t)left << 32 | (uint32_t)right; }
    void load_merges(const std::string& path);
    static std::vector<int> replace_pair(const std::vector<int>& word, uint64_t pair, int merged);
    std::vector<int> encode_pretoken(const std::string& bytes) const;
    void append_ordinary_text(const std::string& text, std::vector<int>& ids) const;

    std::vector<std::string> pieces_;  // id -> bytes
    int eot_ = -1;
    std::string source_;                // the vocabulary's path, for error messages
    std::string cannot_encode_reason_;  // empty when encode works
    std::array<int, 256> byte_id_{};    // the single-byte tokens BPE starts from (-1: none)
    std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank and merged id
};

}  // namespace lnfree
