// Batches from llm.c token shards, as the 2025 recipe draws them (method.md 7.1 and 10):
//  - the data is cut into T-token chunks within each shard (the remainder of a shard is dropped); a sequence's
//    inputs are its chunk, its targets the chunk shifted by one, and the last position has no target (-1);
//  - training: chunks in a seeded random order without replacement, reshuffled each epoch; global sequence g of
//    the run is chunk order[g]; micro-batch m of step s (of A per step) is sequences (s * A + m) * B ... of that
//    stream, whichever process runs it (in a data-parallel run process p of P runs m = p, P + p, ...), so the
//    position in the data is one number and P processes read what one process would;
//  - or (the 2024 recipe, nanoGPT's get_batch) windows of T + 1 tokens at uniformly random offsets of the shards,
//    a pure function of (seed, global sequence), with every target defined;
//  - evaluation: every chunk of the validation shards in order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lnfree/token_shard.h"

namespace lnfree {

class TokenChunks {
   public:
    // pattern: a file or a glob ("data/tiny/tiny_train_*.bin"); every id is checked against vocab_size
    TokenChunks(const std::string& pattern, int seq_len, int vocab_size);
    size_t size() const { return chunks_.size(); }
    // inputs (T) and targets (T) of chunk i
    void read(size_t i, int* inputs, int* targets) const;
    size_t tokens() const;
    // windows of T + 1 tokens inside one shard: window w's inputs start at token w of the shards' valid starts
    uint64_t windows() const { return window_end_.empty() ? 0 : window_end_.back(); }
    void read_window(uint64_t w, int* inputs, int* targets) const;

   private:
    int T_;
    std::vector<std::unique_ptr<TokenShard>> shards_;
    std::vector<std::pair<uint32_t, size_t>> chunks_;  // (shard, first token)
    std::vector<uint64_t> window_end_;                  // per shard: valid window starts up to and including it
};

class TrainBatches {
   public:
    TrainBatches(const TokenChunks& data, uint64_t seed, bool random_windows = false);
    // Fills idx, targets (B*T) with the sequences of micro-batch `micro` (of grad_accum) of optimizer step `step`.
    void fill(int step, int micro, int grad_accum, int B, int* idx, int* targets);

   private:
    size_t chunk_of(uint64_t sequence);
    const TokenChunks& data_;
    uint64_t seed_;
    bool random_windows_;
    uint64_t epoch_ = UINT64_MAX;
    std::vector<uint32_t> order_;
};

}  // namespace lnfree
