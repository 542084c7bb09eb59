"""Protobuf messages parsed by the runtime, and made Polars frames: the plain-protobuf path.

In: a `ProtoSchema` (`descriptors`) and framed messages (`framing`).
Out: Polars `DataFrame`s in batches of messages (`row_batches.Batch`), either
- *plain*: one row per message, one column per top-level field, nested messages as structs,
  repeated fields as lists, field names as their JSON names (``currentLocation``) so paths match
  the catalogue's VSS rules case-insensitively; or
- *key/value* (an envelope whose repeated entries hold an enum ``key`` and a ``value`` message
  with a oneof, as in the widely used fleet-telemetry schema): one row per entry, with the
  envelope's fields (by their proto names: ``vin``, ``created_at``), ``message_index``,
  ``entry_index``, ``key`` (the enum value's name, or the number when the descriptor does not
  know it), ``member`` (the oneof member set) and typed
  value columns (``value_string``, ``value_int``, ``value_double``, ``value_bool``,
  ``value_enum``, and one struct column per message-typed member, e.g. ``value_location_value``).
Fields the descriptor does not know (unknown fields on the wire) are never dropped silently:
the message's raw bytes go to an ``unknown_fields`` column, which no catalogue rule exports
(key/value: the entry's bytes, as for an entry setting declared fields no column holds, beside
its key and value member; an envelope's own unknown fields give a row of their own, entry
index -1 and no key, holding the envelope without its entries).
May fail: `InputError` naming the file, the byte offset and the message index: bytes that do not
parse, nesting deeper than `MAX_DEPTH`; and what framing raises.

This is the plain-protobuf path: clear and checked, but it touches every field in Python. Key/value
stream files go through the compiled decoder (`kv_decoder`) instead, which is
tested against this path and hands it every message it does not decode itself;
`filter.formats.protobuf.batches` chooses between the two.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from filter.errors import InputError, first_line
from filter.formats.protobuf.descriptors import KeyValueLayout, ProtoSchema
from filter.formats.protobuf.framing import BadRecord, Frame, OnBadRecord, dump_frames
from filter.formats.protobuf.pieces import Pieces
from filter.formats.protobuf.row_batches import Batch, RawMessages

#: Deepest nesting of messages decoded (a recursive schema stops here with an error).
MAX_DEPTH = 32
#: Column holding the raw bytes of messages that carry fields the descriptor does not know.
UNKNOWN_FIELDS = "unknown_fields"
#: The well-known type a timestamp field holds (read as a UTC datetime, not a struct).
TIMESTAMP_TYPE = "google.protobuf.Timestamp"
#: The seconds a `Timestamp` may hold (0001-01-01 to 9999-12-31, as its definition says).
MIN_TIMESTAMP_SECONDS, MAX_TIMESTAMP_SECONDS = -62_135_596_800, 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The column type of each protobuf scalar type.
SCALAR_TYPES: dict[int, pl.DataType] = {
    FieldDescriptor.TYPE_DOUBLE: pl.Float64(),
    FieldDescriptor.TYPE_FLOAT: pl.Float32(),
    FieldDescriptor.TYPE_INT64: pl.Int64(),
    FieldDescriptor.TYPE_SINT64: pl.Int64(),
    FieldDescriptor.TYPE_SFIXED64: pl.Int64(),
    FieldDescriptor.TYPE_UINT64: pl.UInt64(),
    FieldDescriptor.TYPE_FIXED64: pl.UInt64(),
    FieldDescriptor.TYPE_INT32: pl.Int32(),
    FieldDescriptor.TYPE_SINT32: pl.Int32(),
    FieldDescriptor.TYPE_SFIXED32: pl.Int32(),
    FieldDescriptor.TYPE_UINT32: pl.UInt32(),
    FieldDescriptor.TYPE_FIXED32: pl.UInt32(),
    FieldDescriptor.TYPE_BOOL: pl.Boolean(),
    FieldDescriptor.TYPE_STRING: pl.String(),
    FieldDescriptor.TYPE_BYTES: pl.Binary(),
    FieldDescriptor.TYPE_ENUM: pl.String(),  # the value's name; its number if unknown
}


def parse(schema: ProtoSchema, path: Path, frame: Frame) -> Message:
    """Parse one framed message, or raise `InputError` naming the place."""
    try:
        message = schema.message_class.FromString(frame.data)
        for field in schema.descriptor.fields:  # a top-level Timestamp the spec rules out
            if (
                field.message_type is not None and field.message_type.full_name == TIMESTAMP_TYPE
                and not field.is_repeated and message.HasField(field.name)
                and not MIN_TIMESTAMP_SECONDS <= getattr(message, field.name).seconds
                <= MAX_TIMESTAMP_SECONDS
            ):
                raise ValueError(f"{field.name} is outside the Timestamp range "
                                 "(years 1 to 9999)")
        return message
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InputError(
            f"{path}: message {frame.index} at byte {frame.offset}: does not parse as "
            f"{schema.name}: {first_line(exc)}"
        ) from None


def parse_or_report(
    schema: ProtoSchema, path: Path, frame: Frame, on_bad: OnBadRecord | None
) -> Message | None:
    """`parse`, except that with `on_bad` a bad record is handed to it (and None returned)."""
    try:
        return parse(schema, path, frame)
    except InputError as exc:
        if on_bad is None:
            raise
        on_bad(BadRecord(path, frame.index, frame.offset, exc.message, frame.data))
        return None


def iter_dump_batches(
    schema: ProtoSchema,
    files: list[Path],
    *,
    first_index: int = 0,
    batch_size: int = 10_000,
    on_bad: OnBadRecord | None = None,
    pieces: Pieces | None = None,
) -> Iterator[Batch]:
    """Like `protobuf_batches.iter_batches` over a topic dump, for a run of its files
    (`dump_files` order) whose first is message `first_index` of the dump: so a dump can be
    read in pieces."""
    yield from batched(schema, dump_frames(files, first_index, on_bad), batch_size, on_bad,
                       Pieces.of(None) if pieces is None else pieces)


def batched(
    schema: ProtoSchema,
    frames: Iterator[tuple[Path, Frame]],
    batch_size: int,
    on_bad: OnBadRecord | None,
    pieces: Pieces,
) -> Iterator[Batch]:
    """Frames parsed with the protobuf runtime, as rows in batches of `batch_size` messages,
    or fewer where they would need more than one of the `pieces` (`Pieces.plain_need`,
    measured before each message is parsed; one that alone would is refused)."""
    batch: list[tuple[Frame, Message]] = []
    need = 0
    for path, frame in frames:
        more = _plain_need(schema, path, frame, pieces)
        if batch and need + more > pieces.limit:
            yield _rows(schema, batch)
            batch, need = [], 0
        message = parse_or_report(schema, path, frame, on_bad)
        if message is None:
            continue
        batch.append((frame, message))
        need += more
        if len(batch) == batch_size:
            yield _rows(schema, batch)
            batch, need = [], 0
    if batch or not schema.key_value:
        yield _rows(schema, batch)


def _plain_need(schema: ProtoSchema, path: Path, frame: Frame, pieces: Pieces) -> int:
    """What parsing `frame` and making it rows needs, from its bytes and (key/value) its
    entries, counted on the wire first; refused if it alone does not fit in a piece."""
    entries = 0
    if schema.key_value is not None and frame.data:
        from filter.formats.protobuf.wire import count_top_level  # numba: key/value only

        entries, _ = count_top_level(np.frombuffer(frame.data, dtype=np.uint8),
                                     schema.key_value.entries.number)
    need = pieces.plain_need(1, entries, len(frame.data),
                             0 if schema.key_value is not None else row_fields(schema))
    pieces.check_message(path, frame.index, frame.offset, entries, len(frame.data), need)
    return need


def _rows(schema: ProtoSchema, batch: list[tuple[Frame, Message]]) -> Batch:
    frames = [f for f, _ in batch]
    messages = [m for _, m in batch]
    def raw() -> RawMessages:
        return RawMessages.of([(f.index, f.data) for f in frames])

    if schema.key_value is not None:
        rows = key_value_frame(schema, messages, [f.index for f in frames])
        return Batch(rows, len(batch), raw=raw, envelopes=envelope_frame(schema, messages))
    return Batch(plain_frame(schema, messages, [f.data for f in frames]), len(batch), raw=raw)


@functools.cache
def row_fields(schema: ProtoSchema) -> int:
    """The columns of a plain row of `schema`, a struct's and a list's fields counted too:
    what a parsed message costs per row whatever it sets (`pieces.PLAIN_FIELD_BYTES`)."""

    def count(dtype: pl.DataType) -> int:
        if isinstance(dtype, pl.Struct):
            return 1 + sum(count(f.dtype) for f in dtype.fields)
        if isinstance(dtype, pl.List):
            return 1 + count(dtype.inner)
        return 1

    return sum(count(t) for t in polars_schema(schema).values())


def polars_schema(schema: ProtoSchema) -> pl.Schema:
    """The Polars schema of plain rows of `schema`'s message."""
    columns = {f.json_name: _dtype(f, 0) for f in schema.descriptor.fields}
    columns[UNKNOWN_FIELDS] = pl.Binary()
    return pl.Schema(columns)


