"""Parquet files encoded straight from Arrow arrays: the writer of key/value rows.

In: one row group's columns as Arrow arrays (or `Sparse` and `Repeated` columns), of the
types the compiled key/value decoder builds (booleans, integers, floats, timestamps, strings
and binaries; dictionary arrays of those; structs of them, one level deep), and the Polars
schema of the frame they make.
Out: the bytes of a Parquet file holding them: one row group, zstd level 1 (but column chunks
whose pages are all under 1 KiB: uncompressed), data pages v1 with RLE definition levels,
min/max/null statistics. Its schema, Arrow schema ("ARROW:schema", with
strings for `pl.Enum` columns) and column orders are those Polars writes for the same frame
schema (`FileTemplate`, taken from a file Polars writes), so part files from either writer
read back alike, with the same types, in Polars, pyarrow and DuckDB.
May fail: `UnsupportedColumn` for any other array type, or a page over 1 GiB (the caller then
writes with Polars).

Why not Polars' or pyarrow's writer: key/value rows are mostly nulls (each entry fills one of
some 16 value columns), and those writers spend 15-20 ns on each null (an all-null Int64
column of 300,000 rows: 6 ms in Polars; pyarrow as much under structs): half the CPU of a
key/value split with Parquet output. Here a run of nulls is one RLE run, and a column that
repeats per message (VIN, token, timestamp) comes as the message values and how many entries
each message has on the side (`Repeated`), written as a dictionary of the message values and
one RLE run of its code per message: nothing is hashed, compared or even written per entry.

The parts: `leaf_columns` (levels and present values of each leaf), `column_chunks` (pages,
page headers and footer entries), `plain_values` and `hybrid_encoding` (the value and level
encodings, compiled), `array_buffers` (Arrow buffers as numpy).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from filter.formats.parquet.column_chunks import Chunk, write_chunk
from filter.formats.parquet.layout import (
    VTX_WRITER,
    FooterParts,
    SchemaNode,
    footer_parts,
    layout_in_memory,
    row_group_of,
)
from filter.formats.parquet.leaf_columns import Column, leaves
from filter.formats.parquet.metadata import plain_strings, polars_arrow_schema


@dataclass(frozen=True)
class FileTemplate:
    """What every file of one frame schema shares: as Polars writes it, but the writer's
    name (`created_by`: vtx's, as readers work around known writers' bugs by it)."""

    columns: tuple[SchemaNode, ...]  # top-level, in order
    empty: bytes  # the file itself: of no rows (and no row group), as Polars writes it
    footer: FooterParts  # all of the footer but the rows and row groups, encoded


def file_template(schema: pl.Schema) -> FileTemplate:
    """The template of files of `schema` (`pl.Enum` columns declared as strings)."""
    return _template(plain_strings(schema))


@functools.lru_cache(maxsize=16)
def _template(columns: tuple[tuple[str, pl.DataType], ...]) -> FileTemplate:
    schema = pl.Schema(dict(columns))
    buffer = io.BytesIO()
    pl.DataFrame(schema=schema).write_parquet(buffer)
    data = buffer.getvalue()
    layout = layout_in_memory(data, "template")
    top = tuple(layout.columns.values())
    orders = [layout.column_order(leaf) for leaf in range(layout.leaf_count)]
    return FileTemplate(top, data, footer_parts(
        layout.version, top, polars_arrow_schema(schema), VTX_WRITER, orders))


def encode_file(arrays: list[Column], schema: pl.Schema) -> bytes:
    """A Parquet file of one row group holding `arrays`, the columns of `schema` in order."""
    template = file_template(schema)
    rows = len(arrays[0]) if arrays else 0
    if not rows:
        return template.empty
    out = bytearray(b"PAR1")
    chunks: list[Chunk] = []
    for node, array in zip(template.columns, arrays, strict=True):
        if isinstance(array, pa.ChunkedArray):
            array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
        for element, leaf in leaves(node, array):
            chunks.append(write_chunk(out, element, leaf, rows))
    group = row_group_of([c.entry for c in chunks], rows, 0,
                         sum(c.uncompressed for c in chunks),
                         sum(c.compressed for c in chunks), chunks[0].start)
    out += template.footer.footer([group], rows)
    return bytes(out)
