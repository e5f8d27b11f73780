// Checkpoint integrity and failed writes: XXH64 against the reference implementation's values, verify_checkpoint
// on an intact checkpoint and on each file damaged (one byte flipped, truncated, missing), the newest intact
// checkpoint of a run, output that cannot be written (a file where the directory should be, a file-size limit,
// too little free space), and exports replaced only when complete.
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "lnfree/checkpoint.h"
#include "lnfree/checkpoint_integrity.h"
#include "lnfree/checksum.h"
#include "lnfree/error.h"
#include "lnfree/eval_model.h"
#include "lnfree/export.h"
#include "lnfree/file_io.h"
#include "lnfree/output_checks.h"
#include "lnfree/safetensors.h"
#include "test/hf_checkpoint_writer.h"

using namespace lnfree;
using namespace lnfree::test;
namespace fs = std::filesystem;

namespace {

std::string scratch(const std::string& name) {
    std::string dir = std::string(LNFREE_SOURCE_DIR) + "/build/test_scratch/integrity_" + name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void flip_byte(const std::string& path, size_t at) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg((std::streamoff)at);
    char c = 0;
    f.get(c);
    f.seekp((std::streamoff)at);
    f.put((char)(c ^ 0x01));
}

const GPT2Config kConfig{2, 20, 5, 97, 128, 16};

// A checkpoint as save_checkpoint writes it (lnfree/train_checkpoint.cuh), from host data.
void write_checkpoint(const std::string& dir, const ParameterSet<float>& p, int step) {
    StagedDirectory staged(dir);
    const size_t n = p.data.size();
    std::vector<float> m(n, 0.25f), v(n, 0.125f);
    std::map<std::string, FileDigest> files;
    files["state.safetensors"] = write_safetensors(
        staged.path() + "/state.safetensors",
        {f32_view("master", {n}, p.data.data()), f32_view("m", {n}, m.data()), f32_view("v", {n}, v.data()),
         f32_view("compute_copy", {n}, p.data.data())});
    files["model.bin"] = write_llmc_model(staged.path() + "/model.bin", p);
    const std::vector<double> sigma = {0.5, 0.6, 0.7, 0.8, 2.0};
    nlohmann::json state = {{"step", step}, {"adam_t", step}, {"sigma", sigma}, {"sigma_ema", sigma},
                            {"fixed", {{"ln2", {true, true}}, {"ln1qk", {true, false}}, {"ln1v", {true, true}}, {"lnf", true}}},
                            {"val_loss_initial", NAN}, {"processes", 1}};
    seal_checkpoint_state(state, files);
    write_text_file(staged.path() + "/state.json", state.dump(2));
    staged.commit();
}

// Lowers this process's file-size limit for a scope; SIGXFSZ ignored so that a write past it fails with EFBIG
// instead of ending the test run.
struct FileSizeLimit {
    rlimit old{};
    void (*old_handler)(int);
    explicit FileSizeLimit(rlim_t bytes) {
        getrlimit(RLIMIT_FSIZE, &old);
        old_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit lower = old;
        lower.rlim_cur = bytes;
        setrlimit(RLIMIT_FSIZE, &lower);
    }
    ~FileSizeLimit() {
        setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
    }
};

bool any_tmp_left(const std::string& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.path().extension() == ".tmp") return true;
    return false;
}

}  // namespace

TEST_CASE("XXH64 equals the reference implementation, in one piece or streamed", "[checkpoint][integrity]") {
    // the specification's empty-input value and "abc"; the rest from libxxhash 0.8 (python xxhash 4.1:
    // xxhash.xxh64(bytes((i * 131 + 7) & 255 for i in range(n))).hexdigest()), lengths around the 32-byte stripe,
    // the 8- and 4-byte tails and a long input
    CHECK(to_hex(xxh64("", 0)) == "ef46db3751d8e999");
    CHECK(to_hex(xxh64("abc", 3)) == "44bc2cf5ad770999");
    CHECK(to_hex(xxh64("Nobody inspects the spammish repetition", 39)) == "fbcea83c8a378bf1");
    std::vector<unsigned char> v(1000003);
    for (size_t i = 0; i < v.size(); i++) v[i] = (unsigned char)(i * 131 + 7);
    const std::vector<std::pair<size_t, const char*>> known = {
        {1, "a96c7f0ce858bbb7"},  {3, "bed43740ee6332bb"},  {4, "fa212ae44b3bb23d"},  {7, "2744460dd675d2c0"},
        {8, "994b676b71ce94dd"},  {31, "6711d55e306b5d8f"}, {32, "07f7b8e3bc5d6e25"}, {33, "09f85eeb4e1cbe9f"},
        {63, "b7c9968c066cb6a5"}, {64, "50d4159a0411632e"}, {100, "9ddada11d3dc2d8f"}, {1000003, "2b4d5b88880ffcc2"}};
    for (const auto& [n, hex] : known) {
        INFO("length " << n);
        CHECK(to_hex(xxh64(v.data(), n)) == hex);
        for (size_t piece : {1, 5, 31, 32, 33, 4096}) {  // any split gives the same digest
            Xxh64 h;
            for (size_t at = 0; at < n; at += piece) h.update(v.data() + at, std::min(piece, n - at));
            CHECK(to_hex(h.digest()) == hex);
        }
    }
}

