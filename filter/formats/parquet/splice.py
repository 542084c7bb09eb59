"""A Parquet part file assembled from column chunks: the input's, copied as their bytes, and
those of computed columns, encoded apart; then a footer that says where each now is.

In: the output's columns (`SplicedColumn`: where each comes from), the input's layout, row
group by row group its chunks and the computed columns' in-memory file (`ComputedColumns`).
Out: the part file, written through to any file-like object with `write` and `size`.
May fail: `InputError` where the input's footer reads as two places for one chunk or a page
fails its CRC; `OSError` from the disk, for the caller to translate.

Which columns are copied and which computed is the Parquet engine's choice
(`filter.engines.parquet_splice`); this module only moves bytes and writes footers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from filter.errors import InputError
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.chunks import check_pages, read_into
from filter.formats.parquet.fields import ColumnChunk, ColumnMetaData, SchemaElement
from filter.formats.parquet.inputs import ParquetInput
from filter.formats.parquet.layout import (
    MAGIC,
    ParquetLayout,
    RowGroupLayout,
    SchemaNode,
    footer_bytes,
    relocated_chunk,
    row_group_entry,
)
from filter.formats.parquet.metadata import polars_arrow_schema
from filter.policy.plan import TOKEN_COLUMN, Destination

#: Parquet physical types whose chunks are copied; INT96 and fixed-length byte arrays are
#: encoded anew, where readers restore their logical types from more than the chunk.
COPIED_PHYSICAL = {0, 1, 2, 4, 5, 6}  # BOOLEAN, INT32, INT64, FLOAT, DOUBLE, BYTE_ARRAY
BYTE_ARRAY = 6


#: Polars types that carry more than their Parquet column says (categories, objects).
_ENCODED_DTYPES = (pl.Categorical, pl.Enum, pl.Object)


#: Largest row group split by copying chunks (memory holds one row group's computed columns).
MAX_ROW_GROUP_ROWS = 2**21


_OLD_PARQUET_MR = re.compile(r"parquet-mr version 1\.[0-2]\.")


#: Names of the onshore side's computed columns in the shared in-memory file.
ONSHORE_PREFIX = "\x00onshore\x00"


@dataclass(frozen=True)
class SplicedColumn:
    """Where one output column's chunks come from."""

    name: str
    node: SchemaNode  # its schema subtree as the output has it
    copied: bool  # from the input file (else from the computed columns' in-memory file)
    source: str  # its name in the file it comes from


def splice_refusal(source: ParquetInput) -> str | None:
    """Why `source` is better split by Polars than by copying its chunks; None if it is not.

    - Row groups over `MAX_ROW_GROUP_ROWS`: a row group's computed columns are made whole (a
      column chunk cannot be cut), so memory would grow with such a row group; Polars streams
      it in batches.
    - Files from parquet-mr before 1.3, whose chunk sizes can leave out the dictionary page
      header (PARQUET-816): readers pad their reads to cope; a copy of the stated bytes would
      cut the chunk.
    """
    if source.largest_row_group > MAX_ROW_GROUP_ROWS:
        return f"row groups of up to {source.largest_row_group:,} rows"
    if _OLD_PARQUET_MR.match(source.created_by or ""):
        return f"written by {source.created_by}"
    return None


@dataclass(frozen=True)
class ComputedColumns:
    """One row group's computed columns, encoded: an in-memory Parquet file and its layout."""

    data: bytes
    layout: ParquetLayout
    group: RowGroupLayout | None  # None for no rows
    counts: dict[str, int]


def output_columns(
    side: Destination, schema: pl.Schema, copied: dict[str, SchemaNode],
    computed_group: ComputedColumns,
) -> list[SplicedColumn]:
    """Every output column of `side`, in the output's order, with where it comes from."""
    columns = []
    for name in schema:
        if name in copied:
            columns.append(SplicedColumn(name, copied[name], True, name))
            continue
        source = name if side == "export" or name == TOKEN_COLUMN else ONSHORE_PREFIX + name
        node = computed_group.layout.columns[source]
        if source != name:  # the output's name, not the in-memory file's
            element = dict(node.element)
            element[SchemaElement.NAME] = thrift.Field(thrift.BINARY, name.encode())
            node = SchemaNode(element, node.children, node.leaves)
        columns.append(SplicedColumn(name, node, False, source))
    return columns


class PartFile(Protocol):
    """Where a part file is written: a file that counts what passes through it."""

    @property
    def size(self) -> int: ...

    def write(self, data: bytes | memoryview) -> object: ...


