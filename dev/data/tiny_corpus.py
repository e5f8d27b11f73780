#!/usr/bin/env python3
"""Builds the bundled tiny model's data: corpus, tokenizer, shards and model config (data/README.md).

Corpus: the King James Bible (1611; public domain), from Debian's `bible-kjv` package (its `bible` program prints
the text). One document per chapter; every 20th chapter goes to validation. Tokenizer: a byte-level BPE of 2047
tokens trained on the training chapters with Hugging Face `tokenizers`, plus <|endoftext|> as the last id (2047),
so the vocabulary is 2048 and end-of-text is V-1 as in GPT-2. Shards: llm.c format, end-of-text after each chapter.

Run:  .venv/bin/python dev/data/tiny_corpus.py [--out data/tiny]     (needs: apt-get install bible-kjv)
"""

import argparse
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lnfree_data as D  # noqa: E402

VOCAB = 2048
MODEL = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 4, "n_embd": 128, "n_head": 4,
         "vocab_size": VOCAB, "n_positions": 256, "n_ctx": 256, "activation_function": "gelu_new",
         "layer_norm_epsilon": 1e-5, "bos_token_id": VOCAB - 1, "eos_token_id": VOCAB - 1, "n_inner": None}


def chapters():
    """[(name, text)] of the 1189 chapters, verses joined by spaces"""
    try:
        out = subprocess.run(["bible", "-l10000", "gen1:1-rev22:21"], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit("tiny_corpus: the `bible` program is missing; install Debian's bible-kjv package (apt-get install bible-kjv)")
    result, name, verses = [], None, []
    for line in out.splitlines():
        verse = re.match(r"^\s+\d+ (.*)$", line)
        if verse:
            verses.append(verse.group(1).strip())
        elif line.strip():
            if name and verses:
                result.append((name, " ".join(verses)))
            name, verses = line.strip(), []
    if name and verses:
        result.append((name, " ".join(verses)))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(D.repo_root(), "data", "tiny"))
    args = ap.parse_args()
    from tokenizers import ByteLevelBPETokenizer

    docs = chapters()
    assert len(docs) == 1189, f"expected the 1189 chapters of the KJV, got {len(docs)}"
    val = [t for i, (_, t) in enumerate(docs) if i % 20 == 19]
    train = [t for i, (_, t) in enumerate(docs) if i % 20 != 19]
    print(f"corpus: {len(train)} training and {len(val)} validation chapters, {sum(map(len, train + val))} characters")

    model_dir = os.path.join(args.out, "model")
    os.makedirs(model_dir, exist_ok=True)
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(train, vocab_size=VOCAB - 1, min_frequency=2, show_progress=False)
    tok.add_special_tokens(["<|endoftext|>"])
    assert tok.get_vocab_size() == VOCAB and tok.token_to_id("<|endoftext|>") == VOCAB - 1
    tok.save_model(model_dir)  # vocab.json, merges.txt (GPT-2's format)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(MODEL, f, indent=2)

    eot = VOCAB - 1
    for split, texts, index in [("train", train, 1), ("val", val, 0)]:
        stream = [t for text in texts for t in tok.encode(text).ids + [eot]]
        path = os.path.join(args.out, D.shard_name("tiny", split, index))
        D.write_shard(path, stream, vocab_size=VOCAB)
        print(f"{path}: {len(stream)} tokens")


if __name__ == "__main__":
    main()
