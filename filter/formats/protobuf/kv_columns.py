"""Columns from the compiled key/value decoder's arrays, one field at a time.

In: the decoded arrays of a batch (per entry or per message: integer, float, byte span,
presence), the file's bytes they point into, and the field they hold (`kv_tables` kinds).
Out: `scalar_array`: one field's column as an Arrow array (an enum's as the Polars column of its
names); `struct_series` / `leaf_columns`: a message member's leaves; `member_groups`: the oneof
members, grouped as their columns are built; `Leaves`: the decoded leaves of a message member.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from google.protobuf.descriptor import FieldDescriptor

from filter.arrow_arrays import numpy_array
from filter.formats.protobuf.kv_names import enum_names
from filter.formats.protobuf.kv_scalars import gather_bytes
from filter.formats.protobuf.kv_tables import (
    K_BOOL,
    K_BYTES,
    K_DOUBLE,
    K_FLOAT,
    K_STRING,
    K_TIMESTAMP,
    KeyValueTables,
    MessageTable,
)
from filter.formats.protobuf.message_rows import value_column


@dataclass(frozen=True)
class Leaves:
    """The decoded leaves of one member message type, for the entries that hold it."""

    rows: np.ndarray  # entry positions (before bad messages are dropped)
    ok: np.ndarray
    ints: np.ndarray
    floats: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    seen: np.ndarray


def member_groups(
    tables: KeyValueTables, columns: pl.Schema, target: pl.Schema
) -> tuple[list[tuple[int, str]], list[tuple[str, int, FieldDescriptor]], np.ndarray]:
    """The oneof members whose column is among `columns`, in groups built as one.

    First the message-typed ones, a group each (position, column). Then the groups of
    scalar ones, by column and by how `scalar_array` builds them (`_built_as`), each with
    its first member's kind and field: members built alike (an int32 and an int64 member in
    ``value_int``) make one array, without a coalesce of full-height columns, as a oneof's
    members never overlap; an enum, named by its own values, is a group of its own. Last,
    per member position + 1 (0: an entry without a member), the number of its group in that
    order (-1: none), for `filter.formats.parquet.entry_columns.side_entries`.
    """
    messages: list[tuple[int, str]] = []
    scalars: dict[tuple[str, str | int], tuple[str, int, FieldDescriptor]] = {}
    group_of = np.full(len(tables.members.fields) + 1, -1, dtype=np.int64)
    grouped: list[tuple[int, tuple[str, str | int]]] = []
    for j, field in enumerate(tables.members.fields):
        column = f"value_{field.name}" if field.message_type else value_column(field)
        if column not in columns:
            continue
        if field.message_type is not None:
            group_of[j + 1] = len(messages)
            messages.append((j, column))
            continue
        kind = int(tables.members.kinds[j])
        how = _built_as(kind, field, target[column])
        group = (column, j if how is None else how)
        scalars.setdefault(group, (column, kind, field))
        grouped.append((j, group))
    number = {group: len(messages) + g for g, group in enumerate(scalars)}
    for j, group in grouped:
        group_of[j + 1] = number[group]
    return messages, list(scalars.values()), group_of


def kept_leaves(decoded: Leaves, keep: np.ndarray, rows: np.ndarray) -> Leaves:
    """`decoded` (of every entry holding a member) for the entries `keep` selects, whose rows
    on their side are `rows`. If the side has them all, nothing is picked out."""
    if len(rows) == len(decoded.rows):
        return dataclasses.replace(decoded, rows=rows)
    still = keep[decoded.rows]
    return Leaves(rows, decoded.ok[still], decoded.ints[still], decoded.floats[still],
                   decoded.starts[still], decoded.lengths[still], decoded.seen[still])


def leaf_columns(
    table: MessageTable, buf: np.ndarray, decoded: Leaves, leaf_types: pl.Schema
) -> list[pa.Array | pl.Series]:
    """A message member's leaves, one column each (`scalar_array`), a row per entry of
    `decoded`; a leaf without presence is valid wherever the member is held."""
    holds = np.ones(len(decoded.rows), dtype=np.bool_)
    return [
        scalar_array(
            leaf.json_name, int(table.kinds[slot]), leaf, buf, decoded.ints[:, slot],
            decoded.floats[:, slot], decoded.starts[:, slot], decoded.lengths[:, slot],
            decoded.seen[:, slot] if leaf.has_presence else holds, leaf_types[leaf.json_name],
        )
        for slot, leaf in enumerate(table.fields)
    ]


def _built_as(kind: int, field: FieldDescriptor, dtype: pl.DataType) -> str | None:
    """How `scalar_array` builds a member's column: members built alike into one column can
    share one call. None for enums, each of which names its numbers by its own values."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return None
    if kind == K_TIMESTAMP:
        return "timestamp"
    if kind in (K_STRING, K_BYTES):
        return f"bytes-{kind}"
    if kind in (K_DOUBLE, K_FLOAT):
        return "float"
    if kind == K_BOOL:
        return "bool"
    return "uint64" if dtype == pl.UInt64 else "int"


