"""Offline data logic shared by lnfree's download and data-preparation scripts.

Everything here runs without network access and imports only the standard library at module level (numpy is
imported inside the functions that need it; datasets, tiktoken and tqdm only where a script asks for them), so
`dev/download_model.py` works with a bare Python and the tests run on small local inputs.

File formats (llm.c's, byte for byte, so llm.c's data works unchanged; doc/data.md):

- token shard: 256 little-endian int32 header [magic 20240520, version 1, number of tokens, 0...], then the
  tokens as little-endian uint16; file size = 1024 + 2 * ntok. Shards are named `<name>_<split>_<index:06d>.bin`,
  index 0 is the validation shard and training shards are numbered from 1 (llm.c's fineweb.py convention).
- multiple-choice eval file (HellaSwag): 256 int32 header [magic 20240522, version 1, number of examples,
  longest example in bytes], then per example a uint16 stream: 65535, example length in bytes (the whole stream of
  this example, marker included), example index, label, number of completions (4), context length, context
  tokens, and for each completion its length and tokens.
"""

import hashlib
import importlib
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
EVAL_MAGIC = 20240522
EVAL_VERSION = 1
LLAMA3_SHARD_MAGIC = 20240801  # llm.c's uint32 variant; recognised only to give a better error
HEADER_INTS = 256
HEADER_BYTES = 4 * HEADER_INTS
TOKEN_LIMIT = 65535  # token ids must lie in [0, 65535): uint16, and 65535 marks an eval example's start
EVAL_START = 65535
EVAL_COMPLETIONS = 4  # llm.c's C eval loader accepts exactly 4

GPT2_EOT = 50256
GPT2_VOCAB_SIZE = 50257

# The 2025 recipe (method.md section 7.1): nanoGPT's OpenWebText split, then HF `map(batched=True,
# batch_size=512, num_proc=32)` concatenating each batch's documents and cutting 1024-token chunks, remainder of
# each batch dropped.
OWT_SPLIT = {"test_size": 0.0005, "seed": 2357, "shuffle": True}
RECIPE_CHUNK_LEN = 1024
RECIPE_GROUP_SIZE = 512
RECIPE_MAP_NUM_PROC = 32

# One llm.c-style shard holds this many tokens by default: 100,000 whole 1024-token chunks (204.8 MB).
DEFAULT_SHARD_TOKENS = 100_000 * RECIPE_CHUNK_LEN


class MissingPackageError(RuntimeError):
    """A script needs an optional package (datasets, tiktoken, ...) that is not installed."""


class DownloadError(RuntimeError):
    """A download failed; the message says whether rerunning resumes it."""


