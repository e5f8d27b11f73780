"""Extra seeds written by reference implementations, so the corpora also hold files laid out the way Hugging Face
writes them: safetensors files from the `safetensors` package, and (when .venv has `tokenizers`) a byte-level BPE
trained by the `tokenizers` package, as fuzz_tokenizer's input (vocab.json, NUL, merges.txt, NUL, a text).
dev/fuzz.sh runs it with .venv/bin/python when that has safetensors and numpy; otherwise the C++ seeds
(make_seeds.cpp) are used alone.

    make_seeds.py SEEDS_DIR   # writes SEEDS_DIR/fuzz_safetensors/hf_*.safetensors, SEEDS_DIR/fuzz_tokenizer/hf_bpe*
"""
import os
import sys
import tempfile

import numpy as np
from safetensors.numpy import save_file

seeds = sys.argv[1]
out = f"{seeds}/fuzz_safetensors"
rng = np.random.default_rng(0)
save_file({"wte.weight": rng.standard_normal((4, 3)).astype(np.float32),
           "wpe.weight": rng.standard_normal((2, 3)).astype(np.float16),
           "ln_f.bias": np.zeros(3, np.float32)},
          f"{out}/hf_model.safetensors", metadata={"format": "pt"})
save_file({"f64": np.array([1.0, -2.0, np.inf], np.float64),
           "i64": np.array([[1, -2], [3, 2**40]], np.int64),
           "i32": np.arange(5, dtype=np.int32),
           "u8": np.arange(3, dtype=np.uint8),
           "bool": np.array([True, False]),
           "i16": np.array([-1, 1], np.int16),
           "empty": np.zeros((0, 2), np.float32),
           "scalar": np.array(3.5, np.float32)},
          f"{out}/hf_dtypes.safetensors")
save_file({}, f"{out}/hf_empty.safetensors")

try:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
except ImportError:
    sys.exit(0)

# GPT-2's setup (byte-level pre-tokenizer, no prefix space, "<|endoftext|>"); the alphabet is only the bytes the
# texts use, so the files stay small (libFuzzer's inputs are at most 4096 bytes here)
texts = ["The quick brown fox jumps over the lazy dog.", "It's the thing: the other things aren't 2024's.",
         "caf\u00e9 na\u00efve \u6f22\u5b57 \U0001f642\n\n  spaced   out"]
for name, vocab_size, special in (("hf_bpe", 90, ["<|endoftext|>"]), ("hf_bpe_no_eot", 60, [])):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=special,
                                                       show_progress=False))
    with tempfile.TemporaryDirectory() as d:
        tok.model.save(d)
        with open(f"{d}/vocab.json", "rb") as f:
            vocab = f.read()
        with open(f"{d}/merges.txt", "rb") as f:
            merges = f.read()
    with open(f"{seeds}/fuzz_tokenizer/{name}", "wb") as f:
        f.write(vocab + b"\0" + merges + b"\0" + "the thing's caf\u00e9 \U0001f642<|endoftext|>".encode())
