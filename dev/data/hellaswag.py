"""HellaSwag validation set in llm.c's multiple-choice eval format (magic 20240522).

    python dev/data/hellaswag.py                  # -> data/hellaswag/hellaswag_val.bin (10,042 examples)

Downloads data/hellaswag_val.jsonl from the rowanz/hellaswag GitHub repository (resumable) and tokenizes each
example as llm.c does: the context `ctx` with tiktoken gpt2, each of the 4 endings with a leading space
(" " + ending), the label as given. A model is scored completion-style: the ending with the lowest mean per-token
loss given the context wins (acc_norm; GPT-2 124M: 0.2955). `--jsonl FILE` tokenizes a local copy instead.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lnfree_data as D  # noqa: E402

URLS = {
    "train": "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_train.jsonl",
    "val": "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl",
}
VAL_EXAMPLES = 10042


def render_example(obj, encode):
    """One HellaSwag JSON object -> {'context', 'completions', 'label'} token ids."""
    endings = obj["endings"]
    if len(endings) != D.EVAL_COMPLETIONS:
        raise ValueError(f"example {obj.get('ind')}: {len(endings)} endings, expected {D.EVAL_COMPLETIONS}")
    return {
        "context": list(encode(obj["ctx"])),
        "completions": [list(encode(" " + e)) for e in endings],
        "label": int(obj["label"]),
    }


def examples_from_jsonl(path, encode):
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({e})") from None
            out.append(render_example(obj, encode))
    return out


def prepare_hellaswag(jsonl_path, out_path, encode):
    """Tokenize a HellaSwag JSON-lines file and write the eval file; returns the number of examples."""
    return D.write_eval_file(out_path, examples_from_jsonl(jsonl_path, encode))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(D.repo_root(), "data", "hellaswag"), help="output directory")
    p.add_argument("--split", choices=sorted(URLS), default="val", help="which split (default: val)")
    p.add_argument("--jsonl", default=None, help="tokenize this local HellaSwag JSON-lines file (no download)")
    p.add_argument("--retries", type=int, default=3, help="download retries (default: 3)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    src = args.jsonl
    if src is None:
        src = os.path.join(args.out, f"hellaswag_{args.split}.jsonl")
        D.download_file(URLS[args.split], src, retries=args.retries, progress=not args.quiet)
    encode = D.TiktokenEncode("gpt2")
    out = os.path.join(args.out, f"hellaswag_{args.split}.bin")
    n = prepare_hellaswag(src, out, encode)
    print(f"wrote {out}: {n:,} examples", file=sys.stderr)
    if args.split == "val" and args.jsonl is None and n != VAL_EXAMPLES:
        print(f"warning: expected {VAL_EXAMPLES} validation examples, got {n}", file=sys.stderr)


if __name__ == "__main__":
    D.run_main(main)
