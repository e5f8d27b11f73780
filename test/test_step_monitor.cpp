// The trainer's step monitor (lnfree/step_monitor.h): non-finite steps counted in a row and in all, the stop at
// the limit, and loss spikes against the mean of the previous 10 applied steps.
#include <catch2/catch.hpp>

#include "lnfree/step_monitor.h"

using lnfree::StepMonitor;

TEST_CASE("non-finite steps are counted in a row and stop the run at the limit", "[train][monitor]") {
    StepMonitor m(3, 1.5);
    CHECK(m.observe(true, 0).skipped_in_a_row == 1);
    CHECK(m.observe(true, 0).skipped_in_a_row == 2);
    CHECK_FALSE(m.observe(false, 2.0).stop);  // an applied step resets the count
    CHECK(m.observe(true, 0).skipped_in_a_row == 1);
    CHECK_FALSE(m.observe(true, 0).stop);
    const StepMonitor::Verdict third = m.observe(true, 0);
    CHECK(third.stop);
    CHECK(third.skipped_in_a_row == 3);
    CHECK(m.skipped_total() == 5);
}

TEST_CASE("a loss above spike_factor times the recent mean is a spike", "[train][monitor]") {
    StepMonitor m(3, 1.5);
    for (int i = 0; i < 9; i++) CHECK(m.observe(false, 2.0).spike_ratio == 0);  // fewer than 10 steps: no mean yet
    CHECK(m.observe(false, 3.5).spike_ratio == 0);                               // no history of 10 yet
    // the last 10: nine 2.0 and one 3.5, mean 2.15: 3.2 is below 1.5 x 2.15 = 3.225, 3.3 above
    CHECK(m.observe(false, 3.2).spike_ratio == 0);
    StepMonitor n(3, 1.5);
    for (int i = 0; i < 10; i++) n.observe(false, 2.0);
    CHECK(n.observe(false, 3.3).spike_ratio == Approx(3.3 / 2.0));
    n.observe(true, 0);  // a skipped step is not part of the mean
    CHECK(n.observe(false, 2.0).spike_ratio == 0);
    StepMonitor off(3, 0.0);
    for (int i = 0; i < 10; i++) off.observe(false, 1.0);
    CHECK(off.observe(false, 100.0).spike_ratio == 0);  // spike_factor 0: never
}
