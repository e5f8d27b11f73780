"""The guards of long runs (doc/trainer.md "Long runs"), on the CPU build with the small model of test_trainer.py:
- a step made non-finite (LNFREE_TEST_NONFINITE_STEPS) is skipped and logged, and the later losses equal those of
  a run that skipped the same batch, built independently: the checkpoint before it, relabelled as one step later,
  resumed; K such steps in a row stop the run with one line and the last checkpoint loadable;
- SIGTERM and SIGUSR1 finish the step, checkpoint, print the resume command and exit 0; that command continues to
  the uninterrupted run's losses, to the bit; a second SIGINT exits at once with the last checkpoint intact;
- a used output directory is refused, and --overwrite leaves none of the first run's files;
- every option given an out-of-range value: one line naming it, and no run starts."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from test_trainer import TRAINER, losses, setup, trainer_args  # noqa: F401  (setup is a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log_lines(out):
    with open(out / "log.jsonl") as f:
        return [json.loads(line) for line in f]


def step_values(out):
    """(loss, aux, grad norm, sigma) of every applied step, by step"""
    return {j["step"]: (j["loss"], j["aux_loss"], j["grad_norm"], j["sigma"]) for j in log_lines(out) if "loss" in j}


def test_a_nonfinite_step_is_skipped_like_a_skipped_batch(setup, tmp_path):  # noqa: F811
    poisoned = tmp_path / "poisoned"
    env = dict(os.environ, LNFREE_TEST_NONFINITE_STEPS="10")  # step 10 has no removal event (test_trainer.RECIPE)
    subprocess.run(trainer_args(setup, poisoned, "--checkpoint-interval", "10", "--keep-checkpoints", "5"), env=env,
                   check=True, stdout=subprocess.DEVNULL, timeout=600)
    skipped = [j for j in log_lines(poisoned) if j.get("skipped")]
    assert [j["step"] for j in skipped] == [10] and skipped[0]["values"]["grad_norm"] == "nan"
    assert json.loads((poisoned / "summary.json").read_text())["nonfinite_steps_skipped"] == 1

    # the reference: the state after step 9, labelled as after step 10 (so step 10's batch is never trained on), resumed
    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copytree(poisoned / "checkpoint_10", reference / "checkpoint_11")
    state = json.loads((reference / "checkpoint_11" / "state.json").read_text())
    state["step"] = 11
    for seal in ("files", "state_xxh64"):  # an edited state is no longer the one its checksums vouch for: unsealed,
        state.pop(seal, None)               # it loads as a checkpoint of before checksums (with a warning)
    (reference / "checkpoint_11" / "state.json").write_text(json.dumps(state))
    subprocess.run(trainer_args(setup, reference, "--resume", "latest"), check=True, stdout=subprocess.DEVNULL, timeout=600)
    a, b = step_values(poisoned), step_values(reference)
    assert sorted(b) == [11, 12, 13]
    assert all(a[s] == b[s] for s in b), {s: (a[s], b[s]) for s in b if a[s] != b[s]}


def test_nonfinite_steps_in_a_row_stop_the_run_with_the_last_checkpoint_loadable(setup, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    env = dict(os.environ, LNFREE_TEST_NONFINITE_STEPS="10,11,12")
    r = subprocess.run(trainer_args(setup, out, "--checkpoint-interval", "5", "--max-nonfinite-steps", "3"), env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "3 non-finite steps in a row" in lines[0] and "steps 11 to 13" in lines[0], r.stderr
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint_10", "checkpoint_5"]
    assert not (out / "summary.json").exists()
    subprocess.run(trainer_args(setup, out, "--resume", "latest"), check=True, stdout=subprocess.DEVNULL, timeout=600)
    assert json.loads((out / "summary.json").read_text())["steps"] == 14


def wait_for_step(proc, out, step, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if (out / "log.jsonl").exists() and any(j.get("step") == step for j in log_lines(out) if "loss" in j):
            return
        time.sleep(0.02)
    raise AssertionError(f"the run did not reach step {step}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_checkpoints_and_the_printed_command_resumes_to_the_bit(setup, tmp_path, sig):  # noqa: F811
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    subprocess.run(trainer_args(setup, full), check=True, stdout=subprocess.DEVNULL, timeout=600)
    proc = subprocess.Popen(trainer_args(setup, stopped), stdout=subprocess.PIPE, text=True)
    wait_for_step(proc, stopped, 4)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0
    reached = max(j["step"] for j in log_lines(stopped) if "loss" in j) + 1
    assert 5 <= reached < 14 and not (stopped / "summary.json").exists()
    assert (stopped / f"checkpoint_{reached}" / "state.json").exists()
    lines = output.splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("stopped    by "))
    assert f"after step {reached}" in lines[at]
    command = shlex.split(lines[at + 1])
    assert command[0] == TRAINER and command[-2:] == ["--resume", "latest"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=600)
    a, b = losses(full), losses(stopped)
    assert set(a) == set(b) and all(a[s] == b[s] for s in a)


def checkpoint_states(out):
    return {p.name: (p / "state.json").read_bytes() for p in out.iterdir()
            if p.name.startswith("checkpoint_") and "." not in p.name and (p / "state.json").exists()}


def test_a_second_sigint_exits_at_once_leaving_the_last_checkpoint(tmp_path):
    for attempt in range(3):  # the second signal must land before the step in progress ends: retry if it did not
        out = tmp_path / f"out{attempt}"  # the tiny model: steps of a few tenths of a second
        proc = subprocess.Popen([TRAINER, "-n", "40", "--samples", "0", "--eval-batches", "1", "--checkpoint-interval",
                                 "2", "-o", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 600
        while not (out / "checkpoint_4").exists() and time.time() < deadline:
            time.sleep(0.02)
        before = checkpoint_states(out)
        proc.send_signal(signal.SIGINT)
        assert "stopping after this step" in proc.stderr.readline()  # the first one was taken
        proc.send_signal(signal.SIGINT)
        if proc.wait(timeout=60) == 130:
            break
    assert proc.returncode == 130
    after = checkpoint_states(out)
    assert all(after[k] == v for k, v in before.items() if k in after) and after
    newest = max(after, key=lambda n: int(n.split("_")[1]))
    subprocess.run([TRAINER, "-n", str(int(newest.split("_")[1]) + 1), "--samples", "0", "--eval-batches", "1", "-o",
                    str(out), "--resume", "latest"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=600)


def test_a_used_output_directory_is_refused_or_cleaned(setup, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    subprocess.run(trainer_args(setup, out), check=True, stdout=subprocess.DEVNULL, timeout=600)
    first = sorted(p.name for p in out.iterdir())
    assert "export" in first and any(n.startswith("checkpoint_") for n in first)
    (out / "notes.txt").write_text("mine")
    r = subprocess.run(trainer_args(setup, out), capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "holds another run" in r.stderr and "--overwrite" in r.stderr and "--resume latest" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(first + ["notes.txt"])
    subprocess.run(trainer_args(setup, out, "--overwrite", "--no-save", "-n", "3"), check=True, stdout=subprocess.DEVNULL,
                   timeout=600)
    assert sorted(p.name for p in out.iterdir()) == ["log.jsonl", "notes.txt", "summary.json"]
    assert max(j["step"] for j in log_lines(out) if "loss" in j) == 2  # only the second run's steps


OUT_OF_RANGE = [
    (["-n", "-1"], "--steps"), (["-b", "0"], "--micro-batch"), (["-B", "-4"], "--total-batch"),
    (["-t", "1"], "--seq-len"), (["-t", "100000"], "--seq-len"), (["--eval-interval", "-1"], "--eval-interval"),
    (["--eval-batches", "0"], "--eval-batches"), (["--checkpoint-interval", "-2"], "--checkpoint-interval"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints"), (["--max-nonfinite-steps", "0"], "--max-nonfinite-steps"),
    (["--gpu-memory-gb", "0"], "--gpu-memory-gb"), (["--gpus", "0"], "--gpus"), (["--peak-tflops", "-1"], "--peak-tflops"),
    (["--samples", "-1"], "--samples"), (["--sample-tokens", "0"], "--sample-tokens"), (["-b", "3"], "--total-batch"),
    (["--attention", "fast"], "--attention"), (["--resume", "nowhere"], "nowhere"),
]


@pytest.mark.parametrize("args,option", OUT_OF_RANGE, ids=[" ".join(a) for a, _ in OUT_OF_RANGE])
def test_an_out_of_range_option_gets_one_line_and_no_run(tmp_path, args, option):
    out = tmp_path / "out"
    r = subprocess.run([TRAINER, *args, "--samples", "0", "-o", str(out)] if "--samples" not in args else
                       [TRAINER, *args, "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], r.stderr
    assert not any(l.startswith("step ") for l in r.stdout.splitlines()) and not (out / "log.jsonl").exists()
