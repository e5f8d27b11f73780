// The learning-rate schedule and the removal events against the numbers of method.md (sections 4.2 and 6.1).
#include <catch2/catch.hpp>

#include <map>

#include "lnfree/schedule.h"

using namespace lnfree;

TEST_CASE("warmup + cosine-to-floor learning rate, including a schedule longer than the run", "[schedule]") {
    LRSchedule small{6e-4, 3e-4, 25, 300};
    CHECK(small.at(0) == 0.0);
    CHECK(small.at(5) == Approx(6e-4 * 5 / 25).epsilon(1e-12));
    CHECK(small.at(25) == Approx(6e-4).epsilon(1e-12));
    CHECK(small.at(162) == Approx(6e-4 * (0.5 + 0.5 * 0.5 * (1 + std::cos(M_PI * 137.0 / 275)))).epsilon(1e-12));
    CHECK(small.at(300) == Approx(3e-4).epsilon(1e-12));
    CHECK(small.at(400) == Approx(3e-4).epsilon(1e-12));  // clamped past the schedule's end
    // large and XL stop at 600 / 800 of a 1200-step schedule: method.md gives 1.73e-4 and 4.06e-5 there
    LRSchedule large{3e-4, 4e-5, 15, 1200}, xl{1e-4, 2e-5, 20, 1200};
    CHECK(large.at(600) == Approx(1.73e-4).epsilon(0.01));
    CHECK(xl.at(800) == Approx(4.06e-5).epsilon(0.01));
    for (int k = 20; k < 1200; k++) REQUIRE(xl.at(k + 1) <= xl.at(k));
}

TEST_CASE("removal events switch each path once, at its step, in the published order", "[schedule]") {
    // GPT-2 small's 2025 schedule: ln2 20+2i, ln1qk 44+2i, ln1v 68+3i, lnf 104
    std::vector<RemovalEvent> events = {{PathKind::LN2, 20, 2}, {PathKind::LN1QK, 44, 2}, {PathKind::LN1V, 68, 3},
                                        {PathKind::LNF, 104, 0}};
    LayerNormPaths paths(12);
    std::map<std::string, int> when;
    for (int k = 0; k < 300; k++)
        for (const std::string& name : apply_removal_events(events, k, paths)) {
            REQUIRE(when.count(name) == 0);
            when[name] = k;
        }
    CHECK(when.size() == 37);
    CHECK(paths.real_paths_remaining() == 0);
    for (int i = 0; i < 12; i++) {
        CHECK(when["ln2." + std::to_string(i)] == 20 + 2 * i);
        CHECK(when["ln1qk." + std::to_string(i)] == 44 + 2 * i);
        CHECK(when["ln1v." + std::to_string(i)] == 68 + 3 * i);
    }
    CHECK(when["ln1v.11"] == 101);
    CHECK(when["lnf"] == 104);

    LayerNormPaths all(4);  // gap 0 switches every layer at once
    CHECK(apply_removal_events({{PathKind::LN2, 3, 0}}, 3, all).size() == 4);
    CHECK(all.real_paths_remaining() == 2 * 4 + 1);
}
