"""The Arrow columns of decoded key/value entries, for the Parquet encoder.

In: a batch the compiled key/value decoder read (`filter.formats.protobuf.kv_entries.
DecodedEntries`), the entries of one side, the side's message columns and its schema.
Out: `encoded_file`: the side's Parquet file (`filter.formats.parquet.encoder.encode_file`),
its columns built straight from the decoder's arrays (a message's columns as dictionaries of
the message values, small integer ranges as codes), or None where the encoder declines.
May fail: nothing beyond NumPy's, Arrow's and Polars' own errors (a column the encoder does not
write gives None).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import polars as pl
import pyarrow as pa

from filter.arrow_arrays import numpy_array, string_array
from filter.formats.parquet.array_buffers import UnsupportedColumn, array_validity, array_values
from filter.formats.parquet.encoder import Column, encode_file
from filter.formats.parquet.leaf_columns import Repeated, Sparse
from filter.formats.protobuf.kv_columns import (
    Leaves,
    kept_leaves,
    leaf_columns,
    member_groups,
    scalar_array,
)
from filter.formats.protobuf.kv_entries import DecodedEntries
from filter.formats.protobuf.kv_names import enum_key, name_codes, name_lookup
from filter.formats.protobuf.kv_scalars import bounds
from filter.formats.protobuf.kv_tables import K_BYTES, K_DOUBLE, K_FLOAT, K_STRING, MessageTable
from filter.formats.protobuf.message_rows import key_value_schema
from filter.jit import kernel


def encoded_file(
    entries: DecodedEntries, select: np.ndarray, messages: pl.DataFrame, schema: pl.Schema, *,
    entry_columns: Mapping[str, np.ndarray] | None = None,
) -> bytes | None:
    """The Parquet file (`filter.formats.parquet.encoder`) of the rows of the entries `select`
    picks, with the columns of `schema`, in its order; None where the encoder declines
    (`UnsupportedColumn`: a type it does not write, a page over its limit).

    The columns of `messages` (a row per message: the side's envelope columns, the token,
    as the side's projection makes them) are taken on by each entry from its message, as
    dictionaries of the message values indexed by message; those of `entry_columns` (as
    for `rows`) from their arrays; the others are built from the decoded arrays, with
    the values `rows` gives them.
    """
    try:
        return encode_file(_arrow_columns(entries, entries.keep & select, messages, schema,
                                          entry_columns or {}), schema)
    except UnsupportedColumn:
        return None


def _arrow_columns(
    entries: DecodedEntries, keep: np.ndarray, messages: pl.DataFrame, schema: pl.Schema,
    entry_columns: Mapping[str, np.ndarray],
) -> list[Column]:
    """The columns of `schema` for the entries `keep` selects, as Arrow arrays, `Sparse` or
    `Repeated` columns for `encoder.encode_file` (`encoded_file`)."""
    tables, buf, leaves = entries.tables, entries.buf, entries.leaves
    target = key_value_schema(entries.schema)
    message_members, groups, group_of = member_groups(tables, schema, target)
    picked = np.flatnonzero(keep)  # NumPy's: seven times as fast as Numba's
    counts, member, positions, numbers, grouped, offsets = side_entries(
        picked, entries.ent_msg, entries.ent_pos, entries.ent_key, len(messages),
        entries.ent_member, group_of, len(message_members) + len(groups))
    height = len(picked)
    # Only the messages with an entry on this side: the columns' dictionaries would otherwise
    # hold the token and timestamp of messages whose entries all went the other way.
    present = counts > 0
    held = messages if present.all() else messages.filter(pl.Series(present))
    held_counts = counts[present]
    built: dict[str, Column] = {}
    for name in held.columns:
        if name in schema:
            built[name] = Repeated(_message_values(held[name]), held_counts, height)
    built["message_index"] = Repeated(numpy_array(
        (np.arange(len(messages), dtype=np.int64) + entries.first_index)[present]),
        held_counts, height)
    if "entry_index" not in entry_columns:  # the export's: its own dense numbering
        built["entry_index"] = _by_range(positions)
    for name, values in entry_columns.items():
        if name in schema:
            built[name] = _by_range(values[picked])
    codes, categories, _ = name_codes(
        numbers, name_lookup(enum_key(entries.schema.key_value.key.enum_type)))
    built["key"] = _coded(codes.astype(np.int32, copy=False), string_array(categories))
    built["key_number"] = _by_range(numbers)
    built["member"] = _coded(member, _member_dictionary(
        tuple(m.name for m in tables.members.fields)), valid=member >= 0)
    for g, (j, column) in enumerate(message_members):
        rows = grouped[0][offsets[g]:offsets[g + 1]]
        if not len(rows):
            continue
        built[column] = Sparse(rows, _struct_array(
            tables.member_tables[j], buf, kept_leaves(leaves[j], keep, rows), target[column]),
            height)
    values: dict[str, list[tuple[np.ndarray, pa.Array]]] = {}
    for g, (column, kind, field) in enumerate(groups, start=len(message_members)):
        if offsets[g + 1] == offsets[g]:
            continue
        rows = grouped[0][offsets[g]:offsets[g + 1]]
        taken = grouped[1][offsets[g]:offsets[g + 1]]
        none = np.zeros(0, np.int64)
        spans = kind in (K_STRING, K_BYTES)  # the arrays a kind is built from, and no other
        array = scalar_array(
            column, kind, field, buf,
            none if spans or kind in (K_DOUBLE, K_FLOAT) else entries.ent_i.take(taken),
            entries.ent_f.take(taken) if kind in (K_DOUBLE, K_FLOAT) else none,
            entries.ent_s.take(taken) if spans else none,
            entries.ent_n.take(taken) if spans else none,
            np.ones(len(rows), np.bool_), target[column])
        values.setdefault(column, []).append(
            (rows, array if isinstance(array, pa.Array) else array.to_arrow()))
    for column, found in values.items():
        if len(found) == 1:
            built[column] = Sparse(*found[0], height)
            continue
        # Members built apart: their rows never overlap (a oneof), so their values, in row
        # order, are the column's.
        rows = np.concatenate([r for r, _ in found])
        order = np.argsort(rows, kind="stable")
        first = found[0][1].type
        merged = pa.concat_arrays([a if a.type == first else a.cast(first) for _, a in found])
        built[column] = Sparse(rows[order], merged.take(numpy_array(order)), height)
    return [built[name] if name in built else Sparse(
        np.zeros(0, np.int64), _empty_arrow(dtype), height) for name, dtype in schema.items()]


@functools.cache
def _member_dictionary(names: tuple[str, ...]) -> pa.Array:
    """The oneof's member names, the dictionary of the ``member`` column."""
    return string_array(list(names))


@kernel()
def side_entries(picked, ent_msg, ent_pos, ent_key, messages, ent_member, group_of, groups):
    """What a side's columns are built from, in one pass over the entries it picks
    (`picked`: their positions, ascending; an entry's row on the side is its place there).

    Returns how many of each message's entries it picks (entries come message by message),
    each picked entry's member (int32, -1: none), position in its message and key number,
    and its rows by member group (`group_of[member + 1]`, `member_groups`): the rows and
    the entries of group g are ``grouped[0|1][offsets[g]:offsets[g + 1]]``.
    """
    height = len(picked)
    counts = np.zeros(messages, np.int64)
    sizes = np.zeros(groups + 1, np.int64)  # [0]: entries in no group
    member = np.empty(height, np.int32)
    positions = np.empty(height, ent_pos.dtype)
    numbers = np.empty(height, ent_key.dtype)
    message = -1
    run = 0  # a message's entries, added up in a register, not in `counts`
    for r in range(height):
        e = picked[r]
        m = ent_member[e]
        member[r] = m
        positions[r] = ent_pos[e]
        numbers[r] = ent_key[e]
        sizes[group_of[m + 1] + 1] += 1
        if ent_msg[e] != message:
            if run:
                counts[message] += run
            message = ent_msg[e]
            run = 0
        run += 1
    if run:
        counts[message] += run
    offsets = np.zeros(groups + 1, np.int64)
    offsets[1:] = np.cumsum(sizes[1:])
    fill = offsets[:-1].copy()
    grouped = np.empty((2, offsets[-1]), np.int64)
    for r in range(height):
        g = group_of[member[r] + 1]
        if g >= 0:
            at = fill[g]
            grouped[0, at] = r
            grouped[1, at] = picked[r]
            fill[g] = at + 1
    return counts, member, positions, numbers, grouped, offsets


@kernel()
def range_codes(values):  # pragma: no cover - compiled
    """The least and the greatest of `values` (not empty), and each value less the least as
    int32 codes, if they span under 2**16 (else no codes: an empty array)."""
    low, high = bounds(values)
    if high - low >= 1 << 16:
        return low, high, np.empty(0, np.int32)
    codes = np.empty(len(values), np.int32)
    for i in range(len(values)):
        codes[i] = values[i] - low
    return low, high, codes


def _message_values(values: pl.Series) -> pa.Array:
    """A column of message values, as one Arrow array (an `Enum` column: a dictionary array
    of the values it holds, not of every category its type has: a category no row uses would
    ride along in the dictionary page, `_used_dictionary`)."""
    array = values.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return _used_dictionary(array) if isinstance(array, pa.DictionaryArray) else array


def _used_dictionary(array: pa.DictionaryArray) -> pa.DictionaryArray:
    """`array` with a dictionary of the values its rows use, in their order (the codes
    renumbered): the same values, and no value no row holds."""
    # Buffer views, not `np.asarray`: pyarrow's conversion imports pandas (half a second).
    valid = array_validity(array)
    codes = array_values(array.indices)
    used = np.zeros(len(array.dictionary), np.bool_)
    used[codes if valid is None else codes[valid]] = True
    if used.all():
        return array
    renumbered = (np.cumsum(used, dtype=np.int64) - 1)[codes].astype(np.int32)
    return pa.DictionaryArray.from_arrays(
        numpy_array(renumbered, valid),
        array.dictionary.filter(numpy_array(used)))


def _coded(codes: np.ndarray, dictionary: pa.Array, valid: np.ndarray | None = None
           ) -> pa.DictionaryArray:
    """A dictionary array of `codes` into `dictionary`, null where not `valid`. The codes
    are made in range (positions in the dictionary): Arrow is not asked to check them."""
    return pa.DictionaryArray.from_arrays(numpy_array(codes, valid), dictionary, safe=False)


def _by_range(values: np.ndarray) -> pa.Array:
    """Integers that span a small range, as codes into that range (a dictionary array):
    per row a few bits instead of eight bytes for the writer to compress."""
    if not len(values):
        return numpy_array(values)
    low, high, codes = range_codes(values)
    if high - low >= 1 << 16:
        return numpy_array(values)
    return _coded(codes, numpy_array(np.arange(low, high + 1, dtype=values.dtype)))


def _struct_array(
    table: MessageTable, buf: np.ndarray, decoded: Leaves, dtype: pl.DataType
) -> pa.StructArray:
    """A message member's leaves, a struct per entry of `decoded`."""
    children = leaf_columns(table, buf, decoded, dtype.to_schema())
    return pa.StructArray.from_arrays(
        [c.to_arrow() if isinstance(c, pl.Series) else c for c in children],
        names=[f.json_name for f in table.fields])


@functools.cache
def _empty_arrow(dtype: pl.DataType) -> pa.Array:
    """An empty Arrow array of the type Polars gives `dtype`."""
    return pl.Series("", [], dtype=dtype).to_arrow()
