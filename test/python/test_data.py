"""Offline tests of lnfree's data scripts (dev/data/, dev/download_model.py).

Only numpy and the standard library: tiktoken is replaced by a byte-level toy encoder, the Hugging Face hub by an
http.server on 127.0.0.1. Run: .venv/bin/python -m pytest test/python -q
"""

import http.server
import json
import os
import random
import re
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev", "data"))
sys.path.insert(0, os.path.join(ROOT, "dev"))

import lnfree_data as D  # noqa: E402
import openwebtext  # noqa: E402
import pile  # noqa: E402
import hellaswag  # noqa: E402
import download_model  # noqa: E402

EOT = 50256


def toy_encode(text):
    """Byte-level stand-in for tiktoken: one token per UTF-8 byte (ids 0..255). Module-level, so picklable."""
    return list(text.encode("utf-8"))


def no_leftovers(path):
    return not os.path.exists(path) and not os.path.exists(path + ".tmp")


# ------------------------------------------------------------------------------------------------ token shards


def test_shard_round_trip_and_llmc_header_bytes(tmp_path):
    path = str(tmp_path / "x_val_000000.bin")
    tokens = [0, 1, 255, 50256, 65534, 7]
    assert D.write_shard(path, tokens) == 6
    raw = open(path, "rb").read()
    assert len(raw) == 1024 + 2 * 6
    header = struct.unpack("<256i", raw[:1024])
    assert header[:3] == (20240520, 1, 6)
    assert all(h == 0 for h in header[3:])
    assert list(struct.unpack("<6H", raw[1024:])) == tokens
    got = D.read_shard(path)
    assert got.dtype == np.uint16 and got.tolist() == tokens
    assert D.read_shard(path, mmap=True).tolist() == tokens
    assert not os.path.exists(path + ".tmp")


def test_shard_accepts_arrays_and_empty(tmp_path):
    path = str(tmp_path / "e.bin")
    D.write_shard(path, np.zeros((0,), dtype=np.int64))
    assert os.path.getsize(path) == 1024 and D.read_shard(path).size == 0
    arr = np.arange(12, dtype=np.int32).reshape(3, 4)  # 2-D chunk arrays are written row by row
    D.write_shard(path, arr)
    assert D.read_shard(path).tolist() == list(range(12))


def test_size_mismatch_names_the_file(tmp_path):
    path = str(tmp_path / "short.bin")
    D.write_shard(path, list(range(10)))
    with open(path, "r+b") as f:
        f.truncate(1024 + 2 * 9)
    with pytest.raises(ValueError, match=r"short\.bin.*size mismatch.*10 tokens"):
        D.read_shard(path)
    with open(path, "ab") as f:
        f.write(b"\0\0\0\0")
    with pytest.raises(ValueError, match=r"short\.bin.*size mismatch"):
        D.read_shard(path)
    tiny = str(tmp_path / "tiny.bin")
    open(tiny, "wb").write(b"\0" * 10)
    with pytest.raises(ValueError, match=r"tiny\.bin.*shorter than the 1024-byte header"):
        D.read_shard(tiny)


def test_bad_magic_and_version_name_the_file(tmp_path):
    path = str(tmp_path / "magic.bin")
    D.write_shard(path, [1, 2, 3])
    raw = bytearray(open(path, "rb").read())
    raw[0:4] = struct.pack("<i", 12345)
    open(path, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match=r"magic\.bin.*bad magic 12345"):
        D.read_shard(path)
    raw[0:4] = struct.pack("<i", 20240520)
    raw[4:8] = struct.pack("<i", 2)
    open(path, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match=r"magic\.bin.*version 2"):
        D.read_shard(path)
    ev = str(tmp_path / "eval.bin")
    D.write_eval_file(ev, [([1], [[2], [3], [4], [5]], 0)])
    with pytest.raises(ValueError, match=r"eval\.bin.*bad magic 20240522.*eval file"):
        D.read_shard(ev)


