"""The Pile evaluation sets of the 2025 paper as llm.c token shards (method.md section 10).

    python dev/data/pile.py                       # "The Pile":           data/pile/pile_val_000000.bin
    python dev/data/pile.py --filtered            # "The Pile-filtered":  data/pile/pile_filtered_val_000000.bin
    python dev/data/pile.py --rebuild-filter      # Pile-filtered, recomputing the filter instead of downloading it

The Pile: the first 10,000 rows of apollo-research/monology-pile-uncopyrighted-tokenizer-gpt2 (pre-tokenized with
GPT-2's tokenizer; streamed, so only the first files are fetched), shuffled with seed 42, concatenated and re-chunked
to 1024 tokens, at most 10,000 chunks (10.24M tokens).

The Pile-filtered: lucabaroni/apollo-pile-filtered-10k (10,000 rows), or with --rebuild-filter: count token ids over
the first --filter-rows rows (default 1,000,000) of the apollo Pile and of
apollo-research/Skylion007-openwebtext-tokenizer-gpt2, call "Pile-only" the ids that occur in the Pile sample but
never in the OpenWebText sample, stream the apollo Pile from its start and keep the first 10,000 rows that contain
no Pile-only id. Then the same shuffle (seed 42) and re-chunking as above.

Each output is one shard of whole 1024-token chunks (chunk i = tokens[i*1024:(i+1)*1024]); evaluate every chunk
with no BOS and all 1023 shifted targets, EOT included.
"""

import argparse
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lnfree_data as D  # noqa: E402

APOLLO_PILE = "apollo-research/monology-pile-uncopyrighted-tokenizer-gpt2"
APOLLO_OWT = "apollo-research/Skylion007-openwebtext-tokenizer-gpt2"
PILE_FILTERED = "lucabaroni/apollo-pile-filtered-10k"


def shuffled(rows, seed):
    """`rows` reordered by numpy default_rng(seed).permutation, which is what HF `Dataset.shuffle(seed=seed)`
    does to a map-style dataset (seed None: unchanged)."""
    rows = list(rows)
    if seed is None:
        return rows
    perm = D._np().random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in perm]


def eval_chunks(rows, num_samples=10000, chunk_len=D.RECIPE_CHUNK_LEN, seed=42):
    """Shuffle the rows (seed), concatenate them and cut `chunk_len`-token chunks, keeping at most `num_samples`
    chunks (the partial last chunk is dropped). Returns a uint16 array (n, chunk_len)."""
    chunks = D.chunk_documents(shuffled(rows, seed), chunk_len, group_size=None)
    return chunks[:num_samples]


def select_rows(rows, num_samples, seed=42):
    """The pile-apollo-luca selection: all rows when num_samples covers them, else HF's
    `shuffle(seed).select(range(num_samples))`."""
    rows = list(rows)
    if num_samples < len(rows):
        rows = shuffled(rows, seed)[:num_samples]
    return rows


def stream_column(name, column="input_ids", cache_dir=None):
    """Yield `column` of each row of the train split of HF dataset `name`, streaming."""
    datasets = D.require("datasets")
    ds = datasets.load_dataset(name, split="train", streaming=True, cache_dir=cache_dir)
    for row in ds:
        yield row[column]


def take(rows, n, desc, progress=True):
    out = []
    with D.Progress(total=n, desc=desc, unit="row", enabled=progress) as bar:
        for row in itertools.islice(rows, n):
            out.append(row)
            bar.update()
    return out


def counted(rows, n, desc, progress=True):
    with D.Progress(total=n, desc=desc, unit="row", enabled=progress) as bar:
        for row in itertools.islice(rows, n):
            yield row
            bar.update()


def rebuild_filter(pile_rows, owt_rows, n_rows, vocab_size=D.GPT2_VOCAB_SIZE, progress=True):
    """Counts over the first n_rows of each stream and the Pile-only ids (sorted array), plus both count arrays."""
    pile_counts = D.count_tokens(counted(pile_rows, n_rows, "counting Pile tokens", progress), vocab_size)
    owt_counts = D.count_tokens(counted(owt_rows, n_rows, "counting OpenWebText tokens", progress), vocab_size)
    return D.pile_only_tokens(pile_counts, owt_counts), pile_counts, owt_counts


