#include "lnfree/model_source.h"

#include <filesystem>

#include "lnfree/error.h"

namespace lnfree {

namespace fs = std::filesystem;

namespace {

const std::vector<std::pair<std::string, std::string>> kSizes = {
    {"small", "gpt2"}, {"medium", "gpt2-medium"}, {"large", "gpt2-large"}, {"xl", "gpt2-xl"}};

// whether a glob's directory holds a file that starts as the pattern does before its '*'
bool glob_has_files(const std::string& pattern) {
    const fs::path p(pattern);
    const std::string stem = p.filename().string().substr(0, p.filename().string().find('*'));
    if (!fs::is_directory(p.parent_path())) return false;
    for (auto& e : fs::directory_iterator(p.parent_path()))
        if (e.path().filename().string().rfind(stem, 0) == 0) return true;
    return false;
}

}  // namespace

ModelSource resolve_model(const std::string& name, const std::string& train, const std::string& val) {
    ModelSource s;
    if (name == "tiny") {
        s = {"data/tiny/model", "data/tiny/tiny_train_*.bin", "data/tiny/tiny_val_*.bin"};
    } else {
        s.path = name;
        for (auto& [size, hf] : kSizes)
            if (name == size) s.path = "models/" + hf;
        s.train = "data/openwebtext/openwebtext_train_*.bin";
        s.val = "data/openwebtext/openwebtext_val_*.bin";
        if (!fs::exists(s.path)) {
            for (auto& [size, hf] : kSizes)
                if (name == size) throw Error(s.path + ": not downloaded; run: python dev/download_model.py " + size);
            throw Error(name + ": no such model directory or file");
        }
    }
    if (!train.empty()) s.train = train;
    if (!val.empty()) s.val = val;
    return s;
}

GPT2Config known_shape(const std::string& name) {
    if (name == "small") return {12, 768, 12, 50257, 50304, 1024};
    if (name == "medium") return {24, 1024, 16, 50257, 50304, 1024};
    if (name == "large") return {36, 1280, 20, 50257, 50304, 1024};
    if (name == "xl") return {48, 1600, 25, 50257, 50304, 1024};
    return {};
}

std::vector<std::pair<std::string, std::string>> default_eval_datasets(const std::string& model_name) {
    if (model_name == "tiny") return {{"tiny-val", "data/tiny/tiny_val_*.bin"}};
    std::vector<std::pair<std::string, std::string>> sets;
    for (auto& [name, glob] : std::vector<std::pair<std::string, std::string>>{
             {"openwebtext", "data/openwebtext/openwebtext_val_*.bin"},
             {"pile", "data/pile/pile_val_*.bin"},
             {"pile-filtered", "data/pile/pile_filtered_val_*.bin"}})
        if (glob_has_files(glob)) sets.push_back({name, glob});
    return sets;
}

std::vector<std::pair<std::string, std::string>> default_multiple_choice(const std::string& model_name) {
    if (model_name != "tiny" && fs::exists("data/hellaswag/hellaswag_val.bin"))
        return {{"hellaswag", "data/hellaswag/hellaswag_val.bin"}};
    return {};
}

}  // namespace lnfree
