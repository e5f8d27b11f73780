// Shared by the emulation tests: a scheduling order for one scope, and the message of a launch that fails.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/launch.cuh"

namespace emulation_test {

// Sets the schedule for one scope and restores the previous one (random: LNFREE_EMU_SCHEDULE=random:seed sets the seed).
struct ScheduleScope {
    cuda_emu::Schedule old = cuda_emu::schedule();
    std::uint64_t old_seed = cuda_emu::schedule_seed();
    explicit ScheduleScope(cuda_emu::Schedule s) { cuda_emu::set_schedule(s, old_seed); }
    ~ScheduleScope() { cuda_emu::set_schedule(old, old_seed); }
};

inline const cuda_emu::Schedule kSchedules[] = {cuda_emu::Schedule::forward, cuda_emu::Schedule::reverse,
                                                cuda_emu::Schedule::random};

// The message of the KernelError that `f` throws ("" if none).
template <typename F>
std::string kernel_error(F&& f) {
    try {
        f();
    } catch (const cuda_emu::KernelError& e) {
        return e.what();
    }
    return "";
}

}  // namespace emulation_test