def require(module, pip_name=None):
    """Import `module` or raise MissingPackageError naming the pip package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pip_name = pip_name or module
        raise MissingPackageError(
            f"the Python package '{pip_name}' is required: pip install {pip_name} "
            f"(or pip install -r dev/data/requirements.txt)") from None


def run_main(main):
    """Run a script's main(), turning the expected failures into one-line errors and exit status 1."""
    try:
        main()
    except (MissingPackageError, DownloadError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted (a partial download is kept as .part and resumes on the next run)", file=sys.stderr)
        sys.exit(130)


def _np():
    return require("numpy")


def repo_root():
    """The lnfree repository root (this file lives in <root>/dev/data/)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------------------------------------------------------
# progress


def _human(n):
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000.0


class Progress:
    """A progress bar: tqdm when it is installed, otherwise a line on stderr every few seconds."""

    def __init__(self, total=None, desc="", unit="it", unit_scale=False, initial=0, enabled=True, interval=5.0):
        self.total, self.desc, self.unit, self.unit_scale = total, desc, unit, unit_scale
        self.n = initial
        self.enabled = enabled
        self.interval = interval
        self._bar = None
        self._last = time.monotonic()
        self._start = self._last
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, initial=initial,
                                 unit_divisor=1024 if unit == "B" else 1000)

    def _fmt(self, n):
        return _human(n) if self.unit_scale else f"{n:,}"

    def _print(self, final=False):
        elapsed = time.monotonic() - self._start
        msg = f"{self.desc}: {self._fmt(self.n)}"
        if self.total:
            msg += f" / {self._fmt(self.total)} {self.unit} ({100.0 * self.n / self.total:.1f}%)"
        else:
            msg += f" {self.unit}"
        msg += f", {elapsed:.0f} s" + (" done" if final else "")
        print(msg, file=sys.stderr, flush=True)

    def update(self, k=1):
        self.n += k
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(k)
        elif time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            self._print()

    def close(self):
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self._print(final=True)
        self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------------------------
# token shards


def _token_array(tokens, vocab_size, where):
    """`tokens` as a flat uint16 array, after checking every id lies in [0, 65535) and below vocab_size."""
    np = _np()
    arr = np.asarray(tokens)
    if arr.dtype == object or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{where}: token ids must be integers, got dtype {arr.dtype}")
    arr = arr.reshape(-1)
    if arr.size == 0:
        return arr.astype(np.uint16)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= TOKEN_LIMIT:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{where}: token id {bad} outside [0, {TOKEN_LIMIT})")
    if vocab_size is not None and hi >= vocab_size:
        raise ValueError(f"{where}: token id {hi} outside the vocabulary of {vocab_size}")
    return arr.astype("<u2", copy=False)


def _atomic_write(path, write_body):
    """Call write_body(f) on `path + '.tmp'`, fsync, then rename onto `path`; nothing is left behind on failure."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            write_body(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); harmless where directories cannot be opened
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_shard(path, tokens, vocab_size=None):
    """Write `tokens` as an llm.c token shard at `path`, atomically. Returns the number of tokens.

    Ids must lie in [0, 65535) and, when vocab_size is given, below it; otherwise ValueError and no file (neither
    `path` nor `path + '.tmp'`) is written.
    """
    np = _np()
    arr = _token_array(tokens, vocab_size, path)
    if arr.size >= 2**31:
        raise ValueError(f"{path}: {arr.size} tokens do not fit the int32 header; use smaller shards")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, arr.size

    def body(f):
        f.write(header.tobytes())
        f.write(arr.tobytes())

    _atomic_write(path, body)
    return int(arr.size)


def read_shard_header(path):
    """Check `path`'s llm.c shard header and size; return the number of tokens. ValueError names what is wrong."""
    np = _np()
    size = os.path.getsize(path)
    if size < HEADER_BYTES:
        raise ValueError(f"{path}: not an llm.c token shard: {size} bytes, shorter than the {HEADER_BYTES}-byte header")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    magic, version, ntok = int(header[0]), int(header[1]), int(header[2])
    if magic != SHARD_MAGIC:
        hint = ""
        if magic == EVAL_MAGIC:
            hint = " (this is a multiple-choice eval file, read it with read_eval_file)"
        elif magic == LLAMA3_SHARD_MAGIC:
            hint = " (this is llm.c's llama-3 uint32 shard, not a GPT-2 shard)"
        raise ValueError(f"{path}: bad magic {magic}, expected {SHARD_MAGIC} (llm.c GPT-2 token shard){hint}")
    if version != SHARD_VERSION:
        raise ValueError(f"{path}: unsupported shard version {version}, expected {SHARD_VERSION}")
    if ntok < 0:
        raise ValueError(f"{path}: negative token count {ntok} in the header")
    expected = HEADER_BYTES + 2 * ntok
    if size != expected:
        raise ValueError(f"{path}: size mismatch: the header says {ntok} tokens, so {expected} bytes, "
                         f"but the file has {size} bytes (truncated or corrupt)")
    return ntok


def read_shard(path, mmap=False):
    """The tokens of an llm.c shard as a uint16 array (a read-only memmap when mmap=True)."""
    np = _np()
    ntok = read_shard_header(path)
    if mmap:
        if ntok == 0:
            return np.zeros(0, dtype="<u2")
        return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(ntok,))
    return np.fromfile(path, dtype="<u2", count=ntok, offset=HEADER_BYTES)


def shard_name(name, split, index):
    return f"{name}_{split}_{index:06d}.bin"