class PartAssembler:
    """Writes one part file: the magic, then each row group's chunks, then the footer."""

    def __init__(
        self, side: Destination, part: PartFile, columns: list[SplicedColumn],
        layout: ParquetLayout, empty: ComputedColumns,
        judged: dict[tuple[int, int], tuple[int, int]],
    ) -> None:
        self.side = side
        self.judged = judged  # (row group, leaf) -> the range whose dictionary was judged
        self.judged_leaves = {leaf for _, leaf in judged}
        self.part = part
        self.columns = columns
        self.layout = layout
        self.empty = empty
        self.row_groups: list[bytes] = []  # RowGroup entries, encoded
        self.rows = 0
        self._buffer = bytearray()
        part.write(MAGIC)

    def add_row_group(
        self, group: RowGroupLayout, input_fd: int, computed_group: ComputedColumns
    ) -> None:
        """Append the input's row group `group`, its computed columns in `computed_group`."""
        assert computed_group.group is not None
        chunks = []
        for column in self.columns:
            if column.copied:
                for leaf in column.node.leaves:
                    start, length = group.ranges[leaf]
                    if leaf in self.judged_leaves and \
                            self.judged.get((group.index, leaf)) != (start, length):
                        raise InputError(
                            f"{self.layout.source}: row group {group.index}, column "
                            f"{column.name!r}: the footer reads as two places for one column "
                            "chunk; it is malformed")
                    chunk = self._copy(input_fd, group.chunks[leaf], start, length,
                                       f"row group {group.index}, column {column.name!r}")
                    if leaf in self.judged_leaves:
                        # The footer's min and max of a string chunk are bytes the writer
                        # chose, judged by no detector: left out (its pages' were judged).
                        chunk[ColumnChunk.META_DATA].value.pop(ColumnMetaData.STATISTICS, None)
                    chunks.append(chunk)
                continue
            for leaf in computed_group.layout.columns[column.source].leaves:
                start, length = computed_group.group.ranges[leaf]
                chunk = self._append(computed_group.group.chunks[leaf],
                                     memoryview(computed_group.data)[start:start + length], start)
                if column.source != column.name:
                    _rename_path(chunk, column.name)
                chunks.append(chunk)
        # Kept encoded: as objects, a 200-row-group file's entries took some 60 MB.
        entry = row_group_entry(chunks, group.rows, len(self.row_groups))
        self.row_groups.append(thrift.encode(entry))
        self.rows += group.rows

    def _copy(
        self, fd: int, chunk: thrift.Struct, start: int, length: int, where: str
    ) -> thrift.Struct:
        """Copy the input's chunk at `start` (`where` names it), once its page CRCs pass."""
        if len(self._buffer) < length:
            self._buffer = bytearray(length)
        view = memoryview(self._buffer)[:length]
        read_into(fd, view, start, self.layout.source)
        check_pages(view, self.layout.source, where)
        return self._append(chunk, view, start)

    def _append(self, chunk: thrift.Struct, data: memoryview, start: int) -> thrift.Struct:
        where = self.part.size
        self.part.write(data)
        return relocated_chunk(chunk, start, where)

    def finish(self, created_by: str, schema: pl.Schema) -> None:
        """Write the footer: the output's schema, row groups and Arrow schema."""
        orders = []
        for column in self.columns:
            if column.copied:
                orders += [self.layout.column_order(leaf) for leaf in column.node.leaves]
            else:
                empty_layout = self.empty.layout
                orders += [empty_layout.column_order(leaf)
                           for leaf in empty_layout.columns[column.source].leaves]
        version = max(self.layout.version, self.empty.layout.version)
        self.part.write(footer_bytes(
            version, [c.node for c in self.columns], self.row_groups, self.rows,
            polars_arrow_schema(schema), created_by, orders,
        ))



def _rename_path(chunk: thrift.Struct, name: str) -> None:
    """Give the relocated `chunk` (its ColumnMetaData a copy) the output's top-level `name` in
    its path_in_schema: the in-memory file's internal name would leave the footer's paths
    naming no column of its schema, which Spark refuses and fastparquet reads as nulls."""
    meta = chunk[ColumnChunk.META_DATA].value
    path = meta[ColumnMetaData.PATH_IN_SCHEMA].value
    meta[ColumnMetaData.PATH_IN_SCHEMA] = thrift.Field(thrift.LIST, thrift.ThriftList(
        path.element, [name.encode(), *path.items[1:]]))


def chunk_carries(dtype: pl.DataType) -> bool:
    """Whether a column of `dtype`, with the Arrow schema Polars writes for it, reads back
    from the input's own chunks: not so where Polars keeps more than Parquet says."""
    if isinstance(dtype, _ENCODED_DTYPES):
        return False
    if isinstance(dtype, pl.Struct):
        return all(chunk_carries(f.dtype) for f in dtype.fields)
    if isinstance(dtype, pl.List | pl.Array):
        return chunk_carries(dtype.inner)
    return True


def leaf_nodes(node: SchemaNode) -> list[SchemaNode]:
    return [node] if not node.children else [n for c in node.children for n in leaf_nodes(c)]


def physical_type(node: SchemaNode) -> int | None:
    field = node.element.get(SchemaElement.TYPE)
    return field.value if field is not None else None
