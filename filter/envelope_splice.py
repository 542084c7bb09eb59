"""Key/value envelopes spliced as bytes: the compiled half of `filter.protobuf_writer`.

In: a buffer holding a batch's messages (spans), which entries the split exported (one flag
per entry, in message order), the token bytes of each message's VIN, and, when the export's
timestamp is coarsened, each message's coarsened timestamp (the caller truncates them with
Polars, as the Parquet path does).
Out: both delimited streams, written into preallocated byte arrays: per message, an export
message (the token in the VIN's field, the timestamp, the flagged entries as they came) and an
onshore message (every other field as it came). Imported only
when protobuf output is written, so that other runs do not load numba.
May fail: nothing; `envelope_layout` reports messages that do not frame at the top level (the
caller refuses them before splicing).
"""

from __future__ import annotations

import numpy as np

from filter.jit import kernel
from filter.wire import load_u8, put_varint, skip, store_u8, varint, varint_size


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
                   token_bytes, coarse, timed, seconds, nanos, export_out, onshore_out):
    """Both delimited streams: per message, the export (token, timestamp, flagged entries)
    and the onshore message (everything else, as it came). With `coarse` the export's
    timestamp is the given `seconds` and `nanos` (where `timed`), not the message's own.
    -> (export bytes, onshore bytes)

    One walk per message: each body is written `_PREFIX_ROOM` bytes after the stream's end,
    then moved left behind its length prefix (a second walk to size the bodies first cost
    more than the move).
    """
    data = buf.ctypes.data
    export_data = export_out.ctypes.data
    onshore_data = onshore_out.ctypes.data
    e_at = 0
    o_at = 0
    width = token_bytes.shape[1]
    vin_tag = (vin_number << 3) | 2
    time_tag = (time_number << 3) | 2
    for m in range(len(starts)):
        start = starts[m]
        end = start + lengths[m]
        e_body = e_at + _PREFIX_ROOM
        o_body = o_at + _PREFIX_ROOM
        e_end = put_varint(export_data, e_body, vin_tag)
        e_end = put_varint(export_data, e_end, width)
        for k in range(width):
            export_out[e_end] = token_bytes[m, k]
            e_end += 1
        if coarse and timed[m]:
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
                    e_end = _copy(export_data, e_end, data, field_start, stop)
                else:
                    o_end = _copy(onshore_data, o_end, data, field_start, stop)
                entry += 1
            elif field == time_number and (tag & 7) == 2:
                o_end = _copy(onshore_data, o_end, data, field_start, stop)
                if not coarse:
                    e_end = _copy(export_data, e_end, data, field_start, stop)
            else:
                o_end = _copy(onshore_data, o_end, data, field_start, stop)
            pos = stop
        e_at = _close_message(export_data, e_at, e_body, e_end)
        o_at = _close_message(onshore_data, o_at, o_body, o_end)
    return e_at, o_at
