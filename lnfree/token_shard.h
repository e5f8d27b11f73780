// llm.c's data files (llmc-notes 2.3, 2.4), so shards made by llm.c's scripts work unchanged:
//  - token shard: 256 int32 header (magic 20240520, version 1, token count), then uint16 GPT-2 token ids;
//  - multiple-choice eval file (HellaSwag): 256 int32 header (magic 20240522, version 1, example count, longest
//    example in bytes), then per example a uint16 stream: 65535, the example's size in bytes, its index, the label,
//    the number of completions, the context length and tokens, then each completion's length and tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lnfree/file_io.h"

namespace lnfree {

class TokenShard {
   public:
    // Maps the file; vocab_size > 0 also checks every token id against it. Throws lnfree::Error.
    explicit TokenShard(const std::string& path, int vocab_size = 0);
    // The same checks on bytes in memory (the caller keeps them alive); `name` labels errors.
    TokenShard(const std::string& name, const unsigned char* bytes, size_t size, int vocab_size = 0);

    size_t size() const { return count_; }
    uint16_t operator[](size_t i) const;
    const std::string& name() const { return name_; }

   private:
    void parse(const unsigned char* bytes, size_t size, int vocab_size);
    std::unique_ptr<MappedFile> file_;
    std::string name_;
    const unsigned char* tokens_ = nullptr;
    size_t count_ = 0;
};

// Writes a shard atomically; ids must be in [0, 65535) (and < vocab_size when given).
void write_token_shard(const std::string& path, const std::vector<int>& tokens, int vocab_size = 0);

struct MultipleChoiceExample {
    int index = 0, label = 0;
    std::vector<uint16_t> context;
    std::vector<std::vector<uint16_t>> completions;
};

std::vector<MultipleChoiceExample> read_multiple_choice_file(const std::string& path, int vocab_size = 0);
std::vector<MultipleChoiceExample> parse_multiple_choice(const std::string& name, const unsigned char* bytes,
                                                         size_t size, int vocab_size = 0);
void write_multiple_choice_file(const std::string& path, const std::vector<MultipleChoiceExample>& examples);

}  // namespace lnfree