class ShardWriter:
    """Splits token streams into llm.c shards of `shard_size` tokens: `<name>_val_000000.bin`, then
    `<name>_train_000001.bin`, `<name>_train_000002.bin`, ...

    Index 0 belongs to validation (llm.c's convention): validation data must be written before training data, and
    training shards are numbered from 1 even when there is no validation data. A shard never mixes splits; the
    last shard of each split holds the remainder. Each write must be a multiple of `align` tokens (and shard_size
    must be one too) so that fixed-length chunks never straddle two shards.
    """

    SPLITS = ("val", "train")

    def __init__(self, out_dir, name, shard_size=DEFAULT_SHARD_TOKENS, vocab_size=None, align=1, verbose=True):
        if shard_size <= 0 or shard_size % align:
            raise ValueError(f"shard size {shard_size} must be a positive multiple of {align}")
        if shard_size >= 2**31:
            raise ValueError(f"shard size {shard_size} does not fit llm.c's int32 token count")
        self.out_dir, self.name, self.shard_size = out_dir, name, shard_size
        self.vocab_size, self.align, self.verbose = vocab_size, align, verbose
        self.next_index = 0
        self.split = None
        self.seen_train = False
        self._buf, self._nbuf = [], 0
        self.shards = []  # (path, split, ntok) in write order
        os.makedirs(out_dir, exist_ok=True)

    def write(self, split, tokens):
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of {self.SPLITS}, got {split!r}")
        if split == "val" and self.seen_train:
            raise ValueError("validation data must be written before training data (shard 0 is val)")
        if self.split is not None and split != self.split:
            self._flush()
        self.split = split
        self.seen_train |= split == "train"
        arr = _token_array(tokens, self.vocab_size, f"{self.name} {split} tokens")
        if arr.size % self.align:
            raise ValueError(f"{arr.size} tokens written, not a multiple of {self.align}")
        self._buf.append(arr)
        self._nbuf += arr.size
        while self._nbuf >= self.shard_size:
            self._emit(self.shard_size)

    def _emit(self, n):
        np = _np()
        data = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        rest = data[n:]
        self._buf = [rest] if rest.size else []
        self._nbuf = int(rest.size)
        index = self.next_index
        if self.split == "train" and index == 0:
            index = 1
        path = os.path.join(self.out_dir, shard_name(self.name, self.split, index))
        write_shard(path, data[:n], self.vocab_size)
        self.next_index = index + 1
        self.shards.append((path, self.split, int(n)))
        if self.verbose:
            print(f"wrote {path} ({n:,} tokens)", file=sys.stderr, flush=True)

    def _flush(self):
        if self._nbuf:
            self._emit(self._nbuf)

    def close(self):
        """Write what is buffered; return the list of (path, split, ntok)."""
        self._flush()
        return self.shards

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()


def split_stream_to_shards(token_arrays, out_dir, name, shard_size=DEFAULT_SHARD_TOKENS, vocab_size=None,
                           verbose=True):
    """llm.c's fineweb.py convention for a single stream: its first `shard_size` tokens become
    `<name>_val_000000.bin`, the rest `<name>_train_000001.bin`, ... Returns the list of (path, split, ntok)."""
    np = _np()
    writer = ShardWriter(out_dir, name, shard_size, vocab_size, verbose=verbose)
    val_left = shard_size
    for arr in token_arrays:
        arr = np.asarray(arr).reshape(-1)
        if val_left > 0:
            head, arr = arr[:val_left], arr[val_left:]
            if head.size:
                writer.write("val", head)
                val_left -= head.size
        if arr.size:
            writer.write("train", arr)
    return writer.close()


# ---------------------------------------------------------------------------------------------------------------
# documents, chunking and the OpenWebText split


def encode_documents(texts, encode, eot=GPT2_EOT):
    """Token lists for `texts`: encode(text) followed by the end-of-text id, for every document (no BOS)."""
    return [list(encode(t)) + [eot] for t in texts]


def chunk_documents(token_lists, chunk_len=RECIPE_CHUNK_LEN, group_size=RECIPE_GROUP_SIZE):
    """The 2025 recipe's chunking: within each group of `group_size` consecutive documents, concatenate their
    tokens and cut `chunk_len`-token chunks, dropping each group's remainder (chunks never span two groups).
    group_size=None treats all documents as one group (concatenate-and-rechunk). Returns a uint16 array of shape
    (n_chunks, chunk_len)."""
    np = _np()
    if chunk_len <= 0:
        raise ValueError(f"chunk_len must be positive, got {chunk_len}")
    docs = list(token_lists)
    if group_size is None:
        group_size = max(len(docs), 1)
    if group_size <= 0:
        raise ValueError(f"group_size must be positive, got {group_size}")
    out = []
    for g in range(0, len(docs), group_size):
        parts = [np.asarray(d, dtype=np.int64).reshape(-1) for d in docs[g:g + group_size]]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        n = flat.size // chunk_len
        if n:
            out.append(flat[:n * chunk_len].reshape(n, chunk_len))
    chunks = np.concatenate(out) if out else np.zeros((0, chunk_len), dtype=np.int64)
    return _token_array(chunks, None, "chunk_documents").reshape(-1, chunk_len)


