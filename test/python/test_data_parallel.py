"""Data-parallel runs of the CPU build under real OpenMPI (mpirun): the bundled tiny model with a recipe of 12
sequences per step (divisible by 1, 2 and 3 processes) and 13 removal events.

- 2 and 3 processes give one process's per-step losses, gradient norms and sigmas to 1e-6 relative, its
  validation losses to 1e-6, and its final weights to 1e-6 (per tensor, ||a - b|| / ||a||; the key biases, which
  Adam moves by rounding noise, to steps * lr in absolute terms). Measured here: 1e-7 and below. Bit for bit: the initial validation loss and step 0's losses and
  sigmas (same weights, and every sum the processes share is added in one-process order); after the first update
  the micro-batch gradients are added in another order (per process, then across), so the weights differ by
  rounding.
- A 2-process run killed at a random step (SIGKILL of one rank) and resumed gives the uninterrupted run's losses
  bit for bit; its checkpoint resumed by 3 processes stays within 1e-5 of the 2-process continuation.
- With 2 processes each holds half the master weights and moments; a failure in one rank ends the whole job
  within 60 s with that rank's message."""

import json
import os
import random
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAINER = os.path.join(ROOT, "train_gpt2_lnfree_cpu")
RECIPE = {"events": [{"kind": "ln2", "start": 2, "gap": 1}, {"kind": "ln1qk", "start": 6, "gap": 1},
                     {"kind": "ln1v", "start": 10, "gap": 1}, {"kind": "lnf", "start": 14}],
          "steps": 16, "micro_batch": 2, "grad_accum": 6, "seq_len": 64, "lr": 6e-4, "min_lr": 3e-4, "warmup": 2,
          "schedule_length": 16}
C = 128  # the tiny model's channels

pytestmark = pytest.mark.skipif(shutil.which("mpirun") is None, reason="OpenMPI's mpirun is missing (dev/setup.sh)")


def mpi_env():
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")  # root in CI; 3 processes on 2 cores
    return env


def trainer(out, recipe, *extra):
    return [TRAINER, "-r", str(recipe), "-o", str(out), "--eval-interval", "8", "--eval-batches", "4", *extra]


def launch(processes, args):
    return (["mpirun", "-np", str(processes)] if processes > 1 else []) + args


