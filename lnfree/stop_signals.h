// Stopping a run cleanly from outside: SIGTERM, SIGINT and SIGUSR1 (Slurm's `--signal=USR1@120`, a preemption's
// SIGTERM, Ctrl-C) ask the trainer to finish the optimizer step it is in, write a checkpoint and exit 0 with the
// command that resumes. A second SIGINT ends the process at once (exit 130), leaving the last complete checkpoint
// as it was: checkpoints appear under their final name only when whole (lnfree/train_checkpoint.cuh).
#pragma once
#include <csignal>
#include <unistd.h>

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

}  // namespace lnfree
