// The two schedules of a run, as functions of the step k (the number of completed optimizer steps):
// the learning rate (warmup, then cosine to a floor over a schedule that may be longer than the run) and the
// removal events that switch LayerNorm paths from real to fixed at step boundaries (method.md 4.1 and 6.1).
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "lnfree/model.h"

namespace lnfree {

struct LRSchedule {
    double peak = 6e-4, floor = 3e-4;
    int warmup = 25, length = 300;

    // Hugging Face's cosine_with_min_lr: lr(0) = 0 during warmup; progress is clamped at the schedule's end.
    double at(int k) const {
        if (k < warmup) return peak * k / warmup;
        double progress = std::min(1.0, (double)(k - warmup) / std::max(1, length - warmup));
        double r = floor / peak;
        return peak * (r + (1.0 - r) * 0.5 * (1.0 + std::cos(M_PI * progress)));
    }
};

enum class PathKind { LN2, LN1QK, LN1V, LNF };

// Layer i of `kind` switches at step start + i*gap (gap 0: all layers at start; lnf has one path).
struct RemovalEvent {
    PathKind kind;
    int start = 0, gap = 0;
};

inline const char* path_kind_name(PathKind k) {
    switch (k) {
        case PathKind::LN2: return "ln2";
        case PathKind::LN1QK: return "ln1qk";
        case PathKind::LN1V: return "ln1v";
        default: return "lnf";
    }
}

// Fixes every path whose event falls on step k; returns their names ("ln2.3", "lnf", ...).
inline std::vector<std::string> apply_removal_events(const std::vector<RemovalEvent>& events, int k,
                                                     LayerNormPaths& paths) {
    std::vector<std::string> switched;
    const int L = (int)paths.ln2_fixed.size();
    for (const RemovalEvent& e : events) {
        if (e.kind == PathKind::LNF) {
            if (k == e.start && !paths.lnf_fixed) { paths.lnf_fixed = true; switched.push_back("lnf"); }
            continue;
        }
        std::vector<bool>& flags = e.kind == PathKind::LN2 ? paths.ln2_fixed
                                 : e.kind == PathKind::LN1QK ? paths.ln1qk_fixed : paths.ln1v_fixed;
        for (int i = 0; i < L; i++)
            if (k == e.start + i * e.gap && !flags[i]) {
                flags[i] = true;
                switched.push_back(std::string(path_kind_name(e.kind)) + "." + std::to_string(i));
            }
    }
    return switched;
}

}  // namespace lnfree
