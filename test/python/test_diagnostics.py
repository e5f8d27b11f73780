"""dev/diagnostics.py on the bundled tiny model (data/tiny/model) and its LN-free export from the session's real run
(`tiny_lnfree_run`), on the first chunks of the tiny validation shard.

The LN-free export's direct logit attribution is exact to float32 rounding and the original model's is not. One
token's per-component contributions, the sink rates and the residual norms are recomputed here by a float64
GPT-2 forward written out from the weights (no hooks, no transformers forward), so a script that reported the
model's own logits as its "sum" would fail. Bad input gives one line on stderr and exit status 1."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from transformers import GPT2LMHeadModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "dev", "diagnostics.py")
TINY_MODEL = os.path.join(ROOT, "data", "tiny", "model")
TINY_VAL = os.path.join(ROOT, "data", "tiny", "tiny_val_000000.bin")
sys.path.insert(0, os.path.join(ROOT, "dev", "data"))
import lnfree_data  # noqa: E402

CHUNKS = 3


def run_script(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def diagnostics(tiny_lnfree_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("diagnostics")
    hf = str(tiny_lnfree_run / "export" / "hf")
    proc = run_script("--model", f"original={TINY_MODEL}", "--model", f"lnfree={hf}", "--shard", TINY_VAL,
                      "--chunks", str(CHUNKS), "--device", "cpu", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "diagnostics.json").read_text())
    return out, report, {"original": TINY_MODEL, "lnfree": hf}


def chunks_of(report):
    T, n = report["inputs"]["seq_len"], report["inputs"]["chunks"]
    tokens = lnfree_data.read_shard(TINY_VAL)
    return torch.tensor(np.asarray(tokens[: n * T], dtype=np.int64).reshape(n, T))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def manual_forward(model, ids):
    """float64 GPT-2 from the weights: the residual components, the stream entering each block, the final stream
    and the attention weights (B, H, T, T) of every layer."""
    p = {k: v.double() for k, v in model.state_dict().items()}
    cfg = model.config
    B, T = ids.shape
    C, H, eps = cfg.n_embd, cfg.n_head, cfg.layer_norm_epsilon
    comps = {"embed": p["transformer.wte.weight"][ids], "pos_embed": p["transformer.wpe.weight"][:T].expand(B, T, C)}
    x = comps["embed"] + comps["pos_embed"]
    resid_pre, attns = [], []
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(cfg.n_layer):
        w = lambda name: p[f"transformer.h.{i}.{name}"]  # noqa: E731
        resid_pre.append(x)
        qkv = layer_norm(x, w("ln_1.weight"), w("ln_1.bias"), eps) @ w("attn.c_attn.weight") + w("attn.c_attn.bias")
        q, k, v = (t.reshape(B, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=-1))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(C // H)
        att = torch.softmax(scores.masked_fill(~causal, -math.inf), dim=-1)
        attns.append(att)
        a = (att @ v).transpose(1, 2).reshape(B, T, C) @ w("attn.c_proj.weight") + w("attn.c_proj.bias")
        x = x + a
        h = layer_norm(x, w("ln_2.weight"), w("ln_2.bias"), eps) @ w("mlp.c_fc.weight") + w("mlp.c_fc.bias")
        m = gelu_new(h) @ w("mlp.c_proj.weight") + w("mlp.c_proj.bias")
        x = x + m
        comps[f"attn.{i}"], comps[f"mlp.{i}"] = a, m
    return comps, resid_pre, x, attns


@pytest.fixture(scope="module")
def recomputed(diagnostics):
    _, report, paths = diagnostics
    ids = chunks_of(report)
    out = {}
    for label, path in paths.items():
        model = GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = model(ids).logits.double()
            out[label] = (model, logits, *manual_forward(model, ids))
    return ids, out


def test_files_exist_and_inputs_are_recorded(diagnostics):
    out, report, paths = diagnostics
    assert (out / "diagnostics.png").stat().st_size > 10_000
    assert not list(out.glob("*.tmp"))
    inputs = report["inputs"]
    assert inputs["models"] == paths and inputs["shard"] == TINY_VAL
    assert inputs["seq_len"] == 256 and inputs["chunks"] == CHUNKS and inputs["tokens"] == CHUNKS * 256


def test_dla_is_exact_for_the_lnfree_export_only(diagnostics):
    _, report, _ = diagnostics
    lnfree, original = report["models"]["lnfree"]["dla"], report["models"]["original"]["dla"]
    assert report["models"]["lnfree"]["config"]["ln_free"] and not report["models"]["original"]["config"]["ln_free"]
    assert lnfree["s"] == 1e6
    assert 0 < lnfree["rel_max_gap"] <= 1e-5
    assert original["rel_max_gap"] >= 100 * lnfree["rel_max_gap"]
    assert original["rel_mean_gap"] >= 100 * lnfree["rel_mean_gap"]
    for d in (lnfree, original):
        assert d["mean_abs_gap"] <= d["max_abs_gap"]
        layers = d["correct_token"]["layers"]
        assert [r["layer"] for r in layers] == [0, 1, 2, 3]
        assert all(math.isfinite(r[k]["mean"]) and r[k]["mean_abs"] >= abs(r[k]["mean"]) for r in layers
                   for k in ("attn", "mlp"))


@pytest.mark.parametrize("label", ["lnfree", "original"])
def test_one_tokens_contributions_recomputed_independently(diagnostics, recomputed, label):
    _, report, _ = diagnostics
    ids, models = recomputed
    model, logits, comps, _, final, _ = models[label]
    cfg, dla = model.config, report["models"][label]["dla"]
    ex = dla["example"]
    pos, target = ex["position"], int(ids[0, ex["position"] + 1])
    assert ex["chunk"] == 0 and ex["target"] == target

    # s: the export's fixed scale, or the mean of ln_f's per-token sqrt(var + eps) over every evaluated token
    eps = cfg.layer_norm_epsilon
    s = math.sqrt(eps) if eps > 1 else torch.sqrt(final.var(-1, unbiased=False) + eps).mean().item()
    assert dla["s"] == pytest.approx(s, rel=1e-6)
    p = {k: v.double() for k, v in model.state_dict().items()}
    w_f, b_f, W_U = p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], p["transformer.wte.weight"]
    mine = {}
    for name, c in comps.items():
        x = c[0, pos]
        mine[name] = (((x - x.mean()) * w_f / s) @ W_U[target]).item()
    my_sum = sum(mine.values()) + (b_f @ W_U[target]).item()
    scale = dla["max_abs_logit"]

    assert ex["components"].keys() == mine.keys()
    for name in mine:
        assert abs(ex["components"][name] - mine[name]) <= 1e-5 * scale, name
    assert abs(ex["ln_f_bias"] - (b_f @ W_U[target]).item()) <= 1e-6 * scale
    assert abs(ex["sum"] - (sum(ex["components"].values()) + ex["ln_f_bias"])) <= 1e-9 * scale
    assert abs(ex["sum"] - my_sum) <= 1e-5 * scale
    assert ex["logit"] == pytest.approx(logits[0, pos, target].item(), abs=1e-6 * scale)
    if label == "lnfree":
        assert abs(my_sum - ex["logit"]) <= 1e-5 * scale  # exact attribution
    else:
        assert abs(my_sum - ex["logit"]) >= 1e-3 * scale  # so a script reporting the logit as its sum fails here


@pytest.mark.parametrize("label", ["lnfree", "original"])
def test_sink_rates_and_norms_recomputed_independently(diagnostics, recomputed, label):
    _, report, _ = diagnostics
    _, models = recomputed
    model, _, _, resid_pre, final, attns = models[label]
    L, H = model.config.n_layer, model.config.n_head
    sink, norms = report["models"][label]["sink"], report["models"][label]["norms"]

    assert sink["epsilon"] == 0.3
    for key in ("sink_rate", "sink_heads_rate"):
        assert 0 <= sink[key] <= 1
    for key in ("sink_rate_per_layer", "sink_heads_per_layer"):
        assert len(sink[key]) == L and all(0 <= v <= 1 for v in sink[key])
    for key in ("sink_fraction", "attn_to_pos0"):
        m = np.asarray(sink[key])
        assert m.shape == (L, H) and np.isfinite(m).all() and (m >= 0).all() and (m <= 1).all()

    to0 = torch.stack([a[:, :, :, 0] for a in attns])  # (L, B, H, T)
    T = to0.shape[-1]
    fraction = (to0 > 0.3).double().mean(dim=(1, 3))
    # a weight within rounding of 0.3 could land either side in float32; count the disagreements it allows
    assert abs(sink["sink_rate"] - fraction.mean().item()) <= ((to0 - 0.3).abs() < 1e-5).sum().item() / to0.numel()
    assert sink["sink_rate"] >= 1 / T  # position 0 attends only to itself
    assert np.allclose(sink["attn_to_pos0"], to0[..., 1:].mean(dim=(1, 3)).numpy(), atol=1e-5)

    assert [n["site"] for n in norms] == [f"resid_pre.{i}" for i in range(L)] + ["final"]
    for n, x in zip(norms, resid_pre + [final]):
        norm = x.norm(dim=-1)
        assert n["pos0"] == pytest.approx(norm[:, 0].mean().item(), rel=1e-5)
        assert n["rest"] == pytest.approx(norm[:, 1:].mean().item(), rel=1e-5)
        assert math.isfinite(n["ratio"]) and n["ratio"] > 0 and n["ratio"] == pytest.approx(n["pos0"] / n["rest"])


def bad_vocab_model(tmp_path):
    """A copy of the tiny model's config with another vocabulary size (no weights: the check comes first)."""
    d = tmp_path / "other_vocab"
    d.mkdir()
    cfg = json.loads(open(os.path.join(TINY_MODEL, "config.json")).read())
    cfg["vocab_size"] = 4096
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d)


def out_of_vocab_shard(tmp_path):
    path = str(tmp_path / "big_ids.bin")
    lnfree_data.write_shard(path, np.full(600, 3000, dtype=np.uint16))
    return path


@pytest.mark.parametrize("case, names", [
    ("missing model", "--model"),
    ("not a shard", "--shard"),
    ("token outside the vocabulary", "token id 3000"),
    ("vocabularies disagree", "vocab_size 4096"),
])
def test_bad_input_gives_one_line_and_exit_1(tmp_path, case, names):
    model, shard, extra = f"original={TINY_MODEL}", TINY_VAL, []
    if case == "missing model":
        model = f"original={tmp_path / 'no_such_model'}"
    elif case == "not a shard":
        shard = os.path.join(TINY_MODEL, "config.json")
    elif case == "token outside the vocabulary":
        shard = out_of_vocab_shard(tmp_path)
    else:
        extra = ["--model", f"other={bad_vocab_model(tmp_path)}"]
    out = tmp_path / "out"
    proc = run_script("--model", model, *extra, "--shard", shard, "--device", "cpu", "--out", str(out))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], proc.stderr
    assert not (out / "diagnostics.json").exists()