@pytest.mark.parametrize("bad, vocab", [([1, -1, 2], None), ([1, 65535], None), ([70000], None), ([50257], 50257)])
def test_out_of_range_ids_leave_no_file(tmp_path, bad, vocab):
    path = str(tmp_path / "bad.bin")
    with pytest.raises(ValueError, match=r"bad\.bin.*token id"):
        D.write_shard(path, bad, vocab_size=vocab)
    assert no_leftovers(path)
    # an existing shard is left untouched by a rejected write
    D.write_shard(path, [5, 6])
    with pytest.raises(ValueError):
        D.write_shard(path, bad, vocab_size=vocab)
    assert D.read_shard(path).tolist() == [5, 6] and not os.path.exists(path + ".tmp")


def test_non_integer_tokens_rejected(tmp_path):
    path = str(tmp_path / "f.bin")
    with pytest.raises(ValueError, match="integers"):
        D.write_shard(path, [1.5, 2.0])
    assert no_leftovers(path)


def test_shard_writer_names_and_sizes(tmp_path):
    out = str(tmp_path)
    w = D.ShardWriter(out, "toy", shard_size=8, align=4, verbose=False)
    w.write("val", np.arange(12))  # 8 + 4: val shards 0 and 1
    w.write("train", np.arange(100, 120))  # 8 + 8 + 4
    shards = w.close()
    names = [(os.path.basename(p), s, n) for p, s, n in shards]
    assert names == [("toy_val_000000.bin", "val", 8), ("toy_val_000001.bin", "val", 4),
                     ("toy_train_000002.bin", "train", 8), ("toy_train_000003.bin", "train", 8),
                     ("toy_train_000004.bin", "train", 4)]
    assert np.concatenate([D.read_shard(p) for p, s, _ in shards if s == "train"]).tolist() == list(range(100, 120))
    with pytest.raises(ValueError, match="before training"):
        w.write("val", np.arange(4))
    with pytest.raises(ValueError, match="multiple of 4"):
        D.ShardWriter(out, "t2", shard_size=8, align=4, verbose=False).write("train", np.arange(6))
    with pytest.raises(ValueError, match="multiple"):
        D.ShardWriter(out, "t3", shard_size=10, align=4)


def test_train_only_starts_at_index_1_and_llmc_stream_split(tmp_path):
    w = D.ShardWriter(str(tmp_path), "tr", shard_size=5, verbose=False)
    w.write("train", np.arange(7))
    assert [os.path.basename(p) for p, _, _ in w.close()] == ["tr_train_000001.bin", "tr_train_000002.bin"]
    shards = D.split_stream_to_shards([np.arange(3), np.arange(3, 11), np.arange(11, 14)], str(tmp_path), "fw",
                                      shard_size=4, verbose=False)
    assert [(os.path.basename(p), n) for p, _, n in shards] == [
        ("fw_val_000000.bin", 4), ("fw_train_000001.bin", 4), ("fw_train_000002.bin", 4),
        ("fw_train_000003.bin", 2)]
    assert np.concatenate([D.read_shard(p) for p, _, _ in shards]).tolist() == list(range(14))


# ------------------------------------------------------------------------------------------------ chunking


def test_encode_documents_appends_eot():
    docs = D.encode_documents(["ab", "", "é"], toy_encode, eot=EOT)
    assert docs == [[97, 98, EOT], [EOT], [0xC3, 0xA9, EOT]]


def test_chunk_documents_drops_each_group_remainder():
    docs = [[1, 2, 3], [4, 5, 6], [7, 8, 9, 10, 11], [12], [13, 14, 15, 16, 17, 18, 19, 20, 21]]
    chunks = D.chunk_documents(docs, chunk_len=4, group_size=2)
    # group [1..6] -> [1,2,3,4] (5,6 dropped); group [7..12] -> [7,8,9,10] (11,12 dropped);
    # group [13..21] -> [13..16], [17..20] (21 dropped)
    assert chunks.dtype == np.uint16 and chunks.shape == (4, 4)
    assert chunks.tolist() == [[1, 2, 3, 4], [7, 8, 9, 10], [13, 14, 15, 16], [17, 18, 19, 20]]
    # one group: plain concatenate-and-rechunk
    assert D.chunk_documents(docs, chunk_len=4, group_size=None).tolist() == [
        list(range(1, 5)), list(range(5, 9)), list(range(9, 13)), list(range(13, 17)), list(range(17, 21))]
    assert D.chunk_documents([[1, 2]], chunk_len=4).shape == (0, 4)
    assert D.chunk_documents([], chunk_len=4).shape == (0, 4)
    with pytest.raises(ValueError, match="token id"):
        D.chunk_documents([[70000, 1, 2, 3]], chunk_len=4)