def recipe_groups(n_docs, group_size=RECIPE_GROUP_SIZE, map_num_proc=RECIPE_MAP_NUM_PROC):
    """The document groups (start, end) of HF `Dataset.map(batched=True, batch_size=group_size,
    num_proc=map_num_proc)`: the dataset is first cut into `map_num_proc` contiguous shards (the first
    n_docs % map_num_proc of them one document longer), then each shard into batches of `group_size`, the last
    batch of each shard shorter. map_num_proc=None or 1 gives plain consecutive groups of `group_size`."""
    shards = []
    if n_docs > 0:
        k = 1 if not map_num_proc or map_num_proc <= 1 else min(map_num_proc, n_docs)
        div, mod = divmod(n_docs, k)
        for i in range(k):
            start = div * i + min(i, mod)
            shards.append((start, start + div + (1 if i < mod else 0)))
    groups = []
    for start, end in shards:
        for g in range(start, end, group_size):
            groups.append((g, min(g + group_size, end)))
    return groups


def split_openwebtext(dataset):
    """nanoGPT's (and the 2025 recipe's) OpenWebText split of an HF `datasets.Dataset` of the 8,013,769
    Skylion007 documents: train_test_split(test_size=0.0005, seed=2357, shuffle=True), about 8,009,762 train and
    4,007 test documents. Returns {'val': test split, 'train': train split}."""
    split = dataset.train_test_split(**OWT_SPLIT)
    return {"val": split["test"], "train": split["train"]}


class TiktokenEncode:
    """Picklable tiktoken `encode_ordinary` (the encoding is created lazily in each process)."""

    def __init__(self, name="gpt2"):
        self.name = name
        self._enc = None

    def __call__(self, text):
        if self._enc is None:
            tiktoken = require("tiktoken")
            self._enc = tiktoken.get_encoding(self.name)
        return self._enc.encode_ordinary(text)

    def __getstate__(self):
        return {"name": self.name, "_enc": None}


# ---------------------------------------------------------------------------------------------------------------
# the Pile-filtered rule (method.md section 10)


def count_tokens(rows, vocab_size=GPT2_VOCAB_SIZE):
    """Occurrences of each token id over an iterable of token sequences, as an int64 array of length vocab_size."""
    np = _np()
    counts = np.zeros(vocab_size, dtype=np.int64)
    pending, npending = [], 0
    for row in rows:
        pending.append(np.asarray(row, dtype=np.int64).reshape(-1))
        npending += pending[-1].size
        if npending >= 1 << 22:
            counts += _bincount(np.concatenate(pending), vocab_size)
            pending, npending = [], 0
    if pending:
        counts += _bincount(np.concatenate(pending), vocab_size)
    return counts


def _bincount(ids, vocab_size):
    np = _np()
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids.min() if ids.min() < 0 else ids.max()
        raise ValueError(f"token id {int(bad)} outside the vocabulary of {vocab_size}")
    return np.bincount(ids, minlength=vocab_size)


def pile_only_tokens(pile_counts, owt_counts):
    """Token ids that occur in the Pile sample but never in the OpenWebText sample (sorted int64 array).
    Counts may be arrays indexed by token id (as count_tokens returns) or mappings id -> count."""
    np = _np()

    def as_array(c):
        if hasattr(c, "items"):
            items = [(int(k), int(v)) for k, v in c.items()]
            arr = np.zeros(max([k for k, _ in items], default=-1) + 1, dtype=np.int64)
            for k, v in items:
                arr[k] += v
            return arr
        return np.asarray(c, dtype=np.int64).reshape(-1)

    pile, owt = as_array(pile_counts), as_array(owt_counts)
    n = max(pile.size, owt.size)
    pile = np.pad(pile, (0, n - pile.size))
    owt = np.pad(owt, (0, n - owt.size))
    return np.nonzero((pile > 0) & (owt == 0))[0].astype(np.int64)


