#include "lnfree/data_loader.h"

#include <algorithm>
#include <glob.h>
#include <random>

#include "lnfree/error.h"

namespace lnfree {

TokenChunks::TokenChunks(const std::string& pattern, int seq_len, int vocab_size) : T_(seq_len) {
    glob_t g;
    const int rc = glob(pattern.c_str(), 0, nullptr, &g);
    std::vector<std::string> files;
    if (rc == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) files.push_back(g.gl_pathv[i]);
    globfree(&g);
    if (files.empty())
        throw Error(pattern + ": no token shards match; make them with the scripts in dev/data (doc/data.md)");
    std::sort(files.begin(), files.end());
    for (const std::string& f : files) {
        shards_.push_back(std::make_unique<TokenShard>(f, vocab_size));
        const size_t n = shards_.back()->size() / T_;
        for (size_t c = 0; c < n; c++) chunks_.push_back({(uint32_t)(shards_.size() - 1), c * T_});
        const size_t size = shards_.back()->size();
        window_end_.push_back((window_end_.empty() ? 0 : window_end_.back()) + (size > (size_t)T_ ? size - T_ : 0));
    }
    if (chunks_.empty())
        throw Error(pattern + ": fewer tokens than one sequence of " + std::to_string(T_) + "; use more data or a shorter --seq-len");
}

size_t TokenChunks::tokens() const { return chunks_.size() * (size_t)T_; }

void TokenChunks::read(size_t i, int* inputs, int* targets) const {
    const TokenShard& s = *shards_[chunks_[i].first];
    const size_t first = chunks_[i].second;
    for (int t = 0; t < T_; t++) {
        inputs[t] = s[first + t];
        targets[t] = t + 1 < T_ ? s[first + t + 1] : -1;
    }
}

void TokenChunks::read_window(uint64_t w, int* inputs, int* targets) const {
    const size_t shard = std::upper_bound(window_end_.begin(), window_end_.end(), w) - window_end_.begin();
    const TokenShard& s = *shards_[shard];
    const size_t first = w - (shard == 0 ? 0 : window_end_[shard - 1]);
    for (int t = 0; t < T_; t++) {
        inputs[t] = s[first + t];
        targets[t] = s[first + t + 1];
    }
}

TrainBatches::TrainBatches(const TokenChunks& data, uint64_t seed, bool random_windows)
    : data_(data), seed_(seed), random_windows_(random_windows) {
    if (random_windows && data.windows() == 0) throw Error("training data: no shard holds a window of T + 1 tokens");
}

namespace {

uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

}  // namespace

size_t TrainBatches::chunk_of(uint64_t sequence) {
    const uint64_t n = data_.size(), epoch = sequence / n;
    if (epoch != epoch_) {  // a fresh permutation per epoch, a pure function of (seed, epoch)
        order_.resize(n);
        for (uint64_t i = 0; i < n; i++) order_[i] = (uint32_t)i;
        std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + epoch);
        for (uint64_t i = n - 1; i > 0; i--) std::swap(order_[i], order_[rng() % (i + 1)]);
        epoch_ = epoch;
    }
    return order_[sequence % n];
}

void TrainBatches::fill(int step, int micro, int grad_accum, int B, int* idx, int* targets) {
    const int T = (int)(data_.tokens() / data_.size());
    const uint64_t first = ((uint64_t)step * grad_accum + micro) * B;
    for (int b = 0; b < B; b++) {
        if (random_windows_)
            data_.read_window(splitmix64(splitmix64(seed_) ^ (first + b)) % data_.windows(), idx + (size_t)b * T,
                              targets + (size_t)b * T);
        else
            data_.read(chunk_of(first + b), idx + (size_t)b * T, targets + (size_t)b * T);
    }
}

}  // namespace lnfree
