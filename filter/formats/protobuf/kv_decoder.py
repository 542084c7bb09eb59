"""Compiled decoding of key/value envelopes: wire bytes straight into column buffers.

In: a `ProtoSchema` whose message is a key/value envelope (`filter.formats.protobuf.descriptors`),
and a stream file (varint-delimited messages, or one message per file).
Out: the same `Batch`es of rows as the plain path (`protobuf_batches.iter_batches`): one row per
entry, the columns and types of `message_rows.key_value_schema`, row for row identical.

How: the descriptor is compiled once into small tables (`KeyValueTables`: per field number,
its kind and slot, at each of the four levels envelope / entry / value / value member). Numba
functions, generated from nothing but those tables, walk the memory-mapped bytes: one pass
frames the next batch of messages and counts their entries, a second decodes every entry
into flat NumPy arrays (key number, oneof member, integer, float, and byte spans of strings
and member messages), a third decodes each message-typed member's leaves. Columns are then
built from the arrays with NumPy, Arrow buffers and Polars: nothing touches an entry in
Python.

What the compiled path does not decode it hands to the plain path, message by message, so
the result never depends on which path ran:
- a schema it cannot compile (envelope fields other than scalars and `Timestamp`s, members
  whose messages nest): `compile_tables` returns None and the plain path reads everything;
- a message with a field the descriptor does not know, a known field with an unexpected wire
  type, a member message or value sent twice (merge semantics), invalid UTF-8, or bytes that
  do not parse: flagged, re-read with the protobuf runtime (which gives the ``unknown_fields``
  column, or the error naming the place; a bad record goes to ``on_bad`` as before);
- a framing error (a truncated length prefix, a length past the end, an oversized message):
  the messages before it are decoded, then the plain framing reports or quarantines the rest.

May fail: what the plain path may (`InputError` naming file, byte offset and message index).
Memory: a batch of messages at a time; the file itself is memory-mapped, and the pages of
batches read two batches ago are handed back (`MADV_DONTNEED`): pages a process has touched
count in its resident memory, so a 1.5 GB stream read whole peaked at 1.9 GB. A page touched
again after that (a late reader of an old batch) is read back from the page cache, unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import mmap
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from numba.extending import intrinsic

from filter.errors import InputError
from filter.files import open_regular
from filter.formats.parquet.arrow_arrays import UnsupportedColumn, numpy_array, string_array
from filter.formats.parquet.encoder import encode_file
from filter.formats.parquet.leaf_columns import Column, Repeated, Sparse
from filter.formats.parquet.metadata import as_enum
from filter.formats.protobuf.descriptors import ProtoSchema
from filter.formats.protobuf.framing import (
    MAX_MESSAGE_BYTES,
    Frame,
    Framing,
    OnBadRecord,
    file_frames,
)
from filter.formats.protobuf.message_rows import (
    MAX_TIMESTAMP_SECONDS,
    MIN_TIMESTAMP_SECONDS,
    TIMESTAMP_TYPE,
    batched,
    envelope_frame,
    key_value_frame,
    key_value_schema,
    parse_or_report,
    value_column,
)
from filter.formats.protobuf.row_batches import Batch, RawMessages
from filter.formats.protobuf.wire import load_u8, skip, varint
from filter.jit import kernel

# Field kinds in the tables. The wire type each expects is `_WIRE[kind]`.
K_NONE, K_INT64, K_INT32, K_UINT32, K_SINT32, K_SINT64, K_BOOL = 0, 1, 2, 3, 4, 5, 6
K_FIXED64, K_SFIXED64, K_FIXED32, K_SFIXED32, K_DOUBLE, K_FLOAT = 7, 8, 9, 10, 11, 12
K_STRING, K_BYTES, K_TIMESTAMP, K_MESSAGE = 13, 14, 15, 16
_WIRE = np.array([-1, 0, 0, 0, 0, 0, 0, 1, 1, 5, 5, 1, 5, 2, 2, 2, 2], dtype=np.int8)
#: The wire type of each field kind (for writers of the same kinds).
WIRE_TYPES = _WIRE

_SCALAR_KIND = {
    FieldDescriptor.TYPE_INT64: K_INT64, FieldDescriptor.TYPE_UINT64: K_INT64,
    FieldDescriptor.TYPE_INT32: K_INT32, FieldDescriptor.TYPE_ENUM: K_INT32,
    FieldDescriptor.TYPE_UINT32: K_UINT32, FieldDescriptor.TYPE_SINT32: K_SINT32,
    FieldDescriptor.TYPE_SINT64: K_SINT64, FieldDescriptor.TYPE_BOOL: K_BOOL,
    FieldDescriptor.TYPE_FIXED64: K_FIXED64, FieldDescriptor.TYPE_SFIXED64: K_SFIXED64,
    FieldDescriptor.TYPE_FIXED32: K_FIXED32, FieldDescriptor.TYPE_SFIXED32: K_SFIXED32,
    FieldDescriptor.TYPE_DOUBLE: K_DOUBLE, FieldDescriptor.TYPE_FLOAT: K_FLOAT,
    FieldDescriptor.TYPE_STRING: K_STRING, FieldDescriptor.TYPE_BYTES: K_BYTES,
}
#: Field numbers above this are not put in the lookup tables (such a field goes to the plain path).
_MAX_TABLE_FIELD = 4096

_MIN_SECONDS, _MAX_SECONDS = MIN_TIMESTAMP_SECONDS, MAX_TIMESTAMP_SECONDS
#: Batches a split may hold at once, from decoding to writing (`protobuf_split`: one being
#: decoded, one decoded ahead, one being split, one split and held, one waiting for the
#: writer, one being written); the pages of older ones are handed back (a page handed back
#: too soon would be read again from the file: slower, never wrong).
_BATCHES_IN_FLIGHT = 6
# Framing stops (the status `frame_messages` returns).
_FRAMED_ALL, _FRAMED_BATCH, _FRAMING_ERROR = 0, 1, 2


@dataclass(frozen=True)
class MessageTable:
    """One message type's fields, compiled: field number -> slot, and each slot's kind."""

    fields: tuple[FieldDescriptor, ...]
    slot_of: np.ndarray  # int16[max field number + 1], -1 for numbers the message lacks
    kinds: np.ndarray  # int8[slots]

    @classmethod
    def of(cls, fields: list[FieldDescriptor], kinds: list[int]) -> MessageTable:
        """The table of `fields`, whose kinds are `kinds`."""
        top = max((f.number for f in fields), default=0)
        slot_of = np.full(top + 1, -1, dtype=np.int16)
        for slot, f in enumerate(fields):
            slot_of[f.number] = slot
        return cls(tuple(fields), slot_of, np.array(kinds, dtype=np.int8))


@dataclass(frozen=True)
class KeyValueTables:
    """The compiled layout of one key/value envelope type."""

    envelope: MessageTable  # the envelope's fields but the entries
    entries_number: int
    key_number: int
    value_number: int
    members: MessageTable  # the oneof's members
    member_tables: tuple[MessageTable | None, ...]  # per member: its message's leaves, or None


def compile_tables(schema: ProtoSchema) -> KeyValueTables | None:
    """The decoder tables of `schema`, or None when the compiled path cannot read it."""
    layout = schema.key_value
    if layout is None:
        return None
    envelope_fields = [f for f in schema.descriptor.fields if f is not layout.entries]
    envelope_kinds = [_envelope_kind(f) for f in envelope_fields]
    entry = layout.entries.message_type
    value = layout.value.message_type
    oneof = value.oneofs_by_name[layout.oneof_name]
    extra_entry = [f for f in entry.fields if f not in (layout.key, layout.value)]
    extra_value = [f for f in value.fields if f.containing_oneof is not oneof]
    numbers = [f.number for f in (*schema.descriptor.fields, *entry.fields, *value.fields)]
    if (
        K_NONE in envelope_kinds or extra_entry or extra_value or layout.key.is_repeated
        or layout.value.is_repeated or max(numbers) > _MAX_TABLE_FIELD
    ):
        return None
    members = list(oneof.fields)
    member_kinds = [K_MESSAGE if m.message_type is not None else _SCALAR_KIND[m.type]
                    for m in members]
    return KeyValueTables(
        envelope=MessageTable.of(envelope_fields, envelope_kinds),
        entries_number=layout.entries.number,
        key_number=layout.key.number,
        value_number=layout.value.number,
        members=MessageTable.of(members, member_kinds),
        member_tables=tuple(_leaf_table(m) for m in members),
    )


def _envelope_kind(field: FieldDescriptor) -> int:
    if field.is_repeated:
        return K_NONE
    if field.message_type is not None:
        return K_TIMESTAMP if field.message_type.full_name == TIMESTAMP_TYPE else K_NONE
    return _SCALAR_KIND[field.type]


def _leaf_table(member: FieldDescriptor) -> MessageTable | None:
    """A message member's leaves, when all are single scalars (else its entries fall back)."""
    if member.message_type is None:
        return None
    leaves = list(member.message_type.fields)
    if any(f.is_repeated or f.message_type is not None for f in leaves) or any(
        f.number > _MAX_TABLE_FIELD for f in leaves
    ):
        return MessageTable.of([], [])  # empty: any leaf is "unknown", so the entry falls back
    return MessageTable.of(leaves, [_SCALAR_KIND[f.type] for f in leaves])


