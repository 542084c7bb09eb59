"""Protobuf output: the export and onshore sets as delimited streams of the input's type.

In: one batch's raw messages (index, bytes) as read, the message type, what the split decided
(key/value: which entries were exported; plain: the plan's per-field decisions and, per
message, the string fields a detector hit), the tokens of the VINs, and the two part files.
Out: per part file a varint-delimited stream of messages of the input's own type, one per
input message, in input order, so message i of each stream comes from message i of the batch:
- export: only what the split exported: key/value entries routed to the export, plain fields
  classified ordinary for the scenario (exported strings a detector hit are cleared); the
  vehicle identifier field holds the token instead of the VIN; the timestamp is coarsened and
  values rounded where the catalogue says so; no unknown fields;
- onshore: the VIN, the exact timestamp and everything the export lacks (withheld entries and
  fields, unknown fields, the exact values of coarsened or rounded ones, the strings the
  detectors moved).
Nothing is lost: every entry is in exactly one stream, every field in one (keys in both).
May fail: `OSError` from the files (the caller reports it).

Messages are rebuilt with the protobuf runtime, one at a time: clear and checked, not fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal.encoder import _VarintBytes
from google.protobuf.message import Message
from numba import njit

from filter.catalogue import Action
from filter.plan import ExportPlan, FieldDecision
from filter.readers import protobuf as pb
from filter.wire import put_varint, skip, varint, varint_size

#: Suffix of protobuf part files.
PART_SUFFIX = ".pb"


def write_delimited(out: BinaryIO, message: Message) -> None:
    """One message, with its varint length prefix."""
    data = message.SerializeToString()
    out.write(_VarintBytes(len(data)))
    out.write(data)


@dataclass(frozen=True)
class StreamKeys:
    """The envelope's key fields (proto names) and what the export does to the timestamp."""

    vin: str
    timestamp: str
    coarsen: Action | None  # the catalogue's action on the timestamp for the scenario


def write_key_value_streams(
    schema: pb.ProtoSchema,
    raw: pb.RawMessages,
    exported: tuple[np.ndarray, np.ndarray],
    tokens: Mapping[str, str],
    keys: StreamKeys,
    export_out: BinaryIO,
    onshore_out: BinaryIO,
) -> None:
    """Key/value envelopes: the exported entries (`exported`: their message indexes and entry
    indexes) to the export stream, the rest with every other envelope field to the onshore
    stream.

    The messages are spliced as bytes, not rebuilt: each entry is copied as it came (so an
    entry with fields the descriptor does not know reaches the onshore stream intact), the
    export gets the token in place of the VIN and the (coarsened) timestamp.
    """
    layout = schema.key_value
    assert layout is not None
    fields = schema.descriptor.fields_by_name
    vin_number = fields[keys.vin].number
    n = len(raw)
    counts = np.zeros(n, dtype=np.int64)
    vin_spans = np.zeros((n, 2), dtype=np.int64)
    ok = envelope_layout(raw.data, raw.starts, raw.lengths, layout.entries.number, vin_number,
                         counts, vin_spans)
    if not ok.all():  # cannot happen for messages that parsed; kept as a guard
        raise ValueError("a message does not frame at its top level")
    base = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    flags = np.zeros(int(base[-1]), dtype=np.bool_)
    flags[base[np.searchsorted(raw.indexes, exported[0])] + exported[1]] = True
    token_bytes = _token_bytes(raw.data, vin_spans, tokens)
    step = _seconds(keys.coarsen.every or "1h") if keys.coarsen is not None else 0
    room = int(raw.lengths.sum()) + n * (token_bytes.shape[1] + 40)
    export_buf = np.empty(room, dtype=np.uint8)
    onshore_buf = np.empty(room, dtype=np.uint8)
    export_len, onshore_len = splice_streams(
        raw.data, raw.starts, raw.lengths, layout.entries.number, vin_number,
        fields[keys.timestamp].number, flags, base, token_bytes, step, export_buf, onshore_buf,
    )
    export_out.write(memoryview(export_buf[:export_len]))
    onshore_out.write(memoryview(onshore_buf[:onshore_len]))


def _token_bytes(data: np.ndarray, vin_spans: np.ndarray, tokens: Mapping[str, str]) -> np.ndarray:
    """Per message, the token of its VIN as a row of bytes (all tokens have one length)."""
    from filter.readers.kv_decoder import gather_bytes

    offsets, chars = gather_bytes(data, vin_spans[:, 0].copy(), vin_spans[:, 1].copy(),
                                  np.ones(len(vin_spans), dtype=np.bool_))
    vins = pl.Series(pa.LargeStringArray.from_buffers(
        len(vin_spans), pa.py_buffer(offsets), pa.py_buffer(chars)))
    known = list(tokens)
    codes = vins.cast(pl.Enum(known)).to_physical().to_numpy()  # strict: every VIN has one
    width = len(next(iter(tokens.values()), ""))
    table = np.frombuffer("".join(tokens[v] for v in known).encode(), dtype=np.uint8)
    return table.reshape(len(known), width)[codes] if known else np.zeros((0, 0), np.uint8)