TEST_CASE("a written file's digest, hashed on the way, equals the file's read back", "[checkpoint][integrity]") {
    const std::string dir = scratch("digest");
    const ParameterSet<float> p = random_params(kConfig, 3);
    const FileDigest written = write_llmc_model(dir + "/model.bin", p);
    CHECK(written.bytes == 1024 + p.data.size() * 4);
    CHECK(written == file_digest(dir + "/model.bin"));
    CHECK_THROWS_WITH(file_digest(dir + "/none"), Catch::Contains(dir + "/none"));
    fs::remove_all(dir);
}

TEST_CASE("verify_checkpoint: an intact checkpoint, and each file damaged, truncated or missing", "[checkpoint][integrity]") {
    const std::string dir = scratch("verify"), ckpt = dir + "/checkpoint_4";
    write_checkpoint(ckpt, random_params(kConfig, 4), 4);
    REQUIRE(verify_checkpoint(ckpt) == Integrity::verified);
    CHECK_FALSE(any_tmp_left(dir));

    SECTION("one byte flipped in any file names that file") {
        const std::string name = GENERATE("state.json", "state.safetensors", "model.bin");
        INFO(name);
        const std::string path = ckpt + "/" + name;
        flip_byte(path, fs::file_size(path) / 2);
        CHECK_THROWS_AS(verify_checkpoint(ckpt), Error);
        CHECK_THROWS_WITH(verify_checkpoint(ckpt), Catch::StartsWith(path + ": ") && Catch::Contains("damaged"));
    }
    SECTION("a byte of the safetensors header") {
        flip_byte(ckpt + "/state.safetensors", 20);
        CHECK_THROWS_WITH(verify_checkpoint(ckpt), Catch::StartsWith(ckpt + "/state.safetensors: "));
    }
    SECTION("a truncated file") {
        fs::resize_file(ckpt + "/model.bin", fs::file_size(ckpt + "/model.bin") - 1);
        CHECK_THROWS_WITH(verify_checkpoint(ckpt), Catch::StartsWith(ckpt + "/model.bin: ") && Catch::Contains("truncated"));
    }
    SECTION("a missing file") {
        fs::remove(ckpt + "/state.safetensors");
        CHECK_THROWS_WITH(verify_checkpoint(ckpt), Catch::StartsWith(ckpt + "/state.safetensors: missing"));
    }
    SECTION("state.json missing: partial") {
        fs::remove(ckpt + "/state.json");
        CHECK_THROWS_WITH(verify_checkpoint(ckpt), Catch::StartsWith(ckpt + "/state.json: missing") && Catch::Contains("partial"));
    }
    SECTION("state.json edited: a value changed, still valid JSON") {
        nlohmann::json state = nlohmann::json::parse(read_text_file(ckpt + "/state.json"));
        state["step"] = 5;
        write_text_file(ckpt + "/state.json", state.dump(2));
        CHECK_THROWS_WITH(verify_checkpoint(ckpt), Catch::StartsWith(ckpt + "/state.json: ") && Catch::Contains("checksum"));
    }
    SECTION("state.json re-indented: the same state still verifies") {
        write_text_file(ckpt + "/state.json", nlohmann::json::parse(read_text_file(ckpt + "/state.json")).dump());
        CHECK(verify_checkpoint(ckpt) == Integrity::verified);
    }
    SECTION("a checkpoint from before checksums: unverifiable, not refused") {
        nlohmann::json state = nlohmann::json::parse(read_text_file(ckpt + "/state.json"));
        state.erase("files");
        state.erase("state_xxh64");
        write_text_file(ckpt + "/state.json", state.dump(2));
        CHECK(verify_checkpoint(ckpt) == Integrity::unverifiable);
        CHECK_NOTHROW(check_checkpoint(ckpt, false));
    }
    fs::remove_all(dir);
}

