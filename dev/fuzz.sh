#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of lnfree's file readers (test/fuzz/, doc/testing.md "Fuzzing"):
#   fuzz_safetensors  lnfree::SafetensorsFile on bytes in memory, every tensor read with its accessor
#   fuzz_token_shard  lnfree::TokenShard (vocab 0 and 50257) and lnfree::parse_multiple_choice on the same bytes
#   fuzz_llmc_model   lnfree::load_llmc_model, each input written to a temporary file (/dev/shm when there is one)
#   fuzz_recipe       a recipe file: nlohmann::json's parse, then lnfree::apply_recipe_json over two presets
#   fuzz_sigma_file   lnfree::read_sigma_file (an object of sigma per module, or summary.json's) for depths 0-12
#   fuzz_checkpoint   lnfree::load_eval_model on a checkpoint directory: the input is state.json, model.bin fixed
#   fuzz_tokenizer    lnfree::Tokenizer::from_hf_directory and from_vocab_json (input: vocab.json NUL merges.txt
#                     NUL text), then encoding and decoding
#   fuzz_llmc_tokenizer  lnfree::Tokenizer::from_llmc_file, every token decoded
#
#   dev/fuzz.sh [--runs N] [--seconds S] [--fresh] [TARGET...]
#
# --runs N (default 20000) and --seconds S (default none; with --seconds alone the runs are unlimited) bound each
# target; TARGETs (default: all) may omit the fuzz_ prefix; --fresh discards the corpora kept from earlier runs.
# Everything goes to build/fuzz/: the targets (clang++ -fsanitize=fuzzer,address,undefined, UB fatal), the seeds
# (written by make_seeds from lnfree's own writers, plus the safetensors and tokenizers packages' when .venv has them),
# corpus_<target>/ (the seeds copied in; libFuzzer adds what it finds), <target>.log, and crashes/<target>-* for
# every crashing, leaking, out-of-memory or timing-out input. Exits 1 when any target fails.
# Reproduce a crash: build/fuzz/<target> build/fuzz/crashes/<file>. Needs clang++ (14 or later) and its
# libFuzzer runtime (Debian: clang-14 libclang-rt-14-dev); FUZZ_CXX picks another compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="" seconds="" fresh=0 targets=()
all_targets=(fuzz_safetensors fuzz_token_shard fuzz_llmc_model fuzz_recipe fuzz_sigma_file fuzz_checkpoint fuzz_tokenizer
             fuzz_llmc_tokenizer)
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
        --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
        --fresh) fresh=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "fuzz: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) t="$1"; [[ "$t" == fuzz_* ]] || t="fuzz_$t"
           [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $1 (${all_targets[*]})" >&2; exit 2; }
           targets+=("$t"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for v in "$runs" "$seconds"; do
    [[ -z "$v" || "$v" =~ ^[0-9]+$ ]] || { echo "fuzz: --runs and --seconds take whole numbers" >&2; exit 2; }
done
if [ -z "$runs" ]; then
    if [ -n "$seconds" ]; then runs=-1; else runs=20000; fi
fi

cxx="${FUZZ_CXX:-}"
if [ -z "$cxx" ]; then
    for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
        if command -v "$c" >/dev/null 2>&1; then cxx="$c"; break; fi
    done
fi
if [ -z "$cxx" ]; then
    echo "fuzz: no clang++ found; install clang and its libFuzzer runtime (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 1
fi

out=build/fuzz
mkdir -p "$out/crashes"
jobs=$(nproc 2>/dev/null || echo 2)
if ! make --no-print-directory -f test/fuzz/Makefile -j"$jobs" FUZZ_CXX="$cxx" >"$out/build.log" 2>&1; then
    cat "$out/build.log" >&2
    echo "fuzz: the build failed (with $cxx; the libFuzzer runtime is libclang-rt-<version>-dev on Debian)" >&2
    exit 1
fi

# seeds: regenerated every run, copied over the corpora (which keep what earlier runs found unless --fresh)
rm -rf "$out/seeds"
"$out/make_seeds" "$out/seeds"
py=.venv/bin/python
if [ -x "$py" ] && "$py" -c "import numpy, safetensors" 2>/dev/null; then
    "$py" test/fuzz/make_seeds.py "$out/seeds"
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"

dict_of() {
    case "$1" in
        fuzz_safetensors) echo test/fuzz/safetensors.dict ;;
        fuzz_token_shard) echo test/fuzz/token_shard.dict ;;
        fuzz_llmc_model) echo test/fuzz/llmc_model.dict ;;
        fuzz_recipe) echo test/fuzz/recipe.dict ;;
        fuzz_sigma_file) echo test/fuzz/sigma_file.dict ;;
        fuzz_checkpoint) echo test/fuzz/checkpoint.dict ;;
        fuzz_tokenizer) echo test/fuzz/tokenizer.dict ;;
        fuzz_llmc_tokenizer) echo test/fuzz/llmc_tokenizer.dict ;;
    esac
}
stat_of() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }

passed=0 failed=0
for t in "${targets[@]}"; do
    corpus="$out/corpus_$t"
    [ "$fresh" = 1 ] && rm -rf "$corpus"
    mkdir -p "$corpus"
    cp "$out/seeds/$t"/* "$corpus"/
    # inputs that once crashed a reader run first, every time
    if [ -d "test/fuzz/regressions/$t" ]; then cp "test/fuzz/regressions/$t"/* "$corpus"/; fi
    log="$out/$t.log"
    args=(-runs="$runs" -dict="$(dict_of "$t")" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048
          -print_final_stats=1 -artifact_prefix="$out/crashes/$t-")
    [ -n "$seconds" ] && args+=(-max_total_time="$seconds")
    start=$(date +%s%N)
    set +e
    "$out/$t" "${args[@]}" "$corpus" >"$log" 2>&1
    rc=$?
    set -e
    ms=$((($(date +%s%N) - start) / 1000000))
    wall=$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))
    execs=$(stat_of number_of_executed_units "$log")
    execs=${execs:-?}
    rate="?"
    [[ "$execs" =~ ^[0-9]+$ ]] && rate=$((execs * 1000 / (ms > 0 ? ms : 1)))  # over the wall time, start-up included
    files=$(ls "$corpus" | wc -l)
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        line=$(printf '%s: ok, %s execs, %s exec/s, %s s wall, corpus %s files' "$t" "$execs" "$rate" "$wall" "$files")
    else
        failed=$((failed + 1))
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        line=$(printf '%s: FAILED (exit %s) after %s execs, %s exec/s, %s s wall; input %s; log %s' "$t" "$rc" \
               "$execs" "$rate" "$wall" "${artifact:-none}" "$log")
        # the sanitizer's or libFuzzer's report (the first one in the log), for the reader of make test's output
        echo "---- $t ----" >&2
        awk '/^==[0-9]+==|runtime error:|invariant failed:|^==[0-9]+== ERROR: libFuzzer|ERROR: libFuzzer/ {on=1}
             on && n < 60 {print; n++}' "$log" >&2
        echo "----" >&2
    fi
    echo "$line"
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
