#!/usr/bin/env python3
"""The 2025 paper's interpretability diagnostics (method.md section 10, "Other analyses") for GPT-2 models in
Hugging Face format: how exact direct logit attribution is, the attention-sink rate, and the residual-stream norm
at position 0 against the other positions. Writes OUT/diagnostics.json and OUT/diagnostics.png.

    .venv/bin/python dev/diagnostics.py --model original=data/tiny/model --model lnfree=OUT/export/hf \\
        --shard data/tiny/tiny_val_000000.bin [--seq-len T] [--chunks N] [--batch B] [--device cpu|cuda] \\
        [--out DIR]

The shard (llm.c format) is cut into its first N consecutive T-token chunks (T defaults to the smallest context
of the models; N defaults to 16). No BOS is prepended, as in the paper's evaluation. Every model is loaded in
float32 with the eager attention: an LN-free `hf/` export has layer_norm_epsilon 1e12, which float16 cannot hold.

Definitions (doc/evaluation.md describes them too):

DLA. The final residual stream (the input of ln_f) is the sum of its components, each read with a forward hook:
token embedding, position embedding, every layer's attention output (after c_proj, bias included) and every MLP
output. ln_f is treated as the fixed linear map x -> (x - mean(x)) * w_f / s, with w_f the stored ln_f weight and
one constant s for the whole evaluation; a component's contribution to the logits is that map applied to it, times
W_U (the tied unembedding), and ln_f's bias contributes b_f @ W_U once. For an LN-free export (layer_norm_epsilon
above 1: w_f = gamma_f * 1e6 / sigma_f, eps 1e12), s = sqrt(eps), so w_f / s = gamma_f / sigma_f, the export's
fixed scale; the model's own ln_f differs from this map by a factor (1 + var / eps)^-1/2, negligible here. For a
model with real LayerNorm, s is the mean over every evaluated token of ln_f's per-token sqrt(var + eps), so the
map is only an approximation and the gap measures how much the per-token normalisation matters. The
contributions are computed one component at a time, in float64, and summed; the gap is |sum - logits| over every
evaluated token and vocabulary entry: its maximum and mean, and both divided by the largest |logit|. The
per-component table is the mean (and mean absolute) contribution to the logit of the correct next token, over
positions 0..T-2 of every chunk. `example` keeps one token's contributions (chunk 0, position (T-1)//2) so that a
test can recompute them independently.

Attention-sink rate. `sink_rate` is the authors' `utils.calculate_sink_rate` (submarat/removing-layer-norm, used
by their sink_rate.py; they cite Gu et al. 2025, "When attention sink emerges"): for every sequence, layer, head
and query position q (all T of them, q = 0 included), the indicator that the attention weight on key 0 is above
epsilon = 0.3 (strictly), averaged over all of them. It is the fraction of (head, query) pairs that sink, not a
count of heads; it is kept as the headline number because it is the one the paper reports. Position 0 can only
attend to itself, so each head gets 1/T for free, as in their code. `sink_rate_per_layer` is the same average
within each layer and `sink_fraction` the L x H matrix of per-head averages. The per-head reading of method.md's
wording is reported as well: `attn_to_pos0` is the L x H matrix of the mean attention weight on key 0 over
sequences and query positions q >= 1, and `sink_heads_rate` (`sink_heads_per_layer`) is the fraction of heads
(of each layer's heads) whose `attn_to_pos0` is above 0.3.

Residual norms. For the residual stream entering each block (`resid_pre.i`) and the final one (the input of
ln_f, `final`): the mean L2 norm at position 0, the mean over positions >= 1, and their ratio.

Bad input (a missing model directory, a shard not in llm.c's format, a token id outside a model's vocabulary,
models whose vocabularies disagree, a chunk length over a model's context) gives one line on stderr and exit 1.
"""

import argparse
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "dev", "data"))
import lnfree_data  # noqa: E402

SINK_EPSILON = 0.3
DEFAULT_CHUNKS = 16
LN_FREE_MIN_EPS = 1.0  # doc/formats.md: a layer_norm_epsilon above 1 marks an LN-free export
DLA_BLOCK_ELEMENTS = 1 << 23  # float64 (tokens x vocab) matrices are processed in blocks of about 64 MB


class InputError(Exception):
    """Bad input from the command line; the message names the option or file and what to do."""


