"""Protobuf output: the export and onshore sets as delimited streams of the input's type.

In: one batch's raw messages (index, bytes) as read, the message type, what the split decided
(key/value: which entries were exported; plain: the plan's per-field decisions and, per
message, the string fields a detector hit), the tokens of the VINs, and the two part files.
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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal.encoder import _VarintBytes
from google.protobuf.message import Message

from filter.apply.columns import apply_action
from filter.apply.pseudonym import TokenMapping
from filter.formats.protobuf.descriptors import KeyValueLayout, ProtoSchema
from filter.formats.protobuf.message_rows import SCALAR_TYPES, TIMESTAMP_TYPE, UNKNOWN_FIELDS
from filter.formats.protobuf.row_batches import RawMessages
from filter.policy.catalogue import Action
from filter.policy.plan import ExportPlan, FieldDecision

if TYPE_CHECKING:
    from filter.formats.protobuf.kv_decoder import DecodedEntries

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
    schema: ProtoSchema,
    raw: RawMessages,
    exported: EntrySelection,
    tokens: TokenMapping,
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
        seconds, nanos = coarsened(seconds, nanos, keys.coarsen)
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
    from filter.formats.protobuf.kv_decoder import WIRE_TYPES

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
        _copy_field(source, target, field)


def _copy_field(source: Message, target: Message, field: FieldDescriptor) -> None:
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
    data: np.ndarray, vin_spans: np.ndarray, tokens: TokenMapping
) -> tuple[np.ndarray, np.ndarray]:
    """Per message, the token of its VIN as a row of bytes (all tokens have one length), and
    whether it has one (an empty or blank VIN has none)."""
    from filter.formats.protobuf.kv_decoder import gather_bytes

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


def write_plain_streams(
    schema: ProtoSchema,
    raw: RawMessages,
    export_plan: ExportPlan,
    detected: Mapping[int, set[str]],
    tokens: TokenMapping,
    keys: StreamKeys,
    export_out: BinaryIO,
    onshore_out: BinaryIO,
) -> None:
    """Plain messages: each field to the side its decision names (see the module doc).

    `detected` maps a message index to the exported string fields (paths) a detector hit in
    it: left out of the export, kept onshore. The export message is built anew: an empty
    message into which each exported leaf the message holds is copied (`known_copy` for
    what is a message), so nothing the plan does not export can be in it.
    """
    fields = [d for d in export_plan.fields if d.column != UNKNOWN_FIELDS]  # on the wire:
    # unknown fields are never exported and stay in the onshore copy
    exported = [d for d in fields if d.destination == "export"]
    withheld = [d for d in fields if d.destination == "onshore"
                and d.path != export_plan.vehicle_id_column]
    for index, data in raw.items():
        source = schema.message_class.FromString(data)
        export = schema.message_class()
        hits = detected.get(index, set())
        for decision in exported:
            if decision.path in hits:
                continue
            if _copy_leaf(source, export, decision) and decision.action is not None:
                _transform(export, decision, decision.action)
        for decision in withheld:  # no message left empty on a withheld leaf's path
            _clear(export, decision)
        _set_keys(source, export, keys, tokens)
        onshore = source
        for decision in exported:  # what the export holds exactly and in full leaves here
            if decision.action is None and decision.path not in hits:
                _clear(onshore, decision)
        write_delimited(export_out, export)
        write_delimited(onshore_out, onshore)


def _copy_leaf(source: Message, export: Message, decision: FieldDecision) -> bool:
    """Copy a decision's leaf from `source` into `export`, the messages above it with it
    (present where `source` has them); whether `source` holds the messages above it."""
    names = (decision.column, *decision.inner)
    held, into = source, export
    for name in names[:-1]:
        field = _by_json_name(held.DESCRIPTOR)[name]
        if not held.HasField(field.name):
            return False
        held, into = getattr(held, field.name), getattr(into, field.name)
        into.SetInParent()
    _copy_field(held, into, _by_json_name(held.DESCRIPTOR)[names[-1]])
    return True


def _set_keys(source: Message, export: Message, keys: StreamKeys,
              tokens: TokenMapping) -> None:
    """The token in the export's vehicle identifier field (none without a token); the
    timestamp, coarsened."""
    token = tokens[getattr(source, keys.vin)]
    if token is not None:
        setattr(export, keys.vin, token)
    if source.HasField(keys.timestamp):
        stamp = getattr(export, keys.timestamp)
        stamp.SetInParent()
        known_copy(getattr(source, keys.timestamp), stamp)
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
    if field.message_type is not None and field.message_type.full_name == TIMESTAMP_TYPE:
        if holder.HasField(field.name):
            _coarsen(getattr(holder, field.name), action)
        return
    dtype = SCALAR_TYPES.get(field.type)
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
