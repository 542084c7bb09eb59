"""Key/value envelopes spliced as bytes: the compiled half of `filter.formats.protobuf.writer`.

In: a buffer holding a batch's messages (spans), which entries the split exported (one flag
per entry, in message order) and those entries encoded anew (`encode_entries` from the
compiled decoder's arrays, or the protobuf runtime's), the token bytes of each message's VIN,
and each message's timestamp (coarsened where the catalogue says so: the caller truncates
them with Polars, as the Parquet path does).
Out: both delimited streams, written into preallocated byte arrays: per message, an export
message (the token in the VIN's field, the timestamp written anew, the exported entries as
encoded anew) and an onshore message (every other field as it came). The export never copies
an input byte: what a parser would skip or overwrite (an earlier copy of a field, a oneof
member replaced by a later one, a field the descriptor does not know) cannot ride along.
Imported only when protobuf output is written, so that other runs do not load numba.
May fail: nothing; `envelope_layout` reports messages that do not frame at the top level (the
caller refuses them before splicing).
"""

from __future__ import annotations

import numpy as np

from filter.formats.protobuf.kv_scalars import float32_bits, float64_bits
from filter.formats.protobuf.kv_tables import (
    K_BOOL,
    K_DOUBLE,
    K_FIXED32,
    K_FIXED64,
    K_FLOAT,
    K_MESSAGE,
    K_SFIXED32,
    K_SFIXED64,
    K_SINT32,
    K_SINT64,
    K_STRING,
)
from filter.formats.protobuf.wire import load_u8, put_varint, skip, store_u8, varint, varint_size
from filter.jit import kernel


@kernel()
def envelope_layout(buf, starts, lengths, entries_number, vin_number, time_number, counts,
                    vin_spans, seconds, nanos, timed):
    """Per message: its entries, the span of its (last) VIN, and its timestamp (`timed`; the
    seconds and nanos as the runtime merges repeated ones); False where it does not frame at
    the top level."""
    data = buf.ctypes.data
    ok = np.ones(len(starts), dtype=np.bool_)
    for m in range(len(starts)):
        pos = starts[m]
        end = pos + lengths[m]
        while pos < end:
            tag, pos = varint(data, pos, end)
            if pos < 0:
                ok[m] = False
                break
            field = tag >> 3
            wire = tag & 7
            if field == vin_number and wire == 2:
                length, body = varint(data, pos, end)
                vin_spans[m, 0] = body
                vin_spans[m, 1] = length
            elif field == entries_number and wire == 2:
                counts[m] += 1
            elif field == time_number and wire == 2:
                length, body = varint(data, pos, end)
                timed[m] = True
                if body < 0:
                    ok[m] = False
                    break
                good, seconds[m], nanos[m] = _timestamp(data, body, body + length, seconds[m],
                                                        nanos[m])
                if not good:
                    ok[m] = False
                    break
            pos = skip(data, pos, end, wire)
            if pos < 0:
                ok[m] = False
                break
    return ok


@kernel(inline="always")
def _timestamp(data, start, stop, seconds, nanos):
    """Merge a Timestamp message's seconds (1) and nanos (2) into `seconds` and `nanos`:
    -> (False when bad, seconds, nanos)."""
    pos = start
    while pos < stop:
        tag, pos = varint(data, pos, stop)
        if pos < 0:
            return False, seconds, nanos
        if tag == 8:
            seconds, pos = varint(data, pos, stop)
        elif tag == 16:
            value, pos = varint(data, pos, stop)
            nanos = np.int64(np.int32(value & 0xFFFFFFFF))
        else:
            pos = skip(data, pos, stop, tag & 7)
        if pos < 0:
            return False, seconds, nanos
    return True, seconds, nanos


@kernel(inline="always")
def _copy(out, at, data, start, stop):
    """Copy the bytes at address `data` [start, stop) to address `out` + `at`; the end."""
    for k in range(start, stop):
        store_u8(out, at, load_u8(data, k))
        at += 1
    return at


#: Bytes left free before each message's body for its length prefix: a varint of a size below
#: 2**35, more than any message may have (`protobuf.MAX_MESSAGE_BYTES`).
_PREFIX_ROOM = 5


@kernel(inline="always")
def _close_message(out, at, body, end):
    """Write the length of the body at address `out` [body, end) as a varint at `at`, move
    the body to follow it (left: the room was at most `_PREFIX_ROOM`); the position after it."""
    size = end - body
    start = put_varint(out, at, size)
    if start != body:
        for k in range(size):  # forwards: the body only moves left
            store_u8(out, start + k, load_u8(out, body + k))
    return start + size


@kernel(inline="always")
def _timestamp_size(seconds, nanos):
    """The bytes of a Timestamp message holding `seconds` and `nanos` (defaults left out)."""
    size = 0
    if seconds != 0:
        size += 1 + varint_size(seconds)
    if nanos != 0:
        size += 1 + varint_size(nanos)
    return size