TEST_CASE("the newest intact checkpoint of a run: damaged and partial ones skipped", "[checkpoint][integrity]") {
    const std::string dir = scratch("newest");
    CHECK(newest_good_checkpoint(dir + "/none", false).empty());
    CHECK(newest_good_checkpoint(dir, false).empty());
    const ParameterSet<float> p = random_params(kConfig, 5);
    write_checkpoint(dir + "/checkpoint_2", p, 2);
    write_checkpoint(dir + "/checkpoint_10", p, 10);  // 10 > 2 as numbers, not as text
    write_checkpoint(dir + "/checkpoint_11", p, 11);
    write_checkpoint(dir + "/checkpoint_best", p, 30);  // a name, not a step
    make_directories(dir + "/checkpoint_12.tmp");       // an interrupted save
    make_directories(dir + "/checkpoint_13");           // partial: no state.json
    flip_byte(dir + "/checkpoint_11/model.bin", 2000);
    CHECK(list_checkpoints(dir) == std::vector<std::string>{dir + "/checkpoint_13", dir + "/checkpoint_11",
                                                            dir + "/checkpoint_10", dir + "/checkpoint_2"});
    CHECK(newest_good_checkpoint(dir, false) == dir + "/checkpoint_10");
    fs::remove(dir + "/checkpoint_10/state.safetensors");
    CHECK(newest_good_checkpoint(dir, false) == dir + "/checkpoint_2");
    fs::resize_file(dir + "/checkpoint_2/model.bin", 100);
    CHECK_THROWS_WITH(newest_good_checkpoint(dir, false),
                      Catch::StartsWith(dir + ": none of its 4 checkpoints is intact") &&
                          Catch::Contains("checkpoint_13/state.json: missing"));
    CHECK(checkpoint_step("checkpoint_0") == 0);
    CHECK(checkpoint_step("checkpoint_123") == 123);
    for (const char* name : {"checkpoint_", "checkpoint_5.tmp", "checkpoint_x", "checkpoint_-1", "checkpoint_1234567890", "x_5"})
        CHECK(checkpoint_step(name) == -1);
    fs::remove_all(dir);
}

TEST_CASE("evaluation's checkpoint loader verifies the same way", "[checkpoint][integrity][evaluation]") {
    const std::string dir = scratch("eval");
    const ParameterSet<float> older = random_params(kConfig, 6), newer = random_params(kConfig, 7);
    write_checkpoint(dir + "/run/checkpoint_3", older, 3);
    write_checkpoint(dir + "/run/checkpoint_6", newer, 6);
    CHECK(load_eval_model("x", dir + "/run").params.data == newer.data);
    flip_byte(dir + "/run/checkpoint_6/model.bin", 5000);
    CHECK_THROWS_WITH(load_eval_model("x", dir + "/run/checkpoint_6"), Catch::StartsWith(dir + "/run/checkpoint_6/model.bin: "));
    const EvalModel m = load_eval_model("x", dir + "/run");  // the run: the older, intact one, with a warning
    CHECK(m.path == dir + "/run/checkpoint_3");
    CHECK(m.params.data == older.data);
    fs::remove_all(dir);
}

TEST_CASE("a staged directory replaces the old one only when committed", "[checkpoint][integrity]") {
    const std::string dir = scratch("staged"), target = dir + "/export/hf";
    {
        StagedDirectory s(target);
        write_text_file(s.path() + "/a.txt", "old");
        s.commit();
    }
    {
        StagedDirectory s(target);  // an error before commit: the old directory stays, the temporary goes
        write_text_file(s.path() + "/a.txt", "half");
    }
    CHECK(read_text_file(target + "/a.txt") == "old");
    CHECK_FALSE(fs::exists(target + ".tmp"));
    make_directories(target + ".tmp/leftover");  // what a killed run left is cleared first
    {
        StagedDirectory s(target);
        write_text_file(s.path() + "/b.txt", "new");
        s.commit();
    }
    CHECK_FALSE(fs::exists(target + "/a.txt"));
    CHECK(read_text_file(target + "/b.txt") == "new");
    CHECK_FALSE(any_tmp_left(dir));
    CHECK_FALSE(fs::exists(target + ".old"));
    fs::remove_all(dir);
}

