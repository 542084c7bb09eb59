"""Arrow arrays as the Parquet encoder reads and builds them: numpy views of their buffers.

In: primitive, boolean and string Arrow arrays; or numpy values and validity masks.
Out: per row validity (`array_validity`), the bits of a buffer (`bits`), the values of a
primitive array as its buffer holds them (`array_values`); and Arrow arrays built over numpy
values without copies (`numpy_array`) or of Python strings (`string_array`).
May fail: `UnsupportedColumn`, the encoder's refusal of an array type it does not encode.
"""

from __future__ import annotations

import numpy as np
import polars as pl
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


def numpy_array(
    values: np.ndarray, valid: np.ndarray | None = None, kind: pa.DataType | None = None
) -> pa.Array:
    """A primitive Arrow array over `values` (no copy, but of booleans), null where not
    `valid`, of type `kind` (by default, the type of `values`' dtype). (Not `pa.array`: it
    imports pandas where pandas is installed, half a second.)"""
    kind = pa.from_numpy_dtype(values.dtype) if kind is None else kind
    data = np.packbits(values, bitorder="little") if values.dtype == np.bool_ else values
    nulls = 0 if valid is None else len(valid) - int(np.count_nonzero(valid))
    bitmap = None if not nulls else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(kind, len(values),
                                 [bitmap, pa.py_buffer(np.ascontiguousarray(data))],
                                 null_count=nulls)


def string_array(values: list[str]) -> pa.Array:
    """A string Arrow array of `values` (built by Polars: see `numpy_array`)."""
    return pl.Series(values, dtype=pl.String).to_arrow()


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
