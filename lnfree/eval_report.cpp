#include "lnfree/eval_report.h"

#include <algorithm>
#include <cstdio>

namespace lnfree {

namespace {

std::string range_key(double q) {
    char text[16];
    std::snprintf(text, sizeof text, "p%g", q);
    return text;
}

nlohmann::ordered_json summary_json(const TokenSummary& s) {
    nlohmann::ordered_json j = {{"tokens", s.tokens}, {"mean", s.mean}, {"median", s.median}};
    for (size_t k = 0; k < kPercentileRanges.size(); k++)
        for (int e = 0; e < 2; e++) j["percentiles"][range_key(kPercentileRanges[k][e])] = s.ranges[k][e];
    j["by_position"] = s.by_position;
    j["entropy"] = s.entropy;
    j["accuracy"] = s.accuracy;
    j["ece"] = s.ece;
    for (const CalibrationBin& b : s.calibration)
        j["calibration"].push_back({{"confidence", b.confidence}, {"accuracy", b.accuracy}, {"count", b.count}});
    if (s.compared)
        j["against_reference"] = {{"kl_reference_to_model", s.kl_ref_to_model}, {"kl_model_to_reference", s.kl_model_to_ref},
                                  {"symmetric_kl", s.kl_ref_to_model + s.kl_model_to_ref}, {"jsd", s.jsd}};
    return j;
}

std::string format(const char* f, double a, double b = 0) {
    char text[64];
    std::snprintf(text, sizeof text, f, a, b);
    return text;
}

}  // namespace

nlohmann::ordered_json eval_json(const EvalReport& r) {
    nlohmann::ordered_json j;
    j["reference"] = r.models.empty() ? "" : r.models[0].label;
    for (const ModelInfo& m : r.models) j["models"].push_back({{"label", m.label}, {"path", m.path}, {"layernorm", m.layernorm}});
    j["datasets"] = nlohmann::ordered_json::object();
    for (const DatasetResult& d : r.datasets) {
        nlohmann::ordered_json dj = {{"pattern", d.pattern}, {"seq_len", d.seq_len}, {"chunks", d.chunks}};
        for (size_t m = 0; m < d.models.size(); m++) dj["models"][r.models[m].label] = summary_json(d.models[m]);
        j["datasets"][d.name] = dj;
    }
    j["multiple_choice"] = nlohmann::ordered_json::object();
    for (const MultipleChoiceResult& h : r.multiple_choice) {
        nlohmann::ordered_json hj = {{"path", h.path}, {"examples", h.examples}};
        for (size_t m = 0; m < h.acc.size(); m++)
            hj["models"][r.models[m].label] = {{"acc", h.acc[m]}, {"acc_norm", h.acc_norm[m]},
                                               {"predicted", h.predicted[m]}, {"predicted_norm", h.predicted_norm[m]}};
        j["multiple_choice"][h.name] = hj;
    }
    return j;
}

std::string eval_table(const EvalReport& r) {
    size_t width = 5;
    for (const ModelInfo& m : r.models) width = std::max(width, m.label.size());
    std::string out;
    auto cell = [](std::string s, size_t w) { return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' '); };
    for (const DatasetResult& d : r.datasets) {
        out += d.name + " (" + std::to_string(d.chunks) + " chunks of " + std::to_string(d.seq_len) + " tokens, " +
               std::to_string(d.models[0].tokens) + " targets)\n";
        out += "  " + cell("model", width + 1) + cell("mean CE", 18) + cell("median", 8) + cell("2.5-97.5%", 15) +
               cell("1-99%", 15) + cell("0.1-99.9%", 15) + cell("entropy", 9) + cell("ECE", 7) + "JSD vs " +
               r.models[0].label + "\n";
        for (size_t m = 0; m < d.models.size(); m++) {
            const TokenSummary& s = d.models[m];
            std::string mean = format("%.4f", s.mean);
            if (m > 0) mean += format(" (%+.4f)", s.mean - d.models[0].mean);
            out += "  " + cell(r.models[m].label, width + 1) + cell(mean, 18) + cell(format("%.3f", s.median), 8);
            for (const auto& range : s.ranges) out += cell(format("%.3g-%.3g", range[0], range[1]), 15);
            out += cell(format("%.3f", s.entropy), 9) + cell(format("%.4f", s.ece), 7) +
                   (s.compared ? format("%.4f", s.jsd) : std::string("-")) + "\n";
        }
    }
    for (const MultipleChoiceResult& h : r.multiple_choice) {
        out += h.name + " (" + std::to_string(h.examples) + " examples, completion style)\n";
        out += "  " + cell("model", width + 1) + cell("acc", 9) + "acc_norm\n";
        for (size_t m = 0; m < h.acc.size(); m++)
            out += "  " + cell(r.models[m].label, width + 1) + cell(format("%.4f", h.acc[m]), 9) +
                   format("%.4f", h.acc_norm[m]) + "\n";
    }
    return out;
}

}  // namespace lnfree
