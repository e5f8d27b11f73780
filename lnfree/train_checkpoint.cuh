// The trainer's checkpoints: everything needed to continue bit-exactly, in one directory whatever the number of
// processes that wrote it. Every process's shard of the master weights and AdamW moments is gathered and rank 0
// writes checkpoint_<step>.tmp, then renames it; on resume each process reads its own shard of the same file, so
// a run saved by P processes continues on any P'.
// Integrity (lnfree/checkpoint_integrity.h): state.json, written last, records the size and XXH64 of the other
// files and seals itself; a resume verifies all of it before loading anything. A failed write (no space, no
// permission, a file-size limit) throws lnfree::Error naming the file and what to do, removes
// checkpoint_<step>.tmp, and leaves every earlier checkpoint as it was.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/checkpoint_integrity.h"
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

namespace detail {

// Keeps the newest `keep` checkpoints (at least one). A checkpoint that cannot be removed costs space, not
// correctness: a warning, and the next save tries again.
inline void remove_old_checkpoints(const std::string& out, int keep) {
    const std::vector<std::string> newest_first = list_checkpoints(out);
    for (size_t i = (size_t)std::max(keep, 1); i < newest_first.size(); i++) {
        std::error_code ec;
        std::filesystem::remove_all(newest_first[i], ec);
        if (ec)
            std::fprintf(stderr, "warning: %s: cannot remove this old checkpoint (%s); remove it by hand\n",
                         newest_first[i].c_str(), ec.message().c_str());
    }
}

}  // namespace detail

// Collective: every process calls it; rank 0 writes out/checkpoint_<step> and keeps the newest `keep`.
template <typename T>
void save_checkpoint(const std::string& out, DeviceGPT2<T>& model, const RunState& run, int keep, ProcessGroup& group) {
    ParameterSet<float> master(model.cfg);
    master.data = gather_optimizer_state(model, model.master, group);
    const std::vector<float> m = gather_optimizer_state(model, model.m, group), v = gather_optimizer_state(model, model.v, group);
    if (group.rank() != 0) return;
    const std::string dir = out + "/checkpoint_" + std::to_string(run.step);
    StagedDirectory staged(dir);  // checkpoint_<step>.tmp, removed if anything below throws
    const std::string tmp = staged.path();
    std::vector<T> copy(model.num_params);  // every process holds the whole compute copy
    device::to_host(copy.data(), model.params.data(), model.num_params * sizeof(T));
    const size_t n = model.num_params;
    std::map<std::string, FileDigest> files;
    files["state.safetensors"] = write_safetensors(
        tmp + "/state.safetensors",
        {f32_view("master", {n}, master.data.data()), f32_view("m", {n}, m.data()), f32_view("v", {n}, v.data()),
         SafetensorsView{"compute_copy", sizeof(T) == 4 ? "F32" : "BF16", {n}, copy.data(), n * sizeof(T)}});
    files["model.bin"] = write_llmc_model(tmp + "/model.bin", master);
    const SigmaState sigma = model.get_sigma();
    nlohmann::json paths = {{"ln2", run.paths.ln2_fixed}, {"ln1qk", run.paths.ln1qk_fixed},
                            {"ln1v", run.paths.ln1v_fixed}, {"lnf", run.paths.lnf_fixed}};
    nlohmann::json meta = {{"step", run.step}, {"adam_t", model.adam_t}, {"sigma_ema", sigma.ema},
                           {"sigma", sigma.sigma}, {"fixed", paths}, {"val_loss_initial", run.val_loss_initial},
                           {"processes", group.size()}};
    seal_checkpoint_state(meta, files);
    write_text_file(tmp + "/state.json", meta.dump(2));  // last: a checkpoint without state.json is partial
    staged.commit();
    detail::remove_old_checkpoints(out, keep);
}

// Every process reads the whole compute copy and its own shard of the optimizer state, after verifying the
// checkpoint (a damaged one is refused with one line naming the file). warn: print the warning about a
// checkpoint too old to carry checksums (rank 0 alone, where the caller knows ranks). verified: latest_checkpoint
// has just checked it, so it is not read a second time (tens of GB at XL).
template <typename T>
void load_checkpoint(const std::string& dir, DeviceGPT2<T>& model, RunState& run, bool warn = true,
                     bool verified = false) {
    if (!verified) check_checkpoint(dir, warn);
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
    try {  // a checkpoint too old to verify can still lack a field: one line naming state.json, not a JSON trace
        SigmaState s(model.cfg.L);
        s.ema = meta.at("sigma_ema").get<std::vector<double>>();
        s.sigma = meta.at("sigma").get<std::vector<double>>();
        if (s.sigma.size() != (size_t)(2 * model.cfg.L + 1) || s.ema.size() != s.sigma.size())
            throw Error(dir + "/state.json: its sigmas are for another depth than this model's");
        for (double x : s.sigma)
            if (!(x > 0) || !std::isfinite(x)) throw Error(dir + "/state.json: a sigma is not a positive number; the checkpoint is damaged");
        model.set_sigma(s);
        model.adam_t = meta.at("adam_t");
        run.step = meta.at("step");
        run.paths.ln2_fixed = meta.at("fixed").at("ln2").get<std::vector<bool>>();
        run.paths.ln1qk_fixed = meta.at("fixed").at("ln1qk").get<std::vector<bool>>();
        run.paths.ln1v_fixed = meta.at("fixed").at("ln1v").get<std::vector<bool>>();
        run.paths.lnf_fixed = meta.at("fixed").at("lnf");
        run.val_loss_initial = meta.value("val_loss_initial", NAN);
    } catch (const nlohmann::json::exception& e) {
        throw Error(dir + "/state.json: " + e.what() + "; the checkpoint is damaged");
    }
}

// The newest intact checkpoint in `out`, skipping damaged or partial ones with a warning line each (when warn).
inline std::string latest_checkpoint(const std::string& out, bool warn = true) {
    const std::string dir = newest_good_checkpoint(out, warn);
    if (dir.empty()) throw Error(out + ": no checkpoint to resume from; start without --resume, or give -o the run's directory");
    return dir;
}

}  // namespace lnfree
