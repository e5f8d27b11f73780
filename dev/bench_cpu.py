"""The PyTorch side of dev/bench_cpu.sh: training steps of the LN-free recipe on the CPU, on the shapes of the
engine's CPU run, in float32 and eager PyTorch (what a user without the engine would write).

    .venv/bin/python dev/bench_cpu.py --model data/tiny/model --batch 16 --seq-len 128 --threads 2

Each step is the engine's: embedding, L blocks with every LayerNorm replaced by its fixed-scale substitute
(x - mean) / sigma * gamma + beta, dropout on the embedding, the attention probabilities and both residual
branches, the tied classifier, cross-entropy plus the auxiliary loss (method.md section 5), the backward, global
norm clipping and AdamW. The weights are the model's own (config.json and model.safetensors of a Hugging Face
directory); the tokens are random (the speed does not depend on them). `--implementation transformers` times
Hugging Face's eager GPT2LMHeadModel instead, LayerNorm kept (no LN-free variant exists there).
Prints one JSON line: median step seconds and tokens per second over the timed steps."""
import argparse
import json
import math
import pathlib
import time

import torch
import torch.nn.functional as F


def load_model(path):
    from safetensors.torch import load_file
    cfg = json.loads((pathlib.Path(path) / "config.json").read_text())
    w = load_file(str(pathlib.Path(path) / "model.safetensors"))
    w = {k.removeprefix("transformer."): v.float() for k, v in w.items()}
    return cfg, w


class LNFreeGPT2(torch.nn.Module):
    """GPT-2 with every LayerNorm at its fixed scale: the state the engine's steps reach after the last removal."""

    def __init__(self, cfg, w, dropout, sigma):
        super().__init__()
        self.L, self.C, self.NH = cfg["n_layer"], cfg["n_embd"], cfg["n_head"]
        self.p, self.sigma = dropout, sigma
        self.params = torch.nn.ParameterDict({k.replace(".", "_"): torch.nn.Parameter(v.clone())
                                              for k, v in w.items() if k.split(".")[-2:] not in (["attn", "bias"], ["attn", "masked_bias"])})

    def P(self, name):
        return self.params[name.replace(".", "_")]

    def fixed_ln(self, x, prefix):
        return (x - x.mean(-1, keepdim=True)) / self.sigma * self.P(prefix + ".weight") + self.P(prefix + ".bias")

    def forward(self, idx, targets, w_aux, eot):
        B, T = idx.shape
        C, NH, hd = self.C, self.NH, self.C // self.NH
        x = F.dropout(self.P("wte.weight")[idx] + self.P("wpe.weight")[:T], self.p, self.training)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        for l in range(self.L):
            h = f"h.{l}."
            a = self.fixed_ln(x, h + "ln_1")
            qkv = a @ self.P(h + "attn.c_attn.weight") + self.P(h + "attn.c_attn.bias")  # HF Conv1D: (in, out)
            q, k, v = (t.view(B, T, NH, hd).transpose(1, 2) for t in qkv.split(C, dim=2))
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
            att = F.dropout(att.masked_fill(~causal, float("-inf")).softmax(-1), self.p, self.training)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            x = x + F.dropout(y @ self.P(h + "attn.c_proj.weight") + self.P(h + "attn.c_proj.bias"), self.p, self.training)
            m = self.fixed_ln(x, h + "ln_2")
            m = F.gelu(m @ self.P(h + "mlp.c_fc.weight") + self.P(h + "mlp.c_fc.bias"), approximate="tanh")
            x = x + F.dropout(m @ self.P(h + "mlp.c_proj.weight") + self.P(h + "mlp.c_proj.bias"), self.p, self.training)
        # the auxiliary loss on the input of ln_f: per-token std pulled toward the mean over non-sink positions
        s = torch.sqrt(x.var(-1, unbiased=False) + 1e-5)
        sink = torch.zeros_like(idx, dtype=torch.bool)
        sink[:, 0] = True
        sink |= idx == eot
        target = s.detach()[~sink].mean()
        aux = w_aux * ((s - target) ** 2).mean()
        logits = self.fixed_ln(x, "ln_f") @ self.P("wte.weight").t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1)) + aux


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="data/tiny/model", help="a Hugging Face GPT-2 directory")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the machine's cores)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps, after --warmup untimed ones")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--w-aux", type=float, default=0.1)
    ap.add_argument("--implementation", choices=["lnfree", "transformers"], default="lnfree")
    args = ap.parse_args()

    import os
    torch.set_num_threads(args.threads or os.cpu_count())
    torch.manual_seed(0)
    cfg, w = load_model(args.model)
    V, B, T = cfg["vocab_size"], args.batch, args.seq_len
    eot = cfg.get("eos_token_id", V - 1)
    if args.implementation == "lnfree":
        model = LNFreeGPT2(cfg, w, args.dropout, sigma=1.0).train()
        step_loss = lambda idx, tgt: model(idx, tgt, args.w_aux, eot)
    else:
        from transformers import GPT2Config, GPT2LMHeadModel
        conf = GPT2Config(**{k: v for k, v in cfg.items() if k in GPT2Config().to_dict()}, attn_implementation="eager",
                          resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout)
        model = GPT2LMHeadModel(conf).train()
        model.load_state_dict({"transformer." + k: v for k, v in w.items()}, strict=False)
        step_loss = lambda idx, tgt: model(input_ids=idx, labels=tgt).loss  # labels are shifted inside
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    tokens = torch.randint(0, V, (B, T + 1))
    idx, tgt = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def step():
        loss = step_loss(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    print(json.dumps({"implementation": args.implementation, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "batch": B, "seq_len": T, "steps": args.steps, "median_step_seconds": round(median, 5),
                      "tokens_per_second": round(B * T / median, 1)}))


if __name__ == "__main__":
    main()