# --- the compiled functions -------------------------------------------------------------------
#
# Conventions: `buf` is the file's bytes (uint8) and `data` its address (`buf.ctypes.data`):
# the helpers read bytes by address, which spares numba's reference counting per call
# (`wire`), so a loop must stop at a failed read (-1) instead of reading at it. A function
# reading a message walks [start, end) and returns False on anything the plain path must
# handle. Varints decode to int64 (uint64 bit patterns for values >= 2**63, as the runtime
# stores them).


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
def frame_messages(buf, pos, index, limit, delimited, max_bytes, starts, lengths, offsets):
    """Frame up to `limit` messages from `pos`: -> (status, count, next position)."""
    data = buf.ctypes.data
    end = len(buf)
    count = 0
    if not delimited:
        if end > max_bytes:
            return _FRAMING_ERROR, 0, 0
        starts[0], lengths[0], offsets[0] = 0, end, 0
        return _FRAMED_ALL, 1, end
    while pos < end:
        if count == limit:
            return _FRAMED_BATCH, count, pos
        length, body = varint(data, pos, end)
        if body < 0 or length < 0 or length > max_bytes or body + length > end:
            return _FRAMING_ERROR, count, pos
        starts[count], lengths[count], offsets[count] = body, length, pos
        count += 1
        pos = body + length
    return _FRAMED_ALL, count, pos


@kernel()
def count_entries(buf, starts, lengths, n, entries_number, counts, bad):
    """Entries per message (top-level tags only); messages that do not frame are bad."""
    data = buf.ctypes.data
    for m in range(n):
        pos = starts[m]
        end = pos + lengths[m]
        c = 0
        while pos < end:
            tag, pos = varint(data, pos, end)
            if pos < 0 or (tag >> 3) == 0:
                bad[m] = 1
                break
            wire = tag & 7
            if (tag >> 3) == entries_number and wire == 2:
                c += 1
            pos = skip(data, pos, end, wire)
            if pos < 0:
                bad[m] = 1
                break
        counts[m] = c


