"""The one check of an input Parquet file's footer, run before any of its data is read.

In: the path of an input Parquet file.
Out: its `ParquetLayout`, checked, and each row group's rows (`checked_layout`).
May fail: `InputError` naming the file, and the row group and column where it applies, one
line each: a file too short or not ending in the Parquet magic, an encrypted footer, a footer
that does not decode or lacks a field a reader needs (vtx's decoder or pyarrow's), a row group
whose chunks do not match the schema's columns, a column chunk kept in another file, an
encrypted column, a column chunk outside the file's data, two column chunks that overlap, a
footer that reads differently to pyarrow.

Why vtx's reading is the authority: the splice copies column chunks by exactly the byte ranges
`ParquetLayout` reads (`filter.formats.parquet.splice`), so those are the ranges checked; the
per-row-group checks are `ParquetLayout.row_groups`' own, and run again wherever a layout is
walked. pyarrow's decoder then reads the footer as every Arrow reader of the file would: it
knows every field's type (and the Arrow schema the writer stored), where vtx's decoder is
schema-free; and its row count, row groups and columns must be vtx's.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow.parquet as pq

from filter.errors import InputError, first_line, read_failed
from filter.formats.parquet.layout import ParquetLayout, read_layout


def checked_layout(path: Path) -> tuple[ParquetLayout, list[int]]:
    """The layout of the Parquet file at `path`, its footer checked (`check_footer`,
    `check_arrow_reads`), and each row group's rows."""
    layout = read_layout(path)
    group_rows = check_footer(layout)
    check_arrow_reads(path, layout)
    return layout, group_rows


def check_footer(layout: ParquetLayout) -> list[int]:
    """Check every row group of `layout` (`ParquetLayout.row_groups`), and that no two column
    chunks share bytes; returns each row group's rows.

    A footer pointing past where it begins (a truncated or damaged file whose footer still
    decodes) would make Polars' reader panic, and the splice copies bytes by exactly these
    ranges. Two columns sharing bytes would let one column's values be read under another's
    name (a withheld column's under an exported name): no writer does that; refuse it.
    """
    rows = []
    spans: list[tuple[int, int, int, str]] = []  # start, end, row group, column
    for group in layout.row_groups():
        rows.append(group.rows)
        if not group.rows:  # nothing is read from it
            continue
        for name, (start, length) in zip(layout.leaf_names, group.ranges, strict=True):
            spans.append((start, start + length, group.index, name))
    spans.sort()
    for before, after in itertools.pairwise(spans):
        if after[0] < before[1]:
            raise InputError(
                f"{layout.source}: row group {after[2]} of {layout.row_group_count}, column "
                f"{after[3]!r} overlaps row group {before[2]}, column {before[3]!r}; the file "
                "is corrupt")
    return rows


def check_arrow_reads(path: Path, layout: ParquetLayout) -> None:
    """pyarrow must decode the footer `layout` was read from, and read it alike."""
    try:
        meta = pq.read_metadata(path)
    except OSError as exc:
        raise read_failed(exc, path) from None
    except Exception as exc:  # pyarrow raises ArrowInvalid and others for bad footers
        raise InputError(f"{path}: not a readable Parquet footer: {first_line(exc)}") from None
    seen = (meta.num_rows, meta.num_row_groups, meta.num_columns)
    if seen != (layout.rows, layout.row_group_count, layout.leaf_count):
        raise InputError(
            f"{path}: not a readable Parquet footer: it reads as {seen[0]} rows in {seen[1]} "
            f"row groups of {seen[2]} columns to Arrow, {layout.rows} in "
            f"{layout.row_group_count} of {layout.leaf_count} to vtx")
