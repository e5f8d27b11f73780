// One run per output directory: the files a training run writes there (log.jsonl, summary.json, eval.json,
// loss.png, checkpoint_<step>/ and export/, with their temporary names), so that a second run never appends to
// the first one's log or leaves its export beside its own.
#pragma once
#include <string>
#include <vector>

namespace lnfree {

// The names of the run files in `out` (empty when it does not exist or holds none).
std::vector<std::string> run_files(const std::string& out);

// Before a run starts: a directory holding another run is refused (one line: what is there and the choices:
// --resume latest, --overwrite, another -o) unless `resume` (it continues that run) or `overwrite` (its run files
// are removed; other files stay).
void claim_output_directory(const std::string& out, bool resume, bool overwrite);

}  // namespace lnfree
