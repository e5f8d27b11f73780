// What the evaluation suite reports: eval.json (doc/evaluation.md gives every field) and the printed table, in
// the papers' layout: per dataset and model the mean CE with its median and percentile ranges, the entropy, the
// ECE and the divergence from the reference model (the first one), then HellaSwag.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/token_statistics.h"

namespace lnfree {

struct ModelInfo {
    std::string label, path, layernorm;  // layernorm: "real", "none" or "partial"
};

struct DatasetResult {
    std::string name, pattern;
    int seq_len = 0;
    size_t chunks = 0;
    std::vector<TokenSummary> models;  // in the order of the models
};

struct MultipleChoiceResult {
    std::string name, path;
    size_t examples = 0;
    std::vector<double> acc, acc_norm;                          // per model
    std::vector<std::vector<int>> predicted, predicted_norm;  // per model and example: the ending chosen
};

struct EvalReport {
    std::vector<ModelInfo> models;
    std::vector<DatasetResult> datasets;
    std::vector<MultipleChoiceResult> multiple_choice;
};

nlohmann::ordered_json eval_json(const EvalReport& r);
std::string eval_table(const EvalReport& r);

}  // namespace lnfree