def as_series(built: pa.Array | pl.Series, name: str, dtype: pl.DataType) -> pl.Series:
    """A column `scalar_array` built, as the Polars column `name` of `dtype`."""
    if isinstance(built, pl.Series):
        return built
    series = pl.Series(name, built)
    return series if series.dtype == dtype else series.cast(dtype)


def scalar_array(
    name: str,
    kind: int,
    field: FieldDescriptor,
    buf: np.ndarray,
    ints: np.ndarray,
    floats: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    valid: np.ndarray,
    dtype: pl.DataType,
) -> pa.Array | pl.Series:
    """The same column as an Arrow array as decoded (64-bit integers and floats: `dtype` says
    what they become), or, for an enum, as the Polars column of its names. What lies under
    an invalid row is any value (an entry's integer, float and span share their storage)."""
    if kind == K_TIMESTAMP:
        return numpy_array(ints, valid, pa.timestamp("us", tz="UTC"))
    if kind in (K_STRING, K_BYTES):
        offsets, data = gather_bytes(buf, starts, lengths, valid)
        nulls = len(valid) - int(np.count_nonzero(valid))
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
        return pa.Array.from_buffers(
            pa.large_string() if kind == K_STRING else pa.large_binary(), len(starts),
            [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls,
        )
    if kind in (K_DOUBLE, K_FLOAT):
        return numpy_array(floats, valid, pa.float64())
    if kind == K_BOOL:
        return numpy_array(ints != 0, valid, pa.bool_())
    if field.type == FieldDescriptor.TYPE_ENUM:  # (what lies under a null is any number)
        numbers = ints.astype(np.int32) if valid.all() else np.where(valid, ints, 0).astype(
            np.int32)
        names = enum_names(pl.Series(name, numbers), field.enum_type, name)
        return names if valid.all() else names.set(pl.Series(~valid), None)
    if dtype == pl.UInt64:
        return numpy_array(ints.view(np.uint64), valid, pa.uint64())
    return numpy_array(ints, valid, pa.int64())


def struct_series(
    name: str, table: MessageTable, buf: np.ndarray, decoded: Leaves, height: int,
    dtype: pl.DataType,
) -> pl.Series:
    """A message member's struct column of `height` rows: its leaves where an entry holds it
    (`decoded.rows`), null elsewhere."""
    rows = decoded.rows
    leaf_types = dtype.to_schema()
    fields = [as_series(column, leaf.json_name, leaf_types[leaf.json_name])
              for column, leaf in zip(leaf_columns(table, buf, decoded, leaf_types),
                                      table.fields, strict=True)]
    # The decoded structs, then a null one that the entries without this member point at.
    struct = pl.DataFrame(fields, schema=leaf_types).to_struct(name).extend_constant(None, 1)
    index = np.full(height, len(rows), dtype=np.int64)
    index[rows] = np.arange(len(rows))
    return struct.gather(index)
