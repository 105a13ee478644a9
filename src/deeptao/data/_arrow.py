"""numpy columns to arrow arrays and back, without pyarrow importing pandas.

``pyarrow.array(...)`` and ``Array.to_numpy()`` ask pandas whether their input
or output is one of its types, which imports pandas the first time: about a
third of a second per process on the development machine, paid by the parent
of ``deeptao prepare`` and by each of its workers, for tables that never touch
pandas. These helpers build and read the arrays from their buffers instead
(the Arrow columnar layout: a validity bitmap, values or offsets, and bytes).
Only the types the cache writes are supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["from_numpy", "to_numpy", "LARGE_STRING"]

LARGE_STRING = pa.large_string()
_FIXED = {pa.int64(): np.int64, pa.float64(): np.float64}


def from_numpy(values: np.ndarray | Sequence[Any], type: pa.DataType) -> pa.Array:
    """An arrow array of ``type`` (int64, float64, bool or large_string) holding ``values``.

    Text columns accept any values: ``None`` becomes a null, anything else its ``str``.
    """
    n = len(values)
    if type == LARGE_STRING:
        return _strings(values)
    if type == pa.bool_():
        bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
        return pa.Array.from_buffers(type, n, [None, pa.py_buffer(bits)])
    if type not in _FIXED:
        raise TypeError(f"no conversion to arrow type {type}")
    data = np.ascontiguousarray(values, dtype=_FIXED[type])
    return pa.Array.from_buffers(type, n, [None, pa.py_buffer(data)])


def _strings(values: np.ndarray | Sequence[Any]) -> pa.Array:
    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    encoded = [b"" if v is None else str(v).encode() for v in values]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
    n_null = int(n - valid.sum())
    validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if n_null else None
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(LARGE_STRING, n, buffers, null_count=n_null)


def to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of an int64 or float64 column without nulls, as a numpy array (a copy)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.type not in _FIXED or array.null_count:
        raise TypeError(f"no conversion of a {array.type} column with {array.null_count} nulls")
    dtype = np.dtype(_FIXED[array.type])
    if len(array) == 0:
        return np.zeros(0, dtype=dtype)
    data = array.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize).copy()
