"""The PyTorch baseline for the trainer's speed: one training step of Hugging Face's GPT2LMHeadModel as the
authors' runs took it (method.md 6.1: fp32 weights, bf16 autocast, AdamW, clipping 1.0, dropout 0.1), timed on the
GPU with the same micro-batch and sequence length as train_gpt2_lnfree. It leaves out what the LayerNorm removal
adds (the sigma EMA with its host syncs, the aux loss), so it is a generous baseline.

    python dev/bench_pytorch.py --size small --batch 32 --attn eager   # the paper runs' attention
    python dev/bench_pytorch.py --size small --batch 32 --attn sdpa    # PyTorch's fused attention

Weights are random (the speed does not depend on them); prints one JSON line with tokens per second."""
import argparse
import json
import sys
import time

SIZES = {"small": (12, 768, 12), "medium": (24, 1024, 16), "large": (36, 1280, 20), "xl": (48, 1600, 25)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=SIZES, default="small")
    ap.add_argument("--batch", type=int, default=32, help="sequences per step")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    args = ap.parse_args()

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if not torch.cuda.is_available():
        sys.exit("bench_pytorch.py: no CUDA GPU; this baseline only means something on the GPU")
    torch.backends.cuda.matmul.allow_tf32 = False  # as in the paper runs
    L, C, NH = SIZES[args.size]
    config = GPT2Config(n_layer=L, n_embd=C, n_head=NH, attn_implementation=args.attn)
    model = GPT2LMHeadModel(config).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, fused=True)
    gen = torch.Generator(device="cuda").manual_seed(0)
    batch = torch.randint(0, config.vocab_size, (args.batch, args.seq_len), device="cuda", generator=gen)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step().item()  # the host waits for the step, as a training loop that logs its loss does
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({"baseline": "transformers GPT2LMHeadModel", "size": args.size, "attn": args.attn,
                      "batch": args.batch, "seq_len": args.seq_len, "median_step_seconds": median,
                      "tokens_per_second": args.batch * args.seq_len / median,
                      "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9,
                      "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
