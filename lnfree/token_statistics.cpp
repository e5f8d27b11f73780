#include "lnfree/token_statistics.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace lnfree {

double percentile(std::vector<float>& values, double q) {
    if (values.empty()) throw std::invalid_argument("percentile of no values");
    const double h = (values.size() - 1) * q / 100.0;
    const size_t lo = (size_t)std::floor(h), hi = std::min(lo + 1, values.size() - 1);
    std::nth_element(values.begin(), values.begin() + lo, values.end());
    const double below = values[lo];
    // the next order statistic is the smallest of what nth_element left above lo
    const double above = hi == lo ? below : *std::min_element(values.begin() + lo + 1, values.end());
    return below + (h - lo) * (above - below);
}

namespace {

double mean_of(const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += x;
    return v.empty() ? 0.0 : s / v.size();
}

}  // namespace

TokenSummary summarize(const TokenRecords& r, int bins) {
    TokenSummary s;
    s.tokens = r.loss.size();
    if (s.tokens == 0) throw std::invalid_argument("no tokens to summarize");
    s.mean = mean_of(r.loss);
    std::vector<float> sorted = r.loss;
    s.median = percentile(sorted, 50.0);
    for (size_t k = 0; k < kPercentileRanges.size(); k++)
        for (int e = 0; e < 2; e++) s.ranges[k][e] = percentile(sorted, kPercentileRanges[k][e]);

    s.by_position.assign(r.positions, 0.0);
    std::vector<size_t> at(r.positions, 0);
    for (size_t i = 0; i < s.tokens; i++) {
        s.by_position[i % r.positions] += r.loss[i];
        at[i % r.positions]++;
    }
    for (int p = 0; p < r.positions; p++) s.by_position[p] /= std::max<size_t>(at[p], 1);

    s.entropy = mean_of(r.entropy);
    s.calibration.assign(bins, CalibrationBin{});
    size_t right = 0;
    for (size_t i = 0; i < s.tokens; i++) {
        const int b = std::clamp((int)(r.confidence[i] * bins), 0, bins - 1);
        s.calibration[b].confidence += r.confidence[i];
        s.calibration[b].accuracy += r.correct[i];
        s.calibration[b].count++;
        right += r.correct[i];
    }
    s.accuracy = (double)right / s.tokens;
    for (CalibrationBin& b : s.calibration) {
        if (b.count == 0) continue;
        b.confidence /= b.count;
        b.accuracy /= b.count;
        s.ece += (double)b.count / s.tokens * std::abs(b.accuracy - b.confidence);
    }
    s.compared = !r.jsd.empty();
    if (s.compared) {
        s.kl_ref_to_model = mean_of(r.kl_ref_to_model);
        s.kl_model_to_ref = mean_of(r.kl_model_to_ref);
        s.jsd = mean_of(r.jsd);
    }
    return s;
}

}  // namespace lnfree