def plain_frame(schema: ProtoSchema, messages: list[Message], raw: list[bytes]) -> pl.DataFrame:
    """One row per message (the plain path; `raw` are the messages' bytes)."""
    fields = schema.descriptor.fields
    rows = []
    for message, data in zip(messages, raw, strict=True):
        row = {f.json_name: _value(message, f, 0) for f in fields}
        row[UNKNOWN_FIELDS] = data if _has_unknown(message, 0) else None
        rows.append(row)
    return pl.DataFrame(rows, schema=polars_schema(schema), orient="row")


@functools.cache
def key_value_schema(schema: ProtoSchema) -> pl.Schema:
    """The Polars schema of key/value rows of `schema`'s envelope (made once per envelope
    type, several times a batch: shared, not to be changed)."""
    layout = schema.key_value
    assert layout is not None
    columns: dict[str, pl.DataType] = {"message_index": pl.Int64(), "entry_index": pl.Int64()}
    for f in schema.descriptor.fields:
        if f is not layout.entries:
            columns[f.name] = _dtype(f, 0)
    columns.update({"key": pl.String(), "key_number": pl.Int32(), "member": pl.String()})
    columns.update(_VALUE_COLUMNS)
    for member in _message_members(layout):
        columns[f"value_{member.name}"] = _dtype(member, 1)
    columns[UNKNOWN_FIELDS] = pl.Binary()
    return pl.Schema(columns)


