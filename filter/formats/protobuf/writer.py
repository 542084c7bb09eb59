"""Protobuf output: the export and onshore sets as delimited streams of the input's type.

In: one batch's raw messages (index, bytes) as read, the message type, what the split decided
(key/value: which entries were exported; plain messages: `apply.messages` applies the plan's
per-field decisions, with this module's field copying), the tokens of the VINs, and the two
part files.
Out: per part file a varint-delimited stream of messages of the input's own type, one per
input message, in input order, so message i of each stream comes from message i of the batch:
- export: only what the split exported, built anew from the values it classified, never
  copied as input bytes (a parser keeps only the last copy of a field, so bytes it discards
  could otherwise ride along unseen: an earlier location, a oneof member replaced by a later
  one): key/value entries routed to the export, each as its key and its one value member;
  plain fields classified ordinary for the scenario (exported strings a detector hit left
  out); the vehicle identifier field holds the token instead of the VIN (no field where the
  VIN gets no token); the timestamp is written anew, coarsened and values rounded where the
  catalogue says so; no unknown fields, no extensions, nothing the plan did not export;
- onshore: the VIN, the exact timestamp and everything the export lacks (withheld entries and
  fields, unknown fields, the exact values of coarsened or rounded ones, the strings the
  detectors moved).
Nothing is lost: every entry is in exactly one stream, every field in one (keys in both).
May fail: `OSError` from the files (the caller reports it).

Plain messages are rebuilt with the protobuf runtime, one at a time: clear and checked, not
fast. Key/value envelopes are spliced as bytes by compiled code (`envelope_splice`):
the onshore message keeps every withheld field as it came; the exported entries are encoded
anew from the compiled decoder's arrays (`encode_entries`), or, for a batch the decoder handed
to the protobuf runtime, from the runtime's messages (`rebuilt_entry`), byte for byte alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal.encoder import _VarintBytes
from google.protobuf.message import Message

from filter.formats.protobuf.descriptors import KeyValueLayout, ProtoSchema
from filter.formats.protobuf.row_batches import RawMessages

if TYPE_CHECKING:
    from filter.formats.protobuf.kv_entries import DecodedEntries

#: Suffix of protobuf part files.
PART_SUFFIX = ".pb"


def write_delimited(out: BinaryIO, message: Message) -> None:
    """One message, with its varint length prefix."""
    data = message.SerializeToString()
    out.write(_VarintBytes(len(data)))
    out.write(data)


#: A change to timestamps, as arrays of (seconds, nanos) in, arrays of them out.
TimestampCut = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class StreamKeys:
    """The envelope's key fields (proto names) and what the export does to the timestamp."""

    vin: str
    timestamp: str
    #: What the export does to timestamps (seconds, nanos): the catalogue's action on the
    #: timestamp for the scenario (`apply.messages.timestamp_cut`); None: kept exact.
    coarsen: TimestampCut | None


#: The entries to export: their (message indexes, entry indexes), or a flag per entry of the
#: batch in the order its messages hold them.
EntrySelection = tuple[np.ndarray, np.ndarray] | np.ndarray


def write_key_value_streams(
    schema: ProtoSchema,
    raw: RawMessages,
    exported: EntrySelection,
    tokens: Mapping[str, str | None],
    keys: StreamKeys,
    export_out: BinaryIO,
    onshore_out: BinaryIO,
    decoded: DecodedEntries | None = None,
) -> None:
    """Key/value envelopes: the `exported` entries to the export stream, the rest with every
    other envelope field to the onshore stream.

    The onshore messages are spliced as bytes: each withheld entry and field is copied as it
    came (so an entry with fields the descriptor does not know reaches the onshore stream
    intact). The export gets the token in place of the VIN, the (coarsened) timestamp, and
    its entries encoded anew: from `decoded`, the compiled decoder's arrays of the batch, if
    given (then `exported` are its flags), else from the messages parsed by the runtime.
    """
    from filter.formats.protobuf.envelope_splice import (  # numba: on use only
        envelope_layout,
        splice_streams,
    )

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
    if decoded is not None and not isinstance(exported, tuple):
        entry_data, entry_offsets = decoded_entries(decoded, flags)
    else:
        entry_data, entry_offsets = runtime_entries(schema, raw, flags, base)
    token_bytes, has_token = _token_bytes(raw.data, vin_spans, tokens)
    if keys.coarsen is not None:
        seconds, nanos = keys.coarsen(seconds, nanos)
    export_buf = np.empty(len(entry_data) + n * (token_bytes.shape[1] + 40), dtype=np.uint8)
    onshore_buf = np.empty(int(raw.lengths.sum()) + n * 8, dtype=np.uint8)
    export_len, onshore_len = splice_streams(
        raw.data, raw.starts, raw.lengths, layout.entries.number, vin_number, time_number,
        flags, base, entry_data, entry_offsets, token_bytes, has_token, timed, seconds, nanos,
        export_buf, onshore_buf,
    )
    export_out.write(memoryview(export_buf[:export_len]))
    onshore_out.write(memoryview(onshore_buf[:onshore_len]))


