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

TEST_CASE("a step's micro-batches are consecutive slices of the step's global batch", "[data]") {
    // so P processes running micro-batches p, P + p, ... read together what one process reads
    const TokenChunks data(make_shards(), 16, 1000);
    for (bool windows : {false, true}) {
        INFO((windows ? "random windows" : "chunks"));
        TrainBatches batches(data, 5, windows);
        std::vector<int> all(6 * 16), all_t(6 * 16), part(2 * 16), part_t(2 * 16);
        for (int step : {0, 3}) {
            batches.fill(step, 0, 1, 6, all.data(), all_t.data());  // the step's 6 sequences as one micro-batch
            for (int micro = 0; micro < 3; micro++) {                // as 3 micro-batches of 2
                batches.fill(step, micro, 3, 2, part.data(), part_t.data());
                CHECK(std::equal(part.begin(), part.end(), all.begin() + micro * 2 * 16));
                CHECK(std::equal(part_t.begin(), part_t.end(), all_t.begin() + micro * 2 * 16));
            }
        }
    }
}

TEST_CASE("random windows stay in one shard, define every target and depend only on the seed", "[data]") {
    const int T = 16;
    const TokenChunks data(make_shards(), T, 1000);
    CHECK(data.windows() == 2 * (1000 - T));
    TrainBatches a(data, 7, true), b(data, 7, true), other(data, 8, true);
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
