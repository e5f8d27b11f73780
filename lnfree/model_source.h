// What a model name on the command line means: the bundled tiny model, one of GPT-2's four sizes (downloaded by
// dev/download_model.py into models/), or a path; with each, its default training and validation shards and the
// evaluation sets dev/data/ prepares.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "lnfree/model.h"

namespace lnfree {

struct ModelSource {
    std::string path, train, val;
};

// name: tiny | small | medium | large | xl | a path. train, val: the shards asked for ("" for the defaults).
// Throws lnfree::Error when a size is not downloaded or a path does not exist.
ModelSource resolve_model(const std::string& name, const std::string& train = "", const std::string& val = "");

// The shapes of GPT-2's four sizes, so --plan works before anything is downloaded; L = 0 for any other name.
GPT2Config known_shape(const std::string& name);

// The evaluation sets of method.md section 10 as dev/data/ writes them, (name, shard glob or eval file), those
// present under the working directory; for the tiny model its validation shard.
std::vector<std::pair<std::string, std::string>> default_eval_datasets(const std::string& model_name);
std::vector<std::pair<std::string, std::string>> default_multiple_choice(const std::string& model_name);

}  // namespace lnfree
