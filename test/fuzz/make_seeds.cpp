// Writes the fuzz targets' seed corpora with lnfree's own writers (dev/fuzz.sh runs it; nothing here is committed):
//   make_seeds OUT  ->  OUT/fuzz_safetensors/*, OUT/fuzz_token_shard/*, OUT/fuzz_llmc_model/*, OUT/fuzz_recipe/*,
//                       OUT/fuzz_sigma_file/*, OUT/fuzz_checkpoint/*, OUT/fuzz_tokenizer/*, OUT/fuzz_llmc_tokenizer/*
// Small on purpose: libFuzzer's -max_len defaults to the largest seed (at least 4096 bytes).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/checkpoint_integrity.h"
#include "lnfree/checksum.h"
#include "lnfree/error.h"
#include "lnfree/file_io.h"
#include "lnfree/recipe.h"
#include "lnfree/safetensors.h"
#include "lnfree/token_shard.h"
#include "test/fuzz/checkpoint_fixture.h"

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


void recipe_seeds(const std::string& dir) {
    // every preset as summary.json writes it, compact (the dump of a Recipe is about 700 bytes)
    write_text_file(dir + "/small", recipe_to_json(preset_recipe("small", 12)).dump());
    write_text_file(dir + "/xl", recipe_to_json(preset_recipe("xl", 48)).dump());
    write_text_file(dir + "/small_2024", recipe_to_json(preset_recipe("small-2024", 12)).dump());
    write_text_file(dir + "/vanilla", recipe_to_json(preset_recipe("vanilla", 12)).dump());
    write_text_file(dir + "/pretrain", recipe_to_json(preset_recipe("pretrain", 2)).dump(2));
    write_text_file(dir + "/derived", recipe_to_json(derive_recipe(2, 120)).dump());
    // an ablation file as a user writes one: a few fields, events with and without a gap, a relative sigma file
    write_text_file(dir + "/ablation", R"({
  "name": "fixed-sigma",
  "events": [{"kind": "ln2", "start": 3, "gap": 1}, {"kind": "ln1qk", "start": 5, "gap": 0}, {"kind": "lnf", "start": 9}],
  "momentum": 1.0,
  "momentum_lnf": 0.99,
  "sigma_file": "sigma.json",
  "sampling": "random_windows",
  "steps": 40, "warmup": 0, "lr": 6e-4, "dropout": 0.0, "random_init": false
}
)");
    write_text_file(dir + "/empty", "{}");
    if (file_exists("data/tiny/pretrain.json"))  // the bundled tiny model's pretraining recipe (run from the root)
        write_text_file(dir + "/tiny_pretrain", read_text_file("data/tiny/pretrain.json"));
}

nlohmann::json sigma_object(int L) {
    nlohmann::json j = nlohmann::json::object();
    for (int l = 0; l < L; l++) {
        j["blocks." + std::to_string(l) + ".ln_1"] = 0.17 + 0.5 * l;
        j["blocks." + std::to_string(l) + ".ln_2"] = 2.5 + l;
    }
    j["ln_f"] = 16.5;
    return j;
}

void sigma_file_seeds(const std::string& dir) {
    write_text_file(dir + "/sigma_2", sigma_object(2).dump());
    write_text_file(dir + "/sigma_12", sigma_object(12).dump(2));
    write_text_file(dir + "/sigma_0", sigma_object(0).dump());
    // a run's summary.json: the object under "sigma", other fields around it
    const nlohmann::json summary = {{"model", "tiny"}, {"steps", 120}, {"final_val_loss", 3.21},
                                    {"layernorm", "none"}, {"sigma", sigma_object(2)}};
    write_text_file(dir + "/summary_2", summary.dump(2));
    nlohmann::json extra = sigma_object(1);
    extra["blocks.1.ln_1"] = 1e-300;  // a module past the depth read, and a tiny positive sigma
    write_text_file(dir + "/summary_1", nlohmann::json{{"sigma", extra}}.dump());
}

void checkpoint_seeds(const std::string& dir) {
    // sealed as the trainer seals them (lnfree/checkpoint_integrity.h), with fuzz_checkpoint's fixed model.bin
    const std::string model = dir + ".model.bin";
    write_llmc_model(model, fuzz::checkpoint_model());
    const FileDigest digest = file_digest(model);
    std::filesystem::remove(model);
    auto sealed = [&](nlohmann::json state) {
        seal_checkpoint_state(state, {{"model.bin", digest}});
        return state;
    };
    const int L = fuzz::checkpoint_model().config.L;
    LayerNormPaths real(L), partial(L), fixed(L);
    partial.ln2_fixed.assign(L, true);
    partial.ln1qk_fixed[0] = true;
    fixed.ln2_fixed.assign(L, true);
    fixed.ln1qk_fixed.assign(L, true);
    fixed.ln1v_fixed.assign(L, true);
    fixed.lnf_fixed = true;
    SigmaState sigma(L);
    for (int m = 0; m < 2 * L + 1; m++) {
        sigma.ema[m] = 0.25 + m;
        sigma.sigma[m] = m < L ? 0.25 + m : 1.0;
    }
    // as the trainer writes it (indented)
    write_text_file(dir + "/real", sealed(fuzz::checkpoint_state(0, real, SigmaState(L))).dump(2));
    write_text_file(dir + "/partial", sealed(fuzz::checkpoint_state(12, partial, sigma)).dump(2));
    nlohmann::json done = fuzz::checkpoint_state(120, fixed, sigma);
    done["val_loss_initial"] = nullptr;  // a NaN initial loss is written as null
    write_text_file(dir + "/fixed", sealed(done).dump());
    // for another depth than model.bin's
    write_text_file(dir + "/other_depth", sealed(fuzz::checkpoint_state(1, LayerNormPaths(1), SigmaState(1))).dump());
    // from before checkpoints carried checksums: no "files", no "state_xxh64"
    write_text_file(dir + "/unsealed", fuzz::checkpoint_state(12, partial, sigma).dump(2));
}

