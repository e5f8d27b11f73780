"""The trainer end to end on the CPU build (train_gpt2_lnfree_cpu): a small random GPT-2 saved by transformers and
shards of a synthetic corpus. It removes every LayerNorm path, writes log.jsonl, checkpoints and summary.json, its
hf/ export gives transformers the same validation loss (1e-3), and a run killed mid-way and resumed gives the same
losses as the uninterrupted run, to the bit."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev", "data"))
import lnfree_data  # noqa: E402

TRAINER = os.path.join(ROOT, "train_gpt2_lnfree_cpu")
V, T = 61, 32
RECIPE = {"events": [{"kind": "ln2", "start": 2, "gap": 1}, {"kind": "ln1qk", "start": 4, "gap": 1},
                     {"kind": "ln1v", "start": 6, "gap": 1}, {"kind": "lnf", "start": 8}],
          "steps": 14, "micro_batch": 4, "grad_accum": 2, "seq_len": T, "lr": 1e-3, "min_lr": 1e-4, "warmup": 2,
          "schedule_length": 14, "w_aux": 0.1}


def synthetic_tokens(n, seed):
    """A learnable stream: runs of counting sequences with end-of-text (V-1) between 'documents'."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        start, length = rng.integers(0, V - 1), rng.integers(5, 40)
        out += [(start + 3 * i) % (V - 1) for i in range(length)] + [V - 1]
    return np.array(out[:n])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("trainer")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=V, n_positions=64))
    model.save_pretrained(d / "model")
    lnfree_data.write_shard(str(d / "tiny_train_000001.bin"), synthetic_tokens(T * 200, 1), vocab_size=V)
    lnfree_data.write_shard(str(d / "tiny_val_000000.bin"), synthetic_tokens(T * 24, 2), vocab_size=V)
    (d / "recipe.json").write_text(json.dumps(RECIPE))
    return d


def trainer_args(d, out, *extra):
    return [TRAINER, "-m", str(d / "model"), "--train", str(d / "tiny_train_*.bin"), "--val", str(d / "tiny_val_*.bin"),
            "-r", str(d / "recipe.json"), "-o", str(out), "--eval-interval", "0", *extra]


def losses(out):
    with open(out / "log.jsonl") as f:
        return {j["step"]: j["loss"] for j in map(json.loads, f) if "loss" in j}


