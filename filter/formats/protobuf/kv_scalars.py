"""The compiled key/value decoder's helpers on single values and byte spans.

In: the file's bytes by address (`data`, as `kv_passes` states the conventions), or as an
array (`buf`).
Out: `scalar` (one scalar of a field kind off the wire), `valid_utf8`, `float64_bits` /
`float32_bits` (a float's bits as the wire holds them, for writers of the same kinds),
`gather_bytes` (byte spans as one Arrow buffer and its offsets) and `bounds` (an array's least
and greatest values).
May fail: nothing; a failed read returns -1 as its next position, for the caller to stop at.
"""

from __future__ import annotations

import numpy as np
from numba.extending import intrinsic

from filter.formats.protobuf.kv_tables import (
    K_BOOL,
    K_DOUBLE,
    K_FIXED32,
    K_FIXED64,
    K_FLOAT,
    K_INT32,
    K_SFIXED32,
    K_SFIXED64,
    K_SINT32,
    K_SINT64,
    K_STRING,
    K_UINT32,
)
from filter.formats.protobuf.wire import load_u8, varint
from filter.jit import kernel


@kernel(inline="always")
def valid_utf8(data, pos, end):
    while pos < end:
        c = load_u8(data, pos)
        if c < 0x80:
            pos += 1
            continue
        if 0xC2 <= c <= 0xDF:
            n = 1
        elif 0xE0 <= c <= 0xEF:
            n = 2
        elif 0xF0 <= c <= 0xF4:
            n = 3
        else:
            return False
        if pos + n >= end:  # the sequence runs past the string
            return False
        c1 = load_u8(data, pos + 1)
        if c1 < 0x80 or c1 > 0xBF:
            return False
        if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 > 0x9F):
            return False  # overlong, surrogates
        if (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 > 0x8F):
            return False  # overlong, above U+10FFFF
        for k in range(2, n + 1):
            ck = load_u8(data, pos + k)
            if ck < 0x80 or ck > 0xBF:
                return False
        pos += n + 1
    return True


@intrinsic
def _bitcast(typingctx, value, target):
    """Reinterpret a number's bits as the type `target` of the same width (no memory round
    trip): an integer's as a float, or a float's as an integer."""
    to = target.instance_type if hasattr(target, "instance_type") else target.dtype

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(to))

    return to(value, target), codegen


@kernel(inline="always")
def _as_float64(bits):
    return _bitcast(np.int64(bits), np.float64)


@kernel(inline="always")
def _as_float32(bits):
    return _bitcast(np.int32(np.uint32(bits & 0xFFFFFFFF)), np.float32)


@kernel(inline="always")
def float64_bits(value):
    """The bits of a double, as the wire's fixed 64 bits hold them (int64)."""
    return _bitcast(np.float64(value), np.int64)


@kernel(inline="always")
def float32_bits(value):
    """The bits of `value` as a float (the wire's fixed 32 bits), as a non-negative int64."""
    return np.int64(_bitcast(np.float32(value), np.int32)) & 0xFFFFFFFF


@kernel(inline="always")
def scalar(data, pos, end, kind):
    """Decode one scalar of `kind` at `pos`: -> (integer, float, next position or -1).

    Integers, booleans and fixed-width integers give the integer; doubles and floats the
    float; strings and bytes their start as the integer (their length: next - start).
    The caller stores them: arrays handed to a helper cost numba's reference counting per
    call (`wire`).
    """
    if kind <= K_BOOL:
        value, pos = varint(data, pos, end)
        if pos < 0:
            return 0, 0.0, -1
        if kind == K_INT32:
            value = np.int64(np.int32(value & 0xFFFFFFFF))
        elif kind == K_UINT32:
            value = value & 0xFFFFFFFF
        elif kind == K_SINT32:
            value = np.int64(np.int32(((value & 0xFFFFFFFF) >> 1) ^ -(value & 1)))
        elif kind == K_SINT64:
            value = ((value >> 1) & 0x7FFFFFFFFFFFFFFF) ^ -(value & 1)
        elif kind == K_BOOL:
            value = 1 if value != 0 else 0
        return value, 0.0, pos
    if kind in (K_FIXED64, K_SFIXED64, K_DOUBLE):
        if pos + 8 > end:
            return 0, 0.0, -1
        raw = np.int64(0)
        for k in range(8):
            raw |= load_u8(data, pos + k) << (8 * k)
        if kind == K_DOUBLE:
            return 0, _as_float64(raw), pos + 8
        return raw, 0.0, pos + 8
    if kind in (K_FIXED32, K_SFIXED32, K_FLOAT):
        if pos + 4 > end:
            return 0, 0.0, -1
        raw32 = np.int64(0)
        for k in range(4):
            raw32 |= load_u8(data, pos + k) << (8 * k)
        if kind == K_FLOAT:
            return 0, np.float64(_as_float32(raw32)), pos + 4
        if kind == K_SFIXED32:
            return np.int64(np.int32(raw32)), 0.0, pos + 4
        return raw32, 0.0, pos + 4
    # K_STRING, K_BYTES: the span; K_TIMESTAMP and K_MESSAGE are the caller's
    length, pos = varint(data, pos, end)
    if pos < 0 or length < 0 or pos + length > end:
        return 0, 0.0, -1
    if kind == K_STRING and not valid_utf8(data, pos, pos + length):
        return 0, 0.0, -1
    return pos, 0.0, pos + length


@kernel()
def gather_bytes(buf, starts, lengths, valid):
    """The spans as one Arrow byte buffer and its int64 offsets (invalid rows empty)."""
    n = len(starts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    total = 0
    for i in range(n):
        if valid[i]:
            total += lengths[i]
        offsets[i + 1] = total
    data = np.empty(total, dtype=np.uint8)
    for i in range(n):
        if valid[i]:
            o = offsets[i]
            s = starts[i]
            for k in range(lengths[i]):
                data[o + k] = buf[s + k]
    return offsets, data


@kernel(inline="always")
def bounds(values):  # pragma: no cover - compiled
    """The least and the greatest of `values` (not empty), in one pass."""
    low = values[0]
    high = values[0]
    for v in values:
        low = min(low, v)
        high = max(high, v)
    return low, high