_VALUE_COLUMNS: dict[str, pl.DataType] = {
    "value_string": pl.String(),
    "value_int": pl.Int64(),
    "value_double": pl.Float64(),
    "value_bool": pl.Boolean(),
    "value_enum": pl.String(),
    "value_bytes": pl.Binary(),
}


def envelope_frame(schema: ProtoSchema, messages: list[Message]) -> pl.DataFrame:
    """One row per key/value envelope: its fields but the entries."""
    layout = schema.key_value
    assert layout is not None
    fields = [f for f in schema.descriptor.fields if f is not layout.entries]
    return pl.DataFrame(
        {f.name: [_value(m, f, 0) for m in messages] for f in fields},
        schema={f.name: _dtype(f, 0) for f in fields},
    )


def key_value_frame(
    schema: ProtoSchema, messages: list[Message], indexes: list[int]
) -> pl.DataFrame:
    """One row per entry of each envelope (the plain path)."""
    layout = schema.key_value
    assert layout is not None
    envelope_fields = [f for f in schema.descriptor.fields if f is not layout.entries]
    key_enum: EnumDescriptor = layout.key.enum_type
    rows = []
    for message, message_index in zip(messages, indexes, strict=True):
        envelope = {f.name: _value(message, f, 0) for f in envelope_fields}
        rest = _unknown_envelope(message, layout)
        if rest is not None:  # kept whole in a row of its own (entry -1), which stays onshore
            rows.append({"message_index": message_index, "entry_index": -1, **envelope,
                         UNKNOWN_FIELDS: rest})
        for entry_index, entry in enumerate(getattr(message, layout.entries.name)):
            number = getattr(entry, layout.key.name)
            known = key_enum.values_by_number.get(number)
            row: dict[str, Any] = {
                "message_index": message_index,
                "entry_index": entry_index,
                **envelope,
                "key": known.name if known is not None else str(number),
                "key_number": number,
            }
            value = getattr(entry, layout.value.name)
            member_name = value.WhichOneof(layout.oneof_name)
            row["member"] = member_name
            if member_name is not None:
                member = value.DESCRIPTOR.fields_by_name[member_name]
                scalar = _value(value, member, 1)
                if isinstance(scalar, int) and scalar >= 2**63:
                    scalar -= 2**64  # a uint64 past Int64 keeps its bits in value_int
                row[value_column(member)] = scalar
            # An entry holding more than its key and one value member (fields the descriptor
            # does not know, or declared ones outside them, which no row column holds) is kept
            # whole, as bytes, and so never exported.
            unknown = _has_unknown(entry, 0) or _has_extra(entry, value, layout)
            row[UNKNOWN_FIELDS] = entry.SerializeToString() if unknown else None
            rows.append(row)
    return pl.DataFrame(rows, schema=key_value_schema(schema), orient="row")


def _has_extra(entry: Message, value: Message, layout: KeyValueLayout) -> bool:
    """Whether an entry sets declared fields besides its key and value, or its value fields
    outside the oneof (only schemas the compiled decoder does not read have such fields)."""
    if not _declares_extra(layout):
        return False
    return any(f is not layout.key and f is not layout.value for f, _ in entry.ListFields()) \
        or any(f.containing_oneof is None or f.containing_oneof.name != layout.oneof_name
               for f, _ in value.ListFields())


