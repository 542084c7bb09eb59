"""The protobuf wire format, column-wise: many values encoded at once with numpy, no schema.

In: numpy arrays of values (or bytes, or a message descriptor for :func:`tag`). Out:
:data:`Rows`, a byte matrix with one zero-padded row per value and each row's length:
varints, fixed-width floats, constant tags, rows concatenated part by part (:func:`hcat`),
length-delimited fields (:func:`field`), and one gather of byte ranges into a stream
(:func:`gather`). The telemetry generator (:mod:`benchmarks.telemetry_encode`) builds whole
messages from these without a Python object per message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from google.protobuf.descriptor import Descriptor, FieldDescriptor

U8 = np.uint8
#: A byte matrix (one row per item, zero-padded on the right) and each row's length.
Rows = tuple[np.ndarray, np.ndarray]

_WIRE_TYPES = {
    FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FLOAT: 5,
    FieldDescriptor.TYPE_INT32: 0,
    FieldDescriptor.TYPE_INT64: 0,
    FieldDescriptor.TYPE_BOOL: 0,
    FieldDescriptor.TYPE_ENUM: 0,
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
}


def varint_bytes(value: int) -> bytes:
    """Encode one non-negative integer as a protobuf varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def tag(descriptor: Descriptor, field: str) -> bytes:
    """The encoded tag (field number and wire type) of ``descriptor.field``."""
    fd = descriptor.fields_by_name[field]
    return varint_bytes(fd.number << 3 | _WIRE_TYPES[fd.type])


def varints(values: np.ndarray) -> Rows:
    """Encode integers as varints, one row each; negatives as 10-byte two's complement."""
    v = np.asarray(values).astype(np.int64).view(np.uint64)
    width = max(1, (int(v.max()).bit_length() + 6) // 7) if len(v) else 1
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    groups = ((v[:, None] >> shifts) & np.uint64(0x7F)).astype(U8)
    # One byte per 7 bits up to the highest set one; zero is one byte.
    lengths = 1 + np.searchsorted(np.left_shift(np.uint64(1), shifts[1:]), v, side="right")
    groups[np.arange(width)[None, :] < (lengths - 1)[:, None]] |= 0x80
    return groups, lengths.astype(np.int64)


def const(data: bytes, n: int) -> Rows:
    """The same bytes in each of ``n`` rows."""
    row = np.frombuffer(data, dtype=U8)
    return np.broadcast_to(row, (n, len(row))), np.full(n, len(row), dtype=np.int64)


def fixed(values: np.ndarray, dtype: str) -> Rows:
    """Little-endian fixed-width encodings (``<f4``, ``<f8``), one row per value."""
    raw = np.ascontiguousarray(values, dtype=dtype).view(U8).reshape(len(values), -1)
    return raw, np.full(len(values), raw.shape[1], dtype=np.int64)


def hcat(parts: Sequence[Rows]) -> Rows:
    """Concatenate byte rows part by part: row ``i`` is part 1's row ``i``, then part 2's...

    Each part is copied whole, padding included, at each row's current end: the padding is
    overwritten by the next part or lies past the row's length, so it never shows. Rows are
    copied in groups of equal offset (a handful, as lengths take few values), by slices.
    """
    n = len(parts[0][1])
    out = np.zeros((n, sum(m.shape[1] for m, _ in parts)), dtype=U8)
    offset = np.zeros(n, dtype=np.int64)
    for matrix, lengths in parts:
        width = matrix.shape[1]
        first = int(offset[0]) if n else 0
        if (offset == first).all():
            out[:, first : first + width] = matrix
        else:
            for at in np.unique(offset):
                rows = offset == at
                out[rows, at : at + width] = matrix[rows]
        offset += lengths
    return out, offset


def field(tag_bytes: bytes, body: Rows) -> Rows:
    """A length-delimited field: its tag, the body's length as a varint, the body."""
    n = len(body[1])
    return hcat([const(tag_bytes, n), varints(body[1]), body])


def gather(source: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate the byte ranges ``source[start : start + length]``, in order."""
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    if not len(lengths):
        return source[:0]
    # The index of each output byte in ``source``: +1 within a range, a jump between ranges,
    # so one cumulative sum builds it (no repeat of every range's start).
    dtype = np.int32 if source.size < 2**31 else np.int64  # half the memory traffic
    step = np.ones(int(lengths.sum()), dtype=dtype)
    step[0] = starts[0]
    step[np.cumsum(lengths)[:-1]] = starts[1:] - (starts[:-1] + lengths[:-1]) + 1
    return source[np.cumsum(step, out=step)]


def strings(values: Sequence[str]) -> Rows:
    """UTF-8 encodings of ``values``, one row each."""
    encoded = [s.encode() for s in values]
    matrix = np.zeros((len(encoded), max(len(e) for e in encoded)), dtype=U8)
    for i, e in enumerate(encoded):
        matrix[i, : len(e)] = np.frombuffer(e, dtype=U8)
    return matrix, np.array([len(e) for e in encoded], dtype=np.int64)
