"""The main job with no arguments: the CPU build removes every LayerNorm of the bundled tiny model (data/tiny). It
ends LN-free within 0.10 nats of where it started, and its hf/ export, loaded by stock transformers, gives the same
validation loss as summary.json (1e-3)."""

import json
import os
import sys

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from transformers import GPT2LMHeadModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev", "data"))
import lnfree_data  # noqa: E402


def test_default_run_removes_every_layernorm_of_the_tiny_model(tiny_lnfree_run):
    out = tiny_lnfree_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "tiny"
    assert summary["real_ln_paths_remaining"] == 0
    assert summary["val_loss_final"] <= summary["val_loss_initial"] + 0.10

    recipe = summary["recipe"]
    T, B = recipe["seq_len"], recipe["micro_batch"]
    val = lnfree_data.read_shard(os.path.join(ROOT, "data", "tiny", "tiny_val_000000.bin"))
    chunks = torch.tensor(np.asarray(val[: len(val) // T * T], dtype=np.int64).reshape(-1, T))
    model = GPT2LMHeadModel.from_pretrained(out / "export" / "hf", dtype=torch.float32).eval()
    with torch.no_grad():
        losses = [model(chunks[i:i + B], labels=chunks[i:i + B]).loss.item() for i in range(0, len(chunks) // B * B, B)]
    assert abs(np.mean(losses) - summary["val_loss_final"]) <= 1e-3
