// One exception type for bad input: its message is the one line a user sees (which file or option, what is
// wrong, what to do). Programs catch it in main, print it, and exit non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace lnfree {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace lnfree
