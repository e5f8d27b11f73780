// Stopping a run cleanly from outside: SIGTERM, SIGINT and SIGUSR1 (Slurm's `--signal=USR1@120`, a preemption's
// SIGTERM, Ctrl-C) ask the trainer to finish the optimizer step it is in, write a checkpoint and exit 0 with the
// command that resumes. A second SIGINT ends the process at once (exit 130), leaving the last complete checkpoint
// as it was: checkpoints appear under their final name only when whole (lnfree/train_checkpoint.cuh).
#pragma once
#include <csignal>
#include <string>
#include <vector>
#include <unistd.h>

#include "lnfree/process_group.h"

namespace lnfree {

inline volatile std::sig_atomic_t& stop_signal() {
    static volatile std::sig_atomic_t signal_number = 0;
    return signal_number;
}

extern "C" inline void lnfree_on_stop_signal(int number) {
    if (number == SIGINT && stop_signal() == SIGINT) _exit(130);  // the second Ctrl-C: now
    stop_signal() = number;
    static const char said[] = "train_gpt2_lnfree: stopping after this step, with a checkpoint (Ctrl-C again: at once)\n";
    const ssize_t ignored = write(2, said, sizeof said - 1);  // write(2) is safe in a handler, printf is not
    (void)ignored;
}

inline void install_stop_signals() {
    struct sigaction action {};
    action.sa_handler = lnfree_on_stop_signal;
    sigemptyset(&action.sa_mask);
    for (int number : {SIGTERM, SIGINT, SIGUSR1}) sigaction(number, &action, nullptr);
}

inline const char* stop_signal_name(int number) {
    return number == SIGTERM ? "SIGTERM" : number == SIGINT ? "SIGINT" : number == SIGUSR1 ? "SIGUSR1" : "a signal";
}

// The stop signal any process received (0: none), the same on every process, so that all stop after one step.
inline int agreed_stop_signal(ProcessGroup& group) {
    const double own = stop_signal();
    std::vector<double> all(group.size());
    group.all_gather_host(&own, 1, all.data());
    for (double s : all)
        if (s != 0) return (int)s;
    return 0;
}

// The command line that continues this run: the same options with --resume latest.
inline std::string resume_command_line(int argc, char** argv) {
    std::string line;
    for (int i = 0; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--resume" || a == "--overwrite") { i += a == "--resume"; continue; }
        if (a.rfind("--resume=", 0) == 0) continue;
        const bool plain = a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+") ==
                           std::string::npos;
        std::string quoted = "'";
        for (char ch : a) quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
        line += (line.empty() ? "" : " ") + (plain && !a.empty() ? a : quoted + "'");
    }
    return line + " --resume latest";
}

}  // namespace lnfree