TEST_CASE("a write past the file-size limit: one line naming the file, the older export untouched", "[checkpoint][integrity][export]") {
    const std::string dir = scratch("fsize");
    const ParameterSet<float> p = random_params(kConfig, 8);
    const std::vector<double> sigma = {0.5, 0.6, 0.7, 0.8, 2.0};
    export_lnfree(dir + "/export", p, sigma, "");
    const std::string before_hf = file_bytes(dir + "/export/hf/model.safetensors"),
                      before_lens = file_bytes(dir + "/export/transformer_lens/model.safetensors");
    {
        FileSizeLimit limit(4096);
        CHECK_THROWS_WITH(export_lnfree(dir + "/export", random_params(kConfig, 9), sigma, ""),
                          Catch::StartsWith(dir + "/export/hf.tmp/model.safetensors: write failed") &&
                              Catch::Contains("ulimit -f"));
        CHECK_THROWS_WITH(write_llmc_model(dir + "/model.bin", p), Catch::Contains("ulimit -f"));
    }
    CHECK(file_bytes(dir + "/export/hf/model.safetensors") == before_hf);
    CHECK(file_bytes(dir + "/export/transformer_lens/model.safetensors") == before_lens);
    CHECK_FALSE(any_tmp_left(dir));
    CHECK_FALSE(fs::exists(dir + "/model.bin"));
    fs::remove_all(dir);
}

TEST_CASE("check_output_directory: unwritable output and too little free space, one line each", "[checkpoint][integrity][output]") {
    const std::string dir = scratch("output");
    CHECK_NOTHROW(check_output_directory(dir + "/new/out", 1 << 20));  // created, probed
    CHECK(fs::is_directory(dir + "/new/out"));
    CHECK(fs::is_empty(dir + "/new/out"));  // the probe file is gone
    write_text_file(dir + "/file", "x");
    SECTION("a regular file where the directory should be") {
        CHECK_THROWS_WITH(check_output_directory(dir + "/file", 0),
                          Catch::StartsWith(dir + "/file: cannot create the directory") && Catch::Contains("a file stands where"));
    }
    SECTION("a regular file where a directory on the way should be") {
        CHECK_THROWS_WITH(check_output_directory(dir + "/file/out", 0), Catch::StartsWith(dir + "/file/out: cannot create"));
    }
    SECTION("more bytes needed than the filesystem has free") {
        CHECK_THROWS_WITH(check_output_directory(dir, (size_t)1 << 62),
                          Catch::StartsWith(dir + ": ") && Catch::Contains("free on its filesystem, a checkpoint needs"));
    }
    SECTION("a directory without write permission") {
        make_directories(dir + "/readonly");
        fs::permissions(dir + "/readonly", fs::perms::owner_read | fs::perms::owner_exec);
        if (::geteuid() == 0) {
            // root writes whatever the permissions say: the probe succeeds, which is right (the checkpoint would too)
            WARN("running as root: permissions cannot stop the probe; only the refusal of a file where a directory should be is tested");
            CHECK_NOTHROW(check_output_directory(dir + "/readonly", 0));
        } else {
            CHECK_THROWS_WITH(check_output_directory(dir + "/readonly", 0),
                              Catch::StartsWith(dir + "/readonly: cannot create a file") && Catch::Contains("permission"));
        }
        fs::permissions(dir + "/readonly", fs::perms::owner_all);
    }
    fs::remove_all(dir);
}

TEST_CASE("checkpoint_bytes covers what a checkpoint writes", "[checkpoint][integrity][output]") {
    const std::string dir = scratch("bytes");
    const ParameterSet<float> p = random_params(kConfig, 10);
    write_checkpoint(dir + "/checkpoint_1", p, 1);  // float32 compute copy, as the CPU build
    size_t written = 0;
    for (const auto& e : fs::directory_iterator(dir + "/checkpoint_1")) written += e.file_size();
    const size_t n = p.data.size();
    CHECK(written <= checkpoint_bytes(n, 4));
    CHECK(written >= 20 * n);
    CHECK(checkpoint_bytes(n, 4) - checkpoint_bytes(0, 4) == 20 * n);  // master, m, v, compute copy, model.bin
    CHECK(checkpoint_bytes(n, 2) - checkpoint_bytes(0, 2) == 18 * n);  // bf16 compute copy
    fs::remove_all(dir);
}
