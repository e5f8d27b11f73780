"""The anchor for the attention kernels: PyTorch's scaled_dot_product_attention (its flash backend), causal, bf16,
dropout 0.1 as the recipe's, forward and backward of one layer at GPT-2 XL's micro-batch, timed with CUDA events.
The kernel lab (build/cuda_lab/attention) times lnfree's attentions at the same shape; dev/gpu_check.sh runs both.

    python dev/bench_sdpa.py [--B 18 --T 1024 --C 1600 --NH 25]

Prints one JSON line: milliseconds per forward and per backward (median of --reps), and TFLOP/s counting the causal
FLOPs as FlashAttention-2 does (forward 2 B NH T^2 hd, backward 2.5 times that)."""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--B", type=int, default=18)
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--C", type=int, default=1600)
    ap.add_argument("--NH", type=int, default=25)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not torch.cuda.is_available():
        sys.exit("bench_sdpa.py: no CUDA GPU; this anchor only means something on the GPU")
    hd = args.C // args.NH
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(args.B, args.NH, args.T, hd, device="cuda", dtype=torch.bfloat16, generator=gen,
                           requires_grad=True) for _ in range(3))
    dout = torch.randn(args.B, args.NH, args.T, hd, device="cuda", dtype=torch.bfloat16, generator=gen)

    def forward():
        return F.scaled_dot_product_attention(q, k, v, dropout_p=args.dropout, is_causal=True)

    def timed(fn):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(5):
            fn()
        times = []
        for _ in range(args.reps):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        times.sort()
        return times[len(times) // 2]

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        forward_ms = timed(forward)
        out = forward()

        def backward():
            torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

        backward_ms = timed(backward)
    flops = 2 * args.B * args.NH * args.T ** 2 * hd  # causal: the 4 B NH T^2 hd of two products, halved
    print(json.dumps({"anchor": "torch scaled_dot_product_attention, flash backend", "B": args.B, "T": args.T,
                      "C": args.C, "NH": args.NH, "dropout": args.dropout, "forward_ms": forward_ms,
                      "backward_ms": backward_ms, "forward_tflops": flops / forward_ms / 1e9,
                      "backward_tflops": 2.5 * flops / backward_ms / 1e9, "gpu": torch.cuda.get_device_name(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
