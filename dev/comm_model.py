"""The data-parallel scaling model of doc/multi-gpu.md, on paper: bytes each process sends per optimizer step for
every GPT-2 size, what they cost over NVLink and InfiniBand, against the step's compute time.

Per step each of P processes (ring algorithms, NCCL's for large messages):
  - reduce-scatter of the float32 gradients:        (P - 1) / P * 4 N bytes sent
  - all-gather of the bf16 compute copy:            (P - 1) / P * 2 N bytes sent
  - per micro-batch, 2L + 1 all-gathers of one float (the sigma statistics): latency, not bandwidth
Time of a collective = bytes sent / bus bandwidth + latency. The assumptions are the constants below.
Run: python dev/comm_model.py (prints the markdown tables of doc/multi-gpu.md)."""

SHAPES = {"small": (12, 768), "medium": (24, 1024), "large": (36, 1280), "xl": (48, 1600)}
VP, MAX_T, T = 50304, 1024, 1024
# the presets' (micro-batch, micro-batches per step): 512, 506, 504 and 504 sequences of 1024 tokens
RECIPES = {"small": (32, 16), "medium": (22, 23), "large": (18, 28), "xl": (18, 28)}

# Measured on one H100 80GB, bf16, by dev/gpu_check.sh (README, 2026-11-26): training tokens/s of one GPU.
MEASURED_TOKENS_PER_S = {"small": 175_500, "xl": 20_700}
# medium and large were not measured: assumed at XL's measured model-FLOP utilisation (6 N FLOPs per token)
H100_BF16_FLOPS = 989e12
NVLINK_BUS_GBPS = 370.0  # NCCL bus bandwidth, 8 H100 SXM over NVSwitch (NVLink 4: 450 GB/s each way per GPU)
IB_BUS_GBPS = 45.0       # NCCL bus bandwidth across nodes, one 400 Gb/s NDR adapter per GPU
NVLINK_LATENCY_S, IB_LATENCY_S = 10e-6, 25e-6  # one small collective


def parameters(L, C):
    per_layer = 2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C + 4 * C * C + C
    return VP * C + MAX_T * C + L * per_layer + 2 * C


def tokens_per_s(size):
    if size in MEASURED_TOKENS_PER_S:
        return MEASURED_TOKENS_PER_S[size], "measured"
    L, C = SHAPES["xl"]
    mfu = MEASURED_TOKENS_PER_S["xl"] * 6 * parameters(L, C) / H100_BF16_FLOPS
    L, C = SHAPES[size]
    return mfu * H100_BF16_FLOPS / (6 * parameters(L, C)), f"assumed: {mfu:.0%} MFU, as XL"


def main():
    print("| size | parameters N | bytes sent per process per step, P = 8 | tokens/s per GPU |")
    print("|---|---|---|---|")
    for size, (L, C) in SHAPES.items():
        N = parameters(L, C)
        rate, how = tokens_per_s(size)
        print(f"| {size} | {N / 1e6:,.0f} M | {6 * N * 7 / 8 / 1e9:.2f} GB | {rate:,.0f} ({how}) |")
    print()
    print("| size | P | sequences per GPU per step | compute s/step | NVLink s/step (share) | 2 nodes over IB, P = 16: "
          "s/step (share) |")
    print("|---|---|---|---|---|---|")
    for size, (L, C) in SHAPES.items():
        N = parameters(L, C)
        micro, accum = RECIPES[size]
        sequences = micro * accum
        rate, _ = tokens_per_s(size)
        for P in (2, 4, 8):
            compute = sequences * T / P / rate
            micro_steps = sequences / micro / P
            small = (2 * L + 1) * micro_steps
            nvlink = 6 * N * (P - 1) / P / (NVLINK_BUS_GBPS * 1e9) + (small + 3) * NVLINK_LATENCY_S
            row = f"| {size} | {P} | {sequences / P:.0f} | {compute:.2f} | {nvlink:.3f} ({nvlink / (compute + nvlink):.1%}) |"
            if P == 8:
                P16 = 16
                compute16 = sequences * T / P16 / rate
                ib = 6 * N * (P16 - 1) / P16 / (IB_BUS_GBPS * 1e9) + ((2 * L + 1) * sequences / micro / P16 + 3) * IB_LATENCY_S
                row += f" {ib:.3f} ({ib / (compute16 + ib):.1%}) of {compute16:.2f} s compute |"
            else:
                row += " |"
            print(row)


if __name__ == "__main__":
    main()