def test_recipe_groups_follow_hf_map_sharding():
    # 10 documents, num_proc 3: contiguous shards of 4, 3, 3; batches of 3 within each shard
    assert D.recipe_groups(10, group_size=3, map_num_proc=3) == [(0, 3), (3, 4), (4, 7), (7, 10)]
    assert D.recipe_groups(10, group_size=3, map_num_proc=None) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert D.recipe_groups(2, group_size=3, map_num_proc=32) == [(0, 1), (1, 2)]
    assert D.recipe_groups(0) == []
    # the OpenWebText validation split: 4,007 documents over 32 processes -> 32 single-batch groups
    g = D.recipe_groups(4007)
    assert len(g) == 32 and [e - s for s, e in g[:8]] == [126] * 7 + [125] and g[-1][1] == 4007
    # every document in exactly one group, in order
    g = D.recipe_groups(100_003, 512, 32)
    assert g[0][0] == 0 and g[-1][1] == 100_003 and all(a[1] == b[0] for a, b in zip(g, g[1:]))
    assert max(e - s for s, e in g) == 512


def test_split_helper_calls_train_test_split_with_the_recipe_arguments():
    class FakeDataset:
        def train_test_split(self, **kw):
            self.kw = kw
            return {"train": "TRAIN", "test": "TEST"}
    ds = FakeDataset()
    assert D.split_openwebtext(ds) == {"val": "TEST", "train": "TRAIN"}
    assert ds.kw == {"test_size": 0.0005, "seed": 2357, "shuffle": True}


# ------------------------------------------------------------------------------------------------ OpenWebText


DOCS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world!",
    "Layer norm is not needed at inference time.",
    "",
    "A short one.",
    "Pre-LN transformers keep a residual stream; éè non-ASCII bytes too.",
    "Another document that is a bit longer than the others in this small list of texts.",
    "x",
    "Fine-tuning removes the normalisation one layer at a time.",
    "The end.",
]


