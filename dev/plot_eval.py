"""Plots of an eval.json written by `train_gpt2_lnfree eval` (doc/evaluation.md): per dataset, the cross-entropy by
position in the chunk and the reliability diagram (accuracy against confidence, per calibration bin), every model
of the comparison in each panel.

    .venv/bin/python dev/plot_eval.py out_eval/eval.json [--out out_eval/eval.png]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
import lnfree_data  # noqa: E402


def load_report(path):
    try:
        with open(path) as f:
            report = json.load(f)
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror}); run train_gpt2_lnfree eval first") from None
    except ValueError:
        raise ValueError(f"{path}: not valid JSON; give the eval.json that train_gpt2_lnfree eval wrote") from None
    if not isinstance(report, dict) or not report.get("datasets"):
        raise ValueError(f"{path}: no datasets; give the eval.json that train_gpt2_lnfree eval wrote")
    return report


def plot(report, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [m["label"] for m in report["models"]]
    datasets = list(report["datasets"].items())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(12, 4 * len(datasets)), squeeze=False)
    for row, (name, d) in enumerate(datasets):
        by_pos, calib = axes[row]
        for label in labels:
            s = d["models"][label]
            by_pos.plot(range(1, len(s["by_position"]) + 1), s["by_position"], label=f"{label} (mean {s['mean']:.4f})",
                        linewidth=1)
            bins = [b for b in s["calibration"] if b["count"] > 0]
            calib.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-",
                       label=f"{label} (ECE {s['ece']:.4f})", markersize=4)
        by_pos.set(title=f"{name}: cross-entropy by position ({d['chunks']} chunks)", xlabel="position in the chunk",
                   ylabel="mean CE (nats)")
        by_pos.set_xscale("log")
        calib.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
        calib.set(title=f"{name}: reliability diagram", xlabel="confidence (top probability)",
                  ylabel="accuracy (top token is the target)", xlim=(0, 1), ylim=(0, 1))
        for ax in (by_pos, calib):
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    lnfree_data._atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eval_json", help="eval.json of train_gpt2_lnfree eval")
    p.add_argument("--out", default=None, help="PNG to write (default: eval.png beside the JSON)")
    args = p.parse_args()
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.eval_json)), "eval.png")
    try:
        report = load_report(args.eval_json)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    plot(report, out)
    print(f"plot_eval: wrote {out}")


if __name__ == "__main__":
    lnfree_data.run_main(main)
