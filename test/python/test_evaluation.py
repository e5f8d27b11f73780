"""The evaluation suite and the samples of the trainer's binary (`train_gpt2_lnfree_cpu eval` and `sample`),
against stock transformers on the bundled tiny model and the tiny run's LN-free hf/ export:
- per dataset and model, the mean CE, median, percentiles and CE by position equal numpy's over transformers'
  per-token losses on the same chunks (1e-4); entropy, top-1 accuracy, ECE, KL both ways and JSD equal torch's from
  transformers' logits (1e-4);
- HellaSwag, on an eval file written by dev/data/hellaswag.py's writer from items made of the tiny corpus: every
  item's chosen ending (summed and mean loss) equals transformers' by the same rule;
- greedy sampling equals transformers' greedy decoding for 20 tokens; a fixed seed reproduces its samples;
- dev/plot_eval.py draws the report;
- a training run with --eval-suite writes eval.json for the original and the trained model, and prints samples;
- bad input gets one line and a non-zero exit."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from transformers import GPT2LMHeadModel, GPT2TokenizerFast  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev", "data"))
import hellaswag  # noqa: E402
import lnfree_data  # noqa: E402

TRAINER = os.path.join(ROOT, "train_gpt2_lnfree_cpu")
TINY = os.path.join(ROOT, "data", "tiny", "model")
VAL = os.path.join(ROOT, "data", "tiny", "tiny_val_000000.bin")
TRAIN = os.path.join(ROOT, "data", "tiny", "tiny_train_000001.bin")
T, B, CHUNKS = 128, 8, 16


def load(path):
    return GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()


def chunks_of(shard, n=CHUNKS):
    tokens = lnfree_data.read_shard(shard)
    return torch.tensor(np.asarray(tokens[: n * T], dtype=np.int64).reshape(n, T))


def hellaswag_items(n=12, seed=0):
    """Items in HellaSwag's JSON form, cut from the tiny corpus: a context and four endings from other places."""
    tok = GPT2TokenizerFast.from_pretrained(TINY)
    tokens = lnfree_data.read_shard(VAL)
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        at = int(rng.integers(0, len(tokens) - 400))
        ctx = tok.decode(tokens[at:at + int(rng.integers(10, 30))]).strip()
        endings = []
        for k in range(4):
            e = int(rng.integers(0, len(tokens) - 20)) if k else at + 30
            endings.append(tok.decode(tokens[e:e + int(rng.integers(3, 12))]).strip() or "and")
        items.append({"ind": i, "ctx": ctx, "endings": endings, "label": int(rng.integers(0, 4))})
    return items


@pytest.fixture(scope="module")
def hellaswag_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("hellaswag")
    jsonl = d / "items.jsonl"
    jsonl.write_text("".join(json.dumps(x) + "\n" for x in hellaswag_items()))
    tok = GPT2TokenizerFast.from_pretrained(TINY)
    hellaswag.prepare_hellaswag(str(jsonl), str(d / "tiny_hellaswag.bin"), lambda s: tok.encode(s))
    return d / "tiny_hellaswag.bin"


