// What the trainer watches from step to step (issue: long runs that survive): steps skipped because their loss or
// gradient norm was not finite, and how many came in a row (the run stops after `max_in_a_row` of them), and loss
// spikes, a step's loss above `spike_factor` times the mean of the previous `window` applied steps (a removal event
// that the model does not absorb shows as one).
#pragma once
#include <deque>
#include <numeric>

namespace lnfree {

class StepMonitor {
   public:
    StepMonitor(int max_in_a_row, double spike_factor, size_t window = 10)
        : max_in_a_row_(max_in_a_row), spike_factor_(spike_factor), window_(window) {}

    struct Verdict {
        double spike_ratio = 0;  // > 0: this step's loss over the recent mean, when it is a spike
        int skipped_in_a_row = 0;
        bool stop = false;       // max_in_a_row non-finite steps in a row
    };

    Verdict observe(bool skipped, double loss) {
        Verdict v;
        if (skipped) {
            skipped_total_++;
            v.skipped_in_a_row = ++in_a_row_;
            v.stop = in_a_row_ >= max_in_a_row_;
            return v;
        }
        in_a_row_ = 0;
        if (recent_.size() == window_ && spike_factor_ > 0) {
            const double mean = std::accumulate(recent_.begin(), recent_.end(), 0.0) / recent_.size();
            if (loss > spike_factor_ * mean) v.spike_ratio = loss / mean;
        }
        recent_.push_back(loss);
        if (recent_.size() > window_) recent_.pop_front();
        return v;
    }
    int skipped_total() const { return skipped_total_; }

   private:
    int max_in_a_row_;
    double spike_factor_;
    size_t window_;
    int in_a_row_ = 0, skipped_total_ = 0;
    std::deque<double> recent_;
};

}  // namespace lnfree
