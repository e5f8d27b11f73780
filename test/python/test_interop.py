"""Interoperability with the real libraries: the engine's Hugging Face loader against transformers' own
GPT2LMHeadModel, the hf/ export loaded by stock transformers, and the folded state dict loaded by TransformerLens
with no normalization. Logits must agree to 1e-4 relative (||ours - theirs|| / ||theirs||).

Needs build/lnfree_tool (make) and transformers, transformer-lens, torch in .venv (dev/setup.sh --python)."""

import json
import os
import subprocess

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "build", "lnfree_tool")
SHAPE = dict(n_layer=3, n_embd=40, n_head=5, vocab_size=97, n_positions=32)
TOKENS = [5, 17, 96, 0, 42, 42, 7, 88, 13, 60, 1, 2, 3, 95, 50, 23, 31, 64, 9, 77]


def rel(ours, theirs):
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


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


def tool_logits(tmp_path, model_dir, sigma_path=None):
    out = str(tmp_path / "logits.safetensors")
    cmd = [TOOL, "logits", str(model_dir), ",".join(map(str, TOKENS)), out]
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


def test_folded_export_loads_in_transformer_lens_without_normalization(tmp_path):
    lnfree_logits = lnfree_export(tmp_path)
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    config = json.loads((tmp_path / "out" / "transformer_lens" / "config.json").read_text())
    assert config["normalization_type"] is None
    model = HookedTransformer(HookedTransformerConfig(**{k: v for k, v in config.items() if k != "dtype"}))
    state = load_file(tmp_path / "out" / "transformer_lens" / "model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected
    assert all(k.endswith((".mask", ".IGNORE")) for k in missing), missing  # TL's attention buffers only
    with torch.no_grad():
        tl_logits = model(torch.tensor([TOKENS])).double().numpy()[0]
    assert rel(lnfree_logits, tl_logits) <= 1e-4
