"""How many rows at a time to read of a Parquet file whose row groups are too large to decode
whole in one piece of the memory budget.

In: a Parquet input, the columns a reader decodes (None: all), the run's `MemoryBudget`, and
what the reader holds besides the values (`DecodeCost`).
Out: `RowSlices`: for every row group with rows, the rows read at a time.
May fail: `MemoryBudgetExceeded` where not even one row at a time fits (a page, a dictionary
or a single value larger than a piece), naming the row group and the column that takes the
most, with the sizes; `InputError` for bytes that are not pages.

How: a reader of slices (`sliced_scan`) decodes a page at a time of each column, so a slice
of rows holds the values of the pages it touches, of every column it reads. A data page of
a top-level column that is not a list holds one value per row, so which pages a slice touches
follows from the page headers alone; every page of a nested column is counted in every slice.
A column whose pages hold fewer values than the row group claims rows (or, flat, not as many)
is a corrupt file. The rows per slice are the row group's, or else the largest power of two
whose every slice (from the row group's first row on) fits.

What a slice holds, measured (`SLICE_FACTOR`): the reader's batch, Polars' copy of it, and a
row group in the making in each output, with the detectors' text beside them. 50 MB slices
of a 200 MB string column peaked at 850 MB above the process's start, 10 MB slices at 310 MB:
some 13 times the slice, counted as 16.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from filter.errors import InputError
from filter.formats.parquet.decode_budget import ROW_BYTES, DecodeCost, column_leaves
from filter.formats.parquet.fields import ColumnChunk, ColumnMetaData, SchemaElement
from filter.formats.parquet.inputs import open_for_reading
from filter.formats.parquet.layout import ParquetLayout, RowGroupLayout, read_layout
from filter.formats.parquet.page_sizes import (
    file_chunk_pages,
    file_chunk_sizes,
    leaf_widths,
    page_values_bytes,
)
from filter.memory_budget import MemoryBudget, format_size

#: Bytes a slice holds per byte of the values it decodes (see the module doc).
SLICE_FACTOR = 16
#: The bytes of the input a slice reader buffers per column (`sliced_scan`).
READ_BUFFER = 1 << 20
_REPEATED = 2  # a SchemaElement's repetition type: a list
#: Slices of a row group at most, before it is refused: a footer may claim billions of rows.
_MOST_SLICES = 1 << 20


@dataclass(frozen=True)
class RowSlices:
    """How a file is read a slice at a time."""

    rows: dict[int, int]  # by row group index (those with rows): rows per slice


@dataclass(frozen=True)
class _ChunkPages:
    """One column chunk's data pages, as a slice reader holds them."""

    name: str  # the leaf's dotted name, for messages
    column: str  # its top-level column
    starts: np.ndarray  # the first row of each data page (flat columns), ascending
    ends: np.ndarray  # the row after each data page's last
    prefix: np.ndarray  # running sums of the data pages' decoded values, from 0
    fixed: int  # held whatever the slice: dictionary, largest page twice, read buffer
    flat: bool  # do its pages hold one value per row?

    @property
    def largest_page_values(self) -> int:
        return int(np.diff(self.prefix).max()) if len(self.prefix) > 1 else 0

    def touched(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """The decoded values of the pages that slices of rows [first, last) touch."""
        if not self.flat:
            return np.full(len(first), self.prefix[-1], dtype=np.int64)
        low = np.searchsorted(self.ends, first, side="right")
        high = np.searchsorted(self.starts, last, side="left")
        return self.prefix[high] - self.prefix[np.minimum(low, high)]


def row_slices(path: Path, budget: MemoryBudget, columns: Collection[str] | None,
               cost: DecodeCost) -> RowSlices:
    """The rows at a time each row group of `path` is read in so that a slice of `columns`
    (None: all) fits in a piece of `budget`; `MemoryBudgetExceeded` where one row does not."""
    layout = read_layout(path)
    widths = leaf_widths(layout)
    leaves = column_leaves(layout, columns)
    flat_leaves = {layout.columns[c].leaves[0] for c in {c for _, _, c in leaves}
                   if _flat(layout, c)}
    rows: dict[int, int] = {}
    with open_for_reading(path) as opened:
        fd = opened.fileno()
        for group in layout.row_groups():
            if not group.rows:
                continue
            chunks = [_chunk_pages(fd, layout, group, leaf, name, column, widths[leaf],
                                   leaf in flat_leaves, budget, cost)
                      for leaf, name, column in leaves]
            rows[group.index] = _slice_rows(layout.source, group, chunks, budget, cost)
    return RowSlices(rows)


def _flat(layout: ParquetLayout, column: str) -> bool:
    """Is `column` a single leaf that is not a list (one value per row)?"""
    node = layout.columns[column]
    repetition = node.element.get(SchemaElement.REPETITION_TYPE)
    return not node.children and (repetition is None or repetition.value != _REPEATED)


def _chunk_pages(fd: int, layout: ParquetLayout, group: RowGroupLayout, leaf: int, name: str,
                 column: str, width: int, flat: bool, budget: MemoryBudget,
                 cost: DecodeCost) -> _ChunkPages:
    start, length = group.ranges[leaf]
    codec = group.chunks[leaf][ColumnChunk.META_DATA].value[ColumnMetaData.CODEC].value
    where = f"row group {group.index}, column {name!r}"
    sizes = file_chunk_sizes(fd, start, length, width, codec, layout.source, where,
                             budget.piece_limit, copies=cost.copies)
    pages = [p for p in file_chunk_pages(fd, start, length, layout.source, where)
             if p.kind in (0, 3)]
    counts = np.array([max(p.values, 0) for p in pages], dtype=np.int64)
    bounds = np.array([page_values_bytes(p, width, sizes.longest_dictionary_value)
                       for p in pages], dtype=np.int64)
    ends = np.cumsum(counts)
    held = int(ends[-1]) if len(ends) else 0
    if held < group.rows or (flat and held != group.rows):  # a row holds a value at least
        raise InputError(f"{layout.source}: row group {group.index} claims {group.rows:,} "
                         f"rows, but its column {name!r} holds {held:,} values; the file is "
                         "corrupt")
    return _ChunkPages(
        name=where, column=column, starts=ends - counts, ends=ends,
        prefix=np.concatenate([[0], np.cumsum(bounds)]),
        fixed=sizes.dictionary_bytes + 2 * sizes.largest_page + READ_BUFFER,
        flat=flat)


def _slice_rows(source: str, group: RowGroupLayout, chunks: list[_ChunkPages],
                budget: MemoryBudget, cost: DecodeCost) -> int:
    """The rows of `group` a slice holds: all, or the largest power of two that fits."""
    # The detectors' work on a value (`LONGEST_VALUE_FACTOR` times it) is within the slice's
    # factor: no value is longer than the pages that hold it.
    fixed = sum(c.fixed for c in chunks)
    per_row = cost.row_bytes + ROW_BYTES
    # All the rows, then powers of two: writers end pages every 1,024 or so rows (pyarrow,
    # Polars), so slices of a power of two rows cut few pages in two.
    sizes = [group.rows] + [1 << p for p in range(group.rows.bit_length() - 1, -1, -1)
                            if 1 << p < group.rows and group.rows >> p <= _MOST_SLICES]
    need = 0
    for size in sizes:
        first = np.arange(0, group.rows, size, dtype=np.int64)
        last = np.minimum(first + size, group.rows)
        held = np.zeros(len(first), dtype=np.int64)
        for chunk in chunks:
            held += chunk.touched(first, last)
        need = SLICE_FACTOR * int(held.max()) + fixed + size * per_row
        if need <= budget.piece_limit:
            return size
    # Not even a few rows at a time: name the column whose largest page takes the most.
    worst = max(chunks, key=lambda c: SLICE_FACTOR * c.largest_page_values + c.fixed)
    budget.check(need, source, worst.name,
                 f"decoding its row group {size:,} row{'s' if size != 1 else ''} at a time "
                 f"({format_size(worst.fixed)} of its pages and dictionary held besides)")
    raise AssertionError("unreachable: the check refuses")  # pragma: no cover