def decoded_entries(decoded: DecodedEntries, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flagged entries of a decoded batch, each encoded anew from the decoder's arrays
    (`envelope_splice.encode_entries`): (bytes, offsets per entry)."""
    from filter.formats.protobuf.envelope_splice import encode_entries, encode_leaves
    from filter.formats.protobuf.kv_tables import WIRE_TYPES

    tables = decoded.tables
    picked = np.flatnonzero(flags & decoded.keep)
    body_of = np.full(len(picked), -1, dtype=np.int64)
    bodies: list[np.ndarray] = []
    body_offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    done = 0
    for j, leaves in sorted(decoded.leaves.items()):
        table = tables.member_tables[j]
        rows = np.flatnonzero(flags[leaves.rows])  # of the member's entries, the exported
        if table is None or not len(rows):
            continue
        numbers = np.array([f.number for f in table.fields], dtype=np.int64)
        explicit = np.array([f.has_presence for f in table.fields], dtype=np.bool_)
        data, offsets = encode_leaves(
            decoded.buf, rows, leaves.ints, leaves.floats, leaves.starts, leaves.lengths,
            leaves.seen, numbers, table.kinds, explicit, np.argsort(numbers, kind="stable"),
            WIRE_TYPES)
        body_of[np.searchsorted(picked, leaves.rows[rows])] = np.arange(len(rows)) + done
        bodies.append(data)
        body_offsets.append(offsets[1:] + body_offsets[-1][-1])
        done += len(rows)
    members = tables.members
    return encode_entries(
        decoded.buf, picked, decoded.ent_key, decoded.ent_member, decoded.ent_i, decoded.ent_f,
        decoded.ent_n, np.array([f.number for f in members.fields], dtype=np.int64),
        members.kinds, WIRE_TYPES,
        np.concatenate(bodies) if bodies else np.zeros(0, dtype=np.uint8),
        np.concatenate(body_offsets), body_of, tables.entries_number, tables.key_number,
        tables.value_number)


def runtime_entries(
    schema: ProtoSchema, raw: RawMessages, flags: np.ndarray, base: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The flagged entries (the batch's in message order; message m's are
    ``base[m]:base[m + 1]``), each encoded anew from its message as the runtime parses it
    (`rebuilt_entry`): (bytes, offsets per entry), as `decoded_entries` gives them."""
    layout = schema.key_value
    assert layout is not None
    where = np.flatnonzero(flags)
    message_of = np.searchsorted(base, where, side="right") - 1
    tag = _VarintBytes((layout.entries.number << 3) | 2)
    pieces: list[bytes] = []
    parsed: Message | None = None
    parsed_at = -1
    for e, m in zip(where.tolist(), message_of.tolist(), strict=True):
        if m != parsed_at:
            start, length = int(raw.starts[m]), int(raw.lengths[m])
            parsed = schema.message_class.FromString(raw.data[start : start + length].tobytes())
            parsed_at = m
        assert parsed is not None
        body = rebuilt_entry(getattr(parsed, layout.entries.name)[e - int(base[m])], layout)
        pieces.append(tag + _VarintBytes(len(body)) + body)
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets


def rebuilt_entry(entry: Message, layout: KeyValueLayout) -> bytes:
    """One entry anew: its key (unless 0) and a value holding its one oneof member, the
    member's fields the descriptor declares only (`known_copy`); serialised."""
    fresh = type(entry)()
    number = getattr(entry, layout.key.name)
    if number:
        setattr(fresh, layout.key.name, number)
    value = getattr(entry, layout.value.name)
    member = value.WhichOneof(layout.oneof_name)
    if member is not None:
        target = getattr(fresh, layout.value.name)
        if value.DESCRIPTOR.fields_by_name[member].message_type is None:
            setattr(target, member, getattr(value, member))
        else:
            held = getattr(target, member)
            held.SetInParent()
            known_copy(getattr(value, member), held)
    return fresh.SerializeToString()


def known_copy(source: Message, target: Message) -> None:
    """Copy into `target` the fields of `source` its descriptor declares, recursively: no
    unknown fields, no extensions, only the values the runtime holds (the last of repeats)."""
    for field in source.DESCRIPTOR.fields:
        copy_field(source, target, field)


def copy_field(source: Message, target: Message, field: FieldDescriptor) -> None:
    """Copy one declared field from `source` to `target` (as `known_copy`), if it is set."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        held, into = getattr(source, field.name), getattr(target, field.name)
        holds_messages = field.message_type.fields_by_name["value"].message_type is not None
        for key in held:
            if holds_messages:
                known_copy(held[key], into[key])
            else:
                into[key] = held[key]
    elif field.is_repeated:
        held, into = getattr(source, field.name), getattr(target, field.name)
        if field.message_type is None:
            into.extend(held)
        else:
            for item in held:
                known_copy(item, into.add())
    elif field.message_type is not None:
        if source.HasField(field.name):
            into = getattr(target, field.name)
            into.SetInParent()
            known_copy(getattr(source, field.name), into)
    elif not field.has_presence or source.HasField(field.name):
        setattr(target, field.name, getattr(source, field.name))


def _token_bytes(
    data: np.ndarray, vin_spans: np.ndarray, tokens: Mapping[str, str | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Per message, the token of its VIN as a row of bytes (all tokens have one length), and
    whether it has one (an empty or blank VIN has none)."""
    from filter.formats.protobuf.kv_scalars import gather_bytes

    offsets, chars = gather_bytes(data, vin_spans[:, 0].copy(), vin_spans[:, 1].copy(),
                                  np.ones(len(vin_spans), dtype=np.bool_))
    vins = pl.Series(pa.LargeStringArray.from_buffers(
        len(vin_spans), pa.py_buffer(offsets), pa.py_buffer(chars)))
    known = list(tokens)
    if not known:
        return np.zeros((len(vin_spans), 0), np.uint8), np.zeros(len(vin_spans), np.bool_)
    codes = vins.cast(pl.Enum(known)).to_physical().to_numpy()  # strict: every VIN has one
    found = [tokens[v] for v in known]
    width = len(next((t for t in found if t is not None), ""))
    table = np.frombuffer("".join(t or "-" * width for t in found).encode(), dtype=np.uint8)
    present = np.array([t is not None for t in found], dtype=np.bool_)
    return table.reshape(len(known), width)[codes], present[codes]


