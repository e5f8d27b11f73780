#!/usr/bin/env bash
# Repeatable measurements for the CPU build's profile (doc/emulation.md, "Profile of the CPU build (issue 13)").
# Usage: dev/profile_cpu.sh [threads|matrix|repeat|counts|perf|all]   (counts, perf: perf, perf_event_paranoid <= 2)   (needs ./train_gpt2_lnfree_cpu: make cpu)
# Each run: 20 steps of 16 x 128 tokens on the tiny model, 2 validation batches, no samples, nothing saved.
# The profile in doc/emulation.md was taken before issue 13's changes: since then the CPU build runs OpenBLAS with
# one thread per call on its own workers (OPENBLAS_NUM_THREADS is set to 1, OPENBLAS_CORETYPE is kept if given), so
# the OpenBLAS thread settings below no longer change anything; LNFREE_EMU_WORKERS still sets the threads.
# tok/s is the mean of the trainer's own per-step figures over steps 3..20 (steps 1-2 warm up).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./train_gpt2_lnfree_cpu
ARGS=(-n 20 --eval-batches 2 --samples 0 --no-save --overwrite)
OUT=${PROFILE_OUT:-/tmp/lnfree_profile}
mkdir -p "$OUT"

run() {  # run NAME ENV...: one trainer run under the given environment; prints tok/s, wall, user, sys
    local name=$1; shift
    env "$@" /usr/bin/time -f "%e %U %S %c %w" -o "$OUT/$name.time" $BIN "${ARGS[@]}" -o "$OUT/run_$name" \
        > "$OUT/$name.log" 2>&1
    local toks wall user sys invol vol
    toks=$(awk '/^step/ { split($2, s, "/"); if (s[1] >= 3) { for (i = 1; i <= NF; i++) if ($(i+1) == "tok/s") { t += $i; n++ } } }
                END { if (n) printf "%.0f", t / n; else print "?" }' "$OUT/$name.log")
    read -r wall user sys invol vol < <(tail -1 "$OUT/$name.time")
    printf "%-44s %6s tok/s  wall %6ss  user %6ss  sys %5ss  ctxsw invol %6s vol %6s\n" \
        "$name ($*)" "$toks" "$wall" "$user" "$sys" "$invol" "$vol"
}

threads() {  # the threads of a running trainer, by name and state, sampled 10 s in
    $BIN "${ARGS[@]}" -o "$OUT/run_threads" > "$OUT/threads.log" 2>&1 &
    local pid=$!
    sleep 10
    echo "threads of the trainer (pid $pid): $(ls /proc/$pid/task | wc -l)"
    for t in /proc/$pid/task/*; do
        printf "  tid %-8s %-16s utime+stime %s ticks\n" "${t##*/}" "$(cat $t/comm)" \
            "$(awk '{ print $14 + $15 }' $t/stat)"
    done
    wait $pid
}

matrix() {
    run default
    run blas1         OPENBLAS_NUM_THREADS=1
    run omp1          OMP_NUM_THREADS=1
    run omp2          OMP_NUM_THREADS=2
    run emu1          LNFREE_EMU_WORKERS=1
    run emu1_blas1    LNFREE_EMU_WORKERS=1 OPENBLAS_NUM_THREADS=1
    run blas1_omp1    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
    run blas2_omp2    OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2
    run timeout4      OPENBLAS_THREAD_TIMEOUT=4
    run poison0       LNFREE_EMU_POISON=0
    run skylakex      OPENBLAS_CORETYPE=SkylakeX
    run haswell       OPENBLAS_CORETYPE=Haswell
    run skylakex_blas1 OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1
    run default_again
}

repeat() {  # the knobs that matter, twice each, interleaved (the machine may be shared: compare within a pass)
    for pass in 1 2; do
        run default_$pass
        run timeout4_$pass          OPENBLAS_THREAD_TIMEOUT=4
        run skylakex_$pass          OPENBLAS_CORETYPE=SkylakeX
        run skylakex_timeout4_$pass OPENBLAS_CORETYPE=SkylakeX OPENBLAS_THREAD_TIMEOUT=4
        [ $pass = 1 ] && run emu3 LNFREE_EMU_WORKERS=3 && run poison0_again LNFREE_EMU_POISON=0
    done
}

counts() {  # fiber switches, blocks and sgemm calls of one training step (uprobes: -n 2 minus -n 1), then removed
    local sw blk blas=/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so
    sw=0x$(nm $BIN | awk '$3 == "lnfree_emu_switch" { print $1 }' | sed 's/^0*//')
    blk=0x$(nm -C $BIN | awk '/ cuda_emu::detail::Worker::run_block\(/ { print $1 }' | sed 's/^0*//')
    perf probe -q -x $BIN -a "$sw" && perf probe -q -x $BIN -a "$blk" && perf probe -q -x $blas -a cblas_sgemm
    local ev
    ev=$(perf probe -l 2>/dev/null | awk '/probe_train|probe_libopenblas/ { printf "%s%s", sep, $1; sep = "," }')
    for n in 1 2; do
        echo "-n $n (events: $ev):"
        perf stat -x, -e "$ev" $BIN -n $n --eval-batches 1 --samples 0 --no-save --overwrite -o "$OUT/run_count" 2>&1 \
            >/dev/null | awk -F, '/probe_/ { print "  " $3, $1 }'
    done
    perf probe -q -d 'probe_train_gpt2_lnfree_cpu:*' -d 'probe_libopenblasp:*'
}

perf_profile() {  # flat profile by thread and symbol (perf_event_paranoid <= 2 suffices for user+kernel of own process)
    perf record -F 999 -o "$OUT/perf.data" $BIN "${ARGS[@]}" -o "$OUT/run_perf" > "$OUT/perf.log" 2>&1
    perf report -i "$OUT/perf.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
    perf report -i "$OUT/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45
}

case "${1:-all}" in
    threads) threads ;;
    matrix) matrix ;;
    repeat) repeat ;;
    counts) counts ;;
    perf) perf_profile ;;
    all) threads; matrix; repeat; counts; perf_profile ;;
esac