def write_plain_streams(
    schema: pb.ProtoSchema,
    raw: pb.RawMessages,
    export_plan: ExportPlan,
    detected: Mapping[int, set[str]],
    tokens: Mapping[str, str],
    keys: StreamKeys,
    export_out: BinaryIO,
    onshore_out: BinaryIO,
) -> None:
    """Plain messages: each field to the side its decision names (see the module doc).

    `detected` maps a message index to the exported string fields (paths) a detector hit in
    it: cleared in the export, kept onshore.
    """
    fields = [d for d in export_plan.fields if d.column != pb.UNKNOWN_FIELDS]  # on the wire:
    # unknown fields are dropped from the export below and stay in the onshore copy
    exported = [d for d in fields if d.destination == "export"]
    withheld = [d for d in fields if d.destination == "onshore"
                and d.path != export_plan.vehicle_id_column]
    for index, data in raw.items():
        source = schema.message_class.FromString(data)
        export = schema.message_class.FromString(data)
        export.DiscardUnknownFields()
        for decision in withheld:
            _clear(export, decision)
        hits = detected.get(index, set())
        for decision in exported:
            if decision.path in hits:
                _clear(export, decision)
            elif decision.action is not None:
                _transform(export, decision, decision.action)
        _set_keys(source, export, keys, tokens)
        onshore = source
        for decision in exported:  # what the export holds exactly and in full leaves here
            if decision.action is None and decision.path not in hits:
                _clear(onshore, decision)
        write_delimited(export_out, export)
        write_delimited(onshore_out, onshore)


def _set_keys(source: Message, export: Message, keys: StreamKeys,
              tokens: Mapping[str, str]) -> None:
    """The token in the export's vehicle identifier field; the timestamp, coarsened."""
    vin = getattr(source, keys.vin)
    setattr(export, keys.vin, tokens[vin])
    if source.HasField(keys.timestamp):
        stamp = getattr(export, keys.timestamp)
        stamp.CopyFrom(getattr(source, keys.timestamp))
        if keys.coarsen is not None:
            step = _seconds(keys.coarsen.every or "1h")
            stamp.seconds -= stamp.seconds % step
            stamp.nanos = 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def _seconds(every: str) -> int:
    """A Polars-style fixed duration ("1h", "15m", "1d") in seconds."""
    number, unit = every[:-1], every[-1]
    if unit not in _UNITS or not number.isdigit():
        raise ValueError(f"cannot coarsen a protobuf Timestamp to {every!r}")
    return int(number) * _UNITS[unit]


def _walk(message: Message, decision: FieldDecision) -> tuple[Message, FieldDescriptor] | None:
    """The message holding a decision's leaf, and the leaf's field (None when not set)."""
    names = (decision.column, *decision.inner)
    current = message
    for name in names[:-1]:
        field = _by_json_name(current.DESCRIPTOR)[name]
        if not current.HasField(field.name):
            return None
        current = getattr(current, field.name)
    return current, _by_json_name(current.DESCRIPTOR)[names[-1]]


def _clear(message: Message, decision: FieldDecision) -> None:
    """Clear a leaf; then the messages above it it leaves empty (an empty location message
    would still say that a location was sent)."""
    found = _walk(message, decision)
    if found is None:
        return
    found[0].ClearField(found[1].name)
    holders: list[tuple[Message, str]] = []
    current = message
    for name in (decision.column, *decision.inner)[:-1]:
        field = _by_json_name(current.DESCRIPTOR)[name]
        holders.append((current, field.name))
        current = getattr(current, field.name)
    for parent, name in reversed(holders):
        if getattr(parent, name).ByteSize():
            break
        parent.ClearField(name)


def _transform(message: Message, decision: FieldDecision, action: Action) -> None:
    found = _walk(message, decision)
    if found is None:
        return
    holder, field = found
    if field.message_type is not None and field.message_type.full_name == pb._TIMESTAMP:
        if holder.HasField(field.name):
            stamp = getattr(holder, field.name)
            stamp.seconds -= stamp.seconds % _seconds(action.every or "1h")
            stamp.nanos = 0
    elif action.kind == "round" and field.type in (FieldDescriptor.TYPE_DOUBLE,
                                                   FieldDescriptor.TYPE_FLOAT):
        value = getattr(holder, field.name)
        digits = action.digits or 0
        setattr(holder, field.name, round(value, digits) if digits >= 0
                else round(value / 10 ** -digits) * 10 ** -digits)
    elif action.kind == "round" and field.cpp_type in (
        FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64,
        FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64,
    ) and (action.digits or 0) < 0:
        scale = 10 ** -(action.digits or 0)
        setattr(holder, field.name, round(getattr(holder, field.name) / scale) * scale)


_JSON_NAMES: dict[str, dict[str, FieldDescriptor]] = {}


