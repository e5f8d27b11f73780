// What rank 0 alone prints: the console lines of a data-parallel run come from one process.
#pragma once
#include <cstdio>

namespace lnfree {

struct Console {
    bool on = true;
    template <typename... Args>
    void line(const char* format, Args... args) const {
        if (on) std::printf(format, args...);
    }
};

}  // namespace lnfree
