"""A leaf column's values as Parquet writes them: PLAIN encoded, as dictionary pages, and their
min/max/null statistics.

In: an Arrow array (or a dictionary array's dictionary and codes), its Parquet physical type,
and which of its rows are present.
Out: the present values (`present_values`: numpy values, or spans of byte strings), their
PLAIN encoding (`plain`), and the chunk statistics (`value_statistics`) encoded as PLAIN values.
The byte-string kernels are numba functions (`filter.jit.kernel`).
May fail: `UnsupportedColumn` for an array type that does not match the physical type, or a
dictionary holding nulls.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from filter.formats.parquet.array_buffers import UnsupportedColumn, array_values, bits
from filter.jit import kernel

# Parquet physical types (parquet.thrift).
BOOLEAN, INT32, INT64, FLOAT, DOUBLE, BYTE_ARRAY = 0, 1, 2, 4, 5, 6
_VALUE_DTYPE = {BOOLEAN: np.bool_, INT32: np.int32, INT64: np.int64, FLOAT: np.float32,
                DOUBLE: np.float64}


def present_values(array: pa.Array, physical: int, present: np.ndarray | None) -> object:
    """The leaf's values at its present rows, in the form `plain` takes for `physical`."""
    if physical == BYTE_ARRAY:
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
                or pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)):
            raise UnsupportedColumn(f"{array.type} as BYTE_ARRAY")
        offsets = np.frombuffer(array.buffers()[1], np.int64 if array.type in (
            pa.large_string(), pa.large_binary()) else np.int32)
        offsets = offsets[array.offset:array.offset + len(array) + 1].astype(np.int64)
        data = array.buffers()[2]
        data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        rows = (np.arange(len(array), dtype=np.int64) if present is None
                else np.flatnonzero(present))
        return _Spans(offsets, data, rows)
    if physical not in _VALUE_DTYPE:
        raise UnsupportedColumn(f"physical type {physical}")
    if physical == BOOLEAN:
        if not pa.types.is_boolean(array.type):
            raise UnsupportedColumn(f"{array.type} as BOOLEAN")
        values = bits(array, 1)
    else:
        if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
                or pa.types.is_timestamp(array.type)):
            raise UnsupportedColumn(f"{array.type} as physical type {physical}")
        values = array_values(array, _VALUE_DTYPE[physical])
    return values if present is None else values[present]


@dataclass(frozen=True)
class _Spans:
    """Byte strings: Arrow offsets and data, and which of them (rows, ascending) to take."""

    offsets: np.ndarray
    data: np.ndarray
    rows: np.ndarray


def value_count(values: object) -> int:
    return len(values.rows) if isinstance(values, _Spans) else len(values)  # type: ignore[arg-type]


def dictionary_values(
    dictionary: pa.Array, physical: int, codes: np.ndarray
) -> tuple[object, object]:
    """The dictionary page's values, and the values the codes use (for the statistics)."""
    if dictionary.null_count:
        raise UnsupportedColumn("a dictionary holding nulls")
    values = present_values(dictionary, physical, None)
    used = marked(codes, len(dictionary))
    if isinstance(values, _Spans):
        return values, _Spans(values.offsets, values.data, np.flatnonzero(used))
    return values, values[used]  # type: ignore[index]


def plain(values: object, physical: int) -> bytes:
    if isinstance(values, _Spans):
        return plain_byte_arrays(values.offsets, values.data, values.rows).tobytes()
    if physical == BOOLEAN:
        return np.packbits(values, bitorder="little").tobytes()  # type: ignore[call-overload]
    return np.ascontiguousarray(values).tobytes()  # type: ignore[call-overload]


#: A chunk's statistics: its null count, and the min and max of its values, encoded as
#: PLAIN values are (None when it has none).
Statistics = tuple[int, bytes | None, bytes | None]


def value_statistics(values: object, physical: int, unsigned: bool, nulls: int) -> Statistics:
    """Null count, and min and max of the present values (none when there are none)."""
    low = high = None
    if isinstance(values, _Spans):
        if len(values.rows):
            first, last = span_min_max(values.offsets, values.data, values.rows)
            low, high = (values.data[values.offsets[r]:values.offsets[r + 1]].tobytes()
                         for r in (first, last))
    elif len(values):  # type: ignore[arg-type]
        array = np.asarray(values)
        if physical == BOOLEAN:
            low, high = bytes([int(array.min())]), bytes([int(array.max())])
        elif physical in (FLOAT, DOUBLE):
            finite = array[~np.isnan(array)]
            if len(finite):
                lo, hi = finite.min(), finite.max()
                lo = -0.0 if lo == 0 else lo  # a zero may be either sign: bound both
                hi = 0.0 if hi == 0 else hi
                code = "<f" if physical == FLOAT else "<d"
                low, high = struct.pack(code, lo), struct.pack(code, hi)
        else:
            ordered = array.view(np.uint32 if physical == INT32 else np.uint64) if unsigned \
                else array
            low, high = ordered.min().tobytes(), ordered.max().tobytes()
    return nulls, low, high


@kernel()
def plain_byte_arrays(offsets, data, rows):  # pragma: no cover - compiled
    """PLAIN BYTE_ARRAY values: per row taken, a 4-byte length, then the bytes."""
    total = 0
    for r in rows:
        total += 4 + offsets[r + 1] - offsets[r]
    out = np.empty(total, np.uint8)
    o = 0
    for r in rows:
        start, end = offsets[r], offsets[r + 1]
        size = end - start
        out[o] = size & 0xFF
        out[o + 1] = (size >> 8) & 0xFF
        out[o + 2] = (size >> 16) & 0xFF
        out[o + 3] = (size >> 24) & 0xFF
        o += 4
        out[o:o + size] = data[start:end]
        o += size
    return out


@kernel()
def span_min_max(offsets, data, rows):  # pragma: no cover - compiled
    """The rows holding the least and the greatest byte string (unsigned bytewise order)."""
    low = rows[0]
    high = rows[0]
    for r in rows[1:]:
        if _less(offsets, data, r, low):
            low = r
        if _less(offsets, data, high, r):
            high = r
    return low, high


@kernel(inline="always")
def _less(offsets, data, a, b):  # pragma: no cover - compiled
    a0, a1, b0, b1 = offsets[a], offsets[a + 1], offsets[b], offsets[b + 1]
    n = min(a1 - a0, b1 - b0)
    for k in range(n):
        x, y = data[a0 + k], data[b0 + k]
        if x != y:
            return x < y
    return (a1 - a0) < (b1 - b0)


@kernel()
def marked(codes, size):  # pragma: no cover - compiled
    """Which of `size` dictionary entries the codes use."""
    used = np.zeros(size, np.bool_)
    for c in codes:
        used[c] = True
    return used
