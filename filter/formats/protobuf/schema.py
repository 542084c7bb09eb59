"""Protobuf input: descriptor sets, message framing, and messages to Polars frames.

In: protobuf files (a stream of varint-length-delimited messages, one message per file, or a
directory of single-message files), a `FileDescriptorSet` (as ``protoc --include_imports -o``
writes it; vtx's own schemas in ``proto/vtx/telemetry/v1`` are used when none is given) and the
full name of the message type. Messages are built dynamically: no generated code is needed.
Out: Polars `DataFrame`s in batches of messages, either
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
May fail: `InputError` naming the file, the byte offset and the message index: a truncated
varint, a length past the end of the file, a message larger than `MAX_MESSAGE_BYTES` (checked
before anything is allocated), bytes that do not parse, nesting deeper than `MAX_DEPTH`; and for
a descriptor set that cannot be read or lacks the named type.

This is the plain-protobuf path: clear and checked, but it touches every field in Python. Key/value
stream files go through the compiled decoder (`kv_batches`) instead, which is
tested against this path and hands it every message it does not decode itself;
`filter.formats.protobuf.batches` chooses between the two.
"""

from __future__ import annotations

import difflib
import functools
import mmap
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import polars as pl
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from filter.errors import InputError, first_line
from filter.files import entry_kind, found_link, found_special, open_regular, read_regular
from filter.resources import shipped_dir

Framing = Literal["delimited", "single"]

#: Largest message accepted; a length prefix above it is refused before any allocation.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Deepest nesting of messages decoded (a recursive schema stops here with an error).
MAX_DEPTH = 32
#: Column holding the raw bytes of messages that carry fields the descriptor does not know.
UNKNOWN_FIELDS = "unknown_fields"
#: The well-known type a timestamp field holds (read as a UTC datetime, not a struct).
TIMESTAMP_TYPE = "google.protobuf.Timestamp"
#: The seconds a `Timestamp` may hold (0001-01-01 to 9999-12-31, as its definition says).
MIN_TIMESTAMP_SECONDS, MAX_TIMESTAMP_SECONDS = -62_135_596_800, 253_402_300_799
_SHIPPED_DESCRIPTORS = "vtx/telemetry/v1/telemetry.binpb"
#: `ProtoSchema.source` (and the manifests' ``descriptor_set``) for vtx's shipped schemas.
SHIPPED_SOURCE = "shipped vtx schemas"
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


@dataclass(frozen=True)
class Frame:
    """One framed message: its index in the file, byte offset, and bytes."""

    index: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class KeyValueLayout:
    """Where the entries, their keys and their values are in a key/value envelope."""

    entries: FieldDescriptor  # repeated message field of the envelope
    key: FieldDescriptor  # enum field of the entry
    value: FieldDescriptor  # message field of the entry, holding a oneof
    oneof_name: str


@dataclass(frozen=True)
class ProtoSchema:
    """A message type resolved from a descriptor set, and how to read it."""

    source: str  # the descriptor set's path, or "shipped"
    descriptor: Descriptor
    message_class: type[Message]
    key_value: KeyValueLayout | None

    @property
    def name(self) -> str:
        """The message type's full name."""
        return self.descriptor.full_name


# --- descriptors --------------------------------------------------------------------------------