# ---------------------------------------------------------------------------------------------------------------
# inputs


def parse_model_specs(specs):
    """`LABEL=DIR` strings -> [(label, dir)], checking each directory holds a GPT-2 config."""
    models = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise InputError(f"--model {spec!r}: expected LABEL=DIR, e.g. --model lnfree=out/export/hf")
        if label in dict(models):
            raise InputError(f"--model {spec!r}: the label {label!r} is used twice; give each model its own label")
        models.append((label, path))
    if not models:
        raise InputError("no --model given: pass at least one, e.g. --model original=data/tiny/model")
    return models


def read_config(label, path):
    """The model directory's config.json, after checking it is a GPT-2 model the diagnostics understand."""
    where = f"--model {label}={path}"
    if not os.path.isdir(path):
        raise InputError(f"{where}: no such directory; give a Hugging Face GPT-2 model directory "
                         "(e.g. data/tiny/model or a run's export/hf)")
    cfg_path = os.path.join(path, "config.json")
    try:
        with open(cfg_path) as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{where}: no config.json; is this a Hugging Face model directory "
                         "(a run's export/hf, not export/transformer_lens)?") from None
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{cfg_path}: unreadable config.json ({e}); re-export or re-download the model") from None
    if cfg.get("model_type") != "gpt2" or "n_layer" not in cfg:
        raise InputError(f"{cfg_path}: model_type {cfg.get('model_type')!r}, expected a gpt2 config; "
                         "the TransformerLens export is not supported, use the hf/ export")
    return cfg


def vocab_fingerprint(path):
    """sha256 of the directory's vocab.json, or None when it has none."""
    vocab = os.path.join(path, "vocab.json")
    return lnfree_data.sha256_file(vocab) if os.path.isfile(vocab) else None


def check_vocabularies(models, configs):
    """All models must share one vocabulary: the same size and, where both have one, the same vocab.json."""
    (label0, path0), cfg0 = models[0], configs[0]
    fp0 = vocab_fingerprint(path0)
    for (label, path), cfg in zip(models[1:], configs[1:]):
        if cfg["vocab_size"] != cfg0["vocab_size"]:
            raise InputError(f"--model {label}={path}: vocab_size {cfg['vocab_size']} disagrees with --model "
                             f"{label0}={path0} ({cfg0['vocab_size']}); compare models of the same tokenizer")
        fp = vocab_fingerprint(path)
        if fp is not None and fp0 is not None and fp != fp0:
            raise InputError(f"--model {label}={path}: its vocab.json differs from --model {label0}={path0}'s; "
                             "compare models of the same tokenizer")


def load_chunks(shard, seq_len, n_chunks, models, configs):
    """The shard's first n_chunks consecutive seq_len-token chunks as an int64 array (N, T), after checking every
    token id of the shard lies in each model's vocabulary."""
    import numpy as np

    if not os.path.isfile(shard):
        raise InputError(f"--shard {shard}: no such file; give an llm.c token shard (e.g. "
                         "data/tiny/tiny_val_000000.bin)")
    try:
        tokens = lnfree_data.read_shard(shard, mmap=True)
    except ValueError as e:
        raise InputError(f"--shard: {e}; give an llm.c token shard (doc/formats.md, dev/data/*.py write them)") \
            from None
    if tokens.size:
        top = int(tokens.max())
        for (label, _), cfg in zip(models, configs):
            if top >= cfg["vocab_size"]:
                raise InputError(f"--shard {shard}: token id {top} outside the vocabulary of --model {label} "
                                 f"(vocab_size {cfg['vocab_size']}); use a shard tokenized for this model")
    available = tokens.size // seq_len
    if available == 0:
        raise InputError(f"--shard {shard}: {tokens.size} tokens, fewer than one chunk of --seq-len {seq_len}; "
                         "use a longer shard or a smaller --seq-len")
    n = available if n_chunks <= 0 else min(n_chunks, available)
    return np.asarray(tokens[: n * seq_len], dtype=np.int64).reshape(n, seq_len), int(tokens.size)