@pytest.fixture(scope="module")
def evaluated(tiny_lnfree_run, hellaswag_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    lnfree = tiny_lnfree_run / "export" / "hf"
    subprocess.run([TRAINER, "eval", "-m", "original=tiny", "--compare", f"lnfree={lnfree}", "--data", f"val={VAL}",
                    "--data", f"train={TRAIN}", "--hellaswag", f"hs={hellaswag_file}", "-t", str(T), "-b", str(B),
                    "--max-chunks", str(CHUNKS), "-o", str(out)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((out / "eval.json").read_text()), {"original": load(TINY), "lnfree": load(lnfree)}, out


def per_token(model, chunks):
    with torch.no_grad():
        logits = model(chunks).logits[:, :-1].double()
    targets = chunks[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return logits, targets, loss.reshape(targets.shape)


def test_losses_and_percentiles_equal_numpy_over_transformers(evaluated):
    report, models, _ = evaluated
    assert [m["label"] for m in report["models"]] == ["original", "lnfree"]
    assert [m["layernorm"] for m in report["models"]] == ["real", "none"]
    for name, shard in (("val", VAL), ("train", TRAIN)):
        d = report["datasets"][name]
        assert d["chunks"] == CHUNKS and d["seq_len"] == T
        for label, model in models.items():
            ours = d["models"][label]
            _, _, loss = per_token(model, chunks_of(shard))
            flat = loss.numpy().ravel()
            assert ours["tokens"] == flat.size == CHUNKS * (T - 1)
            assert abs(ours["mean"] - flat.mean()) <= 1e-4
            assert abs(ours["median"] - np.median(flat)) <= 1e-4
            for q in (2.5, 97.5, 1, 99, 0.1, 99.9):
                assert abs(ours["percentiles"][f"p{q:g}"] - np.percentile(flat, q)) <= 1e-4, q
            assert np.abs(np.array(ours["by_position"]) - loss.numpy().mean(axis=0)).max() <= 1e-4


def test_entropy_calibration_and_divergence_equal_torch(evaluated):
    report, models, _ = evaluated
    d = report["datasets"]["val"]["models"]
    chunks = chunks_of(VAL)
    logp = {}
    for label, model in models.items():
        logits, targets, _ = per_token(model, chunks)
        lp = torch.log_softmax(logits, -1)
        logp[label] = lp
        p = lp.exp()
        entropy = -(p * lp).sum(-1)
        confidence, top = p.max(-1)
        correct = (top == targets).double()
        assert abs(d[label]["entropy"] - entropy.mean().item()) <= 1e-4
        assert abs(d[label]["accuracy"] - correct.mean().item()) <= 1e-6
        bins = torch.clamp((confidence * 15).long(), max=14)
        ece = sum((bins == b).sum().item() / bins.numel() *
                  abs(correct[bins == b].mean().item() - confidence[bins == b].mean().item())
                  for b in range(15) if (bins == b).any())
        assert abs(d[label]["ece"] - ece) <= 1e-4
    lp, lq = logp["original"], logp["lnfree"]
    p, q = lp.exp(), lq.exp()
    m = 0.5 * (p + q)
    theirs = {"kl_reference_to_model": (p * (lp - lq)).sum(-1).mean().item(),
              "kl_model_to_reference": (q * (lq - lp)).sum(-1).mean().item(),
              "jsd": 0.5 * ((p * (lp - m.log())).sum(-1) + (q * (lq - m.log())).sum(-1)).mean().item()}
    ours = d["lnfree"]["against_reference"]
    for key, value in theirs.items():
        assert abs(ours[key] - value) <= 1e-4, key
    assert "against_reference" not in d["original"]


def test_hellaswag_choices_equal_transformers(evaluated, hellaswag_file):
    report, models, _ = evaluated
    h = report["multiple_choice"]["hs"]
    examples = lnfree_data.read_eval_file(str(hellaswag_file))
    assert h["examples"] == len(examples) == 12
    for label, model in models.items():
        picks, picks_norm = [], []
        for ex in examples:
            sums, means = [], []
            for ending in ex["completions"]:
                tokens = torch.tensor([list(ex["context"]) + list(ending)])
                with torch.no_grad():
                    lp = torch.log_softmax(model(tokens).logits[0].double(), -1)
                n = len(ex["context"])
                losses = [-lp[t - 1, tokens[0, t]].item() for t in range(n, tokens.shape[1])]
                sums.append(sum(losses))
                means.append(sum(losses) / len(losses))
            picks.append(int(np.argmin(sums)))
            picks_norm.append(int(np.argmin(means)))
        ours = h["models"][label]
        assert ours["predicted"] == picks
        assert ours["predicted_norm"] == picks_norm
        labels = [ex["label"] for ex in examples]
        assert abs(ours["acc_norm"] - np.mean(np.array(picks_norm) == labels)) <= 1e-12


def test_plot_eval_draws_the_report(evaluated):
    out = evaluated[2]
    subprocess.run([sys.executable, os.path.join(ROOT, "dev", "plot_eval.py"), str(out / "eval.json")], check=True,
                   stdout=subprocess.DEVNULL)
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "dev", "plot_eval.py"), str(out / "nowhere.json")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "nowhere.json" in r.stderr


def sample(*args):
    r = subprocess.run([TRAINER, "sample", "-m", "tiny", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return r.stdout


def test_greedy_samples_equal_transformers_greedy_decoding():
    prompt = "And God said unto Moses"
    out = sample("--prompt", prompt, "--temperature", "0", "--tokens", "20", "-n", "1", "--ids")
    ours = [int(x) for x in next(l for l in out.splitlines() if l.startswith("ids 1/1: "))[9:].split(",")]
    tok = GPT2TokenizerFast.from_pretrained(TINY)
    ids = torch.tensor([tok.encode(prompt)])
    with torch.no_grad():
        theirs = load(TINY).generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=0)[0, ids.shape[1]:].tolist()
    assert ours == theirs
    assert f"sample 1/1: {prompt}{tok.decode(theirs)}" in out


def test_a_fixed_seed_reproduces_its_samples():
    first = sample("--prompt", "In the beginning", "--tokens", "12", "-n", "2", "-s", "5")
    assert first == sample("--prompt", "In the beginning", "--tokens", "12", "-n", "2", "-s", "5")
    assert first != sample("--prompt", "In the beginning", "--tokens", "12", "-n", "2", "-s", "6")
    lines = [l for l in first.splitlines() if l.startswith("sample ")]
    assert len(lines) == 2 and lines[0] != lines[1]


def test_a_training_run_evaluates_and_samples_at_its_end(tmp_path):
    r = subprocess.run([TRAINER, "-n", "2", "--eval-interval", "0", "--eval-batches", "1", "--eval-data", f"val={VAL}",
                        "--samples", "1", "--sample-tokens", "6", "--no-save", "-o", str(tmp_path / "out")], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    assert "sample     before 1/1: " in r.stdout and "sample     after 1/1: " in r.stdout
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert [m["label"] for m in report["models"]] == ["original", "trained"]
    d = report["datasets"]["val"]
    assert d["seq_len"] == 128 and d["chunks"] == 8
    assert d["models"]["trained"]["mean"] != d["models"]["original"]["mean"]


def one_line_error(args, *needles):
    r = subprocess.run([TRAINER, *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_input_gets_one_line(tmp_path):
    one_line_error(["eval", "-m", "tiny", "--data", "x=data/nowhere/none_*.bin"], "data/nowhere")
    one_line_error(["eval", "-m", "tiny", "--hellaswag", VAL], "tiny_val_000000.bin")  # a token shard, not an eval file
    vocab = tmp_path / "tokenizer"
    vocab.mkdir()
    (vocab / "vocab.json").write_text(json.dumps({chr(ord("a") + i): i for i in range(10)}))
    one_line_error(["sample", "-m", "tiny", "--tokenizer", str(vocab)], "11 tokens", "2048")
    one_line_error(["eval", "-m", "tiny", "--compare", "nowhere/model"], "nowhere/model")
    one_line_error(["eval", "-m", "tiny", "--data", f"val={VAL}", "-t", "100000"], "--seq-len")
