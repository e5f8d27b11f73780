#include "lnfree/token_shard.h"

#include <algorithm>
#include <cstring>

#include "lnfree/error.h"

namespace lnfree {
namespace {

constexpr int32_t kShardMagic = 20240520, kEvalMagic = 20240522;
constexpr size_t kHeaderBytes = 256 * sizeof(int32_t);

void read_header(const std::string& name, const unsigned char* bytes, size_t size, int32_t magic, int32_t h[256]) {
    if (size < kHeaderBytes)
        throw Error(name + ": " + std::to_string(size) + " bytes, shorter than the 1024-byte header; the file is truncated");
    std::memcpy(h, bytes, kHeaderBytes);
    if (h[0] != magic)
        throw Error(name + ": bad magic " + std::to_string(h[0]) + " (expected " + std::to_string(magic) +
                    "); is this the right kind of llm.c file?");
    if (h[1] != 1) throw Error(name + ": version " + std::to_string(h[1]) + " is not supported (expected 1)");
}

void check_token(const std::string& name, uint16_t t, int vocab_size, size_t where) {
    if (vocab_size > 0 && t >= vocab_size)
        throw Error(name + ": token id " + std::to_string(t) + " at position " + std::to_string(where) +
                    " is outside the model's vocabulary of " + std::to_string(vocab_size) +
                    "; the data was tokenised for another model");
}

}  // namespace

TokenShard::TokenShard(const std::string& path, int vocab_size) : file_(std::make_unique<MappedFile>(path)), name_(path) {
    parse(file_->data(), file_->size(), vocab_size);
}

TokenShard::TokenShard(const std::string& name, const unsigned char* bytes, size_t size, int vocab_size) : name_(name) {
    parse(bytes, size, vocab_size);
}

void TokenShard::parse(const unsigned char* bytes, size_t size, int vocab_size) {
    int32_t h[256];
    read_header(name_, bytes, size, kShardMagic, h);
    if (h[2] < 0) throw Error(name_ + ": negative token count " + std::to_string(h[2]) + "; the header is corrupt");
    count_ = (size_t)h[2];
    if (size != kHeaderBytes + 2 * count_)
        throw Error(name_ + ": header says " + std::to_string(count_) + " tokens (" + std::to_string(kHeaderBytes + 2 * count_) +
                    " bytes) but the file has " + std::to_string(size) + " bytes; the shard is truncated or corrupt");
    tokens_ = bytes + kHeaderBytes;
    for (size_t i = 0; i < count_ && vocab_size > 0; i++) check_token(name_, (*this)[i], vocab_size, i);
}

uint16_t TokenShard::operator[](size_t i) const {
    uint16_t t;
    std::memcpy(&t, tokens_ + 2 * i, 2);
    return t;
}

void write_token_shard(const std::string& path, const std::vector<int>& tokens, int vocab_size) {
    std::vector<uint16_t> payload(tokens.size());
    for (size_t i = 0; i < tokens.size(); i++) {
        if (tokens[i] < 0 || tokens[i] >= 65535 || (vocab_size > 0 && tokens[i] >= vocab_size))
            throw Error(path + ": token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                        " does not fit the shard format or the vocabulary; nothing was written");
        payload[i] = (uint16_t)tokens[i];
    }
    if (tokens.size() > (size_t)INT32_MAX) throw Error(path + ": too many tokens for one shard; split the data");
    int32_t h[256] = {kShardMagic, 1, (int32_t)tokens.size()};
    AtomicFile out(path);
    out.write(h, sizeof(h));
    out.write(payload.data(), payload.size() * 2);
    out.commit();
}

std::vector<MultipleChoiceExample> parse_multiple_choice(const std::string& name, const unsigned char* bytes, size_t size,
                                                         int vocab_size) {
    int32_t h[256];
    read_header(name, bytes, size, kEvalMagic, h);
    if (h[2] < 0) throw Error(name + ": negative example count; the header is corrupt");
    std::vector<MultipleChoiceExample> examples;
    size_t pos = kHeaderBytes;
    auto fail = [&](const std::string& what) {
        throw Error(name + ": example " + std::to_string(examples.size()) + " " + what + "; the file is corrupt");
    };
    for (int32_t e = 0; e < h[2]; e++) {
        if (size - pos < 10) fail("is cut off");
        uint16_t head[5];
        std::memcpy(head, bytes + pos, 10);
        if (head[0] != 65535) fail("does not start with the 65535 marker");
        const size_t example_bytes = head[1];
        if (example_bytes < 12 || example_bytes % 2 || example_bytes > size - pos) fail("has an impossible size");
        if (h[3] > 0 && example_bytes > (size_t)h[3]) fail("is longer than the header's longest example");
        std::vector<uint16_t> s(example_bytes / 2);
        std::memcpy(s.data(), bytes + pos, example_bytes);
        MultipleChoiceExample ex;
        ex.index = head[2];
        ex.label = head[3];
        const size_t completions = head[4];
        if (completions == 0 || ex.label >= (int)completions) fail("has a label outside its completions");
        size_t k = 5;
        auto take = [&](std::vector<uint16_t>& into) {
            if (k >= s.size()) fail("is cut off");
            size_t n = s[k++];
            if (n > s.size() - k) fail("has a token count beyond its size");
            into.assign(s.begin() + k, s.begin() + k + n);
            for (size_t i = 0; i < n; i++) check_token(name, into[i], vocab_size, pos / 2 + k + i);
            k += n;
        };
        take(ex.context);
        ex.completions.resize(completions);
        for (auto& c : ex.completions) take(c);
        if (k != s.size()) fail("has bytes left over");
        examples.push_back(std::move(ex));
        pos += example_bytes;
    }
    if (pos != size) throw Error(name + ": " + std::to_string(size - pos) + " bytes after the last example; the file is corrupt");
    return examples;
}

std::vector<MultipleChoiceExample> read_multiple_choice_file(const std::string& path, int vocab_size) {
    MappedFile f(path);
    return parse_multiple_choice(path, f.data(), f.size(), vocab_size);
}

void write_multiple_choice_file(const std::string& path, const std::vector<MultipleChoiceExample>& examples) {
    std::vector<uint16_t> stream;
    size_t longest = 0;
    for (const MultipleChoiceExample& ex : examples) {
        std::vector<uint16_t> s = {65535, 0, (uint16_t)ex.index, (uint16_t)ex.label, (uint16_t)ex.completions.size(),
                                   (uint16_t)ex.context.size()};
        s.insert(s.end(), ex.context.begin(), ex.context.end());
        for (const auto& c : ex.completions) {
            s.push_back((uint16_t)c.size());
            s.insert(s.end(), c.begin(), c.end());
        }
        if (s.size() * 2 > 65535) throw Error(path + ": example " + std::to_string(ex.index) + " is too long for the format");
        s[1] = (uint16_t)(s.size() * 2);
        longest = std::max(longest, s.size() * 2);
        stream.insert(stream.end(), s.begin(), s.end());
    }
    int32_t h[256] = {kEvalMagic, 1, (int32_t)examples.size(), (int32_t)longest};
    AtomicFile out(path);
    out.write(h, sizeof(h));
    out.write(stream.data(), stream.size() * 2);
    out.commit();
}

}  // namespace lnfree
