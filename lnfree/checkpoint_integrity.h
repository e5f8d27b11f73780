// Telling an intact checkpoint from a damaged or partial one, shared by the trainer's --resume
// (lnfree/train_checkpoint.cuh) and evaluation's loader (lnfree/eval_model.cpp). A checkpoint_<step>/ directory's
// state.json records the size and XXH64 (lnfree/checksum.h) of every other file ("files") and carries the XXH64
// of its own contents ("state_xxh64"), so one flipped byte anywhere, a truncated or a missing file is found before
// anything is loaded. state.json is written last: a checkpoint without it is partial. doc/formats.md has the fields.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/checksum.h"

namespace lnfree {

// The step of a directory named checkpoint_<digits>; -1 for any other name (checkpoint_5.tmp, checkpoint_old, ...).
int checkpoint_step(const std::string& name);
// run_dir's checkpoint_<step> directories as paths, newest first; none when run_dir does not exist.
std::vector<std::string> list_checkpoints(const std::string& run_dir);

// Records the files (name in the checkpoint directory -> digest) as "files" and seals the state with
// "state_xxh64", the XXH64 of the state's compact JSON without that field.
void seal_checkpoint_state(nlohmann::json& state, const std::map<std::string, FileDigest>& files);

enum class Integrity { verified, unverifiable };  // unverifiable: written before checkpoints carried checksums

// Reads every file state.json records, at disk speed: throws lnfree::Error with one line naming the first
// missing, truncated or damaged file (state.json included) and what to do.
Integrity verify_checkpoint(const std::string& dir);
// verify_checkpoint, and when `warn`, a one-line warning on stderr for a checkpoint that cannot be verified.
void check_checkpoint(const std::string& dir, bool warn = true);

// The newest checkpoint of run_dir that verifies (or cannot be verified, being older than checksums); every
// damaged or partial one newer than it is skipped with a warning line on stderr (when `warn`). "" when run_dir
// holds no checkpoint; throws lnfree::Error when it holds only damaged ones.
std::string newest_good_checkpoint(const std::string& run_dir, bool warn = true);

}  // namespace lnfree
