#!/usr/bin/env bash
# Every check that needs a GPU, in one script sized for a short lease (about 6 minutes on an H100). The GPU build
# links OpenMPI and NCCL: the machine needs their runtime libraries (libopenmpi3; NCCL comes with the CUDA toolkit).
#   1. the kernel tests and the trainer's step against the CPU reference (build/test_kernels_gpu)
#   2. the default run on the bundled tiny model, LayerNorm removed and kept (GPU build, bf16), the evaluation suite
#      of the three tiny models, and the LN-free run again under `mpirun -np 1` (the NCCL process group) against the
#      plain run's losses
#   3. the trainer's speed and MFU at GPT-2 small and XL shapes (random weights, the recipe's micro-batch; at XL with
#      the fused attention and with the product-based one), and the PyTorch baseline at small (dev/bench_pytorch.py)
#   4. the kernel lab (dev/cuda) at XL's shape, with PyTorch's flash SDPA as the attention anchor (dev/bench_sdpa.py)
#   5. the kernel tests again under compute-sanitizer (memcheck)
# Build first, on any machine with nvcc: `make train test-gpu-build cuda-lab`. Usage: bash dev/gpu_check.sh [OUT]
# Logs go to OUT (default out_gpu_check/); the last lines printed are a table of what passed and the speeds.
set -u
cd "$(dirname "$0")/.."
out=${1:-out_gpu_check}
mkdir -p "$out"
python=${PYTHON:-python3}
results=()

# run NAME SECONDS CMD...: log to OUT/NAME.log, keep its status for the table
run() {
    local name=$1 limit=$2
    shift 2
    echo "=== $name: $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    tail -n 4 "$out/$name.log"
    results+=("$(printf '%-22s rc %-3d %4d s' "$name" "$rc" $((SECONDS - t0)))")
    return $rc
}

# median tokens/s (or another field: mfu) of a trainer log's steps after the first three (warm-up)
median_tps() {
    "$python" - "$1" "${2:-tokens_per_second}" <<'EOF'
import json, sys
values = sorted([j[sys.argv[2]] for j in map(json.loads, open(sys.argv[1])) if "loss" in j and sys.argv[2] in j][3:])
print(("n/a" if not values else f"{values[len(values) // 2]:.0f}" if sys.argv[2] == "tokens_per_second"
       else f"{100 * values[len(values) // 2]:.1f}%"))
EOF
}

for f in train_gpt2_lnfree build/test_kernels_gpu; do
    [ -x "$f" ] || { echo "gpu_check.sh: $f is not built; run: make train test-gpu-build cuda-lab" >&2; exit 2; }
done
# the trainer links OpenMPI: a machine without its runtime gets the .debs unpacked first (apt-get download
# libopenmpi3 and what `apt-cache depends libopenmpi3` lists, then dpkg -x each into /, and ldconfig)
missing=$(ldd ./train_gpt2_lnfree | grep 'not found' | tr -s ' \t\n' ' ')
[ -z "$missing" ] || { echo "gpu_check.sh: train_gpt2_lnfree's libraries are missing here:$missing" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

# 1. correctness on the GPU
run test_kernels_gpu 150 build/test_kernels_gpu

# 2. the bundled tiny model
run tiny_lnfree 90 ./train_gpt2_lnfree -o "$out/tiny_lnfree"
run tiny_vanilla 90 ./train_gpt2_lnfree --recipe vanilla -o "$out/tiny_vanilla"
# the evaluation suite in bf16 on the GPU: the three tiny models side by side (the CPU build's table is the README's)
run tiny_eval 90 ./train_gpt2_lnfree eval -m original=tiny --compare "vanilla=$out/tiny_vanilla/export/hf" \
    --compare "lnfree=$out/tiny_lnfree/export/hf" -t 128 -o "$out/tiny_eval"
# one process in an NCCL group (the machine has one GPU: more than one GPU is not run here)
if command -v mpirun >/dev/null; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 run tiny_nccl_np1 90 mpirun -np 1 ./train_gpt2_lnfree -o "$out/tiny_nccl"
    results+=("  NCCL -np 1 against the plain run: $("$python" dev/compare_runs.py "$out/tiny_lnfree" "$out/tiny_nccl")")
else
    results+=("  NCCL -np 1: SKIPPED, mpirun missing (apt-get install openmpi-bin)")
fi

# 3. speed at real shapes: random weights of GPT-2's shape and the size's recipe (its first removal event comes later
#    than these 12 steps, so LayerNorm is still real: the fixed path costs the same, see the layernorm lab)
speed() {  # speed NAME L C NH MICRO_BATCH [TRAINER OPTIONS...]
    local dir="$out/shape_$1"
    mkdir -p "$dir"
    printf '{"model_type": "gpt2", "n_layer": %d, "n_embd": %d, "n_head": %d, "vocab_size": 50257, "n_positions": 1024}\n' \
        "$2" "$3" "$4" >"$dir/config.json"
    printf '{"random_init": true, "steps": 12, "micro_batch": %d, "grad_accum": 1}\n' "$5" >"$dir/recipe.json"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$dir/memory_mib.txt" &
    local sampler=$!
    run "speed_$1" 240 ./train_gpt2_lnfree -m "$dir" -r "$dir/recipe.json" --train "data/tiny/tiny_train_*.bin" \
        --val "data/tiny/tiny_val_*.bin" --eval-interval 0 --eval-batches 1 --no-save -o "$dir/run" "${@:6}"
    kill $sampler
    results+=("$(printf '  lnfree %-13s B=%-3d T=1024: %s tokens/s (median step), MFU %s, peak GPU memory %s MiB' "$1" "$5" \
        "$(median_tps "$dir/run/log.jsonl")" "$(median_tps "$dir/run/log.jsonl" mfu)" "$(sort -n "$dir/memory_mib.txt" | tail -n 1)")")
}
speed small 12 768 12 32
# the authors' eager attention does not fit micro-batch 32 in 80 GB; PyTorch's fused attention does
run pytorch_small_eager 120 "$python" dev/bench_pytorch.py --size small --batch 16 --attn eager
results+=("  $(tail -n 1 "$out/pytorch_small_eager.log" | cut -c1-220)")
run pytorch_small_sdpa 120 "$python" dev/bench_pytorch.py --size small --batch 32 --attn sdpa
results+=("  $(tail -n 1 "$out/pytorch_small_sdpa.log" | cut -c1-220)")
speed xl 48 1600 25 18
speed xl_products 48 1600 25 18 --attention products  # the product-based attention, for the ratio

# the attention anchor: PyTorch's flash SDPA at XL's layer shape, beside the lab's attention rows below
run pytorch_sdpa_xl 60 "$python" dev/bench_sdpa.py
results+=("  $(tail -n 1 "$out/pytorch_sdpa_xl.log" | cut -c1-220)")

# 4. the kernel lab
lab='fail=0; for p in layernorm attention classifier encoder elementwise aux_loss adamw matmul; do
    echo; build/cuda_lab/$p || fail=1; done; exit $fail'
[ -x build/cuda_lab/matmul ] && run kernel_lab 200 bash -c "$lab"

# 5. the kernel tests under compute-sanitizer's memcheck: out-of-bounds and misaligned accesses on the GPU
command -v compute-sanitizer >/dev/null &&
    run memcheck 150 compute-sanitizer --tool memcheck --error-exitcode 3 build/test_kernels_gpu "[attention],[layernorm],[classifier],[encoder]"

echo
echo "=== gpu_check summary ($(cat "$out/gpu.txt"))"
printf '%s\n' "${results[@]}"
