// Decoding token ids to text, for printing samples: GPT-2's byte-level BPE from a checkpoint's vocab.json (any
// byte-level BPE vocabulary in that format, the bundled tiny model's included), or llm.c's tokenizer file
// (magic 20240328, version 2: per token a length byte and raw bytes). Decoding only; data is tokenised in Python.
#pragma once
#include <string>
#include <vector>

namespace lnfree {

class Tokenizer {
   public:
    static Tokenizer from_vocab_json(const std::string& path);  // throws lnfree::Error
    static Tokenizer from_llmc_file(const std::string& path);

    int size() const { return (int)pieces_.size(); }
    // The bytes of one token; ids outside the vocabulary decode to "<|id|>" (so printing never fails).
    std::string decode(int id) const;
    std::string decode(const std::vector<int>& ids) const;

   private:
    std::vector<std::string> pieces_;
};

}  // namespace lnfree
