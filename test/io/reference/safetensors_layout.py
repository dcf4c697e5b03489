"""Prints the header safetensors writes for the tensors of safetensors.test.ts's
"writer layout equals safetensors save_file" test (safetensors 0.8.0, numpy 2.x):

    .venv/bin/python test/io/reference/safetensors_layout.py

It saves them with `safetensors.numpy.save(t, metadata={"format": "pt"})` and prints the JSON
header and the data bytes, which the test's expected string and byte list copy. Each tensor is
filled with one byte value, as the test's `one(dtype, shape, fill)` does.
"""
import json
import struct

import numpy as np
from safetensors.numpy import save


def one(dtype: str, shape: list[int], fill: int) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return np.frombuffer(bytes([fill]) * n, dtype=dtype).reshape(shape).copy()


tensors = {
    "b": one("int32", [3], 1),
    "a": one("float16", [2], 2),
    "c": one("int64", [2], 3),
    "z": one("bool", [3], 1),
    "a2": one("float32", [1, 2], 4),
    "d": one("float64", [], 5),
    "e": one("int8", [0, 3], 0),
    "u": one("uint8", [1], 7),
    "s": one("int16", [1], 8),
    "0": one("int16", [1], 9),
    "é": one("int16", [1], 10),
    "\uffff": one("int16", [1], 11),
    "\U0001F600": one("int16", [1], 12),
}
blob = save(tensors, metadata={"format": "pt"})
(n,) = struct.unpack("<Q", blob[:8])
header = blob[8 : 8 + n].decode("utf-8")
print(json.dumps(header.rstrip(" "), ensure_ascii=False))
print(list(blob[8 + n :]))
