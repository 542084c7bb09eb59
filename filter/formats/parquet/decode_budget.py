"""Whether a Parquet file Polars will read whole fits in the run's memory budget, from its
page headers.

In: a Parquet file, the columns a reader will decode (all of them, or some), the run's
`MemoryBudget`, and what the reader holds per byte and per row (`DecodeCost`).
Out: nothing, when every row group (and every run of rows read together, `run_rows`) fits in
one piece of the budget.
May fail: `MemoryBudgetExceeded` naming the file, the row group and the column that takes the
most, with the sizes; `InputError` for bytes that are not pages.

For the reads vtx does not make of a file of chunks of its own (`chunks.ChunkFiles`, which
measures what it builds): Polars scanning an input whole (`--reencode`, inputs the splice
refuses, the batch's distinct values) and `vtx verify` reading a part. Only the page headers
are read (`page_sizes.file_chunk_sizes`), one small read each: some 8 microseconds a page.
What a chunk's headers gave is kept (`page_sizes`): a split that measured its VIN and scanned
columns here does not walk them again for its computed columns.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filter.formats.parquet.fields import ColumnChunk, ColumnMetaData
from filter.formats.parquet.inputs import ParquetInput, open_for_reading
from filter.formats.parquet.layout import ParquetLayout, read_layout
from filter.formats.parquet.page_sizes import (
    STRING,
    ChunkSizes,
    file_chunk_sizes,
    leaf_widths,
)
from filter.memory_budget import LONGEST_VALUE_FACTOR, SCAN_FACTOR, MemoryBudget


@dataclass(frozen=True)
class DecodeCost:
    """What a reader holds for the values it decodes, besides the values."""

    scanned: Collection[str] = ()  # columns the detectors read
    row_bytes: int = 0  # per row (the token a split computes)
    scan_strings: bool = False  # every string column is scanned (`vtx verify` of an export)
    copies: bool = True  # the reader copies string values out of their dictionaries


#: Bytes a reader holds per row of a piece, whatever its columns: a slot of its row count.
ROW_BYTES = 8


class PieceNeed:
    """The memory one piece of decoding holds (some column chunks of some row groups, read
    together), added up chunk by chunk from their `ChunkSizes`:
    - every chunk's stored bytes and decoded values (`ChunkSizes.values_bytes`); the values of
      scanned strings `SCAN_FACTOR` times;
    - the largest page, twice: a reader decompresses a page at a time on each of its threads;
    - the longest value the detectors scan, `LONGEST_VALUE_FACTOR` times (its bound: the
      largest page, or the longest dictionary value);
    - `rows` times the cost's bytes per row, and `ROW_BYTES` (a reader sizes its columns
      by the rows a footer claims).
    """

    def __init__(self, rows: int, cost: DecodeCost) -> None:
        self._base = rows * (cost.row_bytes + ROW_BYTES)
        self._held = 0
        self._page = 0
        self._longest = 0
        self.largest = (0, "")  # the chunk that takes the most, and where it is

    def add(self, sizes: ChunkSizes, scanned: bool, where: str) -> int:
        """Add one chunk (`where`, for messages); returns what it takes alone."""
        held = sizes.compressed + sizes.values_bytes * (SCAN_FACTOR if scanned else 1)
        longest = max(sizes.largest_page, sizes.longest_dictionary_value) if scanned else 0
        self._held += held
        self._page = max(self._page, sizes.largest_page)
        self._longest = max(self._longest, longest)
        alone = held + 2 * sizes.largest_page + LONGEST_VALUE_FACTOR * longest
        self.largest = max(self.largest, (alone, where))
        return alone

    @property
    def total(self) -> int:
        return self._base + self._held + 2 * self._page + LONGEST_VALUE_FACTOR * self._longest


@dataclass(frozen=True)
class GroupNeed:
    """What a reader holds for one row group (`check_decoding`)."""

    source: str
    where: str  # the row group and the column that takes the most, for messages
    first_row: int  # in the whole batch
    need: int  # for the columns measured
    values: dict[str, int]  # each column's decoded values, as a distinct-values pass may keep


def check_decoding(
    sources: Iterable[ParquetInput | Path],
    budget: MemoryBudget,
    columns: Collection[str] | None = None,
    cost: DecodeCost = DecodeCost(),
) -> list[GroupNeed]:
    """Raise `MemoryBudgetExceeded` where decoding `columns` (None: all) of a row group of
    `sources` would take more than a piece of `budget`; else what each row group needs, for
    `check_runs`."""
    found: list[GroupNeed] = []
    start = 0  # the batch's row where this file starts
    for source in sources:
        path = source.path if isinstance(source, ParquetInput) else source
        layout = read_layout(path)
        leaves = column_leaves(layout, columns)
        widths = leaf_widths(layout)
        with open_for_reading(path) as opened:
            fd = opened.fileno()
            for group in layout.row_groups():
                if not group.rows:
                    continue
                need, values = PieceNeed(group.rows, cost), dict.fromkeys(
                    (column for _, _, column in leaves), 0)
                for leaf, name, column in leaves:
                    offset, length = group.ranges[leaf]
                    codec = group.chunks[leaf][ColumnChunk.META_DATA] \
                        .value[ColumnMetaData.CODEC].value
                    where = f"row group {group.index}, column {name!r}"
                    sizes = file_chunk_sizes(fd, offset, length, widths[leaf], codec,
                                             layout.source, where, budget.piece_limit,
                                             copies=cost.copies)
                    scanned = widths[leaf] == STRING and (cost.scan_strings
                                                        or column in cost.scanned)
                    alone = need.add(sizes, scanned, where)
                    values[column] += sizes.values_bytes
                    if alone > budget.piece_limit:
                        budget.check(alone, layout.source, where,
                                     f"decoding {sizes.described()}")
                where = need.largest[1] or f"row group {group.index}"
                if need.total > budget.piece_limit:
                    budget.check(need.total, layout.source, where,
                                 f"decoding the row group's {len(leaves)} columns of "
                                 f"{group.rows:,} rows")
                found.append(GroupNeed(layout.source, where, start, need.total, values))
                start += group.rows
    return found


def check_runs(groups: Sequence[GroupNeed], budget: MemoryBudget, columns: Collection[str],
               run_rows: int) -> None:
    """Raise `MemoryBudgetExceeded` where a run of `run_rows` rows of the batch (the row
    groups of `check_decoding`, one after the other, as one scan reads them) would hold more
    than a piece of `budget`: each row group's need, and the values of `columns` of the run's
    row groups before it, as if all were distinct (a distinct-values pass keeps what it has
    not seen)."""
    run, held = -1, 0
    for group in groups:
        if group.first_row // run_rows != run:
            run, held = group.first_row // run_rows, 0
        if held + group.need > budget.piece_limit:
            budget.check(held + group.need, group.source, group.where,
                         f"reading it with the rest of its run of up to {run_rows:,} rows")
        held += sum(group.values.get(c, 0) for c in columns)


def column_leaves(
    layout: ParquetLayout, columns: Collection[str] | None
) -> list[tuple[int, str, str]]:
    """The leaves of `columns` (None: all), each with its dotted name and its top-level
    column."""
    chosen = layout.columns if columns is None else {
        c: n for c, n in layout.columns.items() if c in columns}
    of = {leaf: column for column, node in chosen.items() for leaf in node.leaves}
    return [(leaf, name, of[leaf]) for leaf, name in enumerate(layout.leaf_names) if leaf in of]
