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

Plain messages are rebuilt with the protobuf runtime, one at a time: clear and checked, not
fast. Key/value envelopes are spliced as bytes by compiled code (`filter.envelope_splice`).
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

from filter.catalogue import Action
from filter.engine import apply_action
from filter.plan import ExportPlan, FieldDecision
from filter.readers import protobuf as pb

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


#: The entries to export: their (message indexes, entry indexes), or a flag per entry of the
#: batch in the order its messages hold them.
EntrySelection = tuple[np.ndarray, np.ndarray] | np.ndarray


def write_key_value_streams(
    schema: pb.ProtoSchema,
    raw: pb.RawMessages,
    exported: EntrySelection,
    tokens: Mapping[str, str],
    keys: StreamKeys,
    export_out: BinaryIO,
    onshore_out: BinaryIO,
) -> None:
    """Key/value envelopes: the `exported` entries to the export stream, the rest with every
    other envelope field to the onshore stream.

    The messages are spliced as bytes, not rebuilt: each entry is copied as it came (so an
    entry with fields the descriptor does not know reaches the onshore stream intact), the
    export gets the token in place of the VIN and the (coarsened) timestamp.
    """
    from filter.envelope_splice import envelope_layout, splice_streams  # numba: on use only

    layout = schema.key_value
    assert layout is not None
    fields = schema.descriptor.fields_by_name
    vin_number = fields[keys.vin].number
    n = len(raw)
    time_number = fields[keys.timestamp].number
    counts = np.zeros(n, dtype=np.int64)
    vin_spans = np.zeros((n, 2), dtype=np.int64)
    seconds = np.zeros(n, dtype=np.int64)
    nanos = np.zeros(n, dtype=np.int64)
    timed = np.zeros(n, dtype=np.bool_)
    ok = envelope_layout(raw.data, raw.starts, raw.lengths, layout.entries.number, vin_number,
                         time_number, counts, vin_spans, seconds, nanos, timed)
    if not ok.all():  # cannot happen for messages that parsed; kept as a guard
        raise ValueError("a message does not frame at its top level")
    base = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    if isinstance(exported, tuple):
        flags = np.zeros(int(base[-1]), dtype=np.bool_)
        flags[base[np.searchsorted(raw.indexes, exported[0])] + exported[1]] = True
    elif len(exported) == base[-1]:
        flags = exported
    else:  # cannot happen: the decoder counts the entries as the splicer does
        raise ValueError("the exported flags do not line up with the messages' entries")
    token_bytes = _token_bytes(raw.data, vin_spans, tokens)
    if keys.coarsen is not None:
        seconds, nanos = coarsened(seconds, nanos, keys.coarsen)
    room = int(raw.lengths.sum()) + n * (token_bytes.shape[1] + 40)
    export_buf = np.empty(room, dtype=np.uint8)
    onshore_buf = np.empty(room, dtype=np.uint8)
    export_len, onshore_len = splice_streams(
        raw.data, raw.starts, raw.lengths, layout.entries.number, vin_number, time_number,
        flags, base, token_bytes, keys.coarsen is not None, timed, seconds, nanos, export_buf,
        onshore_buf,
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
            _coarsen(stamp, keys.coarsen)


def coarsened(
    seconds: np.ndarray, nanos: np.ndarray, action: Action
) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (seconds, nanos) as the Parquet path exports them: `apply_action` on
    microsecond UTC datetimes (so "1mo" and "15m" mean what they mean there)."""
    stamps = pl.Series(seconds * 1_000_000 + nanos // 1000).cast(pl.Datetime("us", "UTC"))
    cut = pl.select(apply_action(pl.lit(stamps), stamps.dtype, action)).to_series()
    micros = cut.cast(pl.Int64).to_numpy()
    return micros // 1_000_000, micros % 1_000_000 * 1000


def _coarsen(stamp: Message, action: Action) -> None:
    seconds, nanos = coarsened(np.array([stamp.seconds]), np.array([stamp.nanos]), action)
    stamp.seconds, stamp.nanos = int(seconds[0]), int(nanos[0])


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
    """Apply `action` to a leaf as the column engine does to the same column."""
    found = _walk(message, decision)
    if found is None:
        return
    holder, field = found
    if field.message_type is not None and field.message_type.full_name == pb.TIMESTAMP_TYPE:
        if holder.HasField(field.name):
            _coarsen(getattr(holder, field.name), action)
        return
    dtype = pb.SCALAR_TYPES.get(field.type)
    if field.message_type is None and not field.is_repeated and dtype is not None \
            and dtype.is_numeric():
        value = pl.Series([getattr(holder, field.name)], dtype=dtype)
        done = pl.select(apply_action(pl.lit(value), dtype, action)).item()
        setattr(holder, field.name, done)


_JSON_NAMES: dict[str, dict[str, FieldDescriptor]] = {}


def _by_json_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    found = _JSON_NAMES.get(descriptor.full_name)
    if found is None:
        found = _JSON_NAMES[descriptor.full_name] = {f.json_name: f for f in descriptor.fields}
    return found