@kernel()
def decode_envelopes(
    buf, starts, lengths, n, base, bad,
    entries_number, key_number, value_number,
    env_slot, env_kind, wire_of, env_i, env_f, env_s, env_n, env_seen,
    member_slot, member_kind,
    ent_msg, ent_pos, ent_key, ent_member, ent_i, ent_f, ent_s, ent_n,
):
    """Every entry of every message into the entry arrays; envelope fields per message."""
    data = buf.ctypes.data
    for m in range(n):
        if bad[m]:
            continue
        pos = starts[m]
        end = pos + lengths[m]
        e = base[m]
        ok = True
        while pos < end and ok:
            tag, pos = varint(data, pos, end)
            field = tag >> 3
            wire = tag & 7
            if pos < 0 or field == 0:
                ok = False
                break
            if field == entries_number:
                if wire != 2:
                    ok = False
                    break
                length, pos = varint(data, pos, end)
                if pos < 0 or length < 0 or pos + length > end:
                    ok = False
                    break
                stop = pos + length
                ent_msg[e] = m
                ent_pos[e] = e - base[m]
                ent_key[e] = 0
                ent_member[e] = -1
                value_seen = False
                # `ok` too: a member that fails leaves pos at -1, and bytes are read by address
                # (`wire`), so nothing may be read at it.
                while pos < stop and ok:
                    tag, pos = varint(data, pos, stop)
                    f2 = tag >> 3
                    w2 = tag & 7
                    if pos < 0:
                        ok = False
                        break
                    if f2 == key_number and w2 == 0:
                        key, pos = varint(data, pos, stop)
                        if pos < 0:
                            ok = False
                            break
                        ent_key[e] = np.int32(key & 0xFFFFFFFF)
                    elif f2 == value_number and w2 == 2 and not value_seen:
                        value_seen = True
                        vlen, pos = varint(data, pos, stop)
                        if pos < 0 or vlen < 0 or pos + vlen > stop:
                            ok = False
                            break
                        vend = pos + vlen
                        message_members = 0
                        while pos < vend:
                            tag, pos = varint(data, pos, vend)
                            f3 = tag >> 3
                            w3 = tag & 7
                            if pos < 0 or f3 >= len(member_slot) or member_slot[f3] < 0:
                                ok = False
                                break
                            j = member_slot[f3]
                            kind = member_kind[j]
                            if w3 != wire_of[kind]:
                                ok = False
                                break
                            if kind == K_MESSAGE:
                                message_members += 1
                                if message_members > 1:
                                    ok = False  # merge semantics: the runtime's job
                                    break
                                mlen, pos = varint(data, pos, vend)
                                if pos < 0 or mlen < 0 or pos + mlen > vend:
                                    ok = False
                                    break
                                ent_s[e, 0] = pos
                                ent_n[e, 0] = mlen
                                pos += mlen
                            else:
                                number, real, pos = scalar(data, pos, vend, kind)
                                if pos < 0:
                                    ok = False
                                    break
                                if kind in (K_DOUBLE, K_FLOAT):
                                    ent_f[e, 0] = real
                                elif kind in (K_STRING, K_BYTES):
                                    ent_s[e, 0] = number
                                    ent_n[e, 0] = pos - number
                                else:
                                    ent_i[e, 0] = number
                            ent_member[e] = j
                    else:
                        ok = False  # unknown, mistyped or repeated value: plain path
                        break
                e += 1
                continue
            slot = env_slot[field] if field < len(env_slot) else -1
            if slot < 0 or wire != wire_of[env_kind[slot]]:
                ok = False
                break
            kind = env_kind[slot]
            if kind == K_TIMESTAMP:
                if env_seen[m, slot]:
                    ok = False  # a second Timestamp merges into the first: plain path
                    break
                length, pos = varint(data, pos, end)
                if pos < 0 or length < 0 or pos + length > end:
                    ok = False
                    break
                stop = pos + length
                seconds = np.int64(0)
                nanos = np.int64(0)
                while pos < stop:
                    tag, pos = varint(data, pos, stop)
                    if pos < 0 or (tag & 7) != 0 or (tag >> 3) < 1 or (tag >> 3) > 2:
                        ok = False
                        break
                    value, pos = varint(data, pos, stop)
                    if pos < 0:
                        ok = False
                        break
                    if (tag >> 3) == 1:
                        seconds = value
                    else:
                        nanos = np.int64(np.int32(value & 0xFFFFFFFF))
                if seconds < _MIN_SECONDS or seconds > _MAX_SECONDS:
                    ok = False  # out of the Timestamp range: the runtime path reports it
                    break
                env_i[m, slot] = seconds * 1_000_000 + nanos // 1000
            else:
                number, real, pos = scalar(data, pos, end, kind)
                if pos < 0:
                    ok = False
                    break
                if kind in (K_DOUBLE, K_FLOAT):
                    env_f[m, slot] = real
                elif kind in (K_STRING, K_BYTES):
                    env_s[m, slot] = number
                    env_n[m, slot] = pos - number
                else:
                    env_i[m, slot] = number
            env_seen[m, slot] = True
        if not ok or e != base[m + 1]:
            bad[m] = 1


@kernel()
def decode_leaves(buf, rows, ent_s, ent_n, slot_of, kinds, wire_of,
                  out_i, out_f, out_s, out_n, seen, ok):
    """The leaves of one member message type, for the entries `rows` that hold it."""
    data = buf.ctypes.data
    for r in range(len(rows)):
        e = rows[r]
        pos = ent_s[e, 0]
        end = pos + ent_n[e, 0]
        while pos < end:
            tag, pos = varint(data, pos, end)
            field = tag >> 3
            if pos < 0 or field >= len(slot_of) or slot_of[field] < 0:
                ok[r] = False
                break
            slot = slot_of[field]
            if (tag & 7) != wire_of[kinds[slot]]:
                ok[r] = False
                break
            kind = kinds[slot]
            number, real, pos = scalar(data, pos, end, kind)
            if pos < 0:
                ok[r] = False
                break
            if kind in (K_DOUBLE, K_FLOAT):
                out_f[r, slot] = real
            elif kind in (K_STRING, K_BYTES):
                out_s[r, slot] = number
                out_n[r, slot] = pos - number
            else:
                out_i[r, slot] = number
            seen[r, slot] = True


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



# --- batches ------------------------------------------------------------------------------------


def iter_kv_batches(
    schema: ProtoSchema,
    tables: KeyValueTables,
    source: Path,
    framing: Framing,
    *,
    batch_size: int,
    on_bad: OnBadRecord | None,
) -> Iterator[Batch]:
    """The key/value rows of the stream file `source`, `batch_size` messages at a time."""
    try:
        with open_regular(source) as fh:  # a regular file only: no FIFO, no device
            size = os.fstat(fh.fileno()).st_size
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except OSError as exc:
        raise InputError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        buf = np.frombuffer(mapped, dtype=np.uint8) if mapped is not None else np.empty(
            0, dtype=np.uint8)
        yield from _batches(schema, tables, source, framing, buf, batch_size, on_bad,
                            _PageRelease(mapped))
    finally:
        buf = None
        if mapped is not None:
            # While an error's traceback still holds frames that view the map, it cannot
            # close; it is then unmapped when the last view goes.
            with contextlib.suppress(BufferError):
                mapped.close()


class _PageRelease:
    """Hands the pages of a read-only file mapping back to the kernel, up to a position."""

    def __init__(self, mapped: mmap.mmap | None) -> None:
        self._mapped = mapped
        self._done = 0  # released below this (a multiple of the page size)
        self._usable = mapped is not None and hasattr(mmap, "MADV_DONTNEED")

    def upto(self, position: int) -> None:
        """Release the whole pages below `position` not released yet."""
        end = position - position % mmap.PAGESIZE
        if not self._usable or end <= self._done:
            return
        assert self._mapped is not None
        try:
            self._mapped.madvise(mmap.MADV_DONTNEED, self._done, end - self._done)
        except (OSError, ValueError):  # only memory is at stake: keep the pages
            self._usable = False
            return
        self._done = end


def _batches(
    schema: ProtoSchema,
    tables: KeyValueTables,
    source: Path,
    framing: Framing,
    buf: np.ndarray,
    batch_size: int,
    on_bad: OnBadRecord | None,
    release: _PageRelease,
) -> Iterator[Batch]:
    starts = np.empty(batch_size, dtype=np.int64)
    lengths = np.empty(batch_size, dtype=np.int64)
    offsets = np.empty(batch_size, dtype=np.int64)
    pos, index = 0, 0
    batch_starts = [0] * _BATCHES_IN_FLIGHT  # where the last batches began
    while True:
        # The oldest of them is written by now (a split holds at most that many batches
        # between decoding and writing): its pages can go.
        release.upto(batch_starts[0])
        batch_starts = [*batch_starts[1:], pos]
        status, count, next_pos = frame_messages(
            buf, pos, index, batch_size, framing == "delimited", MAX_MESSAGE_BYTES,
            starts, lengths, offsets,
        )
        if count:
            batch = _decode(schema, tables, source, buf, starts[:count], lengths[:count],
                            offsets[:count], index, on_bad)
            if batch is not None:
                yield batch
        index, pos = index + count, next_pos
        if status == _FRAMED_ALL:
            return
        if status == _FRAMING_ERROR:  # the plain framing reports (or quarantines) the rest
            frames = file_frames(source, framing, on_bad, start=pos, first_index=index)
            yield from batched(schema, frames, batch_size, on_bad)
            return