def filter_rows(rows, banned):
    """Yield the rows (token sequences) that contain none of the `banned` token ids, in order (lazily, so
    `itertools.islice(filter_rows(...), 10000)` stops reading the stream after the 10,000th kept row)."""
    np = _np()
    banned = np.asarray(sorted(set(int(b) for b in banned)), dtype=np.int64)
    mask = np.zeros(int(banned.max()) + 1 if banned.size else 0, dtype=bool)
    mask[banned] = True
    for row in rows:
        ids = np.asarray(row, dtype=np.int64).reshape(-1)
        if mask.size:
            ids = ids[(ids >= 0) & (ids < mask.size)]
            if mask[ids].any():
                continue
        yield row


# ---------------------------------------------------------------------------------------------------------------
# multiple-choice eval files (HellaSwag)


def _example_fields(ex, i):
    if isinstance(ex, dict):
        return ex["context"], ex["completions"], ex["label"]
    context, completions, label = ex
    return context, completions, label


def write_eval_file(path, examples):
    """Write multiple-choice examples in llm.c's eval format (magic 20240522), atomically.

    Each example is a dict {'context': ids, 'completions': [ids] * 4, 'label': int} or a tuple (context,
    completions, label). The example index written is its position. Returns the number of examples.
    """
    np = _np()
    stream, longest, n = [], 0, 0
    for i, ex in enumerate(examples):
        where = f"{path}: example {i}"
        context, completions, label = _example_fields(ex, i)
        completions = list(completions)
        if len(completions) != EVAL_COMPLETIONS:
            raise ValueError(f"{where}: {len(completions)} completions, llm.c's format needs {EVAL_COMPLETIONS}")
        label = int(label)
        if not 0 <= label < len(completions):
            raise ValueError(f"{where}: label {label} outside [0, {len(completions)})")
        if i >= TOKEN_LIMIT:
            raise ValueError(f"{path}: more than {TOKEN_LIMIT} examples do not fit the uint16 example index")
        parts = [_token_array(context, None, f"{where} context")]
        parts += [_token_array(c, None, f"{where} completion {j}") for j, c in enumerate(completions)]
        ex_stream = [EVAL_START, 0, i, label, len(completions)]
        for p in parts:
            if p.size >= TOKEN_LIMIT:
                raise ValueError(f"{where}: {p.size} tokens do not fit a uint16 length")
            ex_stream.append(int(p.size))
            ex_stream.extend(p.tolist())
        nbytes = 2 * len(ex_stream)
        if nbytes >= 1 << 16:
            raise ValueError(f"{where}: {nbytes} bytes, over the format's 65535-byte example limit")
        ex_stream[1] = nbytes
        longest = max(longest, nbytes)
        stream.extend(ex_stream)
        n += 1
    if n == 0:
        raise ValueError(f"{path}: no examples to write")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2], header[3] = EVAL_MAGIC, EVAL_VERSION, n, longest
    data = np.asarray(stream, dtype="<u2")

    def body(f):
        f.write(header.tobytes())
        f.write(data.tobytes())

    _atomic_write(path, body)
    return n


