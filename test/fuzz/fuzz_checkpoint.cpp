// libFuzzer target: the host-side checkpoint loader, lnfree::load_eval_model on a checkpoint directory, with the
// input as its state.json (dev/fuzz.sh builds and runs it). The directory is made once in a temporary folder
// (fuzz_tmp.h) with a fixed, valid 2-layer model.bin (checkpoint_fixture.h, which make_seeds' state.json seeds
// match); each input overwrites state.json only. Bad input must end in lnfree::Error; anything else is a finding.
//
// state.json carries checksums (lnfree/checkpoint_integrity.h): "files" records model.bin's size and XXH64, and
// "state_xxh64" seals the state itself, so almost every mutation of a sealed state is refused at the seal. Each
// input is therefore loaded twice: as its raw bytes (the JSON parse, the seal and its check), and, when it parses
// as an object, sealed again by this target (its "files" kept, model.bin's record added when it has none), which
// takes the fuzzed fields past the seal into the "files" records and the loader proper. An unsealed object (a
// checkpoint from before checksums) is loaded only in its sealed form: as raw bytes it would load the same fields,
// with a warning line on stderr per input. A checkpoint that loads has model.bin's weights, and paths and sigmas
// for its depth.
#include <cmath>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/checkpoint_integrity.h"
#include "lnfree/checksum.h"
#include "lnfree/error.h"
#include "lnfree/eval_model.h"
#include "test/fuzz/checkpoint_fixture.h"
#include "test/fuzz/fuzz_check.h"
#include "test/fuzz/fuzz_tmp.h"

namespace {

using nlohmann::json;

std::string g_dir;
lnfree::ParameterSet<float> g_model;
json g_model_record;  // model.bin's entry of "files"

void remove_tmp() {
    ::unlink((g_dir + "/state.json").c_str());
    ::unlink((g_dir + "/model.bin").c_str());
    ::rmdir(g_dir.c_str());
}

// The seal as checkpoint_integrity.h defines it: the XXH64 of the state's compact JSON without "state_xxh64".
void seal(json& state) {
    state.erase("state_xxh64");
    const std::string text = state.dump();
    state["state_xxh64"] = lnfree::to_hex(lnfree::xxh64(text.data(), text.size()));
}

void load() {
    try {
        lnfree::EvalModel m = lnfree::load_eval_model("fuzz", g_dir);
        const int L = g_model.config.L;
        FUZZ_CHECK(m.path == g_dir && m.label == "fuzz" && m.tokenizer_dir.empty());
        FUZZ_CHECK(m.params.config.L == L && m.params.data == g_model.data);
        FUZZ_CHECK(m.paths.ln2_fixed.size() == (size_t)L && m.paths.ln1qk_fixed.size() == (size_t)L &&
                   m.paths.ln1v_fixed.size() == (size_t)L);
        FUZZ_CHECK(m.sigma.sigma.size() == (size_t)(2 * L + 1) && m.sigma.ema.size() == (size_t)(2 * L + 1));
        const std::string ln = m.layernorm();
        FUZZ_CHECK(ln == "real" || ln == "none" || ln == "partial");
    } catch (const lnfree::Error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    g_dir = fuzz::tmp_path("checkpoint");
    FUZZ_CHECK(::mkdir(g_dir.c_str(), 0700) == 0 || errno == EEXIST);  // a crashed run's, under a reused pid
    std::atexit(remove_tmp);
    g_model = fuzz::checkpoint_model();
    lnfree::write_llmc_model(g_dir + "/model.bin", g_model);
    const lnfree::FileDigest d = lnfree::file_digest(g_dir + "/model.bin");
    g_model_record = {{"bytes", d.bytes}, {"xxh64", lnfree::to_hex(d.xxh64)}};
    // this target's seal is the loader's: a state sealed both ways is the same
    json ours = fuzz::checkpoint_state(0, lnfree::LayerNormPaths(2), lnfree::SigmaState(2)), theirs = ours;
    ours["files"] = {{"model.bin", g_model_record}};
    seal(ours);
    lnfree::seal_checkpoint_state(theirs, {{"model.bin", d}});
    FUZZ_CHECK(ours == theirs);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input((const char*)data, size);
    json state = json::parse(input, nullptr, false);
    const bool unsealed = state.is_object() && !state.contains("files") && !state.contains("state_xxh64");
    if (!unsealed) {
        fuzz::write_file(g_dir + "/state.json", input.data(), input.size());
        load();
    }
    if (state.is_object()) {
        if (!state.contains("files")) state["files"] = {{"model.bin", g_model_record}};
        seal(state);
        const std::string sealed = state.dump(2);
        fuzz::write_file(g_dir + "/state.json", sealed.data(), sealed.size());
        load();
    }
    return 0;
}
