// The training batches: every process reads its own slice of each global batch, and the 2024 recipe's random
// windows stay inside one shard, define every target and are a pure function of (seed, global sequence).
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

#include "lnfree/data_loader.h"
#include "lnfree/token_shard.h"

using namespace lnfree;

namespace {

// two shards of 1000 tokens whose ids tell them apart: shard 0 holds ids below 500, shard 1 ids from 500 on
std::string make_shards() {
    const std::string dir = std::string(LNFREE_SOURCE_DIR) + "/build/test_scratch/data_loader";
    std::filesystem::create_directories(dir);
    for (int shard = 0; shard < 2; shard++) {
        std::vector<int> tokens(1000);
        for (int i = 0; i < 1000; i++) tokens[i] = shard * 500 + (i * 7) % 500;
        write_token_shard(dir + "/train_00000" + std::to_string(shard) + ".bin", tokens, 1000);
    }
    return dir + "/train_*.bin";
}

}  // namespace

TEST_CASE("each process reads its own slice of every global batch", "[data]") {
    const TokenChunks data(make_shards(), 16, 1000);
    for (bool windows : {false, true}) {
        INFO((windows ? "random windows" : "chunks"));
        TrainBatches one(data, 5, 0, 1, windows), first(data, 5, 0, 2, windows), second(data, 5, 1, 2, windows);
        std::vector<int> all(4 * 16), all_t(4 * 16), half(2 * 16), half_t(2 * 16);
        for (int step : {0, 3}) {
            one.fill(step, 1, 2, 4, all.data(), all_t.data());  // the global batch of 4 sequences
            first.fill(step, 1, 2, 2, half.data(), half_t.data());
            CHECK(std::equal(half.begin(), half.end(), all.begin()));
            second.fill(step, 1, 2, 2, half.data(), half_t.data());
            CHECK(std::equal(half.begin(), half.end(), all.begin() + 2 * 16));
            CHECK(std::equal(half_t.begin(), half_t.end(), all_t.begin() + 2 * 16));
        }
    }
}

TEST_CASE("random windows stay in one shard, define every target and depend only on the seed", "[data]") {
    const int T = 16;
    const TokenChunks data(make_shards(), T, 1000);
    CHECK(data.windows() == 2 * (1000 - T));
    TrainBatches a(data, 7, 0, 1, true), b(data, 7, 0, 1, true), other(data, 8, 0, 1, true);
    std::vector<int> idx(8 * T), targets(8 * T), idx2(8 * T), targets2(8 * T);
    std::set<int> shards_seen, starts;
    for (int step = 0; step < 20; step++) {
        a.fill(step, 0, 1, 8, idx.data(), targets.data());
        b.fill(step, 0, 1, 8, idx2.data(), targets2.data());
        CHECK(idx == idx2);
        CHECK(targets == targets2);
        for (int s = 0; s < 8; s++) {
            const int* in = idx.data() + s * T;
            const int* tg = targets.data() + s * T;
            const int shard = in[0] / 500;
            shards_seen.insert(shard);
            starts.insert(in[0] * 1000 + in[1]);
            for (int t = 0; t < T; t++) {
                CHECK(in[t] / 500 == shard);
                CHECK(tg[t] / 500 == shard);  // the last target too: windows are T + 1 tokens
                CHECK(tg[t] == shard * 500 + (in[t] - shard * 500 + 7) % 500);  // the next token of the shard
            }
        }
    }
    CHECK(shards_seen.size() == 2);
    CHECK(starts.size() > 100);  // 160 draws from 1968 windows
    other.fill(0, 0, 1, 8, idx2.data(), targets2.data());
    a.fill(0, 0, 1, 8, idx.data(), targets.data());
    CHECK(idx != idx2);
}
