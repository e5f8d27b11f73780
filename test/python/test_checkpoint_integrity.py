"""Checkpoint integrity and failed writes, end to end on the CPU build (train_gpt2_lnfree_cpu) with test_trainer.py's
small model, shards and recipe: a byte flipped in any checkpoint file makes `--resume DIR` refuse it with one line
naming the file, and `--resume latest` fall back to the previous checkpoint with a warning and continue exactly as
the uninterrupted run did; a checkpoint write that meets a file-size limit fails with one line and leaves no
temporary directory and the previous checkpoint unchanged; an export that fails (lnfree_tool export, the trainer's
export code) leaves the previous export unchanged. Needs build/lnfree_tool (make)."""

import json
import os
import resource
import shutil
import signal
import subprocess

import pytest

from test_trainer import ROOT, losses, setup, trainer_args  # noqa: F401 (setup is the shared fixture)

TOOL = os.path.join(ROOT, "build", "lnfree_tool")
FILES = ["state.json", "state.safetensors", "model.bin"]
# checkpoints at steps 5 and 10 and the final one at 14 (the recipe's 14 steps), all three kept
CHECKPOINTS = ["--checkpoint-interval", "5", "--keep-checkpoints", "3"]


def run(args, limit_bytes=None):
    """Runs a command; with limit_bytes, under that file-size limit (ulimit -f) and with SIGXFSZ ignored, so that a
    write past it fails with EFBIG instead of killing the process."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, resource.RLIM_INFINITY))
    env = dict(os.environ)
    # OpenMPI's singleton start (the trainer always starts MPI) keeps PMIx's data in shared-memory files by
    # default, which the limit would refuse before training begins; the in-memory store is what it falls back to
    env["PMIX_MCA_gds"] = "hash"
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=limit if limit_bytes else None)


def stderr_lines(r):
    return [line for line in r.stderr.splitlines() if line.strip()]


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def tree_bytes(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def tmp_names(directory):
    return [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def full(setup):  # noqa: F811
    out = setup / "integrity_full"
    subprocess.run(trainer_args(setup, out, *CHECKPOINTS), check=True, timeout=600, stdout=subprocess.DEVNULL)
    assert sorted(p.name for p in out.glob("checkpoint_*")) == ["checkpoint_10", "checkpoint_14", "checkpoint_5"]
    state = json.loads((out / "checkpoint_14" / "state.json").read_text())
    assert sorted(state["files"]) == ["model.bin", "state.safetensors"] and len(state["state_xxh64"]) == 16
    for name, record in state["files"].items():
        assert record["bytes"] == (out / "checkpoint_14" / name).stat().st_size
    return out


@pytest.mark.parametrize("name", FILES)
def test_a_flipped_byte_is_refused_by_resume_dir_and_skipped_by_resume_latest(setup, full, tmp_path, name):
    out = tmp_path / "run"
    shutil.copytree(full, out)
    damaged = out / "checkpoint_14" / name
    flip_byte(damaged)

    r = run(trainer_args(setup, out, *CHECKPOINTS, "--resume", str(out / "checkpoint_14")))
    assert r.returncode != 0 and len(stderr_lines(r)) == 1, r.stderr
    assert str(damaged) in r.stderr and "damaged" in r.stderr, r.stderr

    r = run(trainer_args(setup, out, *CHECKPOINTS, "--resume", "latest"))
    assert r.returncode == 0, r.stderr
    warnings = [line for line in stderr_lines(r) if line.startswith("warning:")]
    assert len(warnings) == 1 and str(damaged) in warnings[0] and "skipping" in warnings[0], r.stderr
    assert f"{out / 'checkpoint_10'} at step 10" in r.stdout
    # the resumed run's steps 10..13 (the last line logged for each) equal the uninterrupted run's, to the bit
    a, b = losses(full), losses(out)
    assert all(b[s] == a[s] for s in range(10, 14)), {s: (a[s], b[s]) for s in range(10, 14)}
    assert "state_xxh64" in json.loads((out / "checkpoint_14" / "state.json").read_text())  # rewritten intact
    assert not tmp_names(out)


def test_resume_latest_fails_with_one_line_when_no_checkpoint_is_intact(setup, full, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(full, out)
    for step, name in zip([5, 10, 14], FILES):
        flip_byte(out / f"checkpoint_{step}" / name)
    r = run(trainer_args(setup, out, "--resume", "latest"))
    errors = [line for line in stderr_lines(r) if not line.startswith("warning:")]
    assert r.returncode != 0 and len(errors) == 1 and "none of its 3 checkpoints is intact" in errors[0], r.stderr


def test_a_checkpoint_from_before_checksums_loads_with_a_warning(setup, full, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(full, out)
    state_path = out / "checkpoint_14" / "state.json"
    state = json.loads(state_path.read_text())
    del state["files"], state["state_xxh64"]
    state_path.write_text(json.dumps(state, indent=2))
    r = run(trainer_args(setup, out, "--resume", str(out / "checkpoint_14")))
    assert r.returncode == 0, r.stderr
    assert any("checksums" in line and "unverified" in line for line in stderr_lines(r)), r.stderr


def test_a_checkpoint_write_past_the_file_size_limit_fails_cleanly(setup, full, tmp_path):
    """Resumed from checkpoint_10 under a 64 KB file-size limit: log.jsonl fits, the final checkpoint's 500 KB
    state.safetensors does not."""
    out = tmp_path / "run"
    out.mkdir()
    shutil.copytree(full / "checkpoint_10", out / "checkpoint_10")
    before = tree_bytes(out / "checkpoint_10")
    r = run(trainer_args(setup, out, *CHECKPOINTS, "--resume", "latest"), limit_bytes=64 * 1024)
    assert r.returncode != 0 and len(stderr_lines(r)) == 1, r.stderr
    assert "checkpoint_14.tmp/state.safetensors" in r.stderr and "ulimit -f" in r.stderr, r.stderr
    assert not tmp_names(out) and not (out / "checkpoint_14").exists()
    assert tree_bytes(out / "checkpoint_10") == before


def test_an_export_that_fails_leaves_the_previous_export_untouched(full, tmp_path):
    summary = json.loads((full / "summary.json").read_text())["sigma"]
    sigma = {"ln1": [summary[f"blocks.{l}.ln_1"] for l in range(2)],
             "ln2": [summary[f"blocks.{l}.ln_2"] for l in range(2)], "lnf": summary["ln_f"]}
    (tmp_path / "sigma.json").write_text(json.dumps(sigma))
    model, out = str(full / "checkpoint_14" / "model.bin"), tmp_path / "out"
    r = run([TOOL, "export", model, str(tmp_path / "sigma.json"), str(out)])
    assert r.returncode == 0, r.stderr
    before = tree_bytes(out)
    assert {str(p) for p in before} >= {"hf/model.safetensors", "transformer_lens/model.safetensors"}

    sigma["lnf"] *= 2  # a different export, written under a limit its 120 KB model.safetensors exceeds
    (tmp_path / "sigma.json").write_text(json.dumps(sigma))
    r = run([TOOL, "export", model, str(tmp_path / "sigma.json"), str(out)], limit_bytes=64 * 1024)
    assert r.returncode != 0 and len(stderr_lines(r)) == 1, r.stderr
    assert "hf.tmp/model.safetensors" in r.stderr and "ulimit -f" in r.stderr, r.stderr
    assert tree_bytes(out) == before and not tmp_names(out)

    r = run([TOOL, "export", model, str(tmp_path / "sigma.json"), str(out)])  # without the limit it replaces it
    assert r.returncode == 0, r.stderr
    assert tree_bytes(out) != before and not tmp_names(out)