def write_eval_shard(out_dir, name, chunks, meta, progress=True):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, D.shard_name(name, "val", 0))
    n = D.write_shard(path, chunks, D.GPT2_VOCAB_SIZE)
    meta = dict(meta, file=os.path.basename(path), tokens=n, chunks=int(chunks.shape[0]),
                chunk_len=int(chunks.shape[1]))
    D._atomic_write(os.path.join(out_dir, f"{name}_meta.json"),
                    lambda f: f.write((json.dumps(meta, indent=2) + "\n").encode()))
    if progress:
        print(f"wrote {path}: {chunks.shape[0]:,} chunks of {chunks.shape[1]} ({n:,} tokens)", file=sys.stderr)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(D.repo_root(), "data", "pile"), help="output directory")
    p.add_argument("--filtered", action="store_true", help="The Pile-filtered (downloads " + PILE_FILTERED + ")")
    p.add_argument("--rebuild-filter", action="store_true",
                   help="The Pile-filtered, recomputing the Pile-only token filter instead of downloading the set")
    p.add_argument("--filter-rows", type=int, default=1_000_000,
                   help="rows of each dataset the token counts are taken over (default: 1,000,000, as the authors)")
    p.add_argument("--num-samples", type=int, default=10_000, help="rows taken and chunks kept (default: 10000)")
    p.add_argument("--seed", type=int, default=42, help="row shuffle seed (default: 42)")
    p.add_argument("--chunk-len", type=int, default=D.RECIPE_CHUNK_LEN, help="tokens per chunk (default: 1024)")
    p.add_argument("--column", default="input_ids", help="token column of the pre-tokenized datasets")
    p.add_argument("--name", default=None, help="shard name prefix (default: pile or pile_filtered)")
    p.add_argument("--cache-dir", default=None, help="HF datasets cache directory (default: HF's)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    args = p.parse_args()
    show = not args.quiet
    filtered = args.filtered or args.rebuild_filter
    name = args.name or ("pile_filtered" if filtered else "pile")
    datasets = D.require("datasets")
    meta = {"num_samples": args.num_samples, "seed": args.seed}

    if not filtered:
        rows = take(stream_column(APOLLO_PILE, args.column, args.cache_dir), args.num_samples,
                    f"reading {APOLLO_PILE}", show)
        meta.update(source=APOLLO_PILE, selection=f"first {len(rows)} rows (streaming)")
    elif args.rebuild_filter:
        banned, pile_counts, owt_counts = rebuild_filter(
            stream_column(APOLLO_PILE, args.column, args.cache_dir),
            stream_column(APOLLO_OWT, args.column, args.cache_dir), args.filter_rows, progress=show)
        os.makedirs(args.out, exist_ok=True)
        listing = os.path.join(args.out, f"{name}_pile_only_tokens.tsv")
        lines = ["token_id\tpile_count"] + [f"{int(t)}\t{int(pile_counts[t])}" for t in banned]
        D._atomic_write(listing, lambda f: f.write(("\n".join(lines) + "\n").encode()))
        print(f"{len(banned):,} Pile-only token ids (listed in {listing})", file=sys.stderr)
        kept = take(D.filter_rows(stream_column(APOLLO_PILE, args.column, args.cache_dir), banned),
                    args.num_samples, "keeping rows without Pile-only tokens", show)
        rows = select_rows(kept, args.num_samples, args.seed)
        meta.update(source=APOLLO_PILE, filter_counts_from=[APOLLO_PILE, APOLLO_OWT], filter_rows=args.filter_rows,
                    pile_only_tokens=len(banned),
                    selection=f"first {len(kept)} rows (streaming) with no Pile-only token")
    else:
        print(f"loading {PILE_FILTERED}", file=sys.stderr)
        ds = datasets.load_dataset(PILE_FILTERED, split="train", cache_dir=args.cache_dir)
        rows = select_rows(ds[args.column], args.num_samples, args.seed)
        meta.update(source=PILE_FILTERED, selection=f"{len(rows)} of {len(ds)} rows")
    if len(rows) < args.num_samples:
        print(f"warning: only {len(rows)} rows available, fewer than --num-samples {args.num_samples}",
              file=sys.stderr)
    chunks = eval_chunks(rows, args.num_samples, args.chunk_len, args.seed)
    if chunks.shape[0] == 0:
        sys.exit(f"error: no complete {args.chunk_len}-token chunk in the {len(rows)} rows read; nothing written")
    write_eval_shard(args.out, name, chunks, meta, show)


if __name__ == "__main__":
    D.run_main(main)
