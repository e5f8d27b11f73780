#!/usr/bin/env python3
"""Draws a run's loss curve from its log.jsonl, with the LayerNorm removal events marked, into a PNG.

    .venv/bin/python dev/plot_run.py OUT_DIR [--compare OTHER_OUT_DIR ...] [--png FILE]

Training cross-entropy per step (thin), validation loss (dots), and a vertical tick per switched path, coloured by
kind (ln2, ln1qk, ln1v, lnf). --compare overlays other runs (e.g. the vanilla baseline).
"""

import argparse
import json
import os
import sys

KIND_COLOURS = {"ln2": "tab:blue", "ln1qk": "tab:orange", "ln1v": "tab:red", "lnf": "black"}


def read_log(out_dir):
    path = os.path.join(out_dir, "log.jsonl")
    try:
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"plot_run: {path}: {e}; is this a train_gpt2_lnfree output directory?")
    steps = {}
    for j in lines:  # a resumed run repeats steps: keep the last record of each
        if "loss" in j:
            steps[j["step"]] = j
    val = {j["step"]: j["val_loss"] for j in lines if "val_loss" in j}
    return [steps[s] for s in sorted(steps)], sorted(val.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the run's output directory (holds log.jsonl)")
    ap.add_argument("--compare", nargs="*", default=[], help="other runs to overlay")
    ap.add_argument("--png", help="output file (default OUT/loss.png)")
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, out in enumerate([args.out] + args.compare):
        records, val = read_log(out)
        name = os.path.basename(os.path.normpath(out))
        ax.plot([r["step"] + 1 for r in records], [r["loss"] for r in records], lw=0.8, color=f"C{i + 4}",
                label=f"{name}: train")
        if val:
            ax.plot([s for s, _ in val], [v for _, v in val], "o-", ms=4, color=f"C{i + 4}", label=f"{name}: validation")
        if i == 0:
            seen = set()
            for r in records:
                for path in r.get("switched", []):
                    kind = path.split(".")[0]
                    ax.axvline(r["step"] + 0.5, color=KIND_COLOURS.get(kind, "grey"), lw=0.6, alpha=0.5,
                               label=f"{kind} fixed" if kind not in seen else None)
                    seen.add(kind)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title("LayerNorm removal: loss and removal events")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    png = args.png or os.path.join(args.out, "loss.png")
    fig.savefig(png + ".tmp.png", dpi=120)
    os.replace(png + ".tmp.png", png)
    print(f"plot_run: wrote {png}")


if __name__ == "__main__":
    main()