// GPT-2's byte-level alphabet, as vocab.json and merges.txt write a byte: the printable ones as themselves, the
// other 68 as U+0100 onwards in byte order; returned as UTF-8.
std::string alphabet_char(unsigned char b) {
    auto printable = [](int c) { return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF); };
    unsigned cp = b;
    if (!printable(b)) {
        cp = 256;
        for (int c = 0; c < b; c++) cp += !printable(c);
    }
    std::string s;
    if (cp < 0x80) {
        s += (char)cp;
    } else {
        s += (char)(0xC0 | (cp >> 6));
        s += (char)(0x80 | (cp & 0x3F));
    }
    return s;
}

std::string in_alphabet(const std::string& bytes) {
    std::string s;
    for (unsigned char b : bytes) s += alphabet_char(b);
    return s;
}

// An input of fuzz_tokenizer: vocab.json (ids in order, as Hugging Face writes it), then NUL and merges.txt (each
// merge's result added to the vocabulary) and NUL and the text, when given.
using Merges = std::vector<std::pair<std::string, std::string>>;

std::string tokenizer_input(const std::vector<std::string>& tokens, const Merges& merges, bool with_eot,
                            const std::string& merges_header, const std::string& eol, const std::string* text) {
    nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
    auto add = [&](const std::string& piece) {
        const size_t id = vocab.size();
        vocab[piece] = id;
    };
    for (const std::string& t : tokens) add(in_alphabet(t));
    std::string merges_txt = merges_header;
    for (const auto& [left, right] : merges) {
        add(in_alphabet(left + right));
        merges_txt += in_alphabet(left) + " " + in_alphabet(right) + eol;
    }
    if (with_eot) add("<|endoftext|>");
    std::string input = vocab.dump();
    if (!merges.empty() || text) input += '\0' + merges_txt;
    if (text) input += '\0' + *text;
    return input;
}

void tokenizer_seeds(const std::string& dir) {
    std::vector<std::string> bytes, letters;
    for (int b = 0; b < 256; b++) bytes.push_back(std::string(1, (char)b));
    for (const char* c : {" ", "'", "0", "1", "2", "4"}) letters.push_back(c);
    for (char c = 'a'; c <= 'z'; c++) letters.push_back(std::string(1, c));
    const Merges merges = {
        {" ", "t"}, {"h", "e"}, {" t", "he"}, {"i", "n"}, {"in", "g"}, {" ", "a"}, {"'", "s"}, {"2", "4"}};
    const std::string text = "the thing's in a<|endoftext|> 24 \xc3\xa9\xff!", ascii = "the cat's 2024";
    write_text_file(dir + "/full", tokenizer_input(bytes, merges, true, "#version: 0.2\n", "\n", &text));
    write_text_file(dir + "/letters_crlf", tokenizer_input(letters, merges, false, "", "\r\n", &ascii));
    write_text_file(dir + "/no_text",
                    tokenizer_input(letters, {merges[0], merges[1], merges[2]}, true, "#version: 0.2\n", "\n", nullptr));
    write_text_file(dir + "/vocab_only", tokenizer_input(letters, {}, false, "", "\n", nullptr));
    write_text_file(dir + "/eot_only", tokenizer_input({}, {}, true, "", "\n", nullptr));
}

// llm.c's tokenizer file: the header (magic 20240328, version, count, end-of-text id), a length byte per token
void llmc_tokenizer_file(const std::string& path, uint32_t version, const std::vector<std::string>& tokens, int eot) {
    uint32_t h[256] = {20240328, version, (uint32_t)tokens.size(), (uint32_t)eot};
    std::string s((const char*)h, sizeof(h));
    for (const std::string& t : tokens) s += (char)t.size() + t;
    write_text_file(path, s);
}

void llmc_tokenizer_seeds(const std::string& dir) {
    std::vector<std::string> gpt2_like;
    for (int b = 0; b < 256; b++) gpt2_like.push_back(std::string(1, (char)b));
    gpt2_like.push_back("<|endoftext|>");
    llmc_tokenizer_file(dir + "/bytes_v2", 2, gpt2_like, 256);
    llmc_tokenizer_file(dir + "/small_v1", 1, {"hi", " ", " the", "<|endoftext|>", std::string(255, 'x')}, 3);
    llmc_tokenizer_file(dir + "/empty_v2", 2, {}, 0);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
        return 2;
    }
    const std::string out = argv[1];
    try {
        for (const char* t : {"fuzz_safetensors", "fuzz_token_shard", "fuzz_llmc_model", "fuzz_recipe", "fuzz_sigma_file",
                              "fuzz_checkpoint", "fuzz_tokenizer", "fuzz_llmc_tokenizer"})
            make_directories(out + "/" + t);
        safetensors_seeds(out + "/fuzz_safetensors");
        token_shard_seeds(out + "/fuzz_token_shard");
        llmc_seeds(out + "/fuzz_llmc_model");
        recipe_seeds(out + "/fuzz_recipe");
        sigma_file_seeds(out + "/fuzz_sigma_file");
        checkpoint_seeds(out + "/fuzz_checkpoint");
        tokenizer_seeds(out + "/fuzz_tokenizer");
        llmc_tokenizer_seeds(out + "/fuzz_llmc_tokenizer");
    } catch (const Error& e) {
        std::fprintf(stderr, "make_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}