def load_schema(
    descriptor_set: str | Path | None, message: str, *, kv_field: str | None = None
) -> ProtoSchema:
    """Resolve `message` in `descriptor_set` (None: vtx's shipped schemas).

    A key/value envelope is detected automatically, or named by its entries field (`kv_field`).
    """
    path = Path(descriptor_set) if descriptor_set is not None else (
        shipped_dir("proto") / _SHIPPED_DESCRIPTORS
    )
    source = str(descriptor_set) if descriptor_set is not None else SHIPPED_SOURCE
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(read_regular(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot read descriptor set: {exc.strerror or exc}") from None
    except DecodeError as exc:
        raise InputError(
            f"{path}: not a FileDescriptorSet ({first_line(exc)})",
            hint="write one with `protoc --include_imports -o FILE.binpb your.proto`",
        ) from None
    pool = descriptor_pool.DescriptorPool()
    try:
        for file in files.file:
            pool.Add(file)
        descriptor = pool.FindMessageTypeByName(message)
    except KeyError:
        names = [m for f in files.file for m in _message_names(f)]
        close = difflib.get_close_matches(message, names, n=1)
        raise InputError(
            f"{source}: no message type {message!r}",
            hint=f"did you mean {close[0]!r}?" if close else None,
        ) from None
    except TypeError as exc:  # inconsistent or incomplete files (a missing import)
        raise InputError(f"{source}: descriptor set is incomplete: {first_line(exc)}") from None
    layout = detect_key_value(descriptor, kv_field)
    return ProtoSchema(source, descriptor, message_factory.GetMessageClass(descriptor), layout)


def _message_names(file: descriptor_pb2.FileDescriptorProto) -> Iterator[str]:
    prefix = f"{file.package}." if file.package else ""
    for msg in file.message_type:
        yield prefix + msg.name


def detect_key_value(descriptor: Descriptor, kv_field: str | None = None) -> KeyValueLayout | None:
    """The key/value layout of `descriptor`, if it is an envelope (or `kv_field` names one)."""
    candidates = [
        f for f in descriptor.fields
        if f.is_repeated and f.message_type is not None
        and (kv_field is None or f.name == kv_field)
    ]
    if kv_field is not None and not candidates:
        raise InputError(f"message {descriptor.full_name!r} has no repeated message field "
                         f"{kv_field!r} (--kv-field)")
    for entries in candidates:
        entry = entries.message_type
        key = entry.fields_by_name.get("key")
        value = entry.fields_by_name.get("value")
        if (
            key is not None and key.enum_type is not None
            and value is not None and value.message_type is not None
            and value.message_type.oneofs
        ):
            return KeyValueLayout(entries, key, value, value.message_type.oneofs[0].name)
    if kv_field is not None:
        raise InputError(f"{descriptor.full_name}.{kv_field}: entries need an enum 'key' and a "
                         "'value' message with a oneof (--kv-field)")
    return None


# --- framing ------------------------------------------------------------------------------------


def iter_frames(
    path: Path, framing: Framing, *, start: int = 0, first_index: int = 0,
    follow_links: bool = True,
) -> Iterator[Frame]:
    """The messages of one file: varint-delimited, or the whole file as one message.

    The file is memory-mapped, so a large stream costs page cache, not process memory.
    A delimited stream can be framed from byte `start`, where message `first_index` begins.
    Only a regular file is read (`filter.files.open_regular`; ``follow_links=False``: not
    through a symbolic link either).
    """
    try:
        with open_regular(path, follow_links=follow_links) as fh:
            size = os.fstat(fh.fileno()).st_size
            data: bytes | mmap.mmap = (
                mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            )
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        yield from _frames(path, data, framing, start, first_index)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _frames(
    path: Path, data: bytes | mmap.mmap, framing: Framing, start: int, first_index: int
) -> Iterator[Frame]:
    if framing == "single":
        _check_size(path, 0, 0, len(data))
        yield Frame(0, 0, bytes(data))
        return
    offset, index, end = start, first_index, len(data)
    while offset < end:
        length, start = _read_varint(path, data, offset, index)
        _check_size(path, offset, index, length)
        if start + length > end:
            raise _FramingError(
                f"{path}: message {index} at byte {offset}: length {length} runs past the end "
                f"of the file ({end - start} bytes left)", index, offset
            )
        yield Frame(index, offset, data[start : start + length])
        offset, index = start + length, index + 1


def iter_directory(directory: Path) -> Iterator[tuple[Path, Frame]]:
    """A topic dump: every regular file of `directory` (sorted) as one message.

    A message's index is its file's position in that order, so indexes are unique in the dump.
    """
    yield from dump_frames(dump_files(directory), 0, None)


def dump_files(directory: Path) -> list[Path]:
    """The message files of a topic dump, in the order they are read.

    Hidden names and subdirectories are left out; a symbolic link (which could point at the
    key file or anything else outside the dump) and a FIFO, device or socket are refused with
    an `InputError`, before any file of the dump is read.
    """
    try:
        entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise InputError(f"{directory}: cannot read directory: {exc.strerror or exc}") from None
    files = []
    for path in entries:
        kind = entry_kind(path)
        if kind == "link":
            raise found_link(path, f"in topic dump {directory}")
        if kind == "special":
            raise found_special(path, f"in topic dump {directory}")
        if kind == "file":
            files.append(path)
    return files


def _read_varint(
    path: Path, data: bytes | mmap.mmap, offset: int, index: int
) -> tuple[int, int]:
    result, shift, pos = 0, 0, offset
    while True:
        if pos >= len(data):
            raise _FramingError(
                f"{path}: message {index} at byte {offset}: truncated length prefix", index, offset
            )
        byte = data[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise _FramingError(f"{path}: message {index} at byte {offset}: bad length prefix "
                                "(varint longer than 10 bytes)", index, offset)


def _check_size(path: Path, offset: int, index: int, length: int) -> None:
    if length > MAX_MESSAGE_BYTES:
        raise _FramingError(
            f"{path}: message {index} at byte {offset}: {length} bytes is larger than the "
            f"{MAX_MESSAGE_BYTES} vtx accepts", index, offset
        )


# --- decoding -----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class BadRecord:
    """A message that could not be read: where it was, why, and its raw bytes.

    After a framing error (a broken length prefix) nothing later in the file can be framed, so
    `data` is the rest of the file. `data` is only valid during the callback that receives it.
    """

    path: Path
    index: int
    offset: int
    reason: str
    data: memoryview | bytes


OnBadRecord = Callable[[BadRecord], None]


class _FramingError(InputError):
    def __init__(self, message: str, index: int, offset: int) -> None:
        super().__init__(message)
        self.index, self.offset = index, offset


@dataclass(frozen=True)
class RawMessages:
    """The bytes of a batch's messages: spans of one buffer, with their message indexes."""

    data: np.ndarray  # uint8; may view the memory-mapped input
    starts: np.ndarray  # int64 per message
    lengths: np.ndarray  # int64 per message
    indexes: np.ndarray  # int64 per message: its index in the input

    @classmethod
    def of(cls, messages: list[tuple[int, bytes]]) -> RawMessages:
        """Messages given as (index, bytes), joined into one buffer."""
        lengths = np.fromiter((len(d) for _, d in messages), np.int64, count=len(messages))
        starts = np.zeros(len(messages), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        data = np.frombuffer(b"".join(d for _, d in messages), dtype=np.uint8)
        indexes = np.fromiter((i for i, _ in messages), np.int64, count=len(messages))
        return cls(data, starts, lengths, indexes)

    def __len__(self) -> int:
        return len(self.starts)

    def items(self) -> Iterator[tuple[int, bytes]]:
        """(message index, bytes) of each message, in order."""
        for index, start, length in zip(
            self.indexes.tolist(), self.starts.tolist(), self.lengths.tolist(), strict=True
        ):
            yield index, self.data[start : start + length].tobytes()


class DecodedRows(Protocol):
    """Key/value entries decoded into arrays (`kv_entries.DecodedEntries`): rows on demand."""

    @property
    def row_schema(self) -> pl.Schema: ...

    @property
    def key_names(self) -> dict[int, str]: ...

    @property
    def member_names(self) -> list[str]: ...

    def routing(self) -> tuple[np.ndarray, np.ndarray]: ...

    def positions(self) -> np.ndarray: ...

    def strings(self) -> tuple[np.ndarray, pl.Series]: ...

    def envelopes(self) -> pl.DataFrame: ...

    def rows(
        self, select: np.ndarray | None = None, messages: pl.DataFrame | None = None, *,
        coded: bool = False, entry_columns: Mapping[str, np.ndarray] | None = None,
    ) -> pl.DataFrame: ...


@dataclass(frozen=True)
class Batch:
    """The rows of a batch of messages, and how many messages they came from.

    The compiled decoder gives `entries` instead of a frame; `rows` then builds all of them.
    """

    frame: pl.DataFrame | None
    messages: int  # key/value: envelopes without entries give no row but still count
    entries: DecodedRows | None = None
    #: The messages read, in order (bad records left out), as they came.
    raw: Callable[[], RawMessages] | None = None
    #: Key/value: one row per message read, its envelope fields (envelopes without entries
    #: give no entry row, but their VINs still need tokens).
    envelopes: pl.DataFrame | None = None

    @functools.cached_property
    def rows(self) -> pl.DataFrame:
        """Every row of the batch."""
        if self.frame is not None:
            return self.frame
        assert self.entries is not None
        return self.entries.rows()

    def distinct(self, column: str) -> pl.Series:
        """The distinct values of an envelope (or plain) column, as strings."""
        if self.entries is not None:
            values = self.entries.envelope_column(column)
        else:
            values = (self.envelopes if self.envelopes is not None else self.rows)[column]
        return values.cast(pl.String).unique()


def iter_dump_batches(
    schema: ProtoSchema,
    files: list[Path],
    *,
    first_index: int = 0,
    batch_size: int = 10_000,
    on_bad: OnBadRecord | None = None,
) -> Iterator[Batch]:
    """Like `protobuf_batches.iter_batches` over a topic dump, for a run of its files
    (`dump_files` order) whose first is message `first_index` of the dump: so a dump can be
    read in pieces."""
    yield from batched(schema, dump_frames(files, first_index, on_bad), batch_size, on_bad)


def batched(
    schema: ProtoSchema,
    frames: Iterator[tuple[Path, Frame]],
    batch_size: int,
    on_bad: OnBadRecord | None,
) -> Iterator[Batch]:
    """Frames parsed with the protobuf runtime, as rows in batches of `batch_size` messages."""
    batch: list[tuple[Frame, Message]] = []
    for path, frame in frames:
        message = parse_or_report(schema, path, frame, on_bad)
        if message is None:
            continue
        batch.append((frame, message))
        if len(batch) == batch_size:
            yield _rows(schema, batch)
            batch = []
    if batch or not schema.key_value:
        yield _rows(schema, batch)


def dump_frames(
    files: list[Path], first_index: int, on_bad: OnBadRecord | None
) -> Iterator[tuple[Path, Frame]]:
    """One message per file; its index is its position in the dump."""
    for ordinal, path in enumerate(files, start=first_index):
        try:
            for frame in iter_frames(path, "single", follow_links=False):
                yield path, Frame(ordinal, frame.offset, frame.data)
        except _FramingError as exc:  # a file too large to be one message
            if on_bad is None:
                raise
            on_bad(BadRecord(path, ordinal, 0, exc.message,
                             read_regular(path, follow_links=False)))


def file_frames(
    source: Path,
    framing: Framing,
    on_bad: OnBadRecord | None,
    *,
    start: int = 0,
    first_index: int = 0,
) -> Iterator[tuple[Path, Frame]]:
    """The frames of one stream file (from byte `start`, message `first_index`); a framing
    error raises, or with `on_bad` hands the rest of the file over as one bad record."""
    try:
        for frame in iter_frames(source, framing, start=start, first_index=first_index):
            yield source, frame
    except _FramingError as exc:
        if on_bad is None:
            raise
        with open_regular(source) as fh:
            fh.seek(exc.offset)
            rest = fh.read()  # what cannot be framed: kept whole for the onshore quarantine
        on_bad(BadRecord(source, exc.index, exc.offset, exc.message, rest))


def _rows(schema: ProtoSchema, batch: list[tuple[Frame, Message]]) -> Batch:
    frames = [f for f, _ in batch]
    messages = [m for _, m in batch]
    def raw() -> RawMessages:
        return RawMessages.of([(f.index, f.data) for f in frames])

    if schema.key_value is not None:
        rows = key_value_frame(schema, messages, [f.index for f in frames])
        return Batch(rows, len(batch), raw=raw, envelopes=envelope_frame(schema, messages))
    return Batch(plain_frame(schema, messages, [f.data for f in frames]), len(batch), raw=raw)


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
