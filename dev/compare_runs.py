"""Compare two trainer runs' log.jsonl step by step: how many steps are bit-identical, and the largest relative
difference of the loss, aux loss, gradient norm, sigmas and validation losses over the steps both logged.
For example a run on P processes against one process (doc/multi-gpu.md), or the GPU build against the CPU build.

    python dev/compare_runs.py OUT_A OUT_B"""

import json
import os
import sys


def read_log(out):
    path = os.path.join(out, "log.jsonl")
    try:
        with open(path) as f:
            lines = [json.loads(line) for line in f]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"compare_runs: {path}: {e}")
    return {j["step"]: j for j in lines if "loss" in j}, {j["step"]: j["val_loss"] for j in lines if "val_loss" in j}


def relative(a, b):
    return abs(a - b) / abs(a) if a else abs(b)


def compare(out_a, out_b):
    (steps_a, val_a), (steps_b, val_b) = read_log(out_a), read_log(out_b)
    common = sorted(steps_a.keys() & steps_b.keys())
    worst = {"loss": 0.0, "aux_loss": 0.0, "grad_norm": 0.0, "sigma": 0.0, "val_loss": 0.0}
    identical = 0
    for s in common:
        a, b = steps_a[s], steps_b[s]
        for key in ("loss", "aux_loss", "grad_norm"):
            worst[key] = max(worst[key], relative(a[key], b[key]))
        worst["sigma"] = max([worst["sigma"]] + [relative(x, y) for x, y in zip(a["sigma"], b["sigma"])])
        identical += all(a[k] == b[k] for k in ("loss", "aux_loss", "grad_norm", "sigma"))
    for s in val_a.keys() & val_b.keys():
        worst["val_loss"] = max(worst["val_loss"], relative(val_a[s], val_b[s]))
    return {"steps": len(common), "identical": identical, "worst": worst}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    r = compare(sys.argv[1], sys.argv[2])
    if r["steps"] == 0:
        sys.exit("compare_runs: the two logs share no step")
    print(f"{r['identical']} of {r['steps']} steps identical; largest relative difference: " +
          ", ".join(f"{k} {v:.2e}" for k, v in r["worst"].items()))


if __name__ == "__main__":
    main()
