// Summaries of per-token evaluation records (method.md section 10): the mean cross-entropy with its median and
// percentile ranges (numpy's default, linear interpolation between order statistics), CE by position in the
// chunk, mean entropy, expected calibration error over equal-width confidence bins, and mean divergences.
#pragma once
#include <array>
#include <cstddef>
#include <vector>

namespace lnfree {

// One model's records on one dataset, one entry per target, chunk after chunk (position = i % positions).
struct TokenRecords {
    int positions = 0;  // targets per chunk: T - 1
    std::vector<float> loss, entropy, confidence;
    std::vector<unsigned char> correct;  // the top token is the target
    // against the reference model (the first one evaluated), empty for the reference itself
    std::vector<float> kl_ref_to_model, kl_model_to_ref, jsd;
};

// The percentile q in [0, 100] of values, as numpy.percentile(values, q) (method "linear"). values is reordered.
double percentile(std::vector<float>& values, double q);

// The ranges the papers report: 2.5/97.5, 1/99 and 0.1/99.9
inline constexpr std::array<std::array<double, 2>, 3> kPercentileRanges = {{{2.5, 97.5}, {1.0, 99.0}, {0.1, 99.9}}};

struct CalibrationBin {
    double confidence = 0, accuracy = 0;  // means over the bin's tokens
    size_t count = 0;
};

struct TokenSummary {
    size_t tokens = 0;
    double mean = 0, median = 0;
    std::array<std::array<double, 2>, 3> ranges{};  // the percentiles of kPercentileRanges
    std::vector<double> by_position;                 // mean CE at each position
    double entropy = 0, accuracy = 0, ece = 0;
    std::vector<CalibrationBin> calibration;
    bool compared = false;
    double kl_ref_to_model = 0, kl_model_to_ref = 0, jsd = 0;
};

inline constexpr int kCalibrationBins = 15;

// ECE = sum over bins of (bin tokens / tokens) * |accuracy - confidence|, bins [k/B, (k+1)/B) of the confidence
TokenSummary summarize(const TokenRecords& r, int bins = kCalibrationBins);

}  // namespace lnfree
