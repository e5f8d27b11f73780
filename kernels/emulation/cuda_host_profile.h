// Wall-time profile of the emulated build: LNFREE_EMU_PROFILE=1 prints, when the program exits, every kernel and
// every timed host section (the CPU build's matrix products) with its calls, blocks, wall seconds and share, to
// stderr. Launches and host sections are synchronous and never overlap, so the shares add up to the time spent in
// them. Off (one relaxed load per launch) unless the variable is set.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace cuda_emu {

class Profile {
public:
    static bool enabled() {
        static const bool on = [] { const char* e = std::getenv("LNFREE_EMU_PROFILE"); return e && std::strcmp(e, "0") != 0; }();
        return on;
    }
    // key: a kernel's address or a host section's name literal; `how` says how its blocks ran
    void add(const void* key, const char* how, std::uint64_t blocks, double seconds) {
        std::lock_guard<std::mutex> g(mu_);
        Entry& e = entries_[key];
        e.how = how;
        e.calls++;
        e.blocks += blocks;
        e.seconds += seconds;
    }
    ~Profile() { if (!entries_.empty()) print(); }

    // the table; `name` turns a key into a printable name
    template <typename Name>
    void print_with(Name name) const {
        std::vector<std::pair<const void*, Entry>> rows(entries_.begin(), entries_.end());
        std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
        double total = 0;
        for (const auto& r : rows) total += r.second.seconds;
        std::fprintf(stderr, "cuda_emu profile: %.3f s in kernels and timed host sections\n%9s %6s %10s %10s  %-6s %s\n",
                     total, "seconds", "share", "calls", "blocks", "how", "name");
        for (const auto& [key, e] : rows)
            std::fprintf(stderr, "%9.3f %5.1f%% %10llu %10llu  %-6s %s\n", e.seconds, 100 * e.seconds / total,
                         (unsigned long long)e.calls, (unsigned long long)e.blocks, e.how, name(key, e).c_str());
    }
    void print() const;  // defined with kernel_name, in cuda_host_emulation.h

    struct Entry { const char* how = ""; std::uint64_t calls = 0, blocks = 0; double seconds = 0; };

private:
    std::mutex mu_;
    std::unordered_map<const void*, Entry> entries_;
};

inline Profile& profile() { static Profile p; return p; }

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Times a host section under `name` (a string literal: its address is the key).
class ProfileScope {
public:
    explicit ProfileScope(const char* name) : name_(Profile::enabled() ? name : nullptr) {
        if (name_) t0_ = std::chrono::steady_clock::now();
    }
    ~ProfileScope() { if (name_) profile().add(name_, "host", 0, seconds_since(t0_)); }
    ProfileScope(const ProfileScope&) = delete;
    ProfileScope& operator=(const ProfileScope&) = delete;
private:
    const char* name_;
    std::chrono::steady_clock::time_point t0_;
};

}  // namespace cuda_emu
