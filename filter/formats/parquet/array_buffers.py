"""Arrow arrays as the Parquet encoder reads them: numpy views of their buffers.

In: primitive, boolean and string Arrow arrays.
Out: per row validity (`array_validity`), the bits of a buffer (`bits`), the values of a
primitive array as its buffer holds them (`array_values`). (Arrays built from numpy values:
`filter.arrow_arrays`.)
May fail: `UnsupportedColumn`, the encoder's refusal of an array type it does not encode.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class UnsupportedColumn(TypeError):
    """An array type this writer does not encode."""


def array_validity(array: pa.Array) -> np.ndarray | None:
    """Per row of `array`, whether it is valid (None: all are)."""
    if array.null_count == 0:
        return None
    if array.null_count == len(array):
        return np.zeros(len(array), np.bool_)
    return bits(array, 0)


def bits(array: pa.Array, buffer: int) -> np.ndarray:
    """Buffer `buffer` of `array` (0: validity; 1: a boolean array's values), a bool per row."""
    bits = np.unpackbits(np.frombuffer(array.buffers()[buffer], np.uint8), bitorder="little")
    return bits[array.offset:array.offset + len(array)].view(np.bool_)


def array_values(array: pa.Array, dtype: type | None = None) -> np.ndarray:
    """The values of a primitive (non-boolean) array, all rows (whatever lies under a null),
    read from its buffer, as `dtype` (integers keep their bits: an unsigned value past the
    signed range wraps, as Parquet stores it); by default as stored."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        stored = np.dtype(np.int64)
    elif pa.types.is_integer(kind):
        signed = "i" if pa.types.is_signed_integer(kind) else "u"
        stored = np.dtype(f"<{signed}{kind.bit_width // 8}")
    elif pa.types.is_floating(kind):
        stored = np.dtype(f"<f{kind.bit_width // 8}")
    else:
        raise UnsupportedColumn(f"{kind}")
    raw = np.frombuffer(array.buffers()[1], stored)
    raw = raw[array.offset:array.offset + len(array)]
    return raw if dtype is None else raw.astype(dtype, copy=False)
