#include "lnfree/run_directory.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "lnfree/error.h"

namespace lnfree {

namespace fs = std::filesystem;

namespace {

bool is_run_file(const std::string& name) {
    for (const char* exact : {"log.jsonl", "summary.json", "eval.json", "loss.png"})
        if (name == exact || name == std::string(exact) + ".tmp") return true;
    return name.rfind("checkpoint_", 0) == 0 || name == "export" || name.rfind("export.", 0) == 0;
}

}  // namespace

std::vector<std::string> run_files(const std::string& out) {
    std::vector<std::string> names;
    std::error_code ec;
    if (!fs::is_directory(out, ec)) return names;
    for (auto& e : fs::directory_iterator(out, ec))
        if (is_run_file(e.path().filename().string())) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

void claim_output_directory(const std::string& out, bool resume, bool overwrite) {
    const std::vector<std::string> names = run_files(out);
    if (names.empty() || resume) return;
    if (!overwrite) {
        std::string listed;
        for (size_t i = 0; i < names.size() && i < 4; i++) listed += (i ? ", " : "") + names[i];
        if (names.size() > 4) listed += ", ...";
        throw Error(out + ": holds another run (" + listed + "); continue it with --resume latest, start clean with "
                          "--overwrite, or give another -o");
    }
    for (const std::string& name : names) {
        std::error_code ec;
        fs::remove_all(fs::path(out) / name, ec);
        if (ec) throw Error(out + "/" + name + ": cannot remove it for --overwrite (" + ec.message() + ")");
    }
}

}  // namespace lnfree
