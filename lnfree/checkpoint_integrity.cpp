#include "lnfree/checkpoint_integrity.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "lnfree/error.h"
#include "lnfree/file_io.h"

namespace lnfree {

namespace fs = std::filesystem;

namespace {

constexpr const char* kAdvice = "; use another checkpoint (--resume latest takes the newest intact one)";

// The seal: over nlohmann's compact dump, which is canonical (keys sorted, numbers printed so that they read
// back to the same value), so the reader recomputes it from the parsed state whatever the file's layout.
std::string state_checksum(nlohmann::json state) {
    state.erase("state_xxh64");
    const std::string text = state.dump();
    return to_hex(xxh64(text.data(), text.size()));
}

// One recorded file against the disk: "" when it matches, else what is wrong with it.
std::string file_damage(const std::string& path, const nlohmann::json& record) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return path + ": missing; the checkpoint is partial";
    FileDigest d;
    try {
        d = file_digest(path);
    } catch (const Error& e) {  // unreadable counts as damaged: the caller may skip to an older checkpoint
        return e.what();
    }
    const nlohmann::json& size = record.at("bytes");
    if (!size.is_number_unsigned())  // get<uint64_t>() of a negative or fractional number is undefined or truncates
        return path + ": state.json records its size as " + size.dump() + ", not a byte count; the checkpoint is damaged";
    const uint64_t bytes = size.get<uint64_t>();
    if (d.bytes != bytes)
        return path + ": " + std::to_string(d.bytes) + " bytes where state.json records " + std::to_string(bytes) +
               "; the file is truncated or damaged";
    const std::string recorded = record.at("xxh64").get<std::string>();
    if (to_hex(d.xxh64) != recorded)
        return path + ": XXH64 " + to_hex(d.xxh64) + " where state.json records " + recorded + "; the file is damaged";
    return "";
}

// "" for an intact checkpoint, else the first damage found; `integrity` says whether it could be checked at all.
std::string find_damage(const std::string& dir, Integrity& integrity) {
    integrity = Integrity::verified;
    const std::string state_path = dir + "/state.json";
    std::error_code ec;
    if (!fs::is_regular_file(state_path, ec)) return state_path + ": missing; the checkpoint is partial or not a checkpoint";
    const nlohmann::json state = nlohmann::json::parse(read_text_file(state_path), nullptr, false);
    if (!state.is_object()) return state_path + ": not valid JSON; the checkpoint is damaged";
    if (!state.contains("files") && !state.contains("state_xxh64")) {
        integrity = Integrity::unverifiable;
        return "";
    }
    if (!state.contains("state_xxh64") || !state["state_xxh64"].is_string() ||
        state["state_xxh64"].get<std::string>() != state_checksum(state))
        return state_path + ": its contents do not match its checksum (state_xxh64); the checkpoint is damaged";
    try {
        for (const auto& [name, record] : state.at("files").items()) {
            if (name.empty() || name.find('/') != std::string::npos || name == "state.json")
                return state_path + ": records a file named '" + name + "'; the checkpoint is damaged";
            if (std::string damage = file_damage(dir + "/" + name, record); !damage.empty()) return damage;
        }
    } catch (const nlohmann::json::exception& e) {
        return state_path + ": its 'files' are malformed (" + e.what() + "); the checkpoint is damaged";
    }
    return "";
}

void warn_unverifiable(const std::string& dir) {
    std::fprintf(stderr, "warning: %s: written before checkpoints carried checksums (no 'files' in state.json); "
                         "loading it unverified\n", dir.c_str());
}

}  // namespace

int checkpoint_step(const std::string& name) {
    const std::string digits = name.rfind("checkpoint_", 0) == 0 ? name.substr(11) : "";
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::stoi(digits);
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
    std::vector<std::pair<int, std::string>> found;
    std::error_code ec;
    if (!fs::is_directory(run_dir, ec)) return {};
    for (const auto& e : fs::directory_iterator(run_dir, ec)) {
        const int step = checkpoint_step(e.path().filename().string());
        if (step >= 0 && e.is_directory(ec)) found.push_back({step, run_dir + "/" + e.path().filename().string()});
    }
    std::sort(found.rbegin(), found.rend());
    std::vector<std::string> paths;
    for (auto& f : found) paths.push_back(std::move(f.second));
    return paths;
}

void seal_checkpoint_state(nlohmann::json& state, const std::map<std::string, FileDigest>& files) {
    nlohmann::json records = nlohmann::json::object();
    for (const auto& [name, d] : files) records[name] = {{"bytes", d.bytes}, {"xxh64", to_hex(d.xxh64)}};
    state["files"] = records;
    state["state_xxh64"] = state_checksum(state);
}

Integrity verify_checkpoint(const std::string& dir) {
    Integrity integrity;
    if (std::string damage = find_damage(dir, integrity); !damage.empty()) throw Error(damage + kAdvice);
    return integrity;
}

void check_checkpoint(const std::string& dir, bool warn) {
    if (verify_checkpoint(dir) == Integrity::unverifiable && warn) warn_unverifiable(dir);
}

std::string newest_good_checkpoint(const std::string& run_dir, bool warn) {
    const std::vector<std::string> checkpoints = list_checkpoints(run_dir);
    std::string newest_damage;
    for (const std::string& dir : checkpoints) {
        Integrity integrity;
        const std::string damage = find_damage(dir, integrity);
        if (damage.empty()) {
            if (integrity == Integrity::unverifiable && warn) warn_unverifiable(dir);
            return dir;
        }
        if (warn) std::fprintf(stderr, "warning: %s; skipping %s\n", damage.c_str(), dir.c_str());
        if (newest_damage.empty()) newest_damage = damage;
    }
    if (checkpoints.empty()) return "";
    throw Error(run_dir + ": none of its " + std::to_string(checkpoints.size()) +
                " checkpoints is intact (the newest: " + newest_damage + "); restore one from a copy or start the run again");
}

}  // namespace lnfree
