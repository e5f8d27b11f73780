// lnfree_tool: the formats of lnfree from the command line, for users and for the interoperability tests.
//   lnfree_tool convert MODEL OUT.bin                     HF checkpoint dir (or llm.c file) -> llm.c model file (v3)
//   lnfree_tool logits MODEL TOKENS OUT.safetensors [--sigma SIGMA.json]
//                                                         reference forward (float32); with --sigma every
//                                                         LayerNorm path is fixed at those sigmas
//   lnfree_tool export MODEL SIGMA.json OUT_DIR           OUT_DIR/hf and OUT_DIR/transformer_lens
//   lnfree_tool encode TOKENIZER_DIR TEXT_FILE            the file's bytes as GPT-2 BPE token ids (as Hugging Face's
//                                                         GPT2TokenizerFast gives them), comma-separated, one line
// TOKENS: comma-separated ids, one sequence. SIGMA.json: {"ln1": [L values], "ln2": [L values], "lnf": value}.
// TOKENIZER_DIR: a directory with vocab.json and merges.txt (a Hugging Face checkpoint's).
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/error.h"
#include "lnfree/export.h"
#include "lnfree/file_io.h"
#include "lnfree/reference/gpt2.h"
#include "lnfree/safetensors.h"
#include "lnfree/tokenizer.h"

using namespace lnfree;

namespace {

const char* kUsage =
    "usage: lnfree_tool convert MODEL OUT.bin\n"
    "       lnfree_tool logits MODEL TOKENS OUT.safetensors [--sigma SIGMA.json]\n"
    "       lnfree_tool export MODEL SIGMA.json OUT_DIR\n"
    "       lnfree_tool encode TOKENIZER_DIR TEXT_FILE\n"
    "MODEL: a Hugging Face GPT-2 directory or an llm.c model file; TOKENS: comma-separated ids;\n"
    "TOKENIZER_DIR: a directory with vocab.json and merges.txt (ids are printed comma-separated on one line);\n"
    "SIGMA.json: {\"ln1\": [L values], \"ln2\": [L values], \"lnf\": value}\n";

std::vector<double> read_sigma(const std::string& path, int L) {
    nlohmann::json j = nlohmann::json::parse(read_text_file(path), nullptr, false);
    auto bad = [&]() { return Error(path + ": expected {\"ln1\": [" + std::to_string(L) + " values], \"ln2\": [" +
                                    std::to_string(L) + " values], \"lnf\": value}, all positive"); };
    if (j.is_discarded() || !j.is_object() || !j.contains("ln1") || !j.contains("ln2") || !j.contains("lnf") ||
        !j["ln1"].is_array() || !j["ln2"].is_array() || j["ln1"].size() != (size_t)L || j["ln2"].size() != (size_t)L ||
        !j["lnf"].is_number())
        throw bad();
    std::vector<double> sigma(2 * L + 1);
    for (int l = 0; l < L; l++) {
        if (!j["ln1"][l].is_number() || !j["ln2"][l].is_number()) throw bad();
        sigma[ln1_module(l)] = j["ln1"][l].get<double>();
        sigma[ln2_module(L, l)] = j["ln2"][l].get<double>();
    }
    sigma[lnf_module(L)] = j["lnf"].get<double>();
    for (double s : sigma)
        if (!(s > 0)) throw bad();
    return sigma;
}

std::vector<int> parse_tokens(const std::string& text, int V) {
    std::vector<int> tokens;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        size_t used = 0;
        int t = -1;
        try { t = std::stoi(item, &used); } catch (...) {}
        if (used != item.size() || t < 0 || t >= V)
            throw Error("TOKENS: '" + item + "' is not a token id in [0, " + std::to_string(V) + ")");
        tokens.push_back(t);
    }
    if (tokens.empty()) throw Error("TOKENS: no token ids given");
    return tokens;
}

void logits(const std::string& model_path, const std::string& token_text, const std::string& out, const std::string& sigma_path) {
    ParameterSet<float> params = load_model(model_path);
    const GPT2Config& c = params.config;
    std::vector<int> idx = parse_tokens(token_text, c.V);
    const int T = (int)idx.size();
    if (T > c.maxT) throw Error("TOKENS: " + std::to_string(T) + " tokens exceed the model's context " + std::to_string(c.maxT));
    LayerNormPaths paths(c.L);
    SigmaState sigma(c.L);
    if (!sigma_path.empty()) {
        sigma.sigma = read_sigma(sigma_path, c.L);
        for (int l = 0; l < c.L; l++) paths.ln2_fixed[l] = paths.ln1qk_fixed[l] = paths.ln1v_fixed[l] = true;
        paths.lnf_fixed = true;
    }
    ref::Activations<float> acts;
    ref::gpt2_forward(acts, params, paths, sigma, nullptr, idx.data(), nullptr, 1, T, ref::MicroBatchOptions{});
    std::vector<float> z((size_t)T * c.V);  // drop the vocabulary padding
    for (int t = 0; t < T; t++)
        for (int v = 0; v < c.V; v++) z[(size_t)t * c.V + v] = acts.logits[(size_t)t * c.Vp + v];
    write_safetensors(out, {f32_view("logits", {(size_t)T, (size_t)c.V}, z.data())});
}

void encode(const std::string& tokenizer_dir, const std::string& text_file) {
    const std::vector<int> ids = Tokenizer::from_hf_directory(tokenizer_dir).encode(read_text_file(text_file));
    std::string line;
    for (size_t i = 0; i < ids.size(); i++) line += (i ? "," : "") + std::to_string(ids[i]);
    std::puts(line.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.size() == 3 && args[0] == "convert") {
            write_llmc_model(args[2], load_model(args[1]));
        } else if ((args.size() == 4 || (args.size() == 6 && args[4] == "--sigma")) && args[0] == "logits") {
            logits(args[1], args[2], args[3], args.size() == 6 ? args[5] : "");
        } else if (args.size() == 4 && args[0] == "export") {
            ParameterSet<float> params = load_model(args[1]);
            const bool from_hf = std::filesystem::is_directory(args[1]);
            export_lnfree(args[3], params, read_sigma(args[2], params.config.L), from_hf ? args[1] : "");
        } else if (args.size() == 3 && args[0] == "encode") {
            encode(args[1], args[2]);
        } else {
            std::fputs(kUsage, args.empty() || args[0] == "--help" || args[0] == "-h" ? stdout : stderr);
            return args.empty() || args[0] == "--help" || args[0] == "-h" ? 0 : 2;
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "lnfree_tool: %s\n", e.what());
        return 1;
    }
    return 0;
}
