"""Shared fixtures of the Python tests. `tiny_lnfree_run` is the main job with no arguments (the CPU build removes
every LayerNorm of the bundled tiny model, about four minutes on two cores), run once per test session and used by
every test that needs a real LN-free model: its output directory holds summary.json, log.jsonl, the last
checkpoint and export/{hf,transformer_lens}. While developing, LNFREE_TINY_RUN=DIR reuses the output of an earlier
`train_gpt2_lnfree_cpu -o DIR` instead (make test never sets it)."""

import os
import pathlib
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_MODEL = os.path.join(ROOT, "data", "tiny", "model")
TINY_VAL = os.path.join(ROOT, "data", "tiny", "tiny_val_000000.bin")


@pytest.fixture(scope="session")
def tiny_lnfree_run(tmp_path_factory):
    if os.environ.get("LNFREE_TINY_RUN"):
        return pathlib.Path(os.environ["LNFREE_TINY_RUN"])
    out = tmp_path_factory.mktemp("tiny_run") / "out"
    subprocess.run([os.path.join(ROOT, "train_gpt2_lnfree_cpu"), "-o", str(out)], check=True, cwd=ROOT, timeout=1800,
                   stdout=subprocess.DEVNULL)
    return out