def reference_chunks(texts, groups, chunk_len):
    """Plain-Python statement of the recipe: per group, bytes + EOT per document, concatenated, whole chunks."""
    out = []
    for start, end in groups:
        flat = []
        for t in texts[start:end]:
            flat += list(t.encode("utf-8")) + [EOT]
        out += [flat[i:i + chunk_len] for i in range(0, len(flat) // chunk_len * chunk_len, chunk_len)]
    return out


def write_jsonl(path, docs):
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(docs):
            f.write(json.dumps({"id": i, "text": t}) + "\n")


@pytest.mark.parametrize("workers", [1, 2])
def test_openwebtext_pipeline_on_local_jsonl(tmp_path, workers):
    src = str(tmp_path / "docs.jsonl")
    write_jsonl(src, DOCS)
    texts = openwebtext.read_jsonl_texts(src)
    assert texts == DOCS
    splits = {"val": texts[:3], "train": texts[3:]}
    out = str(tmp_path / "out")
    meta = openwebtext.prepare_openwebtext(splits, out, toy_encode, name="owt", chunk_len=16, group_size=2,
                                           map_num_proc=2, workers=workers, shard_size=48, progress=False)
    # val: 3 docs, 2 map shards [0,2) [2,3); train: 7 docs, shards [0,4) [4,7), batches of 2 within each
    want_val = reference_chunks(splits["val"], [(0, 2), (2, 3)], 16)
    want_train = reference_chunks(splits["train"], [(0, 2), (2, 4), (4, 6), (6, 7)], 16)
    assert len(want_val) == 5 and len(want_train) == 12
    # 3 chunks per shard: val 3 + 2 chunks (shards 0, 1), train 4 shards of 3 chunks numbered on from 2
    files = sorted(f for f in os.listdir(out) if f.endswith(".bin"))
    assert files == ["owt_train_%06d.bin" % i for i in range(2, 6)] + ["owt_val_000000.bin", "owt_val_000001.bin"]
    val_files, train_files = files[4:], files[:4]
    got_val = np.concatenate([D.read_shard(os.path.join(out, f)) for f in val_files]).reshape(-1, 16).tolist()
    got_train = np.concatenate([D.read_shard(os.path.join(out, f)) for f in train_files]).reshape(-1, 16).tolist()
    assert got_val == want_val and got_train == want_train
    assert [D.read_shard_header(os.path.join(out, f)) for f in val_files] == [48, 32]
    assert all(D.read_shard_header(os.path.join(out, f)) == 48 for f in train_files)
    assert meta["tokens"] == {"val": 16 * len(want_val), "train": 16 * len(want_train)}
    on_disk = json.load(open(os.path.join(out, "owt_meta.json")))
    assert on_disk["shards"][0] == {"file": "owt_val_000000.bin", "split": "val", "tokens": 48}
    assert on_disk["chunk_len"] == 16 and on_disk["eot"] == EOT


def test_openwebtext_max_train_tokens_stops_on_whole_chunks(tmp_path):
    texts = [("document %d " % i) * (i + 3) for i in range(40)]
    out = str(tmp_path / "o")
    meta = openwebtext.prepare_openwebtext({"val": texts[:2], "train": texts[2:]}, out, toy_encode, name="m",
                                           chunk_len=8, group_size=4, map_num_proc=1, shard_size=64,
                                           max_train_tokens=100, progress=False)
    assert meta["tokens"]["train"] == 96  # 12 whole chunks
    full = reference_chunks(texts[2:], D.recipe_groups(38, 4, 1), 8)
    got = np.concatenate([D.read_shard(os.path.join(out, f)) for f in sorted(os.listdir(out))
                          if f.startswith("m_train_")])
    assert got.reshape(-1, 8).tolist() == full[:12]


def test_local_split_is_seeded_and_complete():
    texts = [str(i) for i in range(5000)]
    a, b = openwebtext.local_split(texts), openwebtext.local_split(texts)
    assert a == b and len(a["val"]) == 3 and sorted(a["val"] + a["train"], key=int) == texts


# ------------------------------------------------------------------------------------------------ the Pile


def test_pile_filter_on_hand_made_rows():
    pile_rows = [[1, 2, 3], [3, 4, 9], [5, 6], [2, 2, 7]]
    owt_rows = [[1, 2, 3, 4], [5, 6, 8]]
    pc, oc = D.count_tokens(pile_rows, vocab_size=10), D.count_tokens(owt_rows, vocab_size=10)
    assert pc.tolist() == [0, 1, 3, 2, 1, 1, 1, 1, 0, 1]
    banned = D.pile_only_tokens(pc, oc)
    assert banned.tolist() == [7, 9]  # in the Pile sample, never in OWT; 8 is OWT-only
    assert D.pile_only_tokens({1: 2, 7: 1, 9: 4}, {1: 5}).tolist() == [7, 9]
    kept = list(D.filter_rows(pile_rows, banned))
    assert kept == [[1, 2, 3], [5, 6]]
    assert list(D.filter_rows(pile_rows, [])) == pile_rows
    # lazy: islice stops consuming the stream once enough rows are kept
    consumed = []

    def stream():
        for r in pile_rows + [[7]] * 3 + [[1]] * 100:
            consumed.append(r)
            yield r
    import itertools
    assert list(itertools.islice(D.filter_rows(stream(), banned), 2)) == [[1, 2, 3], [5, 6]]
    assert len(consumed) == 3
    with pytest.raises(ValueError, match="token id 12"):
        D.count_tokens([[12]], vocab_size=10)


def test_pile_rebuild_filter_and_eval_chunks():
    rng = np.random.default_rng(0)
    pile_rows = [rng.integers(0, 50, size=8).tolist() for _ in range(30)] + [[60] * 8, [61] * 8]
    owt_rows = [list(range(50))]
    banned, pc, oc = pile.rebuild_filter(iter(pile_rows), iter(owt_rows), n_rows=1000, vocab_size=100,
                                         progress=False)
    assert banned.tolist() == [60, 61]
    kept = list(D.filter_rows(pile_rows, banned))
    assert len(kept) == 30
    chunks = pile.eval_chunks(kept, num_samples=10, chunk_len=16, seed=42)
    assert chunks.shape == (10, 16)
    order = np.random.default_rng(42).permutation(30)
    flat = [t for i in order for t in kept[i]]
    assert chunks.reshape(-1).tolist() == flat[:160]
    # fewer tokens than num_samples chunks: only whole chunks
    assert pile.eval_chunks(kept[:3], num_samples=10, chunk_len=16, seed=None).shape == (1, 16)
    # pile-apollo-luca selection: all rows when num_samples covers them, else shuffle(seed).select(range(n))
    assert pile.select_rows(kept, 100) == kept
    assert pile.select_rows(kept, 5, seed=1) == [kept[i] for i in np.random.default_rng(1).permutation(30)[:5]]


def test_pile_eval_shard_written(tmp_path):
    chunks = pile.eval_chunks([list(range(i, i + 16)) for i in range(4)], 10, 16, seed=None)
    path = pile.write_eval_shard(str(tmp_path), "pile", chunks, {"source": "test"}, progress=False)
    assert os.path.basename(path) == "pile_val_000000.bin"
    assert D.read_shard(path).reshape(-1, 16).tolist() == chunks.tolist()
    assert json.load(open(tmp_path / "pile_meta.json"))["chunks"] == 4


# ------------------------------------------------------------------------------------------------ eval files


def test_eval_file_round_trip_and_bytes(tmp_path):
    path = str(tmp_path / "mc.bin")
    examples = [
        {"context": [10, 11, 12], "completions": [[1], [2, 3], [4, 5, 6], []], "label": 2},
        ([50256], [[7, 8], [9], [10], [11, 12, 13, 14]], 0),
    ]
    assert D.write_eval_file(path, examples) == 2
    raw = open(path, "rb").read()
    header = struct.unpack("<256i", raw[:1024])
    # example 0: 5 fields + (1+3) + (1+1) + (1+2) + (1+3) + (1+0) = 19 uint16 = 38 bytes; example 1: 5+2+3+2+2+5 = 19
    assert header[:4] == (20240522, 1, 2, 38)
    stream = list(struct.unpack(f"<{(len(raw) - 1024) // 2}H", raw[1024:]))
    assert stream[:9] == [65535, 38, 0, 2, 4, 3, 10, 11, 12]
    assert stream[19:24] == [65535, 38, 1, 0, 4]
    got = D.read_eval_file(path)
    assert got == [
        {"index": 0, "label": 2, "context": [10, 11, 12], "completions": [[1], [2, 3], [4, 5, 6], []]},
        {"index": 1, "label": 0, "context": [50256], "completions": [[7, 8], [9], [10], [11, 12, 13, 14]]},
    ]


def test_eval_file_errors(tmp_path):
    path = str(tmp_path / "mc.bin")
    with pytest.raises(ValueError, match="3 completions"):
        D.write_eval_file(path, [([1], [[1], [2], [3]], 0)])
    with pytest.raises(ValueError, match="label 4"):
        D.write_eval_file(path, [([1], [[1], [2], [3], [4]], 4)])
    with pytest.raises(ValueError, match="token id 65535"):
        D.write_eval_file(path, [([65535], [[1], [2], [3], [4]], 0)])
    assert no_leftovers(path)
    D.write_eval_file(path, [([1], [[1], [2], [3], [4]], 1)])
    with open(path, "ab") as f:
        f.write(b"\1\0")
    with pytest.raises(ValueError, match=r"mc\.bin.*size mismatch"):
        D.read_eval_file(path)
    shard = str(tmp_path / "s.bin")
    D.write_shard(shard, [1, 2])
    with pytest.raises(ValueError, match=r"s\.bin.*bad magic 20240520"):
        D.read_eval_file(shard)


def test_hellaswag_local_jsonl(tmp_path):
    src = str(tmp_path / "hs.jsonl")
    rows = [
        {"ind": 0, "ctx": "A man sits", "endings": ["down.", "up", "on a chair", "x"], "label": 2},
        {"ind": 1, "ctx": "Then", "endings": ["a", "b", "c", "d"], "label": "1"},
    ]
    with open(src, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    out = str(tmp_path / "hellaswag_val.bin")
    assert hellaswag.prepare_hellaswag(src, out, toy_encode) == 2
    got = D.read_eval_file(out)
    assert got[0]["context"] == list(b"A man sits")
    assert got[0]["completions"] == [list(b" down."), list(b" up"), list(b" on a chair"), list(b" x")]
    assert got[0]["label"] == 2 and got[1]["label"] == 1 and got[1]["index"] == 1


# ------------------------------------------------------------------------------------------------ downloads


class FakeServer:
    """An HTTP server on 127.0.0.1 in a thread. routes: path -> bytes, or a dict with 'data' (bytes), 'status',
    'headers' (extra response headers), 'location'. Honours 'Range: bytes=N-' unless honor_range is False; cut_after
    makes the next GET send only that many body bytes and drop the connection. Records every request."""

    def __init__(self, routes, honor_range=True):
        self.routes, self.honor_range = routes, honor_range
        self.cut_after = None
        self.requests = []  # (method, path, Range, Authorization)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _route(self):
                server.requests.append((self.command, self.path, self.headers.get("Range"),
                                        self.headers.get("Authorization")))
                r = server.routes.get(self.path)
                if r is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return r if isinstance(r, dict) else {"data": r}

            def do_HEAD(self):
                r = self._route()
                if r is None:
                    return
                self.send_response(r.get("status", 200))
                for k, v in r.get("headers", {}).items():
                    self.send_header(k, v)
                if "location" in r:
                    self.send_header("Location", r["location"])
                self.send_header("Content-Length", str(len(r.get("data", b""))))
                self.end_headers()

            def do_GET(self):
                r = self._route()
                if r is None:
                    return
                if "location" in r:
                    self.send_response(r.get("status", 302))
                    self.send_header("Location", r["location"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, start = r["data"], 0
                rng = self.headers.get("Range")
                if rng and server.honor_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[:server.cut_after])
                    server.cut_after = None
                    self.close_connection = True
                else:
                    self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


PAYLOAD = random.Random(0).randbytes(300_000)


def test_download_resumes_after_interruption(tmp_path):
    dest = str(tmp_path / "model.safetensors")
    sha = D.hashlib.sha256(PAYLOAD).hexdigest()
    with FakeServer({"/f": PAYLOAD}) as srv:
        srv.cut_after = 100_000
        with pytest.raises(D.DownloadError, match="rerun to resume"):
            D.download_file(srv.url + "/f", dest, retries=0, chunk_size=8192, progress=False)
        assert not os.path.exists(dest)
        assert os.path.getsize(dest + ".part") == 100_000
        assert open(dest + ".part", "rb").read() == PAYLOAD[:100_000]
        # rerun: continues from byte 100,000 with a Range request, verifies, renames
        assert D.download_file(srv.url + "/f", dest, retries=0, expected_sha256=sha, expected_size=len(PAYLOAD),
                               progress=False) is True
        assert srv.requests[-1][:3] == ("GET", "/f", "bytes=100000-")
        assert open(dest, "rb").read() == PAYLOAD and not os.path.exists(dest + ".part")
        # third run: already complete, no request at all
        n = len(srv.requests)
        assert D.download_file(srv.url + "/f", dest, retries=0, progress=False) is False
        assert len(srv.requests) == n


def test_download_retries_resume_within_one_call(tmp_path):
    dest = str(tmp_path / "a.bin")
    with FakeServer({"/f": PAYLOAD}) as srv:
        srv.cut_after = 12_345
        D.download_file(srv.url + "/f", dest, retries=2, backoff=0, progress=False)
        assert [r[2] for r in srv.requests] == [None, "bytes=12345-"]
    assert open(dest, "rb").read() == PAYLOAD


def test_download_restarts_when_server_ignores_range(tmp_path):
    dest = str(tmp_path / "b.bin")
    open(dest + ".part", "wb").write(b"garbage" * 100)
    with FakeServer({"/f": PAYLOAD}, honor_range=False) as srv:
        D.download_file(srv.url + "/f", dest, retries=0, progress=False)
        assert srv.requests[0][2] == "bytes=700-"
    assert open(dest, "rb").read() == PAYLOAD


def test_download_complete_part_and_416(tmp_path):
    dest = str(tmp_path / "c.bin")
    open(dest + ".part", "wb").write(PAYLOAD)
    with FakeServer({"/f": PAYLOAD}) as srv:
        D.download_file(srv.url + "/f", dest, retries=0, progress=False)  # server answers 416 bytes */N
        assert srv.requests[0][2] == f"bytes={len(PAYLOAD)}-"
    assert open(dest, "rb").read() == PAYLOAD and not os.path.exists(dest + ".part")


def test_download_sha256_mismatch_and_404(tmp_path):
    dest = str(tmp_path / "d.bin")
    with FakeServer({"/f": PAYLOAD}) as srv:
        with pytest.raises(D.DownloadError, match="sha256 mismatch"):
            D.download_file(srv.url + "/f", dest, retries=0, expected_sha256="0" * 64, progress=False)
        assert not os.path.exists(dest) and not os.path.exists(dest + ".part")
        with pytest.raises(D.DownloadError, match="HTTP 404"):
            D.download_file(srv.url + "/missing", dest, retries=3, progress=False)
        assert len(srv.requests) == 2  # a 404 is not retried


def test_download_model_against_a_fake_hub(tmp_path):
    """download_model: the hub renames gpt2 (same-host redirect), answers HEAD for model.safetensors with
    X-Linked-Etag and a redirect to a CDN on another host, which must not receive the token."""
    weights = PAYLOAD
    sha = D.hashlib.sha256(weights).hexdigest()
    with FakeServer({"/cdn/w": weights}) as cdn, FakeServer({}) as hub:
        base = "/openai-community/gpt2/resolve/main/"
        hub.routes.update({
            "/gpt2/resolve/main/config.json": {"status": 307, "location": base + "config.json"},
            base + "config.json": b'{"n_layer": 12}',
            "/gpt2/resolve/main/vocab.json": b"{}",
            "/gpt2/resolve/main/merges.txt": b"#version: 0.2\n",
            "/gpt2/resolve/main/model.safetensors": {"status": 307, "location": base + "model.safetensors"},
            base + "model.safetensors": {"status": 302, "location": cdn.url + "/cdn/w",
                                         "headers": {"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(weights)),
                                                     "X-Repo-Commit": "abc123"}},
        })
        out = str(tmp_path / "gpt2")
        done = download_model.download_model("gpt2", out, endpoint=hub.url, token="secret", progress=False)
        assert sorted(done) == ["config.json", "merges.txt", "model.safetensors", "vocab.json"]  # optional 404s skipped
        assert open(os.path.join(out, "model.safetensors"), "rb").read() == weights
        assert open(os.path.join(out, "config.json"), "rb").read() == b'{"n_layer": 12}'
        assert all(auth == "Bearer secret" for _, _, _, auth in hub.requests)
        assert cdn.requests and all(auth is None for _, _, _, auth in cdn.requests)
        # a wrong hub hash is caught
        hub.routes[base + "model.safetensors"]["headers"]["X-Linked-Etag"] = '"' + "1" * 64 + '"'
        os.remove(os.path.join(out, "model.safetensors"))
        with pytest.raises(D.DownloadError, match="sha256 mismatch"):
            download_model.download_model("gpt2", out, endpoint=hub.url, files=["model.safetensors"], progress=False)


def test_sha256_from_etag():
    h = "ab" * 32
    assert D.sha256_from_etag(f'"{h}"') == h and D.sha256_from_etag(f'W/"{h.upper()}"') == h
    assert D.sha256_from_etag('"1234"') is None and D.sha256_from_etag(None) is None


# ------------------------------------------------------------------------------------------------ scripts


@pytest.mark.parametrize("script", ["dev/download_model.py", "dev/data/openwebtext.py", "dev/data/pile.py",
                                    "dev/data/hellaswag.py"])
def test_scripts_help_without_optional_packages(script):
    r = subprocess.run([sys.executable, os.path.join(ROOT, script), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr


def test_module_imports_nothing_heavy():
    code = ("import sys; sys.path.insert(0, 'dev/data'); import lnfree_data, openwebtext, pile, hellaswag; "
            "print(sorted(m for m in ('numpy', 'datasets', 'tiktoken', 'tqdm') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_missing_package_error_names_pip_package():
    with pytest.raises(D.MissingPackageError, match=r"pip install no-such-pkg-xyz"):
        D.require("no_such_module_xyz", "no-such-pkg-xyz")
