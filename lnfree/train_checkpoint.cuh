// The trainer's checkpoints: everything needed to continue bit-exactly, in one directory whatever the number of
// processes that wrote it. Every process's shard of the master weights and AdamW moments is gathered and rank 0
// writes checkpoint_<step>.tmp, then renames it; on resume each process reads its own shard of the same file, so
// a run saved by P processes continues on any P'.
#pragma once
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/error.h"
#include "lnfree/file_io.h"
#include "lnfree/gpt2_device.cuh"
#include "lnfree/safetensors.h"

namespace lnfree {

struct RunState {
    int step = 0;  // completed optimizer steps
    LayerNormPaths paths;
    double val_loss_initial = NAN;
};

// Collective: every process calls it; rank 0 writes out/checkpoint_<step> and keeps the newest `keep`.
template <typename T>
void save_checkpoint(const std::string& out, DeviceGPT2<T>& model, const RunState& run, int keep, ProcessGroup& group) {
    namespace fs = std::filesystem;
    ParameterSet<float> master(model.cfg);
    master.data = gather_optimizer_state(model, model.master, group);
    const std::vector<float> m = gather_optimizer_state(model, model.m, group), v = gather_optimizer_state(model, model.v, group);
    if (group.rank() != 0) return;
    const std::string dir = out + "/checkpoint_" + std::to_string(run.step), tmp = dir + ".tmp";
    fs::remove_all(tmp);
    make_directories(tmp);
    std::vector<T> copy(model.num_params);  // every process holds the whole compute copy
    device::to_host(copy.data(), model.params.data(), model.num_params * sizeof(T));
    const size_t n = model.num_params;
    write_safetensors(tmp + "/state.safetensors",
                      {f32_view("master", {n}, master.data.data()), f32_view("m", {n}, m.data()), f32_view("v", {n}, v.data()),
                       SafetensorsView{"compute_copy", sizeof(T) == 4 ? "F32" : "BF16", {n}, copy.data(), n * sizeof(T)}});
    const SigmaState sigma = model.get_sigma();
    nlohmann::json paths = {{"ln2", run.paths.ln2_fixed}, {"ln1qk", run.paths.ln1qk_fixed},
                            {"ln1v", run.paths.ln1v_fixed}, {"lnf", run.paths.lnf_fixed}};
    nlohmann::json meta = {{"step", run.step}, {"adam_t", model.adam_t}, {"sigma_ema", sigma.ema},
                           {"sigma", sigma.sigma}, {"fixed", paths}, {"val_loss_initial", run.val_loss_initial},
                           {"processes", group.size()}};
    write_text_file(tmp + "/state.json", meta.dump(2));
    write_llmc_model(tmp + "/model.bin", master);
    fs::remove_all(dir);
    fs::rename(tmp, dir);
    std::vector<int> steps;  // keep the newest `keep`
    for (auto& e : fs::directory_iterator(out)) {
        const std::string name = e.path().filename();
        if (name.rfind("checkpoint_", 0) == 0 && name.find('.') == std::string::npos) steps.push_back(std::stoi(name.substr(11)));
    }
    std::sort(steps.begin(), steps.end());
    for (size_t i = 0; i + keep < steps.size(); i++) fs::remove_all(out + "/checkpoint_" + std::to_string(steps[i]));
}

// Every process reads the whole compute copy and its own shard of the optimizer state.
template <typename T>
void load_checkpoint(const std::string& dir, DeviceGPT2<T>& model, RunState& run) {
    const nlohmann::json meta = nlohmann::json::parse(read_text_file(dir + "/state.json"), nullptr, false);
    if (meta.is_discarded()) throw Error(dir + "/state.json: not valid JSON; the checkpoint is damaged");
    SafetensorsFile f(dir + "/state.safetensors");
    const size_t first = model.shard.first, own = std::min(model.shard.last, model.num_params) - std::min(first, model.num_params);
    auto put = [&](device::Buffer<float>& b, const char* name) {
        if (f.info(name).numel() != model.num_params) throw Error(dir + ": the checkpoint is for another model size");
        std::vector<float> shard = f.floats(name, std::min(first, model.num_params), own);
        shard.resize(model.shard.size(), 0.0f);  // the padding past the last parameter
        device::to_device(b.data(), shard.data(), shard.size() * sizeof(float));
    };
    put(model.master, "master");
    put(model.m, "m");
    put(model.v, "v");
    const SafetensorsTensor& t = f.info("compute_copy");
    if (t.end - t.begin != model.num_params * sizeof(T)) throw Error(dir + ": the checkpoint's precision differs from this build");
    std::vector<float> copy = f.floats("compute_copy");
    std::vector<T> typed(copy.size());
    for (size_t i = 0; i < copy.size(); i++) typed[i] = kernels::from_float<T>(copy[i]);
    device::to_device(model.params.data(), typed.data(), typed.size() * sizeof(T));
    SigmaState s(model.cfg.L);
    s.ema = meta.at("sigma_ema").get<std::vector<double>>();
    s.sigma = meta.at("sigma").get<std::vector<double>>();
    model.set_sigma(s);
    model.adam_t = meta.at("adam_t");
    run.step = meta.at("step");
    run.paths.ln2_fixed = meta.at("fixed").at("ln2").get<std::vector<bool>>();
    run.paths.ln1qk_fixed = meta.at("fixed").at("ln1qk").get<std::vector<bool>>();
    run.paths.ln1v_fixed = meta.at("fixed").at("ln1v").get<std::vector<bool>>();
    run.paths.lnf_fixed = meta.at("fixed").at("lnf");
    run.val_loss_initial = meta.value("val_loss_initial", NAN);
}

inline std::string latest_checkpoint(const std::string& out) {
    namespace fs = std::filesystem;
    int best = -1;
    if (fs::exists(out))
        for (auto& e : fs::directory_iterator(out)) {
            const std::string name = e.path().filename();
            if (name.rfind("checkpoint_", 0) == 0 && name.find('.') == std::string::npos) best = std::max(best, std::stoi(name.substr(11)));
        }
    if (best < 0) throw Error(out + ": no checkpoint to resume from");
    return out + "/checkpoint_" + std::to_string(best);
}

}  // namespace lnfree
