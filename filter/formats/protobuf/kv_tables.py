"""The compiled layout of a key/value envelope type: per field number, its kind and slot.

In: a `ProtoSchema` whose message is a key/value envelope (`formats.protobuf.descriptors`).
Out: `compile_tables`: its `KeyValueTables` (at each of the four levels envelope / entry / value /
value member, a `MessageTable`: field number -> slot, and each slot's kind), from which the
compiled passes (`kv_passes`) decode; or None when the compiled path cannot read the schema
(envelope fields other than scalars and `Timestamp`s, members whose messages nest), and the
plain path reads everything. Also the field kinds (`K_*`) and the wire type each expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from google.protobuf.descriptor import FieldDescriptor

from filter.formats.protobuf.descriptors import ProtoSchema
from filter.formats.protobuf.message_rows import TIMESTAMP_TYPE

# Field kinds in the tables. The wire type each expects is `_WIRE[kind]`.
K_NONE, K_INT64, K_INT32, K_UINT32, K_SINT32, K_SINT64, K_BOOL = 0, 1, 2, 3, 4, 5, 6
K_FIXED64, K_SFIXED64, K_FIXED32, K_SFIXED32, K_DOUBLE, K_FLOAT = 7, 8, 9, 10, 11, 12
K_STRING, K_BYTES, K_TIMESTAMP, K_MESSAGE = 13, 14, 15, 16
_WIRE = np.array([-1, 0, 0, 0, 0, 0, 0, 1, 1, 5, 5, 1, 5, 2, 2, 2, 2], dtype=np.int8)
#: The wire type of each field kind (for writers of the same kinds).
WIRE_TYPES = _WIRE

_SCALAR_KIND = {
    FieldDescriptor.TYPE_INT64: K_INT64, FieldDescriptor.TYPE_UINT64: K_INT64,
    FieldDescriptor.TYPE_INT32: K_INT32, FieldDescriptor.TYPE_ENUM: K_INT32,
    FieldDescriptor.TYPE_UINT32: K_UINT32, FieldDescriptor.TYPE_SINT32: K_SINT32,
    FieldDescriptor.TYPE_SINT64: K_SINT64, FieldDescriptor.TYPE_BOOL: K_BOOL,
    FieldDescriptor.TYPE_FIXED64: K_FIXED64, FieldDescriptor.TYPE_SFIXED64: K_SFIXED64,
    FieldDescriptor.TYPE_FIXED32: K_FIXED32, FieldDescriptor.TYPE_SFIXED32: K_SFIXED32,
    FieldDescriptor.TYPE_DOUBLE: K_DOUBLE, FieldDescriptor.TYPE_FLOAT: K_FLOAT,
    FieldDescriptor.TYPE_STRING: K_STRING, FieldDescriptor.TYPE_BYTES: K_BYTES,
}
#: Field numbers above this are not put in the lookup tables (such a field goes to the plain path).
MAX_TABLE_FIELD = 4096


@dataclass(frozen=True)
class MessageTable:
    """One message type's fields, compiled: field number -> slot, and each slot's kind."""

    fields: tuple[FieldDescriptor, ...]
    slot_of: np.ndarray  # int16[max field number + 1], -1 for numbers the message lacks
    kinds: np.ndarray  # int8[slots]

    @classmethod
    def of(cls, fields: list[FieldDescriptor], kinds: list[int]) -> MessageTable:
        """The table of `fields`, whose kinds are `kinds`."""
        top = max((f.number for f in fields), default=0)
        slot_of = np.full(top + 1, -1, dtype=np.int16)
        for slot, f in enumerate(fields):
            slot_of[f.number] = slot
        return cls(tuple(fields), slot_of, np.array(kinds, dtype=np.int8))


@dataclass(frozen=True)
class KeyValueTables:
    """The compiled layout of one key/value envelope type."""

    envelope: MessageTable  # the envelope's fields but the entries
    entries_number: int
    key_number: int
    value_number: int
    members: MessageTable  # the oneof's members
    member_tables: tuple[MessageTable | None, ...]  # per member: its message's leaves, or None


def compile_tables(schema: ProtoSchema) -> KeyValueTables | None:
    """The decoder tables of `schema`, or None when the compiled path cannot read it."""
    layout = schema.key_value
    if layout is None:
        return None
    envelope_fields = [f for f in schema.descriptor.fields if f is not layout.entries]
    envelope_kinds = [_envelope_kind(f) for f in envelope_fields]
    entry = layout.entries.message_type
    value = layout.value.message_type
    oneof = value.oneofs_by_name[layout.oneof_name]
    extra_entry = [f for f in entry.fields if f not in (layout.key, layout.value)]
    extra_value = [f for f in value.fields if f.containing_oneof is not oneof]
    numbers = [f.number for f in (*schema.descriptor.fields, *entry.fields, *value.fields)]
    if (
        K_NONE in envelope_kinds or extra_entry or extra_value or layout.key.is_repeated
        or layout.value.is_repeated or max(numbers) > MAX_TABLE_FIELD
    ):
        return None
    members = list(oneof.fields)
    member_kinds = [K_MESSAGE if m.message_type is not None else _SCALAR_KIND[m.type]
                    for m in members]
    return KeyValueTables(
        envelope=MessageTable.of(envelope_fields, envelope_kinds),
        entries_number=layout.entries.number,
        key_number=layout.key.number,
        value_number=layout.value.number,
        members=MessageTable.of(members, member_kinds),
        member_tables=tuple(_leaf_table(m) for m in members),
    )


def _envelope_kind(field: FieldDescriptor) -> int:
    if field.is_repeated:
        return K_NONE
    if field.message_type is not None:
        return K_TIMESTAMP if field.message_type.full_name == TIMESTAMP_TYPE else K_NONE
    return _SCALAR_KIND[field.type]


def _leaf_table(member: FieldDescriptor) -> MessageTable | None:
    """A message member's leaves, when all are single scalars (else its entries fall back)."""
    if member.message_type is None:
        return None
    leaves = list(member.message_type.fields)
    if any(f.is_repeated or f.message_type is not None for f in leaves) or any(
        f.number > MAX_TABLE_FIELD for f in leaves
    ):
        return MessageTable.of([], [])  # empty: any leaf is "unknown", so the entry falls back
    return MessageTable.of(leaves, [_SCALAR_KIND[f.type] for f in leaves])