@functools.cache
def _declares_extra(layout: KeyValueLayout) -> bool:
    """Whether an envelope's entry or value type declares fields beside key, value and the
    oneof's members."""
    entry, value = layout.entries.message_type, layout.value.message_type
    return len(entry.fields) > 2 or any(
        f.containing_oneof is None or f.containing_oneof.name != layout.oneof_name
        for f in value.fields)


def _unknown_envelope(message: Message, layout: KeyValueLayout) -> bytes | None:
    """The envelope without its entries, as bytes, when it carries fields the descriptor does
    not know (newer firmware adding an envelope field): else None."""
    if not len(UnknownFieldSet(message)) and not any(
        f.message_type is not None and _has_unknown(v, 1)
        for f, v in message.ListFields() if f is not layout.entries and not f.is_repeated
    ):
        return None
    rest = type(message)()
    rest.CopyFrom(message)
    rest.ClearField(layout.entries.name)
    return rest.SerializeToString()


def _message_members(layout: KeyValueLayout) -> list[FieldDescriptor]:
    oneof = layout.value.message_type.oneofs_by_name[layout.oneof_name]
    return [m for m in oneof.fields if m.message_type is not None]


def value_column(member: FieldDescriptor) -> str:
    """The key/value row column that holds a value member: ``value_<member>`` for a message;
    for a scalar, one column per kind (``value_string``, ``value_bytes``, ``value_bool``,
    ``value_enum``, ``value_double`` for floats, ``value_int`` for integers)."""
    if member.message_type is not None:
        return f"value_{member.name}"
    if member.type == FieldDescriptor.TYPE_ENUM:
        return "value_enum"
    dtype = SCALAR_TYPES[member.type]
    if dtype == pl.String:
        return "value_string"
    if dtype == pl.Binary:
        return "value_bytes"
    if dtype == pl.Boolean:
        return "value_bool"
    return "value_double" if dtype.is_float() else "value_int"


def _dtype(field: FieldDescriptor, depth: int) -> pl.DataType:
    if depth > MAX_DEPTH:
        raise InputError(f"{field.full_name}: messages nest deeper than {MAX_DEPTH} levels")
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields
        entry = {"key": _dtype(key, depth + 1), "value": _dtype(value, depth + 1)}
        return pl.List(pl.Struct(entry))
    if field.message_type is not None and field.message_type.full_name == TIMESTAMP_TYPE:
        inner: pl.DataType = pl.Datetime("us", "UTC")
    elif field.message_type is not None:
        inner = pl.Struct({f.json_name: _dtype(f, depth + 1) for f in field.message_type.fields})
    else:
        inner = SCALAR_TYPES[field.type]
    return pl.List(inner) if field.is_repeated else inner


def _value(message: Message, field: FieldDescriptor, depth: int) -> Any:
    """The Python value of `field` in `message`, shaped for `_dtype(field)`."""
    if depth > MAX_DEPTH:
        raise InputError(f"{field.full_name}: messages nest deeper than {MAX_DEPTH} levels")
    raw = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return [{"key": k, "value": _single(raw[k], value_field, depth)} for k in raw]
    if field.is_repeated:
        return [_single(item, field, depth) for item in raw]
    if field.message_type is not None and not message.HasField(field.name):
        return None
    if field.has_presence and field.message_type is None and not message.HasField(field.name):
        return None  # an explicit-presence scalar that was not sent
    return _single(raw, field, depth)


def _single(raw: Any, field: FieldDescriptor, depth: int) -> Any:
    if field.message_type is None:
        if field.type == FieldDescriptor.TYPE_ENUM:
            known = field.enum_type.values_by_number.get(raw)
            return known.name if known is not None else str(raw)
        return raw
    if field.message_type.full_name == TIMESTAMP_TYPE:
        micros = raw.seconds * 1_000_000 + raw.nanos // 1000
        return _EPOCH + timedelta(microseconds=micros)
    return {f.json_name: _value(raw, f, depth + 1) for f in field.message_type.fields}


def _has_unknown(message: Message, depth: int) -> bool:
    """Whether `message` or any message inside it carries fields its descriptor does not know."""
    if depth > MAX_DEPTH:
        return True
    if len(UnknownFieldSet(message)):
        return True
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = [value[k] for k in value] if field.message_type.fields_by_name[
                "value"].message_type is not None else []
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        if any(isinstance(i, Message) and _has_unknown(i, depth + 1) for i in items):
            return True
    return False
