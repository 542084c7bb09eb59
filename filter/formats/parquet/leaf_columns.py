"""The leaf columns of a row group's columns: their definition levels and present values.

In: a top-level column of the file template (`SchemaNode`) and its data: an Arrow array (of a
struct column, a struct array, one level deep), a `Sparse` column or a `Repeated` one.
Out: one `Leaf` per leaf column (`leaves`): its path, its definition levels encoded (RLE/
bit-packed hybrid), its values and which of them are present.
May fail: `UnsupportedColumn` for nulls in a required column or field, nested groups, repeated
fields, or a group given anything but a struct array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.array_buffers import UnsupportedColumn, array_validity
from filter.formats.parquet.fields import SchemaElement
from filter.formats.parquet.hybrid_encoding import (
    hybrid,
    rle_bits,
    rle_run,
    rle_runs,
    sparse_bits,
)
from filter.formats.parquet.layout import SchemaNode


@dataclass(frozen=True)
class Sparse:
    """A column that is null except at `rows` (ascending), where it holds `values` (an array
    of ``len(rows)``; of a struct column, a struct array): a sparse column is written without
    ever being made `height` rows long."""

    rows: np.ndarray
    values: pa.Array
    height: int

    def __len__(self) -> int:
        return self.height


@dataclass(frozen=True)
class Repeated:
    """A column whose rows come in stretches: `values[k]` (of a dictionary array, the value
    it codes), `counts[k]` times over (0: not at all), in order. What entries take on from
    their message: each message's value is written once, as an RLE run of its entries
    (`rle_runs`), instead of once per entry and then searched for runs."""

    values: pa.Array
    counts: np.ndarray  # int64, one per value
    height: int  # the sum of `counts`

    def __len__(self) -> int:
        return self.height


Column = pa.Array | pa.ChunkedArray | Sparse | Repeated


@dataclass(frozen=True)
class Leaf:
    """One leaf column of a row group: its levels and its present values."""

    path: tuple[str, ...]
    levels: bytes  # the definition levels, encoded (none when `max_level` is 0)
    max_level: int
    array: pa.Array  # the leaf's values: of all rows, or of a sparse column's rows
    present: np.ndarray | None  # which of `array`'s values are written (None: all)
    counts: np.ndarray | None = None  # a `Repeated` column's: how often each value is


def leaves(
    node: SchemaNode, column: pa.Array | Sparse | Repeated
) -> list[tuple[thrift.Struct, Leaf]]:
    """The leaf columns of one top-level column: its own, or its struct's fields'."""
    outer_optional = _optional(node.element)
    if isinstance(column, Repeated):
        return [(node.element, _repeated_leaf(node, column, outer_optional))]
    if isinstance(column, Sparse):
        array, rows, height = column.values, column.rows, column.height
        outer = array_validity(array)
        if outer is not None:
            raise UnsupportedColumn(f"{node.name}: nulls among a sparse column's values")
        if len(rows) < height and not outer_optional:
            raise UnsupportedColumn(f"{node.name}: nulls in a required column")
    else:
        array, rows, height = column, None, len(column)
        outer = array_validity(array)
        if outer is not None and not outer_optional:
            raise UnsupportedColumn(f"{node.name}: nulls in a required column")
    if node.children and not pa.types.is_struct(array.type):
        raise UnsupportedColumn(f"{node.name}: {array.type} for a group")
    found = []
    shared: dict[int, bytes] = {}  # struct fields that are never null alone share levels
    for child in node.children or (node,):
        if child.children:
            raise UnsupportedColumn(f"{node.name}.{child.name}: nested group")
        leaf = array.field(child.name) if node.children else array
        inner = array_validity(leaf) if node.children else None
        inner_optional = _optional(child.element) if node.children else False
        if inner is not None and not inner_optional:
            raise UnsupportedColumn(f"{node.name}.{child.name}: nulls in a required field")
        max_level = int(outer_optional) + int(inner_optional)
        path = (node.name, child.name) if node.children else (node.name,)
        if inner is None and max_level in shared:
            levels = shared[max_level]
        else:
            levels = _levels_of(outer, inner, rows, height, outer_optional, inner_optional)
            if inner is None:
                shared[max_level] = levels
        present = inner if rows is not None else _both(outer, inner)
        found.append((child.element, Leaf(path, levels, max_level, leaf, present)))
    return found


def _repeated_leaf(node: SchemaNode, column: Repeated, optional: bool) -> Leaf:
    """The leaf of a `Repeated` column: its levels are runs, one per value (a null's: 0)."""
    if node.children:
        raise UnsupportedColumn(f"{node.name}: repeated values of a group")
    valid = array_validity(column.values)
    if valid is not None and not optional:
        raise UnsupportedColumn(f"{node.name}: nulls in a required column")
    if not optional or not column.height:
        levels = b""
    elif valid is None:
        levels = rle_run(column.height, 1, 1)
    else:
        levels = rle_runs(valid.view(np.uint8), column.counts, 1).tobytes()
    return Leaf((node.name,), levels, int(optional), column.values, valid, column.counts)


def _levels_of(
    outer: np.ndarray | None, inner: np.ndarray | None, rows: np.ndarray | None, height: int,
    outer_optional: bool, inner_optional: bool,
) -> bytes:
    """The encoded definition levels of a leaf: +1 where its column (or struct) is valid, if
    that is optional; +1 where the leaf itself is, if it is optional."""
    max_level = int(outer_optional) + int(inner_optional)
    width = max_level.bit_length()
    if not max_level or not height:
        return b""
    if rows is not None:  # sparse: the levels of the held rows, zero elsewhere
        if not len(rows):
            return rle_run(height, 0, width)
        if max_level == 1 and not inner_optional:  # one bit a row, set at the rows held
            return rle_bits(sparse_bits(rows, height), height).tobytes()
        levels = np.zeros(height, np.uint8)
        held = np.full(len(rows), int(outer_optional), np.uint8)
        if inner_optional:
            held += 1 if inner is None else inner.view(np.uint8)
        levels[rows] = held
        return hybrid(levels, width)
    if outer is None and inner is None:
        return rle_run(height, max_level, width)
    levels = np.zeros(height, np.uint8)
    if outer_optional:
        levels += 1 if outer is None else outer.view(np.uint8)
    if inner_optional:
        both = _both(outer, inner)
        levels += 1 if both is None else both.view(np.uint8)
    return hybrid(levels, width)


def _both(outer: np.ndarray | None, inner: np.ndarray | None) -> np.ndarray | None:
    """Rows valid in both masks (None: all rows)."""
    if outer is None:
        return inner
    return outer if inner is None else outer & inner


def _optional(element: thrift.Struct) -> bool:
    held = element.get(SchemaElement.REPETITION_TYPE)
    repetition = int(held.value) if held is not None else 0
    if repetition == 2:
        raise UnsupportedColumn("repeated fields")
    return repetition == 1
