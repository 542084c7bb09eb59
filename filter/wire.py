"""The protobuf wire format's primitives, compiled: varints in and out, and field skipping.

In: a buffer of bytes (a NumPy uint8 array, possibly a view of a memory-mapped file) and a
position; out: the decoded value and the next position, or -1 where the bytes stop short or do
not follow the format (the callers then hand the message to the protobuf runtime, which names
the problem). Shared by the compiled key/value decoder (`filter.readers.kv_decoder`) and the
protobuf stream writer (`filter.protobuf_writer`). Varints decode to int64: a value of 2**63
or more keeps its bit pattern, as the runtime stores it.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def varint(buf, pos, end):  # -> (value, next position); next -1 when truncated/too long
    result = np.int64(0)
    shift = 0
    while pos < end:
        byte = np.int64(buf[pos])
        pos += 1
        if shift < 64:
            result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            return result, -1
    return result, -1


@njit(cache=True, nogil=True, inline="always")
def skip(buf, pos, end, wire):  # position after a value of `wire` type, -1 when bad
    if wire == 0:
        _, pos = varint(buf, pos, end)
        return pos
    if wire == 1:
        return pos + 8 if pos + 8 <= end else -1
    if wire == 5:
        return pos + 4 if pos + 4 <= end else -1
    if wire == 2:
        length, pos = varint(buf, pos, end)
        if pos < 0 or length < 0 or pos + length > end:
            return -1
        return pos + length
    return -1  # groups (3, 4) and the reserved types: the plain path decides


@njit(cache=True, nogil=True, inline="always")
def put_varint(out, at, value):
    """Write `value` as a varint at `out[at]`; the next position. A negative int64 is sent as
    its 64-bit pattern (10 bytes), as the format says."""
    bits = np.uint64(value)
    while bits >= 0x80:
        out[at] = (bits & 0x7F) | 0x80
        bits >>= np.uint64(7)
        at += 1
    out[at] = bits
    return at + 1


@njit(cache=True, nogil=True, inline="always")
def varint_size(value):
    """How many bytes `put_varint` writes for `value`."""
    bits = np.uint64(value)
    size = 1
    while bits >= 0x80:
        bits >>= np.uint64(7)
        size += 1
    return size