def read_eval_file(path):
    """Read an llm.c multiple-choice eval file; returns a list of dicts {'index', 'label', 'context',
    'completions'} (token lists). ValueError names the file and what is wrong."""
    np = _np()
    size = os.path.getsize(path)
    if size < HEADER_BYTES:
        raise ValueError(f"{path}: not an llm.c eval file: {size} bytes, shorter than the {HEADER_BYTES}-byte header")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    magic, version, n, longest = (int(x) for x in header[:4])
    if magic != EVAL_MAGIC:
        hint = " (this is a token shard, read it with read_shard)" if magic == SHARD_MAGIC else ""
        raise ValueError(f"{path}: bad magic {magic}, expected {EVAL_MAGIC} (llm.c eval file){hint}")
    if version != EVAL_VERSION:
        raise ValueError(f"{path}: unsupported eval file version {version}, expected {EVAL_VERSION}")
    if (size - HEADER_BYTES) % 2:
        raise ValueError(f"{path}: size mismatch: {size - HEADER_BYTES} payload bytes is not a whole number of uint16")
    data = np.fromfile(path, dtype="<u2", offset=HEADER_BYTES).astype(np.int64)
    out, pos, seen_longest = [], 0, 0
    for i in range(n):
        where = f"{path}: example {i} (uint16 offset {pos})"
        if pos + 5 > data.size:
            raise ValueError(f"{where}: file ends early; the header says {n} examples")
        if data[pos] != EVAL_START:
            raise ValueError(f"{where}: missing start marker {EVAL_START}, found {data[pos]}")
        nbytes, index, label, ncomp = (int(x) for x in data[pos + 1:pos + 5])
        end = pos + nbytes // 2
        if nbytes % 2 or end > data.size or nbytes < 12:
            raise ValueError(f"{where}: bad example length {nbytes} bytes")
        q = pos + 5
        seqs = []
        for _ in range(1 + ncomp):
            if q >= end:
                raise ValueError(f"{where}: fields overrun the example length {nbytes}")
            m = int(data[q])
            if q + 1 + m > end:
                raise ValueError(f"{where}: fields overrun the example length {nbytes}")
            seqs.append(data[q + 1:q + 1 + m].tolist())
            q += 1 + m
        if q != end:
            raise ValueError(f"{where}: example length {nbytes} bytes, but its fields take {2 * (q - pos)}")
        out.append({"index": index, "label": label, "context": seqs[0], "completions": seqs[1:]})
        seen_longest = max(seen_longest, nbytes)
        pos = end
    if pos != data.size:
        raise ValueError(f"{path}: size mismatch: {2 * (data.size - pos)} bytes after the {n} examples the header "
                         "announces")
    if seen_longest != longest:
        raise ValueError(f"{path}: header says the longest example is {longest} bytes, found {seen_longest}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# resumable downloads (standard library only)

USER_AGENT = "lnfree-data/1.0 (+urllib)"


class _Truncated(OSError):
    """The server sent fewer bytes than announced (retryable: the .part file is kept)."""


class _RedirectDroppingAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never send the Authorization header to another host (CDN URLs are pre-signed)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            for key in list(new.headers):
                if key.lower() == "authorization":
                    del new.headers[key]
        return new


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _opener(follow_redirects=True):
    return urllib.request.build_opener(_RedirectDroppingAuth if follow_redirects else _NoRedirect)


def request_headers(token=None, extra=None):
    headers = {"User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    return headers


def sha256_file(path, chunk_size=1 << 22):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk_size)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _parse_content_range(value):
    """'bytes a-b/total' -> (a, b, total or None); 'bytes */total' -> (None, None, total)."""
    if not value or not value.startswith("bytes "):
        return None, None, None
    rng, _, total = value[6:].partition("/")
    total = int(total) if total.strip().isdigit() else None
    if rng.strip() == "*":
        return None, None, total
    a, _, b = rng.partition("-")
    return int(a), int(b), total


def _fetch_into_part(url, part, headers, timeout, chunk_size, show, desc, expected_size):
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if expected_size is not None and have > expected_size:
        have = 0
        open(part, "wb").close()
    if expected_size is not None and have == expected_size and have > 0:
        return
    req = urllib.request.Request(url, headers=dict(headers))
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = _opener().open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            _, _, total = _parse_content_range(e.headers.get("Content-Range"))
            e.close()
            if total == have:
                return  # the .part file is already complete
            open(part, "wb").close()  # inconsistent partial file: start over
            return _fetch_into_part(url, part, headers, timeout, chunk_size, show, desc, expected_size)
        raise
    with resp:
        length = resp.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        if resp.status == 206:
            start, _, total = _parse_content_range(resp.headers.get("Content-Range"))
            if start != have:
                raise DownloadError(f"{url}: asked for bytes from {have}, server sent a range starting at {start}")
            mode = "ab"
        else:
            if have:
                print(f"{desc}: server ignored the Range request, downloading from the start", file=sys.stderr)
            have, mode = 0, "wb"
            total = length
        if total is None and length is not None:
            total = have + length
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(f"{url}: server reports {total} bytes, expected {expected_size}")
        got = 0
        with open(part, mode) as f, Progress(total=total, initial=have, desc=desc, unit="B", unit_scale=True,
                                             enabled=show) as bar:
            while True:
                b = resp.read(chunk_size)
                if not b:
                    break
                f.write(b)
                got += len(b)
                bar.update(len(b))
            f.flush()
            os.fsync(f.fileno())
    if length is not None and got < length:
        raise _Truncated(f"connection closed after {got} of {length} bytes")
    if total is not None and have + got != total:
        raise _Truncated(f"have {have + got} of {total} bytes")


def download_file(url, dest, headers=None, expected_sha256=None, expected_size=None, retries=3, timeout=60,
                  chunk_size=1 << 20, progress=True, backoff=2.0):
    """Download `url` to `dest`, resumably: bytes go to `dest + '.part'` (continued with an HTTP Range request on
    the next attempt or run), which is renamed to `dest` only when complete and, when `expected_sha256` is given,
    verified. An existing `dest` counts as complete and is not fetched again. Returns True when it downloaded,
    False when `dest` was already there."""
    desc = os.path.basename(dest)
    if os.path.exists(dest):
        size = os.path.getsize(dest)
        if expected_size is not None and size != expected_size:
            raise DownloadError(f"{dest} exists with {size} bytes, expected {expected_size}; delete it and rerun")
        if progress:
            print(f"{desc}: already complete ({size:,} bytes), skipped", file=sys.stderr)
        return False
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    headers = request_headers(extra=headers)
    attempt = 0
    while True:
        try:
            _fetch_into_part(url, part, headers, timeout, chunk_size, progress, desc, expected_size)
            break
        except urllib.error.HTTPError as e:
            retryable = e.code in (408, 429) or e.code >= 500
            hint = " (set HF_TOKEN for gated or private repositories)" if e.code in (401, 403) else ""
            if not retryable or attempt >= retries:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}{hint}") from None
        except (OSError, urllib.error.URLError, ConnectionError) as e:
            if attempt >= retries:
                kept = os.path.getsize(part) if os.path.exists(part) else 0
                if kept:
                    raise DownloadError(f"{url}: {e}; {kept:,} bytes kept in {part}, rerun to resume") from None
                raise DownloadError(f"{url}: {e}") from None
        attempt += 1
        wait = backoff * attempt
        print(f"{desc}: attempt {attempt} failed, resuming in {wait:.0f} s", file=sys.stderr)
        time.sleep(wait)
    size = os.path.getsize(part)
    if expected_size is not None and size != expected_size:
        raise DownloadError(f"{url}: got {size} bytes, expected {expected_size}; {part} kept, rerun to resume")
    if expected_sha256:
        if progress:
            print(f"{desc}: verifying sha256", file=sys.stderr)
        digest = sha256_file(part)
        if digest != expected_sha256.lower():
            os.remove(part)
            raise DownloadError(f"{url}: sha256 mismatch: expected {expected_sha256}, got {digest}; the corrupt "
                                "partial file was removed, rerun to download again")
    os.replace(part, dest)
    return True