def run(processes, args, timeout=600):
    r = subprocess.run(launch(processes, args), env=mpi_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def log(out):
    with open(out / "log.jsonl") as f:
        lines = [json.loads(line) for line in f]
    return {j["step"]: j for j in lines if "loss" in j}, {j["step"]: j["val_loss"] for j in lines if "val_loss" in j}


def relative(a, b):
    return abs(a - b) / abs(a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("data_parallel")
    (d / "recipe.json").write_text(json.dumps(RECIPE))
    stdout = {}
    for p in (1, 2, 3):
        stdout[p] = run(p, trainer(d / f"np{p}", d / "recipe.json", "--checkpoint-interval", "4", "--keep-checkpoints", "5"))
    return d, stdout


def test_two_and_three_processes_train_as_one(runs):
    d, _ = runs
    one_steps, one_val = log(d / "np1")
    assert len(one_steps) == RECIPE["steps"] and len(one_val) == 3
    for p in (2, 3):
        steps, val = log(d / f"np{p}")
        assert steps.keys() == one_steps.keys() and val.keys() == one_val.keys()
        assert val[0] == one_val[0]  # the same weights, the batches' sums added in one order: bit for bit
        for s, a in one_steps.items():
            b = steps[s]
            assert b["switched"] == a["switched"]
            for key in ("loss", "aux_loss", "grad_norm"):
                assert relative(a[key], b[key]) <= 1e-6, (p, s, key, a[key], b[key])
            assert max(relative(x, y) for x, y in zip(a["sigma"], b["sigma"])) <= 1e-6, (p, s)
        assert steps[0]["loss"] == one_steps[0]["loss"] and steps[0]["aux_loss"] == one_steps[0]["aux_loss"]
        assert steps[0]["sigma"] == one_steps[0]["sigma"]
        assert all(relative(one_val[s], val[s]) <= 1e-6 for s in val), (val, one_val)

        # the final weights, through the hf/ export (every path is fixed: LN weights carry 1e6 / sigma)
        summary = json.loads((d / f"np{p}" / "summary.json").read_text())
        assert summary["real_ln_paths_remaining"] == 0 and summary["processes"] == p
        ref, got = (load_file(str(d / o / "export" / "hf" / "model.safetensors")) for o in ("np1", f"np{p}"))
        assert ref.keys() == got.keys()
        for name, a in ref.items():
            b = got[name]
            if name.endswith("attn.c_attn.bias"):  # the key biases: a gradient of exactly zero, moved by noise
                key = slice(C, 2 * C)
                assert np.abs(a[key] - b[key]).max() <= RECIPE["steps"] * RECIPE["lr"], (p, name)
                a, b = np.delete(a, np.s_[C:2 * C]), np.delete(b, np.s_[C:2 * C])
            error = np.linalg.norm(a - b) / np.linalg.norm(a)  # the tests' per-tensor relative error (fixtures.h)
            assert error <= 1e-6, (p, name, error)


def test_each_of_two_processes_holds_half_the_optimizer_state(runs):
    _, stdout = runs

    def optimizer_bytes(text):  # rank 0's, from the sizes of its allocated buffers
        line = next(l for l in text.splitlines() if l.startswith("memory     this process"))
        return int(line.split("optimizer state ")[1].split(" bytes")[0])

    one, two, three = (optimizer_bytes(stdout[p]) for p in (1, 2, 3))
    assert abs(two / one - 0.5) <= 1e-3 and abs(three / one - 1 / 3) <= 1e-3, (one, two, three)  # shards padded to 64

    def plan(gpus):
        out = subprocess.run([TRAINER, "--plan", "-m", "xl", "--gpus", str(gpus), "-B", "504", "-b", "9"], check=True,
                             capture_output=True, text=True).stdout
        line = next(l for l in out.splitlines() if l.startswith("memory     (per GPU, bf16, "))
        return {k: float(line.split(k)[1].split("GB")[0]) for k in ("parameters", "gradients", "optimizer")}, out

    (p1, _), (p2, text) = plan(1), plan(2)
    assert abs(p2["optimizer"] / p1["optimizer"] - 0.5) <= 0.01  # moments halved
    assert p2["gradients"] == p1["gradients"]  # ZeRO-1 keeps every gradient
    assert p2["parameters"] < p1["parameters"]  # the master weights halved, the bf16 copy whole
    table = [l.split() for l in text.splitlines() if l.startswith("memory") and l.split()[1:2] in (["1"], ["2"], ["4"], ["8"])]
    assert [int(t[1]) for t in table] == [1, 2, 4, 8]
    fits = [int(t[-1]) for t in table]
    assert fits == sorted(fits) and fits[0] >= 18  # XL's micro-batch of 18 fits one 80 GB GPU; more with more GPUs


def test_killed_run_resumes_bit_exactly_and_on_three_processes(runs):
    d, _ = runs
    killed = d / "killed"
    at = random.Random().randint(3, 12)  # a random step; the checkpoint after it is the latest one
    proc = subprocess.Popen(launch(2, trainer(killed, d / "recipe.json", "--checkpoint-interval", "1")), env=mpi_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (killed / f"checkpoint_{at}").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    ranks = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(ranks) == 2, ranks
    os.kill(int(random.choice(ranks)), signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode != 0 and not (killed / "summary.json").exists(), f"the run finished before step {at}"
    run(2, trainer(killed, d / "recipe.json", "--resume", "latest", "--checkpoint-interval", "1"))
    full, _ = log(d / "np2")
    resumed, _ = log(killed)
    assert resumed.keys() == full.keys()
    for s in full:
        for key in ("loss", "aux_loss", "grad_norm", "sigma"):
            assert resumed[s][key] == full[s][key], (at, s, key)

    # the 2-process run's checkpoint at step 8, continued by 3 processes
    three = d / "resumed_on_three"
    run(3, trainer(three, d / "recipe.json", "--resume", str(d / "np2" / "checkpoint_8")))
    continued, _ = log(three)
    assert sorted(continued) == list(range(8, RECIPE["steps"]))
    for s, b in continued.items():
        for key in ("loss", "aux_loss", "grad_norm"):
            assert relative(full[s][key], b[key]) <= 1e-5, (s, key)
        assert max(relative(x, y) for x, y in zip(full[s]["sigma"], b["sigma"])) <= 1e-5


def test_a_failure_in_one_rank_ends_the_job_with_its_message(tmp_path):
    (tmp_path / "recipe.json").write_text(json.dumps(RECIPE))
    args = trainer(tmp_path / "out", tmp_path / "recipe.json")
    # rank 1 alone is given training shards that do not exist (mpirun's MPMD form: one program line per rank)
    started = time.time()
    r = subprocess.run(["mpirun", "-np", "1", *args, ":", "-np", "1", *args, "--train", str(tmp_path / "none_*.bin")],
                       env=mpi_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and time.time() - started < 60
    assert "train_gpt2_lnfree: rank 1 of 2: " + str(tmp_path / "none_*.bin") + ": no token shards match" in r.stderr

    # a rank killed mid-run: mpirun ends the others, none waits in a collective (200 steps: still running when
    # step 2's line has come through mpirun)
    args = trainer(tmp_path / "killed", tmp_path / "recipe.json", "-n", "200")  # rank 0 above may have written out/
    proc = subprocess.Popen(launch(2, args), env=mpi_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("step    2/"):
            break
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    os.kill(int(subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()[0]),
            signal.SIGKILL)
    started = time.time()
    proc.communicate(timeout=60)
    assert proc.returncode != 0 and time.time() - started < 60


def test_a_total_batch_that_does_not_divide_names_the_three_numbers(tmp_path):
    (tmp_path / "recipe.json").write_text(json.dumps(dict(RECIPE, grad_accum=5)))
    r = subprocess.run(launch(2, trainer(tmp_path / "out", tmp_path / "recipe.json")), env=mpi_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "--total-batch 10 is not a multiple of --micro-batch 2 x 2 processes; micro-batches that divide it: 1" in r.stderr