def _by_json_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    found = _JSON_NAMES.get(descriptor.full_name)
    if found is None:
        found = _JSON_NAMES[descriptor.full_name] = {f.json_name: f for f in descriptor.fields}
    return found


# --- splicing envelopes as bytes ----------------------------------------------------------------


@njit(cache=True, nogil=True)
def envelope_layout(buf, starts, lengths, entries_number, vin_number, counts, vin_spans):
    """Per message: its entries, and the span of its (last) VIN; False where it does not
    frame at the top level."""
    ok = np.ones(len(starts), dtype=np.bool_)
    for m in range(len(starts)):
        pos = starts[m]
        end = pos + lengths[m]
        while pos < end:
            tag, pos = varint(buf, pos, end)
            if pos < 0:
                ok[m] = False
                break
            field = tag >> 3
            wire = tag & 7
            if field == vin_number and wire == 2:
                length, body = varint(buf, pos, end)
                vin_spans[m, 0] = body
                vin_spans[m, 1] = length
            elif field == entries_number and wire == 2:
                counts[m] += 1
            pos = skip(buf, pos, end, wire)
            if pos < 0:
                ok[m] = False
                break
    return ok


@njit(cache=True, nogil=True)
def _copy(out, at, buf, start, stop):
    for k in range(start, stop):
        out[at] = buf[k]
        at += 1
    return at


@njit(cache=True, nogil=True)
def _timestamp_seconds(buf, start, stop):
    """The seconds of a Timestamp message's bytes (0 when absent)."""
    pos = start
    seconds = np.int64(0)
    while pos < stop:
        tag, pos = varint(buf, pos, stop)
        if pos < 0:
            break
        if tag == 8:
            seconds, pos = varint(buf, pos, stop)
        else:
            pos = skip(buf, pos, stop, tag & 7)
        if pos < 0:
            break
    return seconds


@njit(cache=True, nogil=True)
def splice_streams(buf, starts, lengths, entries_number, vin_number, time_number, flags, base,
                   token_bytes, step, export_out, onshore_out):
    """Both delimited streams: per message, the export (token, timestamp, flagged entries)
    and the onshore message (everything else, as it came). -> (export bytes, onshore bytes)"""
    e_at = 0
    o_at = 0
    width = token_bytes.shape[1]
    for m in range(len(starts)):
        start = starts[m]
        end = start + lengths[m]
        # First pass: the sizes of both messages.
        e_size = 1 + varint_size(width) + width  # the token in the VIN's field
        o_size = 0
        entry = base[m]
        pos = start
        while pos < end:
            field_start = pos
            tag, pos = varint(buf, pos, end)
            field = tag >> 3
            stop = skip(buf, pos, end, tag & 7)
            size = stop - field_start
            if field == entries_number and (tag & 7) == 2:
                if flags[entry]:
                    e_size += size
                else:
                    o_size += size
                entry += 1
            elif field == time_number and (tag & 7) == 2:
                o_size += size
                if step > 0:
                    length, body = varint(buf, pos, end)
                    seconds = _timestamp_seconds(buf, body, body + length)
                    seconds -= seconds % step
                    inner = 1 + varint_size(seconds) if seconds != 0 else 0
                    e_size += 1 + varint_size(inner) + inner
                else:
                    e_size += size
            else:
                o_size += size
            pos = stop
        # Second pass: the bytes, each message after its length.
        e_at = put_varint(export_out, e_at, e_size)
        o_at = put_varint(onshore_out, o_at, o_size)
        e_at = put_varint(export_out, e_at, (vin_number << 3) | 2)
        e_at = put_varint(export_out, e_at, width)
        for k in range(width):
            export_out[e_at] = token_bytes[m, k]
            e_at += 1
        entry = base[m]
        pos = start
        while pos < end:
            field_start = pos
            tag, pos = varint(buf, pos, end)
            field = tag >> 3
            stop = skip(buf, pos, end, tag & 7)
            if field == entries_number and (tag & 7) == 2:
                if flags[entry]:
                    e_at = _copy(export_out, e_at, buf, field_start, stop)
                else:
                    o_at = _copy(onshore_out, o_at, buf, field_start, stop)
                entry += 1
            elif field == time_number and (tag & 7) == 2:
                o_at = _copy(onshore_out, o_at, buf, field_start, stop)
                if step > 0:
                    length, body = varint(buf, pos, end)
                    seconds = _timestamp_seconds(buf, body, body + length)
                    seconds -= seconds % step
                    inner = 1 + varint_size(seconds) if seconds != 0 else 0
                    e_at = put_varint(export_out, e_at, (time_number << 3) | 2)
                    e_at = put_varint(export_out, e_at, inner)
                    if seconds != 0:
                        export_out[e_at] = 8
                        e_at = put_varint(export_out, e_at + 1, seconds)
                else:
                    e_at = _copy(export_out, e_at, buf, field_start, stop)
            else:
                o_at = _copy(onshore_out, o_at, buf, field_start, stop)
            pos = stop
    return e_at, o_at
