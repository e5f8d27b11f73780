#!/usr/bin/env bash
# The CUDA compile gate, run by `make test`: nvcc builds every kernel of kernels/ in both precisions for sm_80 and
# sm_90a (test/kernels/instantiate_kernels.cu) and this fails if ptxas reports a spill in any of them; no raw
# <<< >>> launch may exist outside kernels/launch.cuh; the GPU build of the kernel tests and the kernel lab must
# compile. Nothing runs: there is no GPU here. Without nvcc it says so and exits 0 (the CPU build needs none).
set -euo pipefail
cd "$(dirname "$0")/.."

raw=$(grep -rn --include='*.cu' --include='*.cuh' --include='*.h' --include='*.cpp' '<<<' kernels lnfree dev test \
      $(ls train_gpt2_lnfree.cu 2>/dev/null) | grep -v '^kernels/launch.cuh:' || true)
if [ -n "$raw" ]; then
    echo "check_kernels: raw <<< >>> launches outside kernels/launch.cuh (use launch_kernel):" >&2
    echo "$raw" >&2
    exit 1
fi

NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then
    echo "check_kernels: SKIPPED: nvcc not found (install the CUDA toolkit to run the GPU compile gate)"
    exit 0
fi

out=build/nvcc
mkdir -p "$out"
arch=(-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a --threads 0)  # both at once
"$NVCC" -std=c++20 -O3 -I. "${arch[@]}" -Xptxas -v -c test/kernels/instantiate_kernels.cu -o "$out/instantiate_kernels.o" \
    > "$out/ptxas.log" 2>&1 || { cat "$out/ptxas.log" >&2; echo "check_kernels: nvcc failed" >&2; exit 1; }
kernels=$(grep -c 'Compiling entry function' "$out/ptxas.log")
spills=$(grep -E 'bytes spill stores|bytes spill loads' "$out/ptxas.log" | grep -v ' 0 bytes spill stores, 0 bytes spill loads' || true)
if [ -n "$spills" ]; then
    echo "check_kernels: ptxas reports register spills (see $out/ptxas.log):" >&2
    grep -B3 -E '[1-9][0-9]* bytes spill' "$out/ptxas.log" | grep -E 'Compiling entry|spill' >&2
    exit 1
fi
# the emulator's own example kernels, written to its rules, build under nvcc too
"$NVCC" -std=c++20 -I. "${arch[@]}" -c test/emulation/example_nvcc.cu -o "$out/example_nvcc.o" \
    || { echo "check_kernels: test/emulation/example_nvcc.cu does not build with nvcc" >&2; exit 1; }
max_regs=$(sed -n 's/.*Used \([0-9]*\) registers.*/\1/p' "$out/ptxas.log" | sort -n | tail -1)
echo "check_kernels: $kernels kernel builds for sm_80 and sm_90a, no spills (at most $max_regs registers per thread)"

make --no-print-directory -j2 test-gpu-build NVCC="$NVCC" > "$out/test_gpu.log" 2>&1 \
    || { cat "$out/test_gpu.log" >&2; echo "check_kernels: the GPU kernel tests do not build" >&2; exit 1; }
echo "check_kernels: GPU kernel tests built (build/test_kernels_gpu; run it with make test-gpu on a GPU machine)"
make --no-print-directory train NVCC="$NVCC" > "$out/train.log" 2>&1 \
    || { cat "$out/train.log" >&2; echo "check_kernels: the GPU trainer does not build" >&2; exit 1; }
echo "check_kernels: GPU trainer built (train_gpt2_lnfree)"
if [ -f dev/cuda/Makefile ]; then
    make --no-print-directory -j2 -C dev/cuda NVCC="$NVCC" > "$out/lab.log" 2>&1 \
        || { cat "$out/lab.log" >&2; echo "check_kernels: the kernel lab does not build" >&2; exit 1; }
    echo "check_kernels: kernel lab built (build/cuda_lab; run it with make -C dev/cuda run on a GPU machine)"
fi
