// Writes the fuzz targets' seed corpora with lnfree's own writers (dev/fuzz.sh runs it; nothing here is committed):
//   make_seeds OUT  ->  OUT/fuzz_safetensors/*, OUT/fuzz_token_shard/*, OUT/fuzz_llmc_model/*
// Small on purpose: libFuzzer's -max_len defaults to the largest seed (at least 4096 bytes).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lnfree/checkpoint.h"
#include "lnfree/error.h"
#include "lnfree/file_io.h"
#include "lnfree/safetensors.h"
#include "lnfree/token_shard.h"

using namespace lnfree;

namespace {

template <typename T>
SafetensorsView view(const std::string& name, const std::string& dtype, std::vector<size_t> shape, const std::vector<T>& v) {
    return SafetensorsView{name, dtype, std::move(shape), v.data(), v.size() * sizeof(T)};
}

void safetensors_seeds(const std::string& dir) {
    const std::vector<float> f6 = {0.f, -1.5f, 3.25f, 1e-8f, -65504.f, 7.f};
    std::vector<uint16_t> h4, b4;
    for (float x : {1.f, -2.f, 0.5f, 6e-5f}) { h4.push_back(float_to_half(x)); b4.push_back(float_to_bf16(x)); }
    const std::vector<double> d3 = {1.0, -0.25, 1e300};
    const std::vector<int32_t> i5 = {0, 1, -1, 50256, 2147483647};
    const std::vector<int64_t> l3 = {0, -7, 123456};
    const std::vector<uint8_t> u4 = {0, 1, 255, 7};
    const std::vector<float> none;

    write_safetensors(dir + "/f32", {view("x", "F32", {2, 3}, f6)}, {{"format", "pt"}});
    write_safetensors(dir + "/dtypes",
                      {view("h", "F16", {4}, h4), view("b", "BF16", {2, 2}, b4), view("d", "F64", {3}, d3),
                       view("i", "I32", {5}, i5), view("l", "I64", {3, 1}, l3), view("u", "U8", {4}, u4),
                       view("s", "F32", {}, std::vector<float>{42.f}), view("e", "F32", {0, 4}, none)},
                      {{"format", "pt"}, {"config", "{\"L\": 1, \"C\": 4}"}});
    write_safetensors(dir + "/empty", {});
    write_safetensors(dir + "/metadata_only", {}, {{"format", "np"}});
    std::vector<float> w(4 * 12), bias(12);
    for (size_t i = 0; i < w.size(); i++) w[i] = 0.01f * (float)i;
    write_safetensors(dir + "/gpt2_names", {f32_view("h.0.attn.c_attn.weight", {4, 12}, w.data()),
                                            f32_view("h.0.attn.c_attn.bias", {12}, bias.data()),
                                            view("h.0.attn.bias", "F32", {1, 1, 2, 2}, std::vector<float>{1, 0, 1, 1})});
}

void token_shard_seeds(const std::string& dir) {
    std::vector<int> tokens;
    for (int i = 0; i < 64; i++) tokens.push_back((i * 7919) % 50257);
    tokens.push_back(50256);
    write_token_shard(dir + "/shard", tokens, 50257);
    write_token_shard(dir + "/shard_empty", {});
    write_token_shard(dir + "/shard_big_ids", {0, 50257, 65534});  // fine with vocab 0, refused with GPT-2's

    std::vector<MultipleChoiceExample> ex(3);
    for (int e = 0; e < 3; e++) {
        ex[e].index = e;
        ex[e].label = e % 4;
        ex[e].context = {(uint16_t)(100 + e), 200, 300};
        for (int c = 0; c < 4; c++) ex[e].completions.push_back(std::vector<uint16_t>(1 + c, (uint16_t)(1000 + c)));
    }
    ex[2].completions[1] = {50256, 60000};  // above GPT-2's vocabulary
    write_multiple_choice_file(dir + "/eval", ex);
    write_multiple_choice_file(dir + "/eval_one", {ex[0]});
    write_multiple_choice_file(dir + "/eval_empty", {});
}

void llmc_seeds(const std::string& dir) {
    GPT2Config c;
    c.L = 1; c.C = 4; c.NH = 2; c.V = 5; c.Vp = 8; c.maxT = 4;
    ParameterSet<float> p(c);
    for (size_t i = 0; i < p.data.size(); i++) p.data[i] = std::sin(0.1f * (float)i);
    write_llmc_model(dir + "/model_f32", p);

    // version 5 (bfloat16) has no writer in lnfree: the same header with h[1] = 5 and bf16 values
    int32_t h[256] = {20240326, 5, c.maxT, c.V, c.L, c.NH, c.C, c.Vp};
    std::vector<uint16_t> bf(p.data.size());
    for (size_t i = 0; i < bf.size(); i++) bf[i] = float_to_bf16(p.data[i]);
    AtomicFile out(dir + "/model_bf16");
    out.write(h, sizeof(h));
    out.write(bf.data(), bf.size() * 2);
    out.commit();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
        return 2;
    }
    const std::string out = argv[1];
    try {
        for (const char* t : {"fuzz_safetensors", "fuzz_token_shard", "fuzz_llmc_model"}) make_directories(out + "/" + t);
        safetensors_seeds(out + "/fuzz_safetensors");
        token_shard_seeds(out + "/fuzz_token_shard");
        llmc_seeds(out + "/fuzz_llmc_model");
    } catch (const Error& e) {
        std::fprintf(stderr, "make_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}