def _decode(
    schema: ProtoSchema,
    tables: KeyValueTables,
    source: Path,
    buf: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    offsets: np.ndarray,
    first_index: int,
    on_bad: OnBadRecord | None,
) -> Batch | None:
    """One batch of framed messages: compiled rows, plus the plain path's for flagged ones."""
    n = len(starts)
    counts = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=np.uint8)
    count_entries(buf, starts, lengths, n, tables.entries_number, counts, bad)
    base = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    total = int(base[-1])
    slots = len(tables.envelope.fields)
    env_i = np.zeros((n, slots), dtype=np.int64)
    env_f = np.zeros((n, slots), dtype=np.float64)
    env_s = np.zeros((n, slots), dtype=np.int64)
    env_n = np.zeros((n, slots), dtype=np.int64)
    env_seen = np.zeros((n, slots), dtype=np.bool_)
    ent_msg = np.empty(total, dtype=np.int64)
    ent_pos = np.empty(total, dtype=np.int64)
    ent_key = np.empty(total, dtype=np.int32)
    ent_member = np.empty(total, dtype=np.int16)
    # An entry's value is an integer, a float or a span (start, length), as its member's kind
    # says: the integer, the float's bits and the span's start share one array.
    ent_i = np.zeros((total, 1), dtype=np.int64)
    ent_f = ent_i.view(np.float64)
    ent_s = ent_i
    ent_n = np.zeros((total, 1), dtype=np.int64)
    decode_envelopes(
        buf, starts, lengths, n, base, bad,
        tables.entries_number, tables.key_number, tables.value_number,
        tables.envelope.slot_of, tables.envelope.kinds, _WIRE, env_i, env_f, env_s, env_n,
        env_seen, tables.members.slot_of, tables.members.kinds,
        ent_msg, ent_pos, ent_key, ent_member, ent_i, ent_f, ent_s, ent_n,
    )
    keep = np.repeat(bad == 0, counts)
    leaves = {}
    for j, table in enumerate(tables.member_tables):
        if table is None:
            continue
        rows = np.flatnonzero((ent_member == j) & keep)
        decoded = _decode_leaves(buf, rows, ent_s, ent_n, table)
        failed = rows[~decoded.ok]
        if len(failed):
            bad[ent_msg[failed]] = 1
        leaves[j] = decoded
    if bad.any():
        keep = np.repeat(bad == 0, counts)
    entries = DecodedEntries(
        schema, tables, buf, keep, first_index, ent_msg, ent_pos, ent_key, ent_member,
        ent_i[:, 0], ent_f[:, 0], ent_s[:, 0], ent_n[:, 0], env_i, env_f, env_s, env_n,
        env_seen, leaves,
    )
    flagged = np.flatnonzero(bad)
    messages = n - len(flagged)
    read = bad == 0  # the messages the batch holds: decoded here, or parsed below
    spans = (starts.copy(), lengths.copy())  # the caller reuses its framing arrays

    def raw() -> RawMessages:
        chosen = np.flatnonzero(read)
        return RawMessages(buf, spans[0][chosen], spans[1][chosen], chosen + first_index)

    if not len(flagged):
        return Batch(None, messages, entries, raw) if messages else None
    rows = entries.rows()
    parsed, indexes = [], []
    for m in flagged.tolist():
        start = int(starts[m])
        frame = Frame(first_index + m, int(offsets[m]),
                         buf[start : start + int(lengths[m])].tobytes())
        message = parse_or_report(schema, source, frame, on_bad)
        if message is None:
            continue
        parsed.append(message)
        indexes.append(frame.index)
        read[m] = True
    messages += len(parsed)
    if parsed:
        plain = key_value_frame(schema, parsed, indexes)
        rows = pl.concat([rows, plain]).sort("message_index", "entry_index")
    if messages == 0:
        return None
    envelopes = pl.concat([entries.envelopes().filter(pl.Series(bad == 0)),
                           envelope_frame(schema, parsed)])
    return Batch(rows, messages, raw=raw, envelopes=envelopes)


@dataclass(frozen=True)
class _Leaves:
    """The decoded leaves of one member message type, for the entries that hold it."""

    rows: np.ndarray  # entry positions (before bad messages are dropped)
    ok: np.ndarray
    ints: np.ndarray
    floats: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    seen: np.ndarray


def _decode_leaves(
    buf: np.ndarray, rows: np.ndarray, ent_s: np.ndarray, ent_n: np.ndarray, table: MessageTable
) -> _Leaves:
    k, slots = len(rows), max(len(table.fields), 1)
    decoded = _Leaves(
        rows, np.ones(k, dtype=np.bool_), np.zeros((k, slots), dtype=np.int64),
        np.zeros((k, slots), dtype=np.float64), np.zeros((k, slots), dtype=np.int64),
        np.zeros((k, slots), dtype=np.int64), np.zeros((k, slots), dtype=np.bool_),
    )
    if k:
        decode_leaves(buf, rows, ent_s, ent_n, table.slot_of, table.kinds, _WIRE,
                      decoded.ints, decoded.floats, decoded.starts, decoded.lengths,
                      decoded.seen, decoded.ok)
    return decoded