def choose_seq_len(requested, models, configs):
    """--seq-len, or the smallest context of the models; it must fit every model's context."""
    contexts = [cfg.get("n_positions", cfg.get("n_ctx")) for cfg in configs]
    seq_len = requested if requested is not None else min(contexts)
    if seq_len < 2:
        raise InputError(f"--seq-len {seq_len}: need at least 2 tokens per chunk (one next-token target)")
    for (label, path), ctx in zip(models, contexts):
        if seq_len > ctx:
            raise InputError(f"--seq-len {seq_len}: longer than the context of --model {label}={path} "
                             f"(n_positions {ctx}); use --seq-len {ctx} or less")
    return seq_len


def load_model(label, path, device):
    """GPT2LMHeadModel in float32 (never float16: the LN-free export's eps 1e12 overflows it), eager attention so
    that output_attentions returns the weights."""
    import torch
    from transformers import GPT2LMHeadModel

    try:
        model = GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    except Exception as e:  # transformers raises many kinds; all mean "this directory is not a usable model"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"--model {label}={path}: cannot load it with transformers ({first})") from None
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------------------
# forward pass with hooks


class Recorder:
    """Forward hooks that keep, for the latest forward pass, what each module adds to the residual stream
    (`components`, in residual order), the stream entering each block (`resid_pre`) and entering ln_f (`final`)."""

    def __init__(self, model):
        t = model.transformer
        self.names = ["embed", "pos_embed"]
        for i in range(len(t.h)):
            self.names += [f"attn.{i}", f"mlp.{i}"]
        self.components, self.resid_pre, self.final = {}, [None] * len(t.h), None
        self.handles = [t.wte.register_forward_hook(self._keep_output("embed")),
                        t.wpe.register_forward_hook(self._keep_output("pos_embed")),
                        t.ln_f.register_forward_pre_hook(self._keep_final)]
        for i, block in enumerate(t.h):
            self.handles += [block.attn.register_forward_hook(self._keep_output(f"attn.{i}")),
                             block.mlp.register_forward_hook(self._keep_output(f"mlp.{i}")),
                             block.register_forward_pre_hook(self._keep_resid_pre(i))]

    def _keep_output(self, name):
        def hook(module, args, output):
            # GPT2Attention returns (output, weights); the output is after c_proj with its bias
            self.components[name] = (output[0] if isinstance(output, tuple) else output).detach()
        return hook

    def _keep_resid_pre(self, i):
        def hook(module, args):
            self.resid_pre[i] = args[0].detach()
        return hook

    def _keep_final(self, module, args):
        self.final = args[0].detach()

    def close(self):
        for h in self.handles:
            h.remove()


def forward(model, ids, attentions):
    """Logits (and the attention weights when asked) of one batch of chunks."""
    out = model(input_ids=ids, output_attentions=attentions, use_cache=False)
    return out.logits, (out.attentions if attentions else None)


def batches(chunks, batch, device):
    import torch

    for i in range(0, len(chunks), batch):
        yield i, torch.from_numpy(chunks[i:i + batch]).to(device)


def ln_f_token_scales(model, rec, chunks, batch, device):
    """ln_f's per-token sqrt(var + eps) and its input's std, over every evaluated token: (mean, min, max) each."""
    import torch

    eps = model.transformer.ln_f.eps
    scale = {"sum": 0.0, "min": math.inf, "max": 0.0, "std_sum": 0.0, "n": 0}
    for _, ids in batches(chunks, batch, device):
        forward(model, ids, attentions=False)
        var = rec.final.double().var(dim=-1, unbiased=False)  # LayerNorm's biased variance
        s = torch.sqrt(var + eps)
        scale["sum"] += s.sum().item()
        scale["std_sum"] += torch.sqrt(var).sum().item()
        scale["min"] = min(scale["min"], s.min().item())
        scale["max"] = max(scale["max"], s.max().item())
        scale["n"] += s.numel()
    return {"mean": scale["sum"] / scale["n"], "min": scale["min"], "max": scale["max"],
            "input_std_mean": scale["std_sum"] / scale["n"]}


# ---------------------------------------------------------------------------------------------------------------
# direct logit attribution


