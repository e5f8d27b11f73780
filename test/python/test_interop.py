"""Interoperability with the real libraries: the engine's Hugging Face loader against transformers' own
GPT2LMHeadModel, the hf/ export loaded by stock transformers and traced by NNSight, and the folded export loaded by
TransformerLens (dev/lnfree_models.py) with no normalization. Logits must agree to 1e-4 relative
(||ours - theirs|| / ||theirs||), the same model's activations in two libraries to 1e-5.

Needs build/lnfree_tool (make), train_gpt2_lnfree_cpu for the tiny run (conftest.py), and torch, transformers,
transformer-lens and nnsight in .venv (dev/setup.sh --python)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev"))
sys.path.insert(0, os.path.join(ROOT, "dev", "data"))
import lnfree_data  # noqa: E402
import lnfree_models  # noqa: E402
import nnsight  # noqa: E402

TOOL = os.path.join(ROOT, "build", "lnfree_tool")
TINY_VAL = os.path.join(ROOT, "data", "tiny", "tiny_val_000000.bin")
SHAPE = dict(n_layer=3, n_embd=40, n_head=5, vocab_size=97, n_positions=32)
TOKENS = [5, 17, 96, 0, 42, 42, 7, 88, 13, 60, 1, 2, 3, 95, 50, 23, 31, 64, 9, 77]


def rel(ours, theirs):
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def np64(t):
    return t.detach().double().numpy()


def random_model(seed=0):
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**SHAPE, activation_function="gelu_new"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.3 if "wte" in name else 0.1)
    return model.eval()


def hf_logits(model):
    with torch.no_grad():
        return model(torch.tensor([TOKENS])).logits[0].double().numpy()


def tool_logits(tmp_path, model_dir, sigma_path=None, tokens=TOKENS):
    out = str(tmp_path / "logits.safetensors")
    cmd = [TOOL, "logits", str(model_dir), ",".join(map(str, tokens)), out]
    subprocess.run(cmd + (["--sigma", str(sigma_path)] if sigma_path else []), check=True)
    from safetensors.numpy import load_file
    return load_file(out)["logits"].astype(np.float64)


@pytest.mark.parametrize("variant", ["float32", "float16", "bfloat16", "sharded"])
def test_loader_matches_transformers(tmp_path, variant):
    model = random_model()
    if variant in ("float16", "bfloat16"):
        model = model.to(getattr(torch, variant))
    kwargs = {"max_shard_size": "100KB"} if variant == "sharded" else {}
    model.save_pretrained(tmp_path / "ckpt", **kwargs)
    if variant == "sharded":
        assert (tmp_path / "ckpt" / "model.safetensors.index.json").exists()
    reference = hf_logits(model.float())
    assert rel(tool_logits(tmp_path, tmp_path / "ckpt"), reference) <= 1e-4


def lnfree_export(tmp_path):
    """A random checkpoint, sigmas near its real statistics, and the engine's export of the LN-free model."""
    random_model(1).save_pretrained(tmp_path / "ckpt")
    rng = np.random.default_rng(0)
    L = SHAPE["n_layer"]
    sigma = {"ln1": list(rng.uniform(0.3, 0.6, L)), "ln2": list(rng.uniform(0.3, 0.6, L)), "lnf": 0.7}
    (tmp_path / "sigma.json").write_text(json.dumps(sigma))
    subprocess.run([TOOL, "export", str(tmp_path / "ckpt"), str(tmp_path / "sigma.json"), str(tmp_path / "out")], check=True)
    return tool_logits(tmp_path, tmp_path / "ckpt", tmp_path / "sigma.json")


def test_hf_export_loads_in_stock_transformers(tmp_path):
    lnfree_logits = lnfree_export(tmp_path)
    model = GPT2LMHeadModel.from_pretrained(tmp_path / "out" / "hf", dtype=torch.float32).eval()
    assert model.config.layer_norm_epsilon == 1e12
    assert rel(lnfree_logits, hf_logits(model)) <= 1e-4


def transformer_lens_logits(export_dir, tokens):
    """The folded export through TransformerLens 4's bridge, which dev/requirements.txt installs."""
    model = lnfree_models.load_transformer_lens(export_dir)
    assert type(model).__name__ == "TransformerBridge"
    assert model.cfg.normalization_type is None
    assert torch.count_nonzero(model.unembed.b_U) > 0  # the folded ln_f shift, not the bridge's zero default
    with torch.no_grad():
        return np64(model(torch.tensor([tokens])))[0]


def test_folded_export_loads_in_transformer_lens_without_normalization(tmp_path):
    lnfree_logits = lnfree_export(tmp_path)
    config = json.loads((tmp_path / "out" / "transformer_lens" / "config.json").read_text())
    assert config["normalization_type"] is None
    assert rel(lnfree_logits, transformer_lens_logits(tmp_path / "out" / "transformer_lens", TOKENS)) <= 1e-4


@pytest.fixture(scope="module")
def tiny_run(tiny_lnfree_run, tmp_path_factory):
    """The real tiny LN-free run, 128 validation tokens, and the engine's logits of its last checkpoint with the
    run's sigmas (the fixed-scale forward the exports must reproduce)."""
    out = tiny_lnfree_run
    summary = json.loads((out / "summary.json").read_text())
    L = sum(1 for k in summary["sigma"] if k.endswith(".ln_1"))
    sigma = {"ln1": [summary["sigma"][f"blocks.{l}.ln_1"] for l in range(L)],
             "ln2": [summary["sigma"][f"blocks.{l}.ln_2"] for l in range(L)], "lnf": summary["sigma"]["ln_f"]}
    tmp = tmp_path_factory.mktemp("tiny_logits")
    (tmp / "sigma.json").write_text(json.dumps(sigma))
    last = max(out.glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[1]))
    tokens = lnfree_data.read_shard(TINY_VAL)[:128].tolist()
    return out, tokens, tool_logits(tmp, last / "model.bin", tmp / "sigma.json", tokens)


def test_tiny_run_folded_export_loads_in_transformer_lens(tiny_run):
    out, tokens, lnfree_logits = tiny_run
    assert rel(transformer_lens_logits(out / "export" / "transformer_lens", tokens), lnfree_logits) <= 1e-4


def test_nnsight_traces_the_tiny_run_residual_stream(tiny_run):
    out, tokens, lnfree_logits = tiny_run
    model = lnfree_models.load_nnsight(out / "export" / "hf")
    L = model.config.n_layer
    ids = torch.tensor([tokens])
    with model.trace(ids):
        resid = nnsight.save([model.transformer.h[l].output for l in range(L)])  # after each block
        final = model.transformer.ln_f.output.save()
        logits = model.lm_head.output.save()

    reference = GPT2LMHeadModel.from_pretrained(out / "export" / "hf", dtype=torch.float32).eval()
    with torch.no_grad():
        expected = reference(ids, output_hidden_states=True)
        # transformers' last hidden state is after ln_f; the last block's own output is checked through it
        last = reference.transformer.ln_f(resid[-1].detach())
    hidden = [np64(t) for t in expected.hidden_states]
    for l in range(L - 1):
        assert rel(np64(resid[l]), hidden[l + 1]) <= 1e-5, l
    assert rel(np64(final), hidden[L]) <= 1e-5
    assert rel(np64(last), hidden[L]) <= 1e-5
    assert rel(np64(logits), np64(expected.logits)) <= 1e-5
    assert rel(np64(logits)[0], lnfree_logits) <= 1e-4