# --- columns ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedEntries:
    """A decoded batch: flat arrays per entry and per message, turned into rows on demand.

    `rows(select)` builds the key/value rows of the selected entries straight from the arrays,
    so a caller that routes entries builds each side once instead of filtering a whole frame.
    The arrays view the memory-mapped input (`buf`), which stays mapped while they live.
    """

    schema: ProtoSchema
    tables: KeyValueTables
    buf: np.ndarray
    keep: np.ndarray  # entries of messages the compiled path read (all, unless some fell back)
    first_index: int
    ent_msg: np.ndarray
    ent_pos: np.ndarray
    ent_key: np.ndarray
    ent_member: np.ndarray
    ent_i: np.ndarray
    ent_f: np.ndarray
    ent_s: np.ndarray
    ent_n: np.ndarray
    env_i: np.ndarray
    env_f: np.ndarray
    env_s: np.ndarray
    env_n: np.ndarray
    env_seen: np.ndarray
    leaves: dict[int, _Leaves]
    #: Envelope columns built so far, by name (`envelope_column`).
    _envelope_columns: dict[str, pl.Series] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def row_schema(self) -> pl.Schema:
        """The columns and types of the rows (`message_rows.key_value_schema`)."""
        return key_value_schema(self.schema)

    @property
    def key_names(self) -> dict[int, str]:
        """The key enum: number -> value name."""
        return {v.number: v.name for v in self.schema.key_value.key.enum_type.values}

    @property
    def member_names(self) -> list[str]:
        """The oneof's members, in the order `routing` numbers them."""
        return [m.name for m in self.tables.members.fields]

    def routing(self) -> tuple[np.ndarray, np.ndarray]:
        """Per entry (in row order): its key number and its member's index (-1: none)."""
        if bool(self.keep.all()):
            return self.ent_key, self.ent_member
        return self.ent_key[self.keep], self.ent_member[self.keep]

    def positions(self) -> np.ndarray:
        """Per entry (in row order): its place in its message (0, 1, ...)."""
        return self.ent_pos if bool(self.keep.all()) else self.ent_pos[self.keep]

    def strings(self) -> tuple[np.ndarray, pl.Series]:
        """The rows whose value is a ``value_string`` (ascending) and their strings."""
        members = [j for j, f in enumerate(self.tables.members.fields)
                   if f.message_type is None and value_column(f) == "value_string"]
        _, member = self.routing()
        holds_string = np.zeros(len(self.tables.members.fields) + 1, dtype=np.bool_)
        holds_string[[j + 1 for j in members]] = True  # by member position + 1 (-1: none)
        rows = np.flatnonzero(holds_string[member + 1])
        picked = rows if bool(self.keep.all()) else np.flatnonzero(self.keep)[rows]
        everyone = np.ones(len(picked), dtype=np.bool_)
        offsets, data = gather_bytes(self.buf, self.ent_s[picked], self.ent_n[picked], everyone)
        array = pa.Array.from_buffers(pa.large_string(), len(picked),
                                      [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        return rows, pl.Series("value_string", array)

    def envelopes(self) -> pl.DataFrame:
        """One row per message: its envelope fields (``vin``, ``created_at``, ...)."""
        return self._envelopes

    @functools.cached_property
    def _envelopes(self) -> pl.DataFrame:  # built once, for both sides
        return pl.DataFrame([self.envelope_column(f.name)
                             for f in self.tables.envelope.fields])

    def envelope_column(self, name: str) -> pl.Series:
        """One envelope field, a row per message (a batch's VINs need no other field)."""
        built = self._envelope_columns.get(name)
        if built is None:
            built = self._envelope_columns[name] = self._envelope_column(name)
        return built

    def _envelope_column(self, name: str) -> pl.Series:
        slot = next(s for s, f in enumerate(self.tables.envelope.fields) if f.name == name)
        field = self.tables.envelope.fields[slot]
        valid = (self.env_seen[:, slot] if field.has_presence
                 else np.ones(len(self.env_i), np.bool_))
        dtype = key_value_schema(self.schema)[name]
        return _as_series(_scalar_array(
            name, self.tables.envelope.kinds[slot], field, self.buf, self.env_i[:, slot],
            self.env_f[:, slot], self.env_s[:, slot], self.env_n[:, slot], valid, dtype,
        ), name, dtype)

    def rows(
        self,
        select: np.ndarray | None = None,
        messages: pl.DataFrame | None = None,
        *,
        coded: bool = False,
        entry_columns: Mapping[str, np.ndarray] | None = None,
    ) -> pl.DataFrame:
        """The rows of the entries `select` picks (all: None), in entry order, with the
        plain path's columns and types, and the `entry_columns` (an int64 per entry, as
        `select` has a flag: a side's columns that depend on the routing; each replaces the
        column of its name, or comes last).

        Each entry takes on its message's row of `messages`: a row per message, the
        `envelopes` and any columns after them (a caller building both sides makes it once,
        as it wants it); by default `envelopes`.
        With `coded`, the key and member names, which repeat from entry to entry, are
        `pl.Enum` columns instead of `pl.String` (`parquet_metadata.as_enum`): the same
        values, as codes into their distinct values, which a Parquet writer takes as its
        dictionary instead of hashing every string.
        """
        keep = self.keep if select is None else self.keep & select
        return _columns(self, keep, messages, coded=coded, entry_columns=entry_columns)

    def encoded(
        self, select: np.ndarray, messages: pl.DataFrame, schema: pl.Schema, *,
        entry_columns: Mapping[str, np.ndarray] | None = None,
    ) -> bytes | None:
        """The Parquet file (`filter.formats.parquet.encoder`) of the rows of the entries `select`
        picks, with the columns of `schema`, in its order; None where the encoder declines
        (`UnsupportedColumn`: a type it does not write, a page over its limit).

        The columns of `messages` (a row per message: the side's envelope columns, the token,
        as the side's projection makes them) are taken on by each entry from its message, as
        dictionaries of the message values indexed by message; those of `entry_columns` (as
        for `rows`) from their arrays; the others are built from the decoded arrays, with
        the values `rows` gives them.
        """
        try:
            return encode_file(_arrow_columns(self, self.keep & select, messages, schema,
                                              entry_columns or {}), schema)
        except UnsupportedColumn:
            return None


def _arrow_columns(
    entries: DecodedEntries, keep: np.ndarray, messages: pl.DataFrame, schema: pl.Schema,
    entry_columns: Mapping[str, np.ndarray],
) -> list[Column]:
    """The columns of `schema` for the entries `keep` selects, as Arrow arrays, `Sparse` or
    `Repeated` columns for `parquet_encoder.encode_file` (`DecodedEntries.encoded`)."""
    tables, buf, leaves = entries.tables, entries.buf, entries.leaves
    target = key_value_schema(entries.schema)
    message_members, groups, group_of = _member_groups(tables, schema, target)
    picked = np.flatnonzero(keep)  # NumPy's: seven times as fast as Numba's
    counts, member, positions, numbers, grouped, offsets = side_entries(
        picked, entries.ent_msg, entries.ent_pos, entries.ent_key, len(messages),
        entries.ent_member, group_of, len(message_members) + len(groups))
    height = len(picked)
    built: dict[str, Column] = {}
    for name in messages.columns:
        if name in schema:
            built[name] = Repeated(_message_values(messages[name]), counts, height)
    built["message_index"] = Repeated(
        numpy_array(np.arange(len(messages), dtype=np.int64) + entries.first_index), counts,
        height)
    built["entry_index"] = _by_range(positions)
    for name, values in entry_columns.items():
        if name in schema:
            built[name] = _by_range(values[picked])
    codes, categories, _ = _name_codes(
        numbers, _name_lookup(_enum_key(entries.schema.key_value.key.enum_type)))
    built["key"] = _coded(codes.astype(np.int32, copy=False), string_array(categories))
    built["key_number"] = _by_range(numbers)
    built["member"] = _coded(member, _member_dictionary(
        tuple(m.name for m in tables.members.fields)), valid=member >= 0)
    for g, (j, column) in enumerate(message_members):
        rows = grouped[0][offsets[g]:offsets[g + 1]]
        if not len(rows):
            continue
        built[column] = Sparse(rows, _struct_array(
            tables.member_tables[j], buf, _kept_leaves(leaves[j], keep, rows), target[column]),
            height)
    values: dict[str, list[tuple[np.ndarray, pa.Array]]] = {}
    for g, (column, kind, field) in enumerate(groups, start=len(message_members)):
        if offsets[g + 1] == offsets[g]:
            continue
        rows = grouped[0][offsets[g]:offsets[g + 1]]
        taken = grouped[1][offsets[g]:offsets[g + 1]]
        none = np.zeros(0, np.int64)
        spans = kind in (K_STRING, K_BYTES)  # the arrays a kind is built from, and no other
        array = _scalar_array(
            column, kind, field, buf,
            none if spans or kind in (K_DOUBLE, K_FLOAT) else entries.ent_i.take(taken),
            entries.ent_f.take(taken) if kind in (K_DOUBLE, K_FLOAT) else none,
            entries.ent_s.take(taken) if spans else none,
            entries.ent_n.take(taken) if spans else none,
            np.ones(len(rows), np.bool_), target[column])
        values.setdefault(column, []).append(
            (rows, array if isinstance(array, pa.Array) else array.to_arrow()))
    for column, found in values.items():
        if len(found) == 1:
            built[column] = Sparse(*found[0], height)
            continue
        # Members built apart: their rows never overlap (a oneof), so their values, in row
        # order, are the column's.
        rows = np.concatenate([r for r, _ in found])
        order = np.argsort(rows, kind="stable")
        first = found[0][1].type
        merged = pa.concat_arrays([a if a.type == first else a.cast(first) for _, a in found])
        built[column] = Sparse(rows[order], merged.take(numpy_array(order)), height)
    return [built[name] if name in built else Sparse(
        np.zeros(0, np.int64), _empty_arrow(dtype), height) for name, dtype in schema.items()]


@functools.cache
def _member_dictionary(names: tuple[str, ...]) -> pa.Array:
    """The oneof's member names, the dictionary of the ``member`` column."""
    return string_array(list(names))


def _member_groups(
    tables: KeyValueTables, columns: pl.Schema, target: pl.Schema
) -> tuple[list[tuple[int, str]], list[tuple[str, int, FieldDescriptor]], np.ndarray]:
    """The oneof members whose column is among `columns`, in groups built as one.

    First the message-typed ones, a group each (position, column). Then the groups of
    scalar ones, by column and by how `_scalar_array` builds them (`_built_as`), each with
    its first member's kind and field: members built alike (an int32 and an int64 member in
    ``value_int``) make one array, without a coalesce of full-height columns, as a oneof's
    members never overlap; an enum, named by its own values, is a group of its own. Last,
    per member position + 1 (0: an entry without a member), the number of its group in that
    order (-1: none), for `side_entries`.
    """
    messages: list[tuple[int, str]] = []
    scalars: dict[tuple[str, str | int], tuple[str, int, FieldDescriptor]] = {}
    group_of = np.full(len(tables.members.fields) + 1, -1, dtype=np.int64)
    grouped: list[tuple[int, tuple[str, str | int]]] = []
    for j, field in enumerate(tables.members.fields):
        column = f"value_{field.name}" if field.message_type else value_column(field)
        if column not in columns:
            continue
        if field.message_type is not None:
            group_of[j + 1] = len(messages)
            messages.append((j, column))
            continue
        kind = int(tables.members.kinds[j])
        how = _built_as(kind, field, target[column])
        group = (column, j if how is None else how)
        scalars.setdefault(group, (column, kind, field))
        grouped.append((j, group))
    number = {group: len(messages) + g for g, group in enumerate(scalars)}
    for j, group in grouped:
        group_of[j + 1] = number[group]
    return messages, list(scalars.values()), group_of


@kernel()
def side_entries(picked, ent_msg, ent_pos, ent_key, messages, ent_member, group_of, groups):
    """What a side's columns are built from, in one pass over the entries it picks
    (`picked`: their positions, ascending; an entry's row on the side is its place there).

    Returns how many of each message's entries it picks (entries come message by message),
    each picked entry's member (int32, -1: none), position in its message and key number,
    and its rows by member group (`group_of[member + 1]`, `_member_groups`): the rows and
    the entries of group g are ``grouped[0|1][offsets[g]:offsets[g + 1]]``.
    """
    height = len(picked)
    counts = np.zeros(messages, np.int64)
    sizes = np.zeros(groups + 1, np.int64)  # [0]: entries in no group
    member = np.empty(height, np.int32)
    positions = np.empty(height, ent_pos.dtype)
    numbers = np.empty(height, ent_key.dtype)
    message = -1
    run = 0  # a message's entries, added up in a register, not in `counts`
    for r in range(height):
        e = picked[r]
        m = ent_member[e]
        member[r] = m
        positions[r] = ent_pos[e]
        numbers[r] = ent_key[e]
        sizes[group_of[m + 1] + 1] += 1
        if ent_msg[e] != message:
            if run:
                counts[message] += run
            message = ent_msg[e]
            run = 0
        run += 1
    if run:
        counts[message] += run
    offsets = np.zeros(groups + 1, np.int64)
    offsets[1:] = np.cumsum(sizes[1:])
    fill = offsets[:-1].copy()
    grouped = np.empty((2, offsets[-1]), np.int64)
    for r in range(height):
        g = group_of[member[r] + 1]
        if g >= 0:
            at = fill[g]
            grouped[0, at] = r
            grouped[1, at] = picked[r]
            fill[g] = at + 1
    return counts, member, positions, numbers, grouped, offsets


@kernel(inline="always")
def bounds(values):  # pragma: no cover - compiled
    """The least and the greatest of `values` (not empty), in one pass."""
    low = values[0]
    high = values[0]
    for v in values:
        low = min(low, v)
        high = max(high, v)
    return low, high


@kernel()
def range_codes(values):  # pragma: no cover - compiled
    """The least and the greatest of `values` (not empty), and each value less the least as
    int32 codes, if they span under 2**16 (else no codes: an empty array)."""
    low, high = bounds(values)
    if high - low >= 1 << 16:
        return low, high, np.empty(0, np.int32)
    codes = np.empty(len(values), np.int32)
    for i in range(len(values)):
        codes[i] = values[i] - low
    return low, high, codes


def _message_values(values: pl.Series) -> pa.Array:
    """A column of message values, as one Arrow array (an `Enum` column: a dictionary array
    of its categories)."""
    array = values.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


def _coded(codes: np.ndarray, dictionary: pa.Array, valid: np.ndarray | None = None
           ) -> pa.DictionaryArray:
    """A dictionary array of `codes` into `dictionary`, null where not `valid`. The codes
    are made in range (positions in the dictionary): Arrow is not asked to check them."""
    return pa.DictionaryArray.from_arrays(numpy_array(codes, valid), dictionary, safe=False)


def _by_range(values: np.ndarray) -> pa.Array:
    """Integers that span a small range, as codes into that range (a dictionary array):
    per row a few bits instead of eight bytes for the writer to compress."""
    if not len(values):
        return numpy_array(values)
    low, high, codes = range_codes(values)
    if high - low >= 1 << 16:
        return numpy_array(values)
    return _coded(codes, numpy_array(np.arange(low, high + 1, dtype=values.dtype)))


def _struct_array(
    table: MessageTable, buf: np.ndarray, decoded: _Leaves, dtype: pl.DataType
) -> pa.StructArray:
    """A message member's leaves, a struct per entry of `decoded`."""
    children = _leaf_columns(table, buf, decoded, dtype.to_schema())
    return pa.StructArray.from_arrays(
        [c.to_arrow() if isinstance(c, pl.Series) else c for c in children],
        names=[f.json_name for f in table.fields])


def _kept_leaves(decoded: _Leaves, keep: np.ndarray, rows: np.ndarray) -> _Leaves:
    """`decoded` (of every entry holding a member) for the entries `keep` selects, whose rows
    on their side are `rows`. If the side has them all, nothing is picked out."""
    if len(rows) == len(decoded.rows):
        return dataclasses.replace(decoded, rows=rows)
    still = keep[decoded.rows]
    return _Leaves(rows, decoded.ok[still], decoded.ints[still], decoded.floats[still],
                   decoded.starts[still], decoded.lengths[still], decoded.seen[still])


def _leaf_columns(
    table: MessageTable, buf: np.ndarray, decoded: _Leaves, leaf_types: pl.Schema
) -> list[pa.Array | pl.Series]:
    """A message member's leaves, one column each (`_scalar_array`), a row per entry of
    `decoded`; a leaf without presence is valid wherever the member is held."""
    holds = np.ones(len(decoded.rows), dtype=np.bool_)
    return [
        _scalar_array(
            leaf.json_name, int(table.kinds[slot]), leaf, buf, decoded.ints[:, slot],
            decoded.floats[:, slot], decoded.starts[:, slot], decoded.lengths[:, slot],
            decoded.seen[:, slot] if leaf.has_presence else holds, leaf_types[leaf.json_name],
        )
        for slot, leaf in enumerate(table.fields)
    ]


@functools.cache
def _empty_arrow(dtype: pl.DataType) -> pa.Array:
    """An empty Arrow array of the type Polars gives `dtype`."""
    return pl.Series("", [], dtype=dtype).to_arrow()


def _columns(
    entries: DecodedEntries,
    keep: np.ndarray,
    messages: pl.DataFrame | None = None,
    *,
    coded: bool = False,
    entry_columns: Mapping[str, np.ndarray] | None = None,
) -> pl.DataFrame:
    """The rows of the entries `keep` selects, with the plain path's columns and types, each
    taking on its message's row of `messages`, and `entry_columns` (`DecodedEntries.rows`)."""
    schema, tables, buf, leaves = entries.schema, entries.tables, entries.buf, entries.leaves
    ent_msg, ent_pos, ent_key, ent_member = (
        entries.ent_msg, entries.ent_pos, entries.ent_key, entries.ent_member)
    ent_i, ent_f, ent_s, ent_n = entries.ent_i, entries.ent_f, entries.ent_s, entries.ent_n
    target = key_value_schema(schema)
    all_kept = bool(keep.all())
    if not all_kept:
        picked = np.flatnonzero(keep)  # ascending: an entry's row is its place in it
        ent_msg, ent_pos, ent_key, ent_member, ent_i, ent_f, ent_s, ent_n = (
            a.take(picked)
            for a in (ent_msg, ent_pos, ent_key, ent_member, ent_i, ent_f, ent_s, ent_n))
    height = len(ent_msg)
    columns: dict[str, pl.Series] = {
        "message_index": pl.Series("message_index", ent_msg + entries.first_index),
        "entry_index": pl.Series("entry_index", ent_pos),
    }
    if messages is None:
        messages = entries.envelopes()
    target = pl.Schema({**target, **{c: t for c, t in messages.schema.items()
                                     if c not in target}})
    columns.update({c.name: c for c in messages[ent_msg]})
    for name, values in (entry_columns or {}).items():
        columns[name] = pl.Series(name, values if all_kept else values[keep])
        if name not in target:
            target = pl.Schema({**target, name: pl.Int64()})
    key_number = pl.Series("key_number", ent_key)
    columns["key"] = _names(key_number, schema.key_value.key.enum_type, "key", coded=coded)
    columns["key_number"] = key_number
    members = tables.members
    where = np.where(ent_member < 0, len(members.fields), ent_member)
    columns["member"] = _member_names(tuple(m.name for m in members.fields), coded).gather(
        where)
    message_members, groups, group_of = _member_groups(tables, target, target)
    group = group_of.take(ent_member.astype(np.intp) + 1)
    for g, (j, name) in enumerate(message_members):
        if not (group == g).any():
            continue
        decoded = leaves[j]
        if not all_kept:  # the kept entries' rows: their places among those kept
            held = decoded.rows[keep[decoded.rows]]
            decoded = _kept_leaves(decoded, keep, np.searchsorted(picked, held))
        columns[name] = _struct_series(name, tables.member_tables[j], buf, decoded, height,
                                       target[name])
    values: dict[str, list[pl.Series]] = {}
    for g, (column, kind, field) in enumerate(groups, start=len(message_members)):
        holds = group == g
        if not holds.any():
            continue
        values.setdefault(column, []).append(_as_series(_scalar_array(
            column, kind, field, buf, ent_i, ent_f, ent_s, ent_n, holds, target[column]),
            column, target[column]))
    for name, found in values.items():
        if len(found) == 1:
            columns[name] = found[0]
        else:
            columns[name] = pl.select(pl.coalesce(found).alias(name)).to_series()
    built = [
        columns[name].alias(name) if name in columns
        else pl.Series(name, [None], dtype=dtype).new_from_index(0, height)
        for name, dtype in target.items()
    ]
    # Types compared column by column: a frame's schema is made anew at each call.
    differ = {c.name: dtype for c, dtype in zip(built, target.values(), strict=True)
              if c.dtype != dtype and not isinstance(c.dtype, pl.Enum)}
    frame = pl.DataFrame(built)
    return frame.cast(differ) if differ else frame


@functools.cache
def _member_names(names: tuple[str, ...], coded: bool) -> pl.Series:
    """The oneof's member names, then a null that entries without a member (-1) point at;
    with `coded`, as a `pl.Enum` column."""
    series = pl.Series([*names, None], dtype=pl.String)
    return as_enum(series) if coded else series


def _names(
    numbers: pl.Series, enum: EnumDescriptor, name: str, *, coded: bool = False
) -> pl.Series:
    """Enum numbers as their value names; a number the enum does not know as its digits.

    With `coded` the names are a `pl.Enum` column (of the enum's names, and the digits of
    unknown numbers if there are any)."""
    lookup = _name_lookup(_enum_key(enum))
    codes, categories, extra = _name_codes(numbers.to_numpy(), lookup)
    if not extra:
        table = lookup.coded if coded else lookup.names
    else:
        table = pl.Series([*categories, None], dtype=pl.String)
        if coded:
            table = table.cast(pl.Enum(categories))
    return table.gather(codes).alias(name)


def _name_codes(values: np.ndarray, lookup: _NameLookup) -> tuple[np.ndarray, list[str], bool]:
    """Per enum number, its position among the names it may take: the enum's value names,
    then those of the numbers outside the lookup table present in `values`, each spelled once
    (its name, for the few enums that have far numbers; else its digits). Also those names,
    and whether any number was outside the table."""
    known = len(lookup.names) - 1  # the trailing null
    codes, unknown = table_codes(values, lookup.index, known)
    if not unknown:  # as usual: every number is the enum's
        return codes, lookup.known, False
    missing = np.flatnonzero(codes == known)
    outside, which = np.unique(values[missing], return_inverse=True)
    spelled = [lookup.far.get(str(n), str(n)) for n in outside.tolist()]
    codes[missing] = known + which.ravel()
    return codes, [*lookup.known, *spelled], True


@kernel()
def table_codes(values, index, unknown):  # pragma: no cover - compiled
    """Each value's entry in `index` (int32; a value outside it: `unknown`), and how many
    values are `unknown`."""
    codes = np.empty(len(values), np.int32)
    missing = 0
    for i in range(len(values)):
        v = values[i]
        code = index[v] if 0 <= v < len(index) else unknown
        codes[i] = code
        missing += code == unknown
    return codes, missing


def _enum_key(enum: EnumDescriptor) -> tuple[tuple[int, str], ...]:
    return tuple(sorted((v.number, v.name) for v in enum.values))


@dataclass(frozen=True)
class _NameLookup:
    index: np.ndarray  # enum number -> position in `names`; numbers it lacks -> the last
    names: pl.Series  # the value names, then a null
    far: dict[str, str]  # the enum's numbers outside `index` (as digits) -> their names
    coded: pl.Series  # `names` as a `pl.Enum` of the table's names
    known: list[str]  # `names` but the null


@functools.cache
def _name_lookup(known: tuple[tuple[int, str], ...]) -> _NameLookup:
    near = [(k, v) for k, v in known if 0 <= k <= _MAX_TABLE_FIELD]
    index = np.full(max((k for k, _ in near), default=0) + 1, len(near), dtype=np.int64)
    for position, (number, _) in enumerate(near):
        index[number] = position
    far = {str(k): v for k, v in known if not 0 <= k <= _MAX_TABLE_FIELD}
    names = pl.Series([*(v for _, v in near), None], dtype=pl.String)
    return _NameLookup(index, names, far, as_enum(names), [v for _, v in near])


def _built_as(kind: int, field: FieldDescriptor, dtype: pl.DataType) -> str | None:
    """How `_scalar_array` builds a member's column: members built alike into one column can
    share one call. None for enums, each of which names its numbers by its own values."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return None
    if kind == K_TIMESTAMP:
        return "timestamp"
    if kind in (K_STRING, K_BYTES):
        return f"bytes-{kind}"
    if kind in (K_DOUBLE, K_FLOAT):
        return "float"
    if kind == K_BOOL:
        return "bool"
    return "uint64" if dtype == pl.UInt64 else "int"


def _as_series(built: pa.Array | pl.Series, name: str, dtype: pl.DataType) -> pl.Series:
    """A column `_scalar_array` built, as the Polars column `name` of `dtype`."""
    if isinstance(built, pl.Series):
        return built
    series = pl.Series(name, built)
    return series if series.dtype == dtype else series.cast(dtype)


def _scalar_array(
    name: str,
    kind: int,
    field: FieldDescriptor,
    buf: np.ndarray,
    ints: np.ndarray,
    floats: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    valid: np.ndarray,
    dtype: pl.DataType,
) -> pa.Array | pl.Series:
    """The same column as an Arrow array as decoded (64-bit integers and floats: `dtype` says
    what they become), or, for an enum, as the Polars column of its names. What lies under
    an invalid row is any value (an entry's integer, float and span share their storage)."""
    if kind == K_TIMESTAMP:
        return numpy_array(ints, valid, pa.timestamp("us", tz="UTC"))
    if kind in (K_STRING, K_BYTES):
        offsets, data = gather_bytes(buf, starts, lengths, valid)
        nulls = len(valid) - int(np.count_nonzero(valid))
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
        return pa.Array.from_buffers(
            pa.large_string() if kind == K_STRING else pa.large_binary(), len(starts),
            [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls,
        )
    if kind in (K_DOUBLE, K_FLOAT):
        return numpy_array(floats, valid, pa.float64())
    if kind == K_BOOL:
        return numpy_array(ints != 0, valid, pa.bool_())
    if field.type == FieldDescriptor.TYPE_ENUM:  # (what lies under a null is any number)
        numbers = ints.astype(np.int32) if valid.all() else np.where(valid, ints, 0).astype(
            np.int32)
        names = _names(pl.Series(name, numbers), field.enum_type, name)
        return names if valid.all() else names.set(pl.Series(~valid), None)
    if dtype == pl.UInt64:
        return numpy_array(ints.view(np.uint64), valid, pa.uint64())
    return numpy_array(ints, valid, pa.int64())


def _struct_series(
    name: str, table: MessageTable, buf: np.ndarray, decoded: _Leaves, height: int,
    dtype: pl.DataType,
) -> pl.Series:
    """A message member's struct column of `height` rows: its leaves where an entry holds it
    (`decoded.rows`), null elsewhere."""
    rows = decoded.rows
    leaf_types = dtype.to_schema()
    fields = [_as_series(column, leaf.json_name, leaf_types[leaf.json_name])
              for column, leaf in zip(_leaf_columns(table, buf, decoded, leaf_types),
                                      table.fields, strict=True)]
    # The decoded structs, then a null one that the entries without this member point at.
    struct = pl.DataFrame(fields, schema=leaf_types).to_struct(name).extend_constant(None, 1)
    index = np.full(height, len(rows), dtype=np.int64)
    index[rows] = np.arange(len(rows))
    return struct.gather(index)
