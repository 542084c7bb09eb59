"""The protobuf wire format's primitives, compiled: varints in and out, and field skipping.

In: the address of a buffer of bytes (``array.ctypes.data`` of a NumPy uint8 array, possibly a
view of a memory-mapped file) and a position; out: the decoded value and the next position, or
-1 where the bytes stop short or do not follow the format (the callers then hand the message to
the protobuf runtime, which names the problem). Shared by the compiled key/value decoder
(`kv_scalars`, `kv_passes`) and the protobuf stream writer (`envelope_splice`).
Varints decode to int64: a value of 2**63 or more keeps its bit pattern, as the runtime stores
it.

Why addresses, not arrays: numba counts the references of every array handed to a helper, with
an atomic increment and decrement per call, even when the helper is inlined. At a few varints
per field that was 30-40% of the decoder's time; helpers taking the address and reading bytes
with `load_u8` cost nothing of the kind (counting a batch's entries: 23 ms to 9.5 ms). The
caller keeps the array alive and within bounds, as numba's unchecked indexing asked before.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from filter.jit import kernel


@intrinsic
def load_u8(typingctx, address, offset):
    """The byte at ``address + offset``, as an int64."""

    def codegen(context, builder, signature, args):
        where = builder.add(
            context.cast(builder, args[0], signature.args[0], types.intp),
            context.cast(builder, args[1], signature.args[1], types.intp),
        )
        byte = builder.load(builder.inttoptr(where, ir.PointerType(ir.IntType(8))))
        return builder.zext(byte, ir.IntType(64))

    return types.int64(address, offset), codegen


@intrinsic
def store_u8(typingctx, address, offset, value):
    """Write the low byte of `value` at ``address + offset``."""

    def codegen(context, builder, signature, args):
        where = builder.add(
            context.cast(builder, args[0], signature.args[0], types.intp),
            context.cast(builder, args[1], signature.args[1], types.intp),
        )
        byte = builder.trunc(context.cast(builder, args[2], signature.args[2], types.int64),
                             ir.IntType(8))
        builder.store(byte, builder.inttoptr(where, ir.PointerType(ir.IntType(8))))
        return context.get_dummy_value()

    return types.none(address, offset, value), codegen


@kernel(inline="always")
def varint(data, pos, end):  # -> (value, next position); next -1 when truncated/too long
    result = np.int64(0)
    if pos < 0:  # a read upstream failed: never read before the buffer
        return result, -1
    shift = 0
    while pos < end:
        byte = load_u8(data, pos)
        pos += 1
        if shift < 64:
            result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            return result, -1
    return result, -1


@kernel(inline="always")
def skip(data, pos, end, wire):  # position after a value of `wire` type, -1 when bad
    if pos < 0:  # a read upstream failed
        return -1
    if wire == 0:
        _, pos = varint(data, pos, end)
        return pos
    if wire == 1:
        return pos + 8 if pos + 8 <= end else -1
    if wire == 5:
        return pos + 4 if pos + 4 <= end else -1
    if wire == 2:
        length, pos = varint(data, pos, end)
        if pos < 0 or length < 0 or pos + length > end:
            return -1
        return pos + length
    return -1  # groups (3, 4) and the reserved types: the plain path decides


@kernel(inline="always")
def put_varint(out, at, value):
    """Write `value` as a varint at address `out` + `at`; the next position. A negative int64
    is sent as its 64-bit pattern (10 bytes), as the format says."""
    bits = np.uint64(value)
    while bits >= 0x80:
        store_u8(out, at, (bits & 0x7F) | 0x80)
        bits >>= np.uint64(7)
        at += 1
    store_u8(out, at, bits)
    return at + 1


@kernel(inline="always")
def varint_size(value):
    """How many bytes `put_varint` writes for `value`."""
    bits = np.uint64(value)
    size = 1
    while bits >= 0x80:
        bits >>= np.uint64(7)
        size += 1
    return size


@kernel(inline="always")
def count_field(data, pos, end, number):
    """How many times the length-delimited field `number` occurs at the top level of the
    message at [pos, end) (a key/value envelope's entries), and whether the message frames
    there: (count, 0), or (the count so far, 1) at the first tag that does not."""
    count = 0
    while pos < end:
        tag, pos = varint(data, pos, end)
        if pos < 0 or (tag >> 3) == 0:
            return count, 1
        wire = tag & 7
        if (tag >> 3) == number and wire == 2:
            count += 1
        pos = skip(data, pos, end, wire)
        if pos < 0:
            return count, 1
    return count, 0


@kernel()
def count_top_level(buf, number):
    """`count_field` over the whole of `buf` (one message's bytes, uint8)."""
    return count_field(buf.ctypes.data, 0, len(buf), number)