def head_metadata(url, headers=None, timeout=60, max_redirects=5):
    """HEAD `url`, following only same-host redirects (like huggingface_hub), and return the headers of the last
    response as a lower-cased dict plus 'status' and 'url'. For a Hugging Face LFS file that response is the
    redirect to the CDN and carries X-Linked-Etag (the file's sha256) and X-Linked-Size."""
    headers = dict(headers or request_headers())
    opener = _opener(follow_redirects=False)
    for _ in range(max_redirects + 1):
        req = urllib.request.Request(url, headers=headers, method="HEAD")
        try:
            resp = opener.open(req, timeout=timeout)
            status, h = resp.status, resp.headers
            resp.close()
        except urllib.error.HTTPError as e:
            status, h = e.code, e.headers
            e.close()
            if status < 300 or status >= 400:
                raise
        meta = {k.lower(): v for k, v in h.items()}
        meta["status"], meta["url"] = status, url
        location = h.get("Location")
        if 300 <= status < 400 and location and "x-linked-etag" not in meta:
            target = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(target).netloc == urllib.parse.urlsplit(url).netloc:
                url = target
                continue
        return meta
    raise DownloadError(f"{url}: too many redirects")


def sha256_from_etag(value):
    """The sha256 in an ETag/X-Linked-Etag value ('"<64 hex>"', possibly W/-prefixed), or None."""
    if not value:
        return None
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    v = v.strip('"').lower()
    if len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v
    return None
