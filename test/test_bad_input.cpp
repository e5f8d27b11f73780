// Bad input never crashes and never leaves output behind: each case runs `lnfree_tool convert BAD OUT` and asserts
// exit status 1, exactly one line on stderr naming the file and the problem, and no OUT (nor OUT.tmp) on disk.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sys/wait.h>

#include "lnfree/error.h"
#include "lnfree/token_shard.h"
#include "test/hf_checkpoint_writer.h"

using namespace lnfree;
using namespace lnfree::test;
namespace fs = std::filesystem;

namespace {

const std::string kRoot = LNFREE_SOURCE_DIR;

std::string scratch(const std::string& name) {
    std::string dir = kRoot + "/build/test_scratch/bad/" + name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

struct Run { int status; std::string err; };

Run run(const std::string& args) {
    const std::string err_file = kRoot + "/build/test_scratch/bad/stderr.txt";
    int rc = std::system((kRoot + "/build/lnfree_tool " + args + " 2> " + err_file).c_str());
    return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_text_file(err_file)};
}

// The tool fails with one line mentioning every `expected` fragment, and writes nothing.
void expect_rejected(const std::string& input, std::initializer_list<std::string> expected) {
    const std::string out = kRoot + "/build/test_scratch/bad/out.bin";
    fs::remove(out);
    Run r = run("convert " + input + " " + out);
    INFO("stderr: " << r.err);
    CHECK(r.status == 1);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    for (const std::string& e : expected) CHECK(r.err.find(e) != std::string::npos);
    CHECK_FALSE(fs::exists(out));
    CHECK_FALSE(fs::exists(out + ".tmp"));
}

// A safetensors file from a raw header and data section.
void write_raw_safetensors(const std::string& path, const std::string& header, size_t data_bytes, uint64_t declared_len = 0) {
    uint64_t len = declared_len ? declared_len : header.size();
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; i++) bytes[i] = (char)(len >> (8 * i));
    bytes += header + std::string(data_bytes, '\0');
    write_text_file(path, bytes);
}

const GPT2Config kShape{2, 20, 5, 97, 128, 16};

// Turns the single-file checkpoint in dir into two shards with an index, the second holding one extra tensor.
void add_shard_with(const std::string& dir, const std::string& name, const std::vector<size_t>& shape,
                    const std::vector<float>& values) {
    fs::rename(dir + "/model.safetensors", dir + "/a.safetensors");
    write_safetensors(dir + "/b.safetensors", {f32_view(name, shape, values.data())});
    nlohmann::json map;
    const SafetensorsFile first(dir + "/a.safetensors");
    for (auto& [tensor, info] : first.tensors()) map[tensor] = "a.safetensors";
    map[name] = "b.safetensors";
    write_text_file(dir + "/model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
}

// A valid checkpoint directory, then `mutate` breaks it.
template <typename F>
std::string broken_checkpoint(const std::string& name, F mutate) {
    std::string dir = scratch(name);
    ParameterSet<float> p = random_params(kShape, 5);
    mutate(dir, p);
    return dir;
}

}  // namespace

