"""Message types resolved from descriptor sets: `ProtoSchema`, and key/value envelopes found in
them.

In: a `FileDescriptorSet` (as ``protoc --include_imports -o`` writes it; vtx's own schemas in
``proto/vtx/telemetry/v1`` are used when none is given) and the full name of the message type.
Messages are built dynamically: no generated code is needed.
Out: a `ProtoSchema`: the descriptor, the message class, and, for a key/value envelope (whose
repeated entries hold an enum ``key`` and a ``value`` message with a oneof, as in the widely
used fleet-telemetry schema), its `KeyValueLayout`.
May fail: `InputError` for a descriptor set that cannot be read or lacks the named type, or an
entries field (``--kv-field``) that is not one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from filter.errors import InputError, first_line, read_failed
from filter.files import read_regular
from filter.resources import shipped_dir

_SHIPPED_DESCRIPTORS = "vtx/telemetry/v1/telemetry.binpb"
#: `ProtoSchema.source` (and the manifests' ``descriptor_set``) for vtx's shipped schemas.
SHIPPED_SOURCE = "shipped vtx schemas"


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
        raise read_failed(exc, path, "descriptor set") from None
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
