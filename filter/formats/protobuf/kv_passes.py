"""The compiled passes of the key/value decoder over a memory-mapped stream file.

In: the file's bytes, and the tables of the envelope type (`kv_tables.KeyValueTables`).
Out: one pass frames the next batch of messages and counts their entries, as many as one
piece of the memory budget holds (`frame_piece`), a second decodes every entry into flat
NumPy arrays (key number, oneof member, integer, float, and byte spans of strings and member
messages) and each message's envelope fields (`decode_envelopes`), a third decodes each
message-typed member's leaves (`decode_leaves`).
May fail: nothing; a message the passes cannot decode is flagged (`bad`, `ok`) for the plain
path, and a framing error is returned as a status (`FRAMING_ERROR`).
"""

from __future__ import annotations

import numpy as np

from filter.formats.protobuf.kv_scalars import scalar
from filter.formats.protobuf.kv_tables import (
    K_BYTES,
    K_DOUBLE,
    K_FLOAT,
    K_MESSAGE,
    K_STRING,
    K_TIMESTAMP,
)
from filter.formats.protobuf.message_rows import MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS
from filter.formats.protobuf.wire import count_field, varint
from filter.jit import kernel

# Conventions: `buf` is the file's bytes (uint8) and `data` its address (`buf.ctypes.data`):
# the helpers read bytes by address, which spares numba's reference counting per call
# (`wire`), so a loop must stop at a failed read (-1) instead of reading at it. A function
# reading a message walks [start, end) and returns False on anything the plain path must
# handle. Varints decode to int64 (uint64 bit patterns for values >= 2**63, as the runtime
# stores them).

_MIN_SECONDS, _MAX_SECONDS = MIN_TIMESTAMP_SECONDS, MAX_TIMESTAMP_SECONDS
# Framing stops (the status `frame_messages` returns).
FRAMED_ALL, FRAMED_BATCH, FRAMING_ERROR, TOO_LARGE = 0, 1, 2, 3


@kernel()
def frame_piece(buf, pos, limit, delimited, max_bytes, entries_number, costs, piece,
                starts, lengths, offsets, counts, bad):
    """Frame up to `limit` messages from `pos`, counting each one's entries (top-level tags
    only; a message whose tags do not frame is `bad`), and stop before the message that would
    take the batch's memory past `piece` bytes (`costs`: bytes per message, per entry and per
    wire byte, `formats.protobuf.pieces`): -> (status, count, next position). `TOO_LARGE`:
    the next message alone would; it is framed and counted at place 0, count 0."""
    data = buf.ctypes.data
    end = len(buf)
    count = 0
    need = 0
    if not delimited:
        if end > max_bytes:
            return FRAMING_ERROR, 0, 0
        starts[0], lengths[0], offsets[0] = 0, end, 0
        counts[0], bad[0] = count_field(data, 0, end, entries_number)
        if costs[0] + counts[0] * costs[1] + end * costs[2] > piece:
            return TOO_LARGE, 0, 0
        return FRAMED_ALL, 1, end
    while pos < end:
        if count == limit:
            return FRAMED_BATCH, count, pos
        length, body = varint(data, pos, end)
        if body < 0 or length < 0 or length > max_bytes or body + length > end:
            return FRAMING_ERROR, count, pos
        entries, broken = count_field(data, body, body + length, entries_number)
        more = costs[0] + entries * costs[1] + length * costs[2]
        if need + more > piece:
            if count == 0:
                starts[0], lengths[0], offsets[0] = body, length, pos
                counts[0], bad[0] = entries, broken
                return TOO_LARGE, 0, pos
            return FRAMED_BATCH, count, pos
        starts[count], lengths[count], offsets[count] = body, length, pos
        counts[count], bad[count] = entries, broken
        need += more
        count += 1
        pos = body + length
    return FRAMED_ALL, count, pos


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
