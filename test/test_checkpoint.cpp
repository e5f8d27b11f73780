// Loading GPT-2 weights: Hugging Face checkpoints of each GPT-2 shape scaled down (same depths and head counts,
// head_dim 4), one full-width layer of GPT-2 XL's shape, every dtype, prefixes and sharding; llm.c model files.
// Names, shapes and values must come back exactly (up to the stored dtype's rounding).
#include <catch2/catch.hpp>

#include <filesystem>

#include "lnfree/checkpoint.h"
#include "test/hf_checkpoint_writer.h"

using namespace lnfree;
using namespace lnfree::test;

namespace {

std::string scratch(const std::string& name) {
    std::string dir = std::string(LNFREE_SOURCE_DIR) + "/build/test_scratch/" + name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

void check_loaded(const ParameterSet<float>& loaded, const ParameterSet<float>& written, const std::string& dtype) {
    REQUIRE(loaded.config.L == written.config.L);
    REQUIRE(loaded.config.C == written.config.C);
    REQUIRE(loaded.config.NH == written.config.NH);
    REQUIRE(loaded.config.V == written.config.V);
    REQUIRE(loaded.config.Vp == padded_vocab(written.config.V));
    REQUIRE(loaded.config.maxT == written.config.maxT);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        INFO("tensor " << kParamNames[i]);
        REQUIRE(loaded.numel(i) == written.numel(i));
        size_t mismatches = 0;
        for (size_t k = 0; k < loaded.numel(i); k++)
            mismatches += loaded.tensor(i)[k] != stored_value(written.tensor(i)[k], dtype);
        CHECK(mismatches == 0);
    }
}

}  // namespace

TEST_CASE("Hugging Face checkpoints of the four GPT-2 shapes, scaled down, load exactly", "[formats][checkpoint]") {
    struct Shape { const char* name; int L, NH; };
    const Shape shape = GENERATE(Shape{"gpt2", 12, 12}, Shape{"gpt2-medium", 24, 16}, Shape{"gpt2-large", 36, 20},
                                 Shape{"gpt2-xl", 48, 25});
    const HfLayout layout = GENERATE(HfLayout{"F32", false, 1, true}, HfLayout{"BF16", true, 1, false},
                                     HfLayout{"F16", true, 3, true});
    INFO(shape.name << " " << layout.dtype << (layout.prefix ? " prefixed" : "") << " shards " << layout.shards);
    GPT2Config c{shape.L, 4 * shape.NH, shape.NH, 211, padded_vocab(211), 16};
    ParameterSet<float> p = random_params(c, (uint32_t)shape.L);
    const std::string dir = scratch(std::string(shape.name) + "_" + layout.dtype);
    write_hf_checkpoint(dir, p, layout);
    check_loaded(load_model(dir), p, layout.dtype);
}

TEST_CASE("one full-width layer of GPT-2 XL's shape loads exactly", "[formats][checkpoint]") {
    GPT2Config c{1, 1600, 25, 1000, padded_vocab(1000), 64};
    ParameterSet<float> p = random_params(c, 1600);
    const std::string dir = scratch("xl_layer");
    write_hf_checkpoint(dir, p, HfLayout{"BF16", false, 2, true});
    check_loaded(load_hf_checkpoint(dir), p, "BF16");
    std::filesystem::remove_all(dir);
}

TEST_CASE("llm.c model files: version 3 round-trips, version 5 (bfloat16) loads", "[formats][checkpoint]") {
    GPT2Config c{2, 20, 5, 97, 128, 16};
    ParameterSet<float> p = random_params(c, 3);
    const std::string dir = scratch("llmc");
    write_llmc_model(dir + "/model.bin", p);
    check_loaded(load_model(dir + "/model.bin"), p, "F32");

    // version 5: the same header, bfloat16 payload
    int32_t h[256] = {20240326, 5, c.maxT, c.V, c.L, c.NH, c.C, c.Vp};
    std::vector<uint16_t> payload;
    for (float x : p.data) payload.push_back(float_to_bf16(x));
    AtomicFile f(dir + "/model_bf16.bin");
    f.write(h, sizeof(h));
    f.write(payload.data(), payload.size() * 2);
    f.commit();
    check_loaded(load_model(dir + "/model_bf16.bin"), p, "BF16");
}