TEST_CASE("malformed safetensors files are rejected with one clear line and no output", "[formats][bad_input]") {
    auto with_file = [](const std::string& name, auto make_file) {
        std::string dir = scratch(name);
        write_text_file(dir + "/config.json",
                        R"({"n_layer":2,"n_embd":20,"n_head":5,"vocab_size":97,"n_positions":16})");
        make_file(dir + "/model.safetensors");
        return dir;
    };
    expect_rejected(with_file("truncated", [](const std::string& f) { write_text_file(f, "abcd"); }),
                    {"model.safetensors", "truncated"});
    expect_rejected(with_file("oversized", [](const std::string& f) { write_raw_safetensors(f, "{}", 0, 1ull << 40); }),
                    {"model.safetensors", "header length"});
    expect_rejected(with_file("notjson", [](const std::string& f) { write_raw_safetensors(f, "{\"a\": [1, ", 0); }),
                    {"model.safetensors", "not a JSON object"});
    expect_rejected(with_file("outside", [](const std::string& f) {
                        write_raw_safetensors(f, R"({"wte.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4);
                    }),
                    {"model.safetensors", "wte.weight", "outside"});
    expect_rejected(with_file("overlap", [](const std::string& f) {
                        write_raw_safetensors(f, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
                    }),
                    {"model.safetensors", "overlap"});
    expect_rejected(with_file("dtype", [](const std::string& f) {
                        write_raw_safetensors(f, R"({"wte.weight":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", 1);
                    }),
                    {"model.safetensors", "unknown dtype 'F8_E9'"});
    expect_rejected(with_file("size", [](const std::string& f) {
                        write_raw_safetensors(f, R"({"wte.weight":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
                    }),
                    {"model.safetensors", "shape and dtype need 12"});
}

TEST_CASE("checkpoints that are not the GPT-2 they claim are rejected with one clear line and no output",
          "[formats][bad_input]") {
    expect_rejected(broken_checkpoint("missing_config", [](auto& dir, auto& p) {
                        write_hf_checkpoint(dir, p, {});
                        fs::remove(dir + "/config.json");
                    }),
                    {"no config.json", "dev/download_model.py"});
    expect_rejected(broken_checkpoint("missing_tensor", [](auto& dir, auto& p) {
                        // config.json says 3 layers, the weights have 2
                        write_hf_checkpoint(dir, p, {}, {{"n_layer", 3}, {"n_embd", 20}, {"n_head", 5}, {"vocab_size", 97}, {"n_positions", 16}});
                    }),
                    {"h.2.ln_1.weight", "is missing"});
    expect_rejected(broken_checkpoint("wrong_shape", [](auto& dir, auto& p) {
                        write_hf_checkpoint(dir, p, {}, {{"n_layer", 2}, {"n_embd", 20}, {"n_head", 5}, {"vocab_size", 97}, {"n_positions", 32}});
                    }),
                    {"wpe.weight", "shape 16x20", "implies 32x20", "disagree"});
    expect_rejected(broken_checkpoint("heads", [](auto& dir, auto& p) {
                        write_hf_checkpoint(dir, p, {}, {{"n_layer", 2}, {"n_embd", 20}, {"n_head", 3}, {"vocab_size", 97}, {"n_positions", 16}});
                    }),
                    {"config.json", "not divisible by n_head 3"});
    expect_rejected(broken_checkpoint("nonfinite", [](auto& dir, auto& p) {
                        p.tensor(FCW)[7] = NAN;
                        write_hf_checkpoint(dir, p, {});
                    }),
                    {"fcw", "non-finite"});
    expect_rejected(broken_checkpoint("lnfree_export", [](auto& dir, auto& p) {
                        write_hf_checkpoint(dir, p, {}, {{"n_layer", 2}, {"n_embd", 20}, {"n_head", 5}, {"vocab_size", 97},
                                                         {"n_positions", 16}, {"layer_norm_epsilon", 1e12}});
                    }),
                    {"LN-free export"});
    expect_rejected(broken_checkpoint("untied", [](auto& dir, auto& p) {
                        write_hf_checkpoint(dir, p, {});
                        add_shard_with(dir, "lm_head.weight", {97, 20}, std::vector<float>((size_t)97 * 20, 0.5f));
                    }),
                    {"lm_head.weight differs from wte.weight"});
    expect_rejected(broken_checkpoint("foreign", [](auto& dir, auto& p) {
                        write_hf_checkpoint(dir, p, {});
                        add_shard_with(dir, "h.0.attn.q_proj.weight", {2, 2}, std::vector<float>(4, 0.0f));
                    }),
                    {"unexpected tensor 'h.0.attn.q_proj.weight'"});
}

TEST_CASE("llm.c model files with a bad header or size are rejected with one clear line and no output",
          "[formats][bad_input]") {
    const std::string dir = scratch("llmc");
    int32_t h[256] = {20240326, 3, 16, 97, 2, 5, 20, 128};
    std::string header((const char*)h, sizeof(h));
    write_text_file(dir + "/short.bin", header + std::string(100, '\0'));
    expect_rejected(dir + "/short.bin", {"short.bin", "bytes, but the header's shape needs"});
    h[0] = 1234;
    write_text_file(dir + "/magic.bin", std::string((const char*)h, sizeof(h)));
    expect_rejected(dir + "/magic.bin", {"magic.bin", "bad magic 1234"});
    h[0] = 20240326;
    h[1] = 4;
    write_text_file(dir + "/version.bin", std::string((const char*)h, sizeof(h)));
    expect_rejected(dir + "/version.bin", {"version 4 is not supported"});
    expect_rejected(dir + "/absent.bin", {"absent.bin", "cannot open"});
}

TEST_CASE("token shards and eval files: size mismatches and foreign token ids are rejected", "[formats][bad_input]") {
    const std::string dir = scratch("shards");
    write_token_shard(dir + "/ok.bin", {1, 2, 96, 50});
    CHECK(TokenShard(dir + "/ok.bin", 97).size() == 4);
    CHECK_THROWS_WITH(TokenShard(dir + "/ok.bin", 90), Catch::Contains("token id 96 at position 2") &&
                                                           Catch::Contains("outside the model's vocabulary of 90"));
    std::string bytes = read_text_file(dir + "/ok.bin");
    write_text_file(dir + "/cut.bin", bytes.substr(0, bytes.size() - 2));
    CHECK_THROWS_WITH(TokenShard(dir + "/cut.bin"), Catch::Contains("cut.bin") && Catch::Contains("header says 4 tokens"));
    write_text_file(dir + "/magic.bin", "\x01\x02" + bytes.substr(2));
    CHECK_THROWS_WITH(TokenShard(dir + "/magic.bin"), Catch::Contains("bad magic"));

    // a writer given a bad id writes nothing, under either name
    CHECK_THROWS_WITH(write_token_shard(dir + "/bad.bin", {1, 70000}), Catch::Contains("70000") && Catch::Contains("nothing was written"));
    CHECK_FALSE(fs::exists(dir + "/bad.bin"));
    CHECK_FALSE(fs::exists(dir + "/bad.bin.tmp"));

    MultipleChoiceExample ex{3, 1, {5, 6, 7}, {{1}, {2, 3}, {4}, {90, 91}}};
    write_multiple_choice_file(dir + "/eval.bin", {ex, ex});
    CHECK(read_multiple_choice_file(dir + "/eval.bin", 97).size() == 2);
    CHECK_THROWS_WITH(read_multiple_choice_file(dir + "/eval.bin", 80), Catch::Contains("token id 90"));
    std::string eval = read_text_file(dir + "/eval.bin");
    write_text_file(dir + "/eval_cut.bin", eval.substr(0, eval.size() - 3));
    CHECK_THROWS_AS(read_multiple_choice_file(dir + "/eval_cut.bin"), Error);
}

TEST_CASE("the tool's usage errors exit 2 with the usage on stderr", "[formats][bad_input]") {
    fs::create_directories(kRoot + "/build/test_scratch/bad");
    Run r = run("frobnicate");
    CHECK(r.status == 2);
    CHECK(r.err.find("usage: lnfree_tool") != std::string::npos);
    CHECK(run("--help").status == 0);
}
