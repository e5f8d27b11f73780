"""OpenWebText as llm.c token shards, prepared the way the 2025 recipe prepares its training data.

    python dev/data/openwebtext.py --max-train-tokens 200000000 --workers 16

Reads HF `datasets.load_dataset("Skylion007/openwebtext")`, splits it as nanoGPT does
(train_test_split(test_size=0.0005, seed=2357, shuffle=True)), tokenizes every document with tiktoken gpt2
`encode_ordinary(text) + [50256]`, chunks it as HF `map(batched=True, batch_size=512, num_proc=32)` did in the
recipe (concatenate each batch of documents, cut 1024-token chunks, drop each batch's remainder) and writes the
chunks, in split order, as `openwebtext_val_000000.bin` (the test split) and `openwebtext_train_000001.bin`, ...
(the train split). Every shard holds whole chunks: chunk i of a shard is tokens[i*1024:(i+1)*1024]. See
doc/data.md. `--jsonl FILE` tokenizes a local JSON-lines file of {"text": ...} documents instead.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lnfree_data as D  # noqa: E402

DATASET = "Skylion007/openwebtext"


def _texts(docs, start, end):
    """Documents start..end of a list of strings or of an HF Dataset with a 'text' column."""
    batch = docs[start:end]
    if isinstance(batch, dict):
        return batch["text"]
    return list(batch)


def encode_group(texts, encode, eot, chunk_len):
    """One recipe group: encode each document, append EOT, concatenate, cut whole chunks (remainder dropped)."""
    return D.chunk_documents(D.encode_documents(texts, encode, eot), chunk_len, group_size=None)


_worker_encode = None


def _init_worker(encode):
    global _worker_encode
    _worker_encode = encode


def _work(task):
    texts, eot, chunk_len = task
    return encode_group(texts, _worker_encode, eot, chunk_len)


def iter_split_chunks(docs, encode, eot=D.GPT2_EOT, chunk_len=D.RECIPE_CHUNK_LEN, group_size=D.RECIPE_GROUP_SIZE,
                      map_num_proc=D.RECIPE_MAP_NUM_PROC, workers=1, progress=None):
    """Yield, in order, one uint16 array (n, chunk_len) per recipe group of `docs` (see lnfree_data.recipe_groups).
    `encode` maps a text to token ids; with workers > 1 it must be picklable (a module-level function or
    lnfree_data.TiktokenEncode). Stopping the iteration early stops the workers."""
    groups = D.recipe_groups(len(docs), group_size, map_num_proc)
    if workers <= 1:
        for start, end in groups:
            yield encode_group(_texts(docs, start, end), encode, eot, chunk_len)
            if progress is not None:
                progress.update(end - start)
        return
    import multiprocessing
    from collections import deque
    pool = multiprocessing.Pool(workers, initializer=_init_worker, initargs=(encode,))
    try:
        pending = deque()  # bounded window, results in submission order
        it = iter(groups)
        for start, end in it:
            pending.append((end - start, pool.apply_async(_work, ((_texts(docs, start, end), eot, chunk_len),))))
            if len(pending) >= 4 * workers:
                break
        while pending:
            n, res = pending.popleft()
            for start, end in it:
                pending.append((end - start, pool.apply_async(_work, ((_texts(docs, start, end), eot, chunk_len),))))
                break
            chunks = res.get()
            if progress is not None:
                progress.update(n)
            yield chunks
    finally:
        pool.terminate()
        pool.join()


def write_split(writer, split, docs, encode, max_tokens=None, progress=True, **kw):
    """Tokenize and chunk `docs` and hand the chunks to a ShardWriter as `split`; stop after `max_tokens` tokens
    (rounded down to whole chunks). Returns the number of tokens written."""
    chunk_len = kw.get("chunk_len", D.RECIPE_CHUNK_LEN)
    limit = None if max_tokens is None else (max_tokens // chunk_len) * chunk_len
    written = 0
    with D.Progress(total=len(docs), desc=f"{split} documents", unit="doc", enabled=progress) as bar:
        for chunks in iter_split_chunks(docs, encode, progress=bar, **kw):
            if limit is not None and written + chunks.size > limit:
                chunks = chunks[:(limit - written) // chunk_len]
            if chunks.size:
                writer.write(split, chunks)
                written += chunks.size
            if limit is not None and written >= limit:
                break
    return written


def prepare_openwebtext(splits, out_dir, encode, name="openwebtext", eot=D.GPT2_EOT, chunk_len=D.RECIPE_CHUNK_LEN,
                        group_size=D.RECIPE_GROUP_SIZE, map_num_proc=D.RECIPE_MAP_NUM_PROC, workers=1,
                        shard_size=D.DEFAULT_SHARD_TOKENS, max_train_tokens=None, vocab_size=D.GPT2_VOCAB_SIZE,
                        progress=True, source=None, split_info=None):
    """The whole pipeline after loading: `splits` maps 'val' and/or 'train' to a list of texts (or an HF Dataset
    with a 'text' column). Writes the val shard(s), then the train shards, then `<name>_meta.json`; returns the
    metadata dict. This is what the script runs, on whatever `encode` is injected."""
    kw = dict(eot=eot, chunk_len=chunk_len, group_size=group_size, map_num_proc=map_num_proc, workers=workers)
    writer = D.ShardWriter(out_dir, name, shard_size, vocab_size=vocab_size, align=chunk_len, verbose=progress)
    tokens = {}
    for split in ("val", "train"):
        if split in splits and splits[split] is not None:
            limit = max_train_tokens if split == "train" else None
            tokens[split] = write_split(writer, split, splits[split], encode, max_tokens=limit, progress=progress,
                                        **kw)
    shards = writer.close()
    meta = {
        "source": source,
        "split": split_info if split_info is not None else dict(D.OWT_SPLIT, method="HF train_test_split"),
        "documents": {s: len(d) for s, d in splits.items() if d is not None},
        "tokenizer": "tiktoken gpt2 encode_ordinary(text) + [eot], no BOS",
        "eot": eot,
        "chunk_len": chunk_len,
        "group_size": group_size,
        "map_num_proc": map_num_proc,
        "max_train_tokens": max_train_tokens,
        "tokens": tokens,
        "chunks": {s: n // chunk_len for s, n in tokens.items()},
        "shards": [{"file": os.path.basename(p), "split": s, "tokens": n} for p, s, n in shards],
        "note": "each shard is whole chunk_len-token chunks; the 2025 recipe ignores targets equal to eot in the "
                "training loss (method.md 7.1) but includes them in evaluation (method.md 10)",
    }
    path = os.path.join(out_dir, f"{name}_meta.json")
    D._atomic_write(path, lambda f: f.write((json.dumps(meta, indent=2) + "\n").encode()))
    return meta


def read_jsonl_texts(path, field="text"):
    texts = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    texts.append(json.loads(line)[field])
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}:{lineno}: not a JSON object with a '{field}' string ({e})") from None
    return texts


def local_split(texts, test_size=D.OWT_SPLIT["test_size"], seed=D.OWT_SPLIT["seed"]):
    """A seeded shuffle-and-split of a local list, for --jsonl (the same fractions as the recipe, but not HF's
    exact permutation). The validation set gets ceil(test_size * n) documents (at least 1 when n >= 2)."""
    import math
    np = D._np()
    n = len(texts)
    n_val = min(max(math.ceil(test_size * n), 1 if n >= 2 else 0), n)
    perm = np.random.default_rng(seed).permutation(n)
    return {"val": [texts[i] for i in perm[:n_val]], "train": [texts[i] for i in perm[n_val:]]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(D.repo_root(), "data", "openwebtext"), help="output directory")
    p.add_argument("--name", default="openwebtext", help="shard name prefix (default: openwebtext)")
    p.add_argument("--max-train-tokens", type=int, default=None,
                   help="stop the train split after this many tokens (whole chunks); the 2025 runs use < 5%% of an "
                        "epoch, e.g. 300 steps x 524,288 tokens = 157,286,400 for GPT-2 small (default: all)")
    p.add_argument("--val-only", action="store_true", help="write only the validation shard")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                   help="tokenizer processes (default: half the CPUs)")
    p.add_argument("--shard-size", type=int, default=D.DEFAULT_SHARD_TOKENS,
                   help="tokens per shard, a multiple of --chunk-len (default: %(default)s = 100,000 chunks)")
    p.add_argument("--chunk-len", type=int, default=D.RECIPE_CHUNK_LEN, help="tokens per chunk (default: 1024)")
    p.add_argument("--group-size", type=int, default=D.RECIPE_GROUP_SIZE,
                   help="documents per concatenation group, the recipe's map batch_size (default: 512)")
    p.add_argument("--map-num-proc", type=int, default=D.RECIPE_MAP_NUM_PROC,
                   help="the recipe's map num_proc: the contiguous shards the groups are formed within (default: 32; "
                        "1 = plain consecutive groups)")
    p.add_argument("--load-num-proc", type=int, default=8, help="processes for load_dataset (default: 8)")
    p.add_argument("--cache-dir", default=None, help="HF datasets cache directory (default: HF's)")
    p.add_argument("--jsonl", default=None,
                   help="tokenize this local JSON-lines file of {\"text\": ...} documents instead of downloading "
                        "OpenWebText (split with a seeded shuffle using the same fractions)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    args = p.parse_args()
    if args.shard_size % args.chunk_len:
        p.error(f"--shard-size {args.shard_size} is not a multiple of --chunk-len {args.chunk_len}")

    encode = D.TiktokenEncode("gpt2")
    encode("warm up")  # loads (and on first use downloads) the BPE files before the workers start

    if args.jsonl:
        splits = local_split(read_jsonl_texts(args.jsonl))
        source = os.path.abspath(args.jsonl)
        split_info = dict(D.OWT_SPLIT, method="numpy default_rng(seed).permutation (local_split)")
    else:
        datasets = D.require("datasets")
        print(f"loading {DATASET} (the first run downloads it; nanoGPT reports ~54 GB in the HF cache)", file=sys.stderr)
        ds = datasets.load_dataset(DATASET, split="train", num_proc=args.load_num_proc, cache_dir=args.cache_dir)
        splits = D.split_openwebtext(ds)
        source = DATASET
        split_info = None
    if args.val_only:
        splits["train"] = None
    print(f"documents: val {len(splits['val']):,}" +
          (f", train {len(splits['train']):,}" if splits["train"] is not None else ""), file=sys.stderr)

    meta = prepare_openwebtext(
        splits, args.out, encode, name=args.name, chunk_len=args.chunk_len, group_size=args.group_size,
        map_num_proc=args.map_num_proc, workers=args.workers, shard_size=args.shard_size,
        max_train_tokens=args.max_train_tokens, progress=not args.quiet, source=source, split_info=split_info)
    for split, n in meta["tokens"].items():
        print(f"{split}: {n:,} tokens in {meta['chunks'][split]:,} chunks of {args.chunk_len}", file=sys.stderr)
    print(f"wrote {len(meta['shards'])} shard(s) and {args.name}_meta.json to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    D.run_main(main)
