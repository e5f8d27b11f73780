#include "lnfree/eval_model.h"

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/checkpoint_integrity.h"
#include "lnfree/error.h"
#include "lnfree/file_io.h"

namespace lnfree {

namespace fs = std::filesystem;

std::string EvalModel::layernorm() const {
    const int real = paths.real_paths_remaining(), all = 3 * params.config.L + 1;
    return real == all ? "real" : real == 0 ? "none" : "partial";
}

namespace {

LayerNormPaths all_fixed(int L) {
    LayerNormPaths p(L);
    p.ln2_fixed.assign(L, true);
    p.ln1qk_fixed.assign(L, true);
    p.ln1v_fixed.assign(L, true);
    p.lnf_fixed = true;
    return p;
}

// verified: newest_good_checkpoint has just verified dir (its gigabytes need not be read twice)
void load_checkpoint_directory(EvalModel& m, const std::string& dir, bool verified) {
    if (!verified) check_checkpoint(dir);  // the trainer's --resume check: a damaged file is named, not loaded
    const std::string state_path = dir + "/state.json";
    const nlohmann::json state = nlohmann::json::parse(read_text_file(state_path), nullptr, false);
    if (!state.is_object() || !state.contains("fixed") || !state.contains("sigma"))
        throw Error(state_path + ": not a checkpoint's state (no 'fixed' and 'sigma'); the checkpoint is damaged");
    m.params = load_llmc_model(dir + "/model.bin");
    const int L = m.params.config.L;
    try {
        const nlohmann::json& f = state.at("fixed");
        m.paths.ln2_fixed = f.at("ln2").get<std::vector<bool>>();
        m.paths.ln1qk_fixed = f.at("ln1qk").get<std::vector<bool>>();
        m.paths.ln1v_fixed = f.at("ln1v").get<std::vector<bool>>();
        m.paths.lnf_fixed = f.at("lnf").get<bool>();
        m.sigma.sigma = state.at("sigma").get<std::vector<double>>();
        m.sigma.ema = state.at("sigma_ema").get<std::vector<double>>();
    } catch (const nlohmann::json::exception& e) {
        throw Error(state_path + ": " + e.what() + "; the checkpoint is damaged");
    }
    if ((int)m.paths.ln2_fixed.size() != L || (int)m.paths.ln1qk_fixed.size() != L ||
        (int)m.paths.ln1v_fixed.size() != L || (int)m.sigma.sigma.size() != 2 * L + 1 ||
        (int)m.sigma.ema.size() != 2 * L + 1)
        throw Error(state_path + ": its LayerNorm state is for another depth than model.bin's " + std::to_string(L) + " layers");
    for (double s : m.sigma.sigma)
        if (!(s > 0) || !std::isfinite(s)) throw Error(state_path + ": a sigma is not a positive number; the checkpoint is damaged");
}

}  // namespace

EvalModel load_eval_model(const std::string& label, const std::string& path) {
    EvalModel m;
    m.label = label;
    m.path = path;
    if (!fs::exists(path)) throw Error(path + ": no such model (a Hugging Face directory, an llm.c .bin, or a run's checkpoint)");
    if (!fs::is_directory(path)) {
        m.params = load_llmc_model(path);
        m.paths = LayerNormPaths(m.params.config.L);
        m.sigma = SigmaState(m.params.config.L);
        return m;
    }
    if (fs::exists(path + "/config.json")) {
        m.params = load_hf_checkpoint(path, HfLayerNorm::any);
        const int L = m.params.config.L;
        m.sigma = SigmaState(L);
        const double eps = hf_layer_norm_epsilon(path);
        if (eps > 1.0) {  // an LN-free export: a fixed divisor of sqrt(eps) everywhere
            m.paths = all_fixed(L);
            m.sigma.sigma.assign(2 * L + 1, std::sqrt(eps));
        } else {
            m.paths = LayerNormPaths(L);
        }
        if (fs::exists(path + "/vocab.json")) m.tokenizer_dir = path;
        return m;
    }
    // a run's output directory: its newest intact checkpoint, damaged or partial ones skipped with a warning
    const bool run_dir = !fs::exists(path + "/state.json");
    const std::string checkpoint = run_dir ? newest_good_checkpoint(path) : path;
    if (checkpoint.empty())
        throw Error(path + ": neither a Hugging Face directory (config.json), a checkpoint (state.json) nor a run's "
                           "output directory with a checkpoint_<step>");
    load_checkpoint_directory(m, checkpoint, run_dir);
    m.path = checkpoint;
    return m;
}

}  // namespace lnfree