def test_trainer_removes_every_layernorm_and_exports(setup):
    out = setup / "run"
    subprocess.run(trainer_args(setup, out), check=True, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    for key in ["model", "recipe", "steps", "tokens", "val_loss_initial", "val_loss_final", "real_ln_paths_remaining",
                "sigma", "wall_seconds", "tokens_per_second"]:
        assert key in summary
    assert summary["real_ln_paths_remaining"] == 0
    assert summary["steps"] == 14
    assert summary["val_loss_final"] < summary["val_loss_initial"]  # a random model learns the counting stream
    assert len(summary["sigma"]) == 2 * 2 + 1
    log = [json.loads(line) for line in open(out / "log.jsonl")]
    switched = [s for j in log for s in j.get("switched", [])]
    assert sorted(switched) == sorted(["ln2.0", "ln2.1", "ln1qk.0", "ln1qk.1", "ln1v.0", "ln1v.1", "lnf"])

    # the hf/ export, loaded by stock transformers, gives the trainer's validation loss
    model = GPT2LMHeadModel.from_pretrained(out / "export" / "hf", dtype=torch.float32).eval()
    val = lnfree_data.read_shard(str(setup / "tiny_val_000000.bin"))
    chunks = torch.tensor(np.asarray(val[: len(val) // T * T], dtype=np.int64).reshape(-1, T))
    batch = RECIPE["micro_batch"]
    with torch.no_grad():
        per_batch = [model(chunks[i:i + batch], labels=chunks[i:i + batch]).loss.item()
                     for i in range(0, len(chunks) // batch * batch, batch)]
    assert abs(np.mean(per_batch) - summary["val_loss_final"]) <= 1e-3

    # the loss curve with the removal events marked
    subprocess.run([sys.executable, os.path.join(ROOT, "dev", "plot_run.py"), str(out)], check=True)
    assert (out / "loss.png").stat().st_size > 10000


def test_killed_and_resumed_run_is_bit_identical(setup):
    full, killed = setup / "full", setup / "killed"
    subprocess.run(trainer_args(setup, full), check=True, timeout=600)
    # kill the second run as soon as it has written a checkpoint after step 5, then resume it
    proc = subprocess.Popen(trainer_args(setup, killed, "--checkpoint-interval", "1", "--keep-checkpoints", "3"),
                            stdout=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (killed / "checkpoint_5").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and not (killed / "summary.json").exists()  # it died mid-run
    assert not any(p.name.endswith(".tmp") and p.name.startswith("checkpoint") and (p / "state.json").exists()
                   for p in killed.iterdir())
    subprocess.run(trainer_args(setup, killed, "--resume", "latest", "--checkpoint-interval", "1"), check=True, timeout=600)
    a, b = losses(full), losses(killed)
    assert set(a) == set(b)
    assert all(a[s] == b[s] for s in a), {s: (a[s], b[s]) for s in a if a[s] != b[s]}
    assert json.loads((full / "summary.json").read_text())["val_loss_final"] == \
        json.loads((killed / "summary.json").read_text())["val_loss_final"]


def test_plan_for_gpt2_xl_fits_an_80_gb_gpu():
    """--plan needs no weights: the XL recipe's micro-batch of 18 must fit in 80 GB (bf16 activations)."""
    out = subprocess.run([TRAINER, "--plan", "-m", "xl"], check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if "micro-batch 18 needs" in l)
    needed = float(line.split("needs")[1].split("GB")[0])
    fit = int(line.split("at most")[1].split("fit")[0])
    assert needed < 80.0 and fit >= 18, line
    assert "from step 722" in out  # the XL removal schedule: ln_f at 722


def test_bad_options_give_one_line_and_a_nonzero_exit(tmp_path):
    for args, fragment in [(["--steps", "abc"], "--steps"), (["-m", str(tmp_path / "none")], "no such model"),
                           (["-m", "xl"], "python dev/download_model.py xl"), (["-r", "huge", "--plan", "-m", "xl"], "unknown")]:
        r = subprocess.run([TRAINER, *args], capture_output=True, text=True)
        assert r.returncode != 0 and fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_sigma_from_a_file_stays_fixed_and_random_windows_train(setup, tmp_path):
    """The 2024 way: sigma read from a file (here another run's summary format) and frozen by momentum 1, batches
    drawn as random windows; every logged sigma equals the file's, and the run removes every path."""
    sigma = {f"blocks.{l}.{ln}": 0.5 + l + (2 if ln == "ln_2" else 0) for l in range(2) for ln in ("ln_1", "ln_2")}
    sigma["ln_f"] = 3.25
    (tmp_path / "sigma.json").write_text(json.dumps({"sigma": sigma}))
    recipe = dict(RECIPE, sigma_file="sigma.json", momentum=1.0, sampling="random_windows", steps=10)
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    args = trainer_args(setup, tmp_path / "out")
    args[args.index("-r") + 1] = str(tmp_path / "recipe.json")
    subprocess.run(args, check=True, capture_output=True, text=True)
    expected = [sigma[f"blocks.{l}.ln_1"] for l in range(2)] + [sigma[f"blocks.{l}.ln_2"] for l in range(2)] + [3.25]
    with open(tmp_path / "out" / "log.jsonl") as f:
        steps = [json.loads(line) for line in f if '"loss"' in line]
    assert len(steps) == 10 and all(s["sigma"] == expected for s in steps)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["sigma"] == sigma and summary["real_ln_paths_remaining"] == 0
    assert summary["recipe"]["sampling"] == "random_windows" and summary["recipe"]["sigma_file"].endswith("sigma.json")