@kernel()
def splice_streams(buf, starts, lengths, entries_number, vin_number, time_number, flags, base,
                   entry_data, entry_offsets, token_bytes, has_token, timed, seconds, nanos,
                   export_out, onshore_out):
    """Both delimited streams: per message, the export (token, timestamp, exported entries)
    and the onshore message (everything else, as it came). The export's token is row m of
    `token_bytes` where `has_token[m]` (else no VIN field); its timestamp the given `seconds`
    and `nanos` where `timed`; its k-th entry of the batch is
    `entry_data[entry_offsets[k]:entry_offsets[k + 1]]` (field tag and length included).
    -> (export bytes, onshore bytes)

    One walk per message: each body is written `_PREFIX_ROOM` bytes after the stream's end,
    then moved left behind its length prefix (a second walk to size the bodies first cost
    more than the move).
    """
    data = buf.ctypes.data
    export_data = export_out.ctypes.data
    onshore_data = onshore_out.ctypes.data
    entries = entry_data.ctypes.data
    e_at = 0
    o_at = 0
    k = 0
    width = token_bytes.shape[1]
    vin_tag = (vin_number << 3) | 2
    time_tag = (time_number << 3) | 2
    for m in range(len(starts)):
        start = starts[m]
        end = start + lengths[m]
        e_body = e_at + _PREFIX_ROOM
        o_body = o_at + _PREFIX_ROOM
        e_end = e_body
        if has_token[m]:
            e_end = put_varint(export_data, e_end, vin_tag)
            e_end = put_varint(export_data, e_end, width)
            for c in range(width):
                export_out[e_end] = token_bytes[m, c]
                e_end += 1
        if timed[m]:  # written anew: a second copy or an unknown field inside stays onshore
            e_end = put_varint(export_data, e_end, time_tag)
            e_end = put_varint(export_data, e_end, _timestamp_size(seconds[m], nanos[m]))
            if seconds[m] != 0:
                export_out[e_end] = 8
                e_end = put_varint(export_data, e_end + 1, seconds[m])
            if nanos[m] != 0:
                export_out[e_end] = 16
                e_end = put_varint(export_data, e_end + 1, nanos[m])
        o_end = o_body
        entry = base[m]
        pos = start
        while pos < end:
            field_start = pos
            tag, pos = varint(data, pos, end)
            field = tag >> 3
            stop = skip(data, pos, end, tag & 7)
            if field == entries_number and (tag & 7) == 2:
                if flags[entry]:
                    e_end = _copy(export_data, e_end, entries, entry_offsets[k],
                                  entry_offsets[k + 1])
                    k += 1
                else:
                    o_end = _copy(onshore_data, o_end, data, field_start, stop)
                entry += 1
            else:
                o_end = _copy(onshore_data, o_end, data, field_start, stop)
            pos = stop
        e_at = _close_message(export_data, e_at, e_body, e_end)
        o_at = _close_message(onshore_data, o_at, o_body, o_end)
    return e_at, o_at


# --- exported entries encoded anew ------------------------------------------------------------
#
# A value is (kind, wire value, span): the kinds of `kv_tables`; the wire value
# is what a varint or fixed-width field holds (`_wire_value`); a string, bytes or message
# payload is a span [start, start + length) of a source buffer. Fields are written in field
# number order, defaults of fields without presence left out: as the protobuf runtime
# serialises the same values (`filter.formats.protobuf.writer.rebuilt_entry`), byte for byte.


@kernel(inline="always")
def _wire_value(kind, ival, fval):
    """What the wire holds for a scalar decoded as the integer `ival` or the float `fval`:
    a varint's value (zigzag for sint kinds) or the bits of a fixed-width field."""
    if kind in (K_SINT32, K_SINT64):
        return (ival << 1) ^ (ival >> 63)  # the decoded value is sign-extended to 64 bits
    if kind == K_DOUBLE:
        return float64_bits(fval)
    if kind == K_FLOAT:
        return float32_bits(fval)
    return ival


@kernel(inline="always")
def _payload_size(kind, value, length):
    """The bytes of a value of `kind` after its tag."""
    if kind <= K_BOOL:
        return varint_size(value)
    if kind in (K_FIXED64, K_SFIXED64, K_DOUBLE):
        return 8
    if kind in (K_FIXED32, K_SFIXED32, K_FLOAT):
        return 4
    return varint_size(length) + length


@kernel(inline="always")
def _put_payload(out, at, kind, value, source, start, length):
    """Write a value of `kind` after its tag at address `out` + `at` (a span from address
    `source`); the position after it."""
    if kind <= K_BOOL:
        return put_varint(out, at, value)
    width = 0
    if kind in (K_FIXED64, K_SFIXED64, K_DOUBLE):
        width = 8
    elif kind in (K_FIXED32, K_SFIXED32, K_FLOAT):
        width = 4
    if width:
        for b in range(width):
            store_u8(out, at + b, (value >> (8 * b)) & 0xFF)
        return at + width
    at = put_varint(out, at, length)
    return _copy(out, at, source, start, start + length)


