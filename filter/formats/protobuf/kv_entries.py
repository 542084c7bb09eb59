"""A batch the compiled key/value decoder read: its arrays, and its rows built on demand.

In: the arrays of one decoded batch (`kv_batches`): per entry its message, place, key number,
oneof member and value; per message its envelope fields; per message member its leaves.
Out: `DecodedEntries`: the key/value rows of any selection of entries (`rows`), with the plain
path's columns and types, built straight from the arrays; the envelopes; what routing needs
(key numbers, members, positions, string values) without building rows.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from filter.formats.protobuf.descriptors import ProtoSchema
from filter.formats.protobuf.kv_columns import (
    Leaves,
    as_series,
    kept_leaves,
    member_groups,
    scalar_array,
    struct_series,
)
from filter.formats.protobuf.kv_names import enum_names
from filter.formats.protobuf.kv_scalars import gather_bytes
from filter.formats.protobuf.kv_tables import KeyValueTables
from filter.formats.protobuf.message_rows import key_value_schema, value_column
from filter.string_codes import as_enum


@dataclass(frozen=True)
class DecodedEntries:
    """A decoded batch: flat arrays per entry and per message, turned into rows on demand.

    `rows(select)` builds the key/value rows of the selected entries straight from the arrays,
    so a caller that routes entries builds each side once instead of filtering a whole frame.
    The arrays view the memory-mapped input (`buf`), which stays mapped while they live.
    """

    schema: ProtoSchema
    tables: KeyValueTables
    buf: np.ndarray
    keep: np.ndarray  # entries of messages the compiled path read (all, unless some fell back)
    first_index: int
    ent_msg: np.ndarray
    ent_pos: np.ndarray
    ent_key: np.ndarray
    ent_member: np.ndarray
    ent_i: np.ndarray
    ent_f: np.ndarray
    ent_s: np.ndarray
    ent_n: np.ndarray
    env_i: np.ndarray
    env_f: np.ndarray
    env_s: np.ndarray
    env_n: np.ndarray
    env_seen: np.ndarray
    leaves: dict[int, Leaves]
    #: Envelope columns built so far, by name (`envelope_column`).
    _envelope_columns: dict[str, pl.Series] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def row_schema(self) -> pl.Schema:
        """The columns and types of the rows (`schema.key_value_schema`)."""
        return key_value_schema(self.schema)

    @property
    def key_names(self) -> dict[int, str]:
        """The key enum: number -> value name."""
        return {v.number: v.name for v in self.schema.key_value.key.enum_type.values}

    @property
    def member_names(self) -> list[str]:
        """The oneof's members, in the order `routing` numbers them."""
        return [m.name for m in self.tables.members.fields]

    def routing(self) -> tuple[np.ndarray, np.ndarray]:
        """Per entry (in row order): its key number and its member's index (-1: none)."""
        if bool(self.keep.all()):
            return self.ent_key, self.ent_member
        return self.ent_key[self.keep], self.ent_member[self.keep]

    def positions(self) -> np.ndarray:
        """Per entry (in row order): its place in its message (0, 1, ...)."""
        return self.ent_pos if bool(self.keep.all()) else self.ent_pos[self.keep]

    def strings(self) -> tuple[np.ndarray, pl.Series]:
        """The rows whose value is a ``value_string`` (ascending) and their strings."""
        members = [j for j, f in enumerate(self.tables.members.fields)
                   if f.message_type is None and value_column(f) == "value_string"]
        _, member = self.routing()
        holds_string = np.zeros(len(self.tables.members.fields) + 1, dtype=np.bool_)
        holds_string[[j + 1 for j in members]] = True  # by member position + 1 (-1: none)
        rows = np.flatnonzero(holds_string[member + 1])
        picked = rows if bool(self.keep.all()) else np.flatnonzero(self.keep)[rows]
        everyone = np.ones(len(picked), dtype=np.bool_)
        offsets, data = gather_bytes(self.buf, self.ent_s[picked], self.ent_n[picked], everyone)
        array = pa.Array.from_buffers(pa.large_string(), len(picked),
                                      [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        return rows, pl.Series("value_string", array)

    def envelopes(self) -> pl.DataFrame:
        """One row per message: its envelope fields (``vin``, ``created_at``, ...)."""
        return self._envelopes

    @functools.cached_property
    def _envelopes(self) -> pl.DataFrame:  # built once, for both sides
        return pl.DataFrame([self.envelope_column(f.name)
                             for f in self.tables.envelope.fields])

    def envelope_column(self, name: str) -> pl.Series:
        """One envelope field, a row per message (a batch's VINs need no other field)."""
        built = self._envelope_columns.get(name)
        if built is None:
            built = self._envelope_columns[name] = self._envelope_column(name)
        return built

    def _envelope_column(self, name: str) -> pl.Series:
        slot = next(s for s, f in enumerate(self.tables.envelope.fields) if f.name == name)
        field = self.tables.envelope.fields[slot]
        valid = (self.env_seen[:, slot] if field.has_presence
                 else np.ones(len(self.env_i), np.bool_))
        dtype = key_value_schema(self.schema)[name]
        return as_series(scalar_array(
            name, self.tables.envelope.kinds[slot], field, self.buf, self.env_i[:, slot],
            self.env_f[:, slot], self.env_s[:, slot], self.env_n[:, slot], valid, dtype,
        ), name, dtype)

    def rows(
        self,
        select: np.ndarray | None = None,
        messages: pl.DataFrame | None = None,
        *,
        coded: bool = False,
        entry_columns: Mapping[str, np.ndarray] | None = None,
    ) -> pl.DataFrame:
        """The rows of the entries `select` picks (all: None), in entry order, with the
        plain path's columns and types, and the `entry_columns` (an int64 per entry, as
        `select` has a flag: a side's columns that depend on the routing; each replaces the
        column of its name, or comes last).

        Each entry takes on its message's row of `messages`: a row per message, the
        `envelopes` and any columns after them (a caller building both sides makes it once,
        as it wants it); by default `envelopes`.
        With `coded`, the key and member names, which repeat from entry to entry, are
        `pl.Enum` columns instead of `pl.String` (`filter.string_codes.as_enum`): the same
        values, as codes into their distinct values, which a Parquet writer takes as its
        dictionary instead of hashing every string.
        """
        keep = self.keep if select is None else self.keep & select
        return _columns(self, keep, messages, coded=coded, entry_columns=entry_columns)


def _columns(
    entries: DecodedEntries,
    keep: np.ndarray,
    messages: pl.DataFrame | None = None,
    *,
    coded: bool = False,
    entry_columns: Mapping[str, np.ndarray] | None = None,
) -> pl.DataFrame:
    """The rows of the entries `keep` selects, with the plain path's columns and types, each
    taking on its message's row of `messages`, and `entry_columns` (`DecodedEntries.rows`)."""
    schema, tables, buf, leaves = entries.schema, entries.tables, entries.buf, entries.leaves
    ent_msg, ent_pos, ent_key, ent_member = (
        entries.ent_msg, entries.ent_pos, entries.ent_key, entries.ent_member)
    ent_i, ent_f, ent_s, ent_n = entries.ent_i, entries.ent_f, entries.ent_s, entries.ent_n
    target = key_value_schema(schema)
    all_kept = bool(keep.all())
    if not all_kept:
        picked = np.flatnonzero(keep)  # ascending: an entry's row is its place in it
        ent_msg, ent_pos, ent_key, ent_member, ent_i, ent_f, ent_s, ent_n = (
            a.take(picked)
            for a in (ent_msg, ent_pos, ent_key, ent_member, ent_i, ent_f, ent_s, ent_n))
    height = len(ent_msg)
    columns: dict[str, pl.Series] = {
        "message_index": pl.Series("message_index", ent_msg + entries.first_index),
        "entry_index": pl.Series("entry_index", ent_pos),
    }
    if messages is None:
        messages = entries.envelopes()
    target = pl.Schema({**target, **{c: t for c, t in messages.schema.items()
                                     if c not in target}})
    columns.update({c.name: c for c in messages[ent_msg]})
    for name, values in (entry_columns or {}).items():
        columns[name] = pl.Series(name, values if all_kept else values[keep])
        if name not in target:
            target = pl.Schema({**target, name: pl.Int64()})
    key_number = pl.Series("key_number", ent_key)
    columns["key"] = enum_names(key_number, schema.key_value.key.enum_type, "key", coded=coded)
    columns["key_number"] = key_number
    members = tables.members
    where = np.where(ent_member < 0, len(members.fields), ent_member)
    columns["member"] = _member_names(tuple(m.name for m in members.fields), coded).gather(
        where)
    message_members, groups, group_of = member_groups(tables, target, target)
    group = group_of.take(ent_member.astype(np.intp) + 1)
    for g, (j, name) in enumerate(message_members):
        if not (group == g).any():
            continue
        decoded = leaves[j]
        if not all_kept:  # the kept entries' rows: their places among those kept
            held = decoded.rows[keep[decoded.rows]]
            decoded = kept_leaves(decoded, keep, np.searchsorted(picked, held))
        columns[name] = struct_series(name, tables.member_tables[j], buf, decoded, height,
                                       target[name])
    values: dict[str, list[pl.Series]] = {}
    for g, (column, kind, field) in enumerate(groups, start=len(message_members)):
        holds = group == g
        if not holds.any():
            continue
        values.setdefault(column, []).append(as_series(scalar_array(
            column, kind, field, buf, ent_i, ent_f, ent_s, ent_n, holds, target[column]),
            column, target[column]))
    for name, found in values.items():
        if len(found) == 1:
            columns[name] = found[0]
        else:
            columns[name] = pl.select(pl.coalesce(found).alias(name)).to_series()
    built = [
        columns[name].alias(name) if name in columns
        else pl.Series(name, [None], dtype=dtype).new_from_index(0, height)
        for name, dtype in target.items()
    ]
    # Types compared column by column: a frame's schema is made anew at each call.
    differ = {c.name: dtype for c, dtype in zip(built, target.values(), strict=True)
              if c.dtype != dtype and not isinstance(c.dtype, pl.Enum)}
    frame = pl.DataFrame(built)
    return frame.cast(differ) if differ else frame


@functools.cache
def _member_names(names: tuple[str, ...], coded: bool) -> pl.Series:
    """The oneof's member names, then a null that entries without a member (-1) point at;
    with `coded`, as a `pl.Enum` column."""
    series = pl.Series([*names, None], dtype=pl.String)
    return as_enum(series) if coded else series
