"""The input's column chunks read as bytes: page CRC checks, and Parquet files in memory made of
some chunks for Polars to read.

In: an open input file (its descriptor), its `ParquetLayout`, the chunks wanted.
Out: the chunks' bytes (checked against their page CRCs, where the writer gave them), or a
Parquet file of just those chunks (`ChunkFiles`), with a footer that says where they are.
May fail: `InputError` naming the input, and the row group and column where one is read: a
read the disk refuses, a file that ends inside a chunk, a page whose CRC does not match;
`MemoryBudgetExceeded` for a file whose chunks would decode to more than a piece of the run's
memory budget (measured from their page headers, `page_sizes`, before Polars sees them).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import polars as pl

from filter.errors import InputError, os_reason
from filter.formats.parquet.decode_budget import DecodeCost, PieceNeed
from filter.formats.parquet.fields import ColumnChunk, ColumnMetaData
from filter.formats.parquet.inputs import ParquetInput, open_for_reading
from filter.formats.parquet.layout import (
    MAGIC,
    VTX_WRITER,
    FooterParts,
    ParquetLayout,
    RowGroupLayout,
    footer_parts,
    read_layout,
    relocated_chunk,
    row_group_entry,
)
from filter.formats.parquet.metadata import polars_arrow_schema
from filter.formats.parquet.page_sizes import STRING, chunk_sizes, file_identity, leaf_widths
from filter.formats.parquet.pages import CODECS, bad_checksum, may_have_checksums
from filter.memory_budget import MemoryBudget, format_size

#: Parquet codec ids by the names pyarrow's footer gives them (its "LZ4" is Parquet's
#: Hadoop-framed LZ4, 5), of the codecs `parquet_pages` reads.
CODEC_IDS = {name: codec for name, codec in {
    "UNCOMPRESSED": 0, "SNAPPY": 1, "GZIP": 2, "BROTLI": 4, "ZSTD": 6, "LZ4_RAW": 7,
}.items() if codec in CODECS}


#: Bytes read from the start of a chunk to see whether its first page header has a CRC (a
#: header holds the page's statistics too: long strings may take more, and the file is then
#: walked whole, as if it had CRCs).
_HEADER_PROBE = 4096


def check_pages(chunk: memoryview, source: str, where: str) -> None:
    """Raise InputError if a page of `chunk` (`where` in `source`) fails its CRC.

    Writers put CRCs on every page or on none (see `check_page_checksums`): a chunk whose
    first page header has none is not walked, which saves decoding every page header of
    every copied chunk (a sixth of a split's CPU on inputs without CRCs, the common case).
    """
    if not may_have_checksums(chunk[:_HEADER_PROBE]):
        return
    bad = bad_checksum(chunk)
    if bad is not None:
        raise InputError(f"{source}: {where}: {bad} does not match its checksum; the file is "
                         "corrupt")


def check_page_checksums(source: ParquetInput) -> None:
    """Check every page CRC of `source`, for the inputs Polars decodes whole (`--reencode`,
    inputs `splice_refusal` refuses): Polars checks none. An `InputError` names the file, row
    group and column of the first page that fails.

    Writers put CRCs on every page or on none (pyarrow, parquet-mr: one setting a file), so
    only when the first pages of the first row group with rows have them (or their headers
    do not decode) is every chunk read and walked: a file without CRCs costs a few small
    reads. One CRC-32 a page, over its bytes as they lie (`parquet_pages.bad_checksum`).
    """
    layout = read_layout(source.path)
    names = {leaf: name for name, node in layout.columns.items() for leaf in node.leaves}
    buffer = bytearray()
    with open_input(source) as input_file:
        fd = input_file.fileno()
        groups = (g for g in layout.row_groups() if g.rows)  # one at a time (see the layout)
        first = next(groups, None)
        if first is None or not any(
            may_have_checksums(_read(fd, start, min(length, _HEADER_PROBE), layout.source))
            for start, length in first.ranges
        ):
            return
        for group in itertools.chain([first], groups):
            for leaf, (start, length) in enumerate(group.ranges):
                if len(buffer) < length:
                    buffer = bytearray(length)
                view = memoryview(buffer)[:length]
                read_into(fd, view, start, layout.source)
                where = f"row group {group.index}, column {names[leaf]!r}"
                check_pages(view, layout.source, where)


def _read(fd: int, start: int, length: int, source: str) -> memoryview:
    """`length` bytes of `fd` (the input, named `source`) from `start` on."""
    view = memoryview(bytearray(length))
    read_into(fd, view, start, source)
    return view


@dataclass(frozen=True)
class ChunkColumns:
    """Some top-level columns of the input, as Polars reads them from a file of their chunks
    (`ChunkFiles`)."""

    leaves: tuple[int, ...]  # their leaf columns, in file order
    footer: FooterParts  # their schema, for the footers of such files
    names: tuple[str, ...]  # the top-level column of each leaf, for messages
    widths: tuple[int, ...] = ()  # per leaf: a decoded value's bytes (`leaf_widths`)
    scanned: tuple[bool, ...] = ()  # per leaf: do the detectors read it?
    copies: bool = True  # do the queries copy string values out of their dictionaries?
    cost: DecodeCost = field(default_factory=DecodeCost)  # what a read holds besides values

    @classmethod
    def of(cls, columns: list[str], schema: pl.Schema, layout: ParquetLayout, *,
           scanned: Collection[str] = (), row_bytes: int = 0,
           copies: bool = True) -> ChunkColumns:
        """The chunks of `columns`, read as `schema` says; those of `scanned` columns are read
        by the detectors, every row takes `row_bytes` besides (see `PieceNeed`), and unless
        `copies` is False the queries copy string values out of their dictionaries (they
        write the columns anew)."""
        nodes = [layout.columns[c] for c in columns]
        # The Arrow schema makes Polars read them as `schema`'s types (the plan's), as a scan
        # of the input does.
        arrow = polars_arrow_schema(pl.Schema({c: schema[c] for c in columns}))
        widths = leaf_widths(layout)
        leaves = tuple(leaf for n in nodes for leaf in n.leaves)
        names = tuple(c for c, n in zip(columns, nodes, strict=True) for _ in n.leaves)
        return cls(leaves, footer_parts(layout.version, nodes, arrow, VTX_WRITER, []), names,
                   tuple(widths[leaf] for leaf in leaves),
                   tuple(widths[leaf] == STRING and c in scanned
                         for leaf, c in zip(leaves, names, strict=True)),
                   copies=copies, cost=DecodeCost(row_bytes=row_bytes))


class ChunkFiles:
    """Parquet files in memory, each made of some of the input's chunks, for Polars to read:
    so that a read holds the row groups asked for and nothing more. Polars, given the whole
    file, reads row groups ahead of what it decodes, and parses the whole footer again for
    every query.

    One per thread: the chunks are read into one buffer, kept from file to file, and copied
    once into the file's bytes (a fresh buffer per file cost twice the CPU time: the kernel
    clears every page of a new allocation).
    """

    def __init__(self, fd: int, source: str, budget: MemoryBudget | None = None) -> None:
        self._fd = fd
        self._source = source
        self._budget = budget  # None: not measured (files vtx wrote itself)
        self._identity = file_identity(fd) if budget is not None else None
        self._buffer = bytearray()

    def file(self, groups: Sequence[RowGroupLayout], columns: ChunkColumns) -> bytes:
        """A Parquet file of the chunks of `columns` in `groups`: their bytes, and a footer
        that says where they are and nothing a reader could answer from without decoding
        them (no statistics). With a budget, refused (`MemoryBudgetExceeded`) before it is
        returned when decoding it would take more than a piece of it."""
        placed = []  # (start in the input, length, start in the file, what it is, codec, leaf)
        entries = []
        where = len(MAGIC)
        for ordinal, group in enumerate(groups):
            chunks = []
            for index, (leaf, name) in enumerate(zip(columns.leaves, columns.names,
                                                     strict=True)):
                start, length = group.ranges[leaf]
                chunks.append(relocated_chunk(group.chunks[leaf], start, where,
                                              pages_only=True))
                codec = group.chunks[leaf][ColumnChunk.META_DATA].value[ColumnMetaData.CODEC]
                placed.append((start, length, where, f"row group {group.index}, column {name!r}",
                               codec.value, index))
                where += length
            entries.append(row_group_entry(chunks, group.rows, ordinal))
        rows = sum(g.rows for g in groups)
        tail = columns.footer.footer(entries, rows)
        size = where + len(tail)
        if self._budget is not None and placed:  # the bytes, twice: the buffer and the file
            self._budget.check(2 * size, self._source, placed[0][3],
                               f"reading {format_size(size)} of column chunks")
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        need = PieceNeed(rows, columns.cost)
        with memoryview(self._buffer) as view:
            view[:len(MAGIC)] = MAGIC
            for start, length, at, what, codec, index in placed:
                chunk = view[at:at + length]
                read_into(self._fd, chunk, start, self._source)
                # Polars does not check page CRCs: a damaged page that decodes would reach a
                # computed column (a token from a damaged VIN) unnoticed.
                check_pages(chunk, self._source, what)
                if self._budget is not None:
                    self._measure(chunk, start, codec, columns, index, what, need)
            if self._budget is not None and len(placed) > 1:
                self._budget.check(need.total, self._source, need.largest[1],
                                   f"decoding it with {len(placed) - 1} more column chunks")
            view[where:size] = tail
            return bytes(view[:size])

    def _measure(self, chunk: memoryview, start: int, codec: int, columns: ChunkColumns,
                 index: int, what: str, need: PieceNeed) -> None:
        """Add the chunk `chunk` (leaf `index` of `columns`, at `start` in the input) to
        `need`; refused alone when it takes more than a piece."""
        assert self._budget is not None and self._identity is not None
        sizes = chunk_sizes(chunk, columns.widths[index], codec, self._source, what,
                            self._budget.piece_limit, copies=columns.copies,
                            origin=(self._identity, start))
        alone = need.add(sizes, columns.scanned[index], what)
        if alone > self._budget.piece_limit:  # the message made only when it is needed
            self._budget.check(alone, self._source, what, f"decoding {sizes.described()}")


def runs(items: Iterable[RowGroupLayout], size: int) -> Iterator[list[RowGroupLayout]]:
    """`items` in consecutive runs of `size` (the last may be shorter)."""
    run: list[RowGroupLayout] = []
    for item in items:
        run.append(item)
        if len(run) == size:
            yield run
            run = []
    if run:
        yield run


def open_input(source: ParquetInput) -> BinaryIO:
    """The input file, open for reading; an `InputError` if it cannot be (the caller reports
    an `OSError` as the output's)."""
    return open_for_reading(source.path)


def read_into(fd: int, view: memoryview, start: int, source: str) -> None:
    """Fill `view` with the bytes of `fd` (the input, named `source`) from `start` on."""
    done = 0
    while done < len(view):
        try:
            got = os.preadv(fd, [view[done:]], start + done)
        except OSError as exc:  # the input's failure, not the output's
            raise InputError(f"{source}: cannot read byte {start + done}: "
                             f"{os_reason(exc)}") from None
        if not got:
            raise _truncated(source, start + done)
        done += got


def _truncated(source: str, at: int) -> InputError:
    return InputError(f"{source}: file ends inside a column chunk (byte {at}); was it changed "
                      "during the run?")


def check_passes(columns: list[tuple[str, int]], budget: int) -> list[list[str]]:
    """`columns` (name, bytes), in order, cut into runs of at most `budget` bytes each (a
    column over it alone)."""
    passes: list[list[str]] = []
    size = 0
    for name, nbytes in columns:
        if not passes or size + nbytes > budget:  # a pass is never left empty
            passes.append([])
            size = 0
        passes[-1].append(name)
        size += nbytes
    return passes


def column_bytes(layout: ParquetLayout) -> dict[str, int]:
    """Each top-level column's uncompressed bytes in the first row group with rows (none:
    an empty dict)."""
    group = next((g for g in layout.row_groups() if g.rows), None)
    if group is None:
        return {}
    return {name: sum(int(group.chunks[leaf][ColumnChunk.META_DATA]
                          .value[ColumnMetaData.TOTAL_UNCOMPRESSED_SIZE].value)
                      for leaf in node.leaves)
            for name, node in layout.columns.items()}