class DlaStats:
    """Accumulates the DLA gap and the per-component contributions to the correct next token over batches."""

    def __init__(self, names, model, s, example_pos):
        import torch

        lnf = model.transformer.ln_f
        self.names = names
        self.w_over_s = lnf.weight.detach().double() / s
        self.W_U = model.lm_head.weight.detach().double()  # (V, C), tied to wte
        self.bias_logits = self.W_U @ lnf.bias.detach().double()  # beta_f @ W_U, added once
        self.example_pos = example_pos
        self.example = None
        self.max_gap = self.sum_gap = self.max_logit = 0.0
        self.entries = self.targets = 0
        k = len(names)
        self.contrib_sum = torch.zeros(k, dtype=torch.float64)
        self.contrib_abs = torch.zeros(k, dtype=torch.float64)
        self.bias_sum = self.logit_sum = 0.0

    def add(self, ids, components, logits, first_chunk):
        """One batch: ids (B, T), components name -> (B or 1, T, C), the model's logits (B, T, V)."""
        B, T = ids.shape
        flat = {n: components[n].expand(B, T, -1).reshape(B * T, -1) for n in self.names}
        logits = logits.reshape(B * T, -1)
        targets = ids.new_full((B, T), -1)
        targets[:, :-1] = ids[:, 1:]  # position T-1 has no next token within the chunk
        targets = targets.reshape(-1)
        rows = max(1, DLA_BLOCK_ELEMENTS // self.W_U.shape[0])
        for r0 in range(0, B * T, rows):
            self._add_rows(slice(r0, min(r0 + rows, B * T)), flat, logits, targets, first_chunk)

    def _add_rows(self, rows, flat, logits, targets, first_chunk):
        import torch

        actual = logits[rows].double()
        tgt = targets[rows].to(actual.device)
        valid = tgt >= 0
        gather = tgt.clamp(min=0).unsqueeze(1)
        total = self.bias_logits.expand_as(actual).clone()
        per_target = []
        for name in self.names:
            x = flat[name][rows].double()
            contrib = ((x - x.mean(dim=-1, keepdim=True)) * self.w_over_s) @ self.W_U.T
            total += contrib
            per_target.append(contrib.gather(1, gather).squeeze(1))
        per_target = torch.stack(per_target)  # (components, rows)
        gap = (total - actual).abs()
        self.max_gap = max(self.max_gap, gap.max().item())
        self.sum_gap += gap.sum().item()
        self.entries += gap.numel()
        self.max_logit = max(self.max_logit, actual.abs().max().item())
        self.contrib_sum += per_target[:, valid].sum(dim=1).cpu()
        self.contrib_abs += per_target[:, valid].abs().sum(dim=1).cpu()
        self.targets += int(valid.sum())
        self.bias_sum += self.bias_logits[tgt[valid]].sum().item()
        self.logit_sum += actual.gather(1, gather).squeeze(1)[valid].sum().item()
        if first_chunk and rows.start <= self.example_pos < rows.stop:
            self._keep_example(self.example_pos - rows.start, per_target, total, actual, gap, tgt)

    def _keep_example(self, r, per_target, total, actual, gap, tgt):
        t = int(tgt[r])
        self.example = {
            "chunk": 0, "position": self.example_pos, "target": t,
            "components": {n: per_target[k, r].item() for k, n in enumerate(self.names)},
            "ln_f_bias": self.bias_logits[t].item(), "sum": total[r, t].item(), "logit": actual[r, t].item(),
            "max_abs_gap": gap[r].max().item(),
        }

    def result(self):
        n = max(self.targets, 1)
        mean = {name: {"mean": self.contrib_sum[k].item() / n, "mean_abs": self.contrib_abs[k].item() / n}
                for k, name in enumerate(self.names)}
        layers = [{"layer": i, "attn": mean[f"attn.{i}"], "mlp": mean[f"mlp.{i}"]}
                  for i in range((len(self.names) - 2) // 2)]
        rel = 1.0 / self.max_logit if self.max_logit else math.nan
        return {
            "max_abs_gap": self.max_gap, "mean_abs_gap": self.sum_gap / self.entries,
            "max_abs_logit": self.max_logit,
            "rel_max_gap": self.max_gap * rel, "rel_mean_gap": self.sum_gap / self.entries * rel,
            "correct_token": {"targets": self.targets, "logit_mean": self.logit_sum / n,
                              "ln_f_bias_mean": self.bias_sum / n, "embed": mean["embed"],
                              "pos_embed": mean["pos_embed"], "layers": layers},
            "example": self.example,
        }


# ---------------------------------------------------------------------------------------------------------------
# attention sinks and residual norms


class SinkStats:
    """Attention weight on key 0, accumulated per layer and head over batches."""

    def __init__(self, n_layer, n_head, epsilon):
        import torch

        self.epsilon = epsilon
        self.above = torch.zeros(n_layer, n_head, dtype=torch.float64)  # (query, sequence) pairs above epsilon
        self.weight_q1 = torch.zeros(n_layer, n_head, dtype=torch.float64)  # sum of weights, queries q >= 1
        self.queries = self.queries_q1 = 0

    def add(self, attentions):
        for layer, attn in enumerate(attentions):  # attn (B, H, T, T): query rows, key columns
            to0 = attn[:, :, :, 0].double()
            self.above[layer] += (to0 > self.epsilon).sum(dim=(0, 2)).cpu()
            self.weight_q1[layer] += to0[:, :, 1:].sum(dim=(0, 2)).cpu()
        B, _, T, _ = attentions[0].shape
        self.queries += B * T
        self.queries_q1 += B * (T - 1)

    def result(self):
        fraction = self.above / self.queries
        to0 = self.weight_q1 / max(self.queries_q1, 1)
        heads = (to0 > self.epsilon).double()
        return {
            "epsilon": self.epsilon,
            "sink_rate": fraction.mean().item(), "sink_rate_per_layer": fraction.mean(dim=1).tolist(),
            "sink_fraction": fraction.tolist(),
            "attn_to_pos0": to0.tolist(),
            "sink_heads_rate": heads.mean().item(), "sink_heads_per_layer": heads.mean(dim=1).tolist(),
        }


class NormStats:
    """Mean L2 norm of the residual stream at position 0 and over positions >= 1, per site."""

    def __init__(self, n_layer):
        self.sites = [f"resid_pre.{i}" for i in range(n_layer)] + ["final"]
        self.pos0 = [0.0] * len(self.sites)
        self.rest = [0.0] * len(self.sites)
        self.sequences = self.others = 0

    def add(self, rec):
        for k, x in enumerate(rec.resid_pre + [rec.final]):
            norm = x.double().norm(dim=-1)  # (B, T)
            self.pos0[k] += norm[:, 0].sum().item()
            self.rest[k] += norm[:, 1:].sum().item()
        B, T = norm.shape
        self.sequences += B
        self.others += B * (T - 1)

    def result(self):
        out = []
        for site, a, b in zip(self.sites, self.pos0, self.rest):
            p0, rest = a / self.sequences, b / max(self.others, 1)
            out.append({"site": site, "pos0": p0, "rest": rest, "ratio": p0 / rest if rest else math.nan})
        return out


# ---------------------------------------------------------------------------------------------------------------
# one model


def diagnose(label, path, chunks, batch, device):
    """Every diagnostic of one model, as a JSON-ready dict."""
    import torch

    model = load_model(label, path, device)
    cfg = model.config
    rec = Recorder(model)
    ln_free = cfg.layer_norm_epsilon > LN_FREE_MIN_EPS
    with torch.inference_mode():
        scales = ln_f_token_scales(model, rec, chunks, batch, device)
        if ln_free:
            s, source = math.sqrt(cfg.layer_norm_epsilon), "sqrt(layer_norm_epsilon): the LN-free export's fixed scale"
        else:
            s, source = scales["mean"], "mean over the evaluated tokens of ln_f's per-token sqrt(var + eps)"
        T = chunks.shape[1]
        dla = DlaStats(rec.names, model, s, example_pos=(T - 1) // 2)
        sinks = SinkStats(cfg.n_layer, cfg.n_head, SINK_EPSILON)
        norms = NormStats(cfg.n_layer)
        for i, ids in batches(chunks, batch, device):
            logits, attentions = forward(model, ids, attentions=True)
            dla.add(ids, rec.components, logits, first_chunk=(i == 0))
            sinks.add(attentions)
            norms.add(rec)
    rec.close()
    return {
        "path": path,
        "config": {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd, "vocab_size": cfg.vocab_size,
                   "n_positions": cfg.n_positions, "layer_norm_epsilon": cfg.layer_norm_epsilon, "ln_free": ln_free},
        "dla": {"ln_f_map": "(x - mean(x)) * ln_f.weight / s, plus ln_f.bias @ W_U once", "s": s, "s_source": source,
                "ln_f_token_scale": scales, **dla.result()},
        "sink": sinks.result(),
        "norms": norms.result(),
    }


# ---------------------------------------------------------------------------------------------------------------
# output


def write_json(path, data):
    body = json.dumps(data, indent=2, allow_nan=True).encode() + b"\n"
    lnfree_data._atomic_write(path, lambda f: f.write(body))


def _bar_offsets(n):
    width = 0.8 / n
    return width, [(k - (n - 1) / 2) * width for k in range(n)]


def plot_dla_gap(ax, results):
    labels = list(results)
    x = range(len(labels))
    kinds = [("rel_max_gap", "max |sum - logit| / max |logit|"), ("rel_mean_gap", "mean |sum - logit| / max |logit|")]
    width, offsets = _bar_offsets(len(kinds))
    for (key, name), off, colour in zip(kinds, offsets, ("tab:red", "tab:orange")):
        values = [max(results[m]["dla"][key], 1e-17) for m in labels]  # a log axis cannot show an exact 0
        bars = ax.bar([i + off for i in x], values, width, label=name, color=colour)
        ax.bar_label(bars, labels=[f"{v:.1e}" for v in values], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 100)  # headroom so the legend never covers a bar's label
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("relative gap (log scale)")
    ax.set_title("DLA check: sum of contributions vs logits")
    ax.legend(fontsize=8, loc="upper left")


def plot_dla_components(ax, results):
    labels = list(results)
    names = None
    width, offsets = _bar_offsets(len(labels))
    for k, (m, off) in enumerate(zip(labels, offsets)):
        ct = results[m]["dla"]["correct_token"]
        entries = [("embed", ct["embed"]), ("pos", ct["pos_embed"])]
        for layer in ct["layers"]:
            entries += [(f"a{layer['layer']}", layer["attn"]), (f"m{layer['layer']}", layer["mlp"])]
        names = [n for n, _ in entries]
        xs = [i + off for i in range(len(entries))]
        ax.bar(xs, [e["mean_abs"] for _, e in entries], width, color=f"C{k}", alpha=0.6, label=f"{m}: mean |c|")
        ax.plot(xs, [e["mean"] for _, e in entries], "o", color=f"C{k}", mec="black", ms=5, label=f"{m}: mean c")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel("component (a = attention, m = MLP, by layer)")
    ax.set_ylabel("contribution to the correct-token logit")
    ax.set_title("DLA: contribution to the correct next token")
    ax.legend(fontsize=8)


def plot_sink_rates(ax, results):
    labels = list(results)
    width, offsets = _bar_offsets(len(labels))
    for k, (m, off) in enumerate(zip(labels, offsets)):
        sink = results[m]["sink"]
        per_layer = sink["sink_rate_per_layer"]
        ax.bar([i + off for i in range(len(per_layer))], per_layer, width, color=f"C{k}",
               label=f"{m}: sink rate {sink['sink_rate']:.3f}")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("layer")
    ax.set_ylabel(f"fraction of (head, query) with attention to position 0 > {SINK_EPSILON}")
    ax.set_title("Attention-sink rate per layer (authors' definition)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)


def plot_norm_ratios(ax, results):
    for k, m in enumerate(results):
        norms = results[m]["norms"]
        ax.plot(range(len(norms)), [n["ratio"] for n in norms], "o-", color=f"C{k}", label=m)
    sites = [n["site"].replace("resid_pre.", "pre ") for n in norms]
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ratios = [n["ratio"] for r in results.values() for n in r["norms"] if n["ratio"] > 0]
    if ratios and max(ratios) / min(ratios) > 20:  # GPT-2's position 0 can be tens of times larger than the rest
        ax.set_yscale("log")
    ax.set_xticks(range(len(sites)), sites)
    ax.set_xlabel("residual stream entering block i, and the final one (ln_f input)")
    ax.set_ylabel("mean norm at position 0 / mean norm at positions >= 1")
    ax.set_title("Residual-stream norm: position 0 vs the rest")
    ax.legend(fontsize=8)


def plot_sink_matrix(ax, fig, label, sink):
    import numpy as np

    to0 = np.asarray(sink["attn_to_pos0"])
    im = ax.imshow(to0, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    if to0.size <= 96:  # numbers only where they stay legible
        for (i, j), v in np.ndenumerate(to0):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    L, H = to0.shape
    ax.set_xticks(range(0, H, max(1, H // 12)))
    ax.set_yticks(range(0, L, max(1, L // 12)))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"{label}: mean attention to position 0 (q >= 1)\nheads above {SINK_EPSILON}: "
                 f"{sink['sink_heads_rate']:.2f}", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.9)


def write_png(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 13), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2, 1])
    axes = top.subplots(2, 2)
    plot_dla_gap(axes[0, 0], results)
    plot_dla_components(axes[0, 1], results)
    plot_sink_rates(axes[1, 0], results)
    plot_norm_ratios(axes[1, 1], results)
    heat = bottom.subplots(1, max(2, len(results)), squeeze=False)[0]  # one model alone is not stretched wide
    for ax, (label, r) in zip(heat, results.items()):
        plot_sink_matrix(ax, bottom, label, r["sink"])
    for ax in heat[len(results):]:
        ax.set_visible(False)
    fig.suptitle("Interpretability diagnostics (dev/diagnostics.py)", fontsize=14)
    lnfree_data._atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def print_summary(label, r):
    d, s = r["dla"], r["sink"]
    print(f"{label}: DLA gap max {d['max_abs_gap']:.3e} (relative {d['rel_max_gap']:.3e}), mean "
          f"{d['mean_abs_gap']:.3e} (relative {d['rel_mean_gap']:.3e}); s = {d['s']:.6g}")
    print(f"  sink rate {s['sink_rate']:.4f} (per layer {', '.join(f'{v:.3f}' for v in s['sink_rate_per_layer'])}); "
          f"heads above {s['epsilon']}: {s['sink_heads_rate']:.3f}")
    print("  norm ratio pos0/rest: " + ", ".join(f"{n['site']} {n['ratio']:.3f}" for n in r["norms"]))
    print("  mean contribution to the correct token (|c| / c):  layer  attn  mlp")
    for row in d["correct_token"]["layers"]:
        print(f"    {row['layer']:3d}  {row['attn']['mean_abs']:8.4f} / {row['attn']['mean']:8.4f}   "
              f"{row['mlp']['mean_abs']:8.4f} / {row['mlp']['mean']:8.4f}")


# ---------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=DIR",
                    help="a Hugging Face GPT-2 model directory and its label; repeat for each model")
    ap.add_argument("--shard", required=True, help="llm.c token shard to evaluate on")
    ap.add_argument("--seq-len", "-T", type=int, default=None, help="chunk length (default: the models' context)")
    ap.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS,
                    help=f"number of chunks from the shard's start (default {DEFAULT_CHUNKS}; 0 = all)")
    ap.add_argument("--batch", type=int, default=1, help="chunks per forward pass (default 1)")
    ap.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    ap.add_argument("--out", default="out/diagnostics", help="output directory (default out/diagnostics)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.batch < 1:
        raise InputError(f"--batch {args.batch}: must be at least 1")
    models = parse_model_specs(args.model)
    configs = [read_config(label, path) for label, path in models]
    check_vocabularies(models, configs)
    seq_len = choose_seq_len(args.seq_len, models, configs)
    chunks, shard_tokens = load_chunks(args.shard, seq_len, args.chunks, models, configs)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out {args.out}: cannot create the directory ({e.strerror})") from None

    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # keep stderr to our own one-line errors
    transformers.logging.disable_progress_bar()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    results = {}
    for label, path in models:
        results[label] = diagnose(label, path, chunks, args.batch, device)
        print_summary(label, results[label])
    report = {
        "inputs": {"models": dict(models), "shard": args.shard, "shard_tokens": shard_tokens, "seq_len": seq_len,
                   "chunks": int(chunks.shape[0]), "chunks_requested": args.chunks, "tokens": int(chunks.size),
                   "batch": args.batch, "device": device, "sink_epsilon": SINK_EPSILON},
        "models": results,
    }
    json_path, png_path = os.path.join(args.out, "diagnostics.json"), os.path.join(args.out, "diagnostics.png")
    write_json(json_path, report)
    write_png(png_path, results)
    print(f"diagnostics: wrote {json_path} and {png_path}")


def run_main():
    """main(), with bad input turned into one line on stderr and exit status 1 (dev/data/lnfree_data.py's style)."""
    try:
        main()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_main()
