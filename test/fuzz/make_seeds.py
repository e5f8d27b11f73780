"""Extra safetensors seeds written by the reference implementation (the `safetensors` package), so the corpus also
holds files laid out the way Hugging Face writes them. dev/fuzz.sh runs it with .venv/bin/python when that has
safetensors and numpy; otherwise the C++ seeds (make_seeds.cpp) are used alone.

    make_seeds.py OUT_DIR   # writes OUT_DIR/hf_*.safetensors
"""
import sys

import numpy as np
from safetensors.numpy import save_file

out = sys.argv[1]
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