@kernel(inline="always")
def _leaf_present(kind, value, length, explicit, seen):
    """Whether a leaf is written: sent, for a field with presence; else not its default."""
    if explicit:
        return seen
    if kind >= K_STRING:
        return length != 0
    return value != 0


@kernel()
def encode_leaves(buf, rows, ints, floats, starts, lengths, seen, numbers, kinds, explicit,
                  order, wire_of):
    """The bodies of one member message type, anew from its decoded leaves (row r of the
    leaf arrays for each r of `rows`), fields in the order `order` gives (by number).
    -> (bytes, int64 offsets: body i is bytes[offsets[i]:offsets[i + 1]])"""
    source = buf.ctypes.data
    n = len(rows)
    offsets = np.zeros(n + 1, np.int64)
    for i in range(n):
        r = rows[i]
        size = 0
        for slot in order:
            kind = kinds[slot]
            value = _wire_value(kind, ints[r, slot], floats[r, slot])
            if _leaf_present(kind, value, lengths[r, slot], explicit[slot], seen[r, slot]):
                size += varint_size((numbers[slot] << 3) | wire_of[kind])
                size += _payload_size(kind, value, lengths[r, slot])
        offsets[i + 1] = offsets[i] + size
    out = np.empty(offsets[n], np.uint8)
    address = out.ctypes.data
    for i in range(n):
        r = rows[i]
        at = offsets[i]
        for slot in order:
            kind = kinds[slot]
            value = _wire_value(kind, ints[r, slot], floats[r, slot])
            if _leaf_present(kind, value, lengths[r, slot], explicit[slot], seen[r, slot]):
                at = put_varint(address, at, (numbers[slot] << 3) | wire_of[kind])
                at = _put_payload(address, at, kind, value, source, starts[r, slot],
                                  lengths[r, slot])
    return out, offsets


@kernel(inline="always")
def _entry_sizes(key, j, kind, value, length, key_number, value_number, member_number, wire):
    """(the entry's body size, its member's size: tag and payload)."""
    body = 0
    if key != 0:
        body += varint_size(key_number << 3) + varint_size(key)
    member = 0
    if j >= 0:
        member = varint_size((member_number << 3) | wire)
        member += _payload_size(kind, value, length)
        body += varint_size((value_number << 3) | 2) + varint_size(member) + member
    return body, member


@kernel()
def encode_entries(buf, picked, ent_key, ent_member, ent_i, ent_f, ent_n, member_numbers,
                   member_kinds, wire_of, bodies, body_offsets, body_of, entries_number,
                   key_number, value_number):
    """The entries `picked` (positions in the entry arrays, ascending), each anew from its
    decoded values: its key (unless 0) and a value holding its one oneof member (none
    without a member), as the envelope's entries field (tag and length included). A message
    member's body is body `body_of[i]` of `bodies` (`encode_leaves`); a string's or bytes'
    span is in `buf`. -> (bytes, int64 offsets per entry, as `encode_leaves`)

    Two passes, sizes then bytes. The arrays are indexed here and only scalars go to the
    helpers: an array handed to a helper costs numba's reference counting per call, which
    made this five times slower."""
    source = buf.ctypes.data
    encoded = bodies.ctypes.data
    n = len(picked)
    entry_tag = (entries_number << 3) | 2
    offsets = np.zeros(n + 1, np.int64)
    out = np.empty(0, np.uint8)
    for write in (False, True):
        if write:
            out = np.empty(offsets[n], np.uint8)
        address = out.ctypes.data
        for i in range(n):
            e = picked[i]
            key = np.int64(ent_key[e])
            j = ent_member[e]
            kind, value, start, length = np.int8(0), np.int64(0), np.int64(0), np.int64(0)
            number, wire = np.int64(0), np.int64(0)
            if j >= 0:
                kind = member_kinds[j]
                number = member_numbers[j]
                wire = np.int64(wire_of[kind])
                if kind == K_MESSAGE:
                    b = body_of[i]
                    start = body_offsets[b]
                    length = body_offsets[b + 1] - start
                else:
                    value = _wire_value(kind, ent_i[e], ent_f[e])
                    start = ent_i[e]
                    length = ent_n[e]
            body, member = _entry_sizes(key, j, kind, value, length, key_number, value_number,
                                        number, wire)
            if not write:
                offsets[i + 1] = offsets[i] + varint_size(entry_tag) + varint_size(body) + body
                continue
            at = put_varint(address, offsets[i], entry_tag)
            at = put_varint(address, at, body)
            if key != 0:
                at = put_varint(address, at, key_number << 3)
                at = put_varint(address, at, key)
            if j >= 0:
                at = put_varint(address, at, (value_number << 3) | 2)
                at = put_varint(address, at, member)
                at = put_varint(address, at, (number << 3) | wire)
                at = _put_payload(address, at, kind, value,
                                  encoded if kind == K_MESSAGE else source, start, length)
    return out, offsets
