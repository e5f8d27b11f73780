#!/usr/bin/env bash
# The CPU build against PyTorch on the same shapes and cores, in one run (issue 13; doc/emulation.md, "Speed of the
# CPU build"). Prints tokens per second of
#   - the CPU build on the tiny model's default recipe (16 x 128 tokens per step, dropout 0.1, aux loss), median
#     over the steps after the last LayerNorm is removed;
#   - dev/bench_cpu.py: the same LN-free steps in eager PyTorch, float32, the same threads;
#   - for reference, Hugging Face's eager GPT2LMHeadModel (LayerNorm kept);
# and the ratio of the first two. Usage: dev/bench_cpu.sh [THREADS]   (default: nproc, at most 16)
# Needs `make cpu` and the Python packages (`make setup`).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
(( threads > 16 )) && threads=16
steps=${BENCH_STEPS:-60}
py=.venv/bin/python
[ -x $py ] || { echo "dev/bench_cpu.sh: no .venv; run 'make setup' first" >&2; exit 1; }
[ -x ./train_gpt2_lnfree_cpu ] || { echo "dev/bench_cpu.sh: no ./train_gpt2_lnfree_cpu; run 'make cpu' first" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

./train_gpt2_lnfree_cpu -n "$steps" --threads "$threads" --eval-interval 0 --eval-batches 1 --samples 0 --no-save \
    -o "$out/run" > "$out/train.log" 2>&1 || { cat "$out/train.log" >&2; exit 1; }
engine=$($py - "$out/run/log.jsonl" <<'EOF'
import json, statistics, sys
steps = [r for r in map(json.loads, open(sys.argv[1])) if "tokens_per_second" in r]
last_switch = max((r["step"] for r in steps if r["switched"]), default=-1)
free = [r["tokens_per_second"] for r in steps if r["step"] > last_switch + 1]  # one step to settle after the last switch
if len(free) < 5:
    sys.exit(f"dev/bench_cpu.sh: only {len(free)} LN-free steps; raise BENCH_STEPS")
print(f"{statistics.median(free):.0f} {len(free)}")
EOF
)
read -r engine_tps engine_n <<< "$engine"
torch_json=$($py dev/bench_cpu.py --threads "$threads" --steps 20)
hf_json=$($py dev/bench_cpu.py --threads "$threads" --steps 20 --implementation transformers 2>/dev/null)
field() { $py -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
torch_tps=$(field "$torch_json" tokens_per_second)
hf_tps=$(field "$hf_json" tokens_per_second)

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $threads threads; torch $(field "$torch_json" torch)"
grep -m1 '^cpu ' "$out/train.log" | sed 's/^cpu  */engine:  /'
printf "%-58s %8s tok/s\n" "train_gpt2_lnfree_cpu, tiny recipe, LN-free steps ($engine_n)" "$engine_tps" \
    "PyTorch eager, the same LN-free steps (dev/bench_cpu.py)" "$torch_tps" \
    "transformers GPT2LMHeadModel eager, LayerNorm kept" "$hf_tps"
$py -c 'import sys; print(f"ratio CPU build / PyTorch: {float(sys.argv[1]) / float(sys.argv[2]):.2f}")' "$engine_tps" "$torch_tps"
