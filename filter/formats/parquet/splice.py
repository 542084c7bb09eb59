"""Split a Parquet file by copying its encoded column chunks: what is unchanged, as it is.

In: one `ParquetInput`, the `ExportPlan`, the batch's `Lookups`, and the paths of the input's
export and onshore part files.
Out: the two part files and the detector hit counts, as `filter.engines.parquet.write_pair` gives
them: the same columns, in the same order, with the same values and types, row for row. Each
part file has one row group per non-empty row group of the input, with as many rows.
May fail: `InputError` (a footer vtx cannot lay out: chunks outside the file, encryption,
chunks kept in another file; overlapping chunks were refused when the input was inspected);
Polars' and pyarrow's errors on data they cannot decode, and `OSError` from the disk, for the
caller to translate (it knows what was read).

How:
- Most columns of a fleet batch go to one side exactly as they are. Those (per side,
  `filter.apply.columns.unchanged_columns`) are copied as the bytes of their column chunks: pages,
  dictionary and statistics as the input's writer encoded them. Nothing is decoded, compressed
  or encoded for them; the footer is rewritten to say where they now are
  (`filter.formats.parquet.layout`).
- The others are computed row group by row group with the engine's own queries
  (`filter.apply.columns.split_lazy` on the few columns they need): the vehicle token on both sides,
  and fields an action or a detector changes. Polars encodes them (zstd level 1, as the Polars
  path does) into an in-memory Parquet file, whose chunks are copied in turn.
- Every leaf of the input is decoded once, by Polars in a background thread, while the chunks
  are copied: a damaged page fails the run, as it fails one that decodes everything, instead
  of passing unread into an output. It decodes pieces of at most `CHECK_PASS_BYTES`
  (uncompressed): some columns of a few row groups.
- Polars reads the input only from Parquet files in memory made of the chunks it needs
  (`_ChunkFiles`): a row group's columns for the computed ones, a piece for the check. Given
  the whole file, Polars reads row groups ahead of what it decodes, and the check's memory
  spiked by up to 200 MB, the more often the longer the file; a small file at a time, there
  is nothing to read ahead. (pyarrow, which read the computed columns before, kept the whole
  footer parsed and memory in its own pool: 70 MB more at 10M rows.)

Copied columns keep the input's compression (a Snappy or uncompressed input gives Snappy or
uncompressed columns); `vtx split --reencode` writes every column anew instead.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from filter.apply.columns import Lookups, split_lazy, unchanged_columns
from filter.apply.detectors import any_hit
from filter.errors import InputError
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.fields import ColumnChunk, ColumnMetaData, SchemaElement
from filter.formats.parquet.inputs import ParquetInput
from filter.formats.parquet.layout import (
    MAGIC,
    VTX_WRITER,
    FooterParts,
    ParquetLayout,
    RowGroupLayout,
    SchemaNode,
    chunk_start,
    footer_bytes,
    footer_parts,
    layout_in_memory,
    read_layout,
    relocated_chunk,
    row_group_entry,
)
from filter.formats.parquet.metadata import polars_arrow_schema
from filter.formats.parquet.pages import CODECS, bad_checksum, dictionary_values, may_have_checksums
from filter.outputs.manifest import FileRecord
from filter.outputs.parts import PARQUET_OPTIONS, HashingFile, part_pair
from filter.policy.plan import TOKEN_COLUMN, Destination, ExportPlan
from filter.prefetch import prefetched

#: Parquet physical types whose chunks are copied; INT96 and fixed-length byte arrays are
#: encoded anew, where readers restore their logical types from more than the chunk.
_COPIED_PHYSICAL = {0, 1, 2, 4, 5, 6}  # BOOLEAN, INT32, INT64, FLOAT, DOUBLE, BYTE_ARRAY
_BYTE_ARRAY = 6
#: Parquet codec ids by the names pyarrow's footer gives them (its "LZ4" is Parquet's
#: Hadoop-framed LZ4, 5), of the codecs `parquet_pages` reads.
_CODEC_IDS = {name: codec for name, codec in {
    "UNCOMPRESSED": 0, "SNAPPY": 1, "GZIP": 2, "BROTLI": 4, "ZSTD": 6, "LZ4_RAW": 7,
}.items() if codec in CODECS}
#: Polars types that carry more than their Parquet column says (categories, objects).
_ENCODED_DTYPES = (pl.Categorical, pl.Enum, pl.Object)
#: Largest row group split by copying chunks (memory holds one row group's computed columns).
MAX_ROW_GROUP_ROWS = 2**21
#: At most this much of the input (uncompressed, as its first row group with rows says) is
#: decoded in one piece by the background check (`_decode_leaves`); one column of one row
#: group wider than this is a piece of its own. Measured alone on 10M rows (106 columns,
#: 250,000-row groups of 83 MB): pieces of 8, 16, 32 and 64 MiB peak at 220, 266, 403 and
#: 412 MB of RSS for the same CPU time.
CHECK_PASS_BYTES = 16 * 1024 * 1024
#: Row groups in each piece of the background check, at least: Polars decodes the row groups
#: of one file in parallel, one per task, and no faster than one core for a single one. On
#: 10M rows, alone: 2 gave 6.2 s against 10.0 s for 1, with the same CPU time and peak RSS.
CHECK_GROUPS = 2
_OLD_PARQUET_MR = re.compile(r"parquet-mr version 1\.[0-2]\.")
#: Names of the onshore side's computed columns in the shared in-memory file.
_ONSHORE_PREFIX = "\x00onshore\x00"
_SIDES: tuple[Destination, Destination] = ("export", "onshore")
#: Bytes read from the start of a chunk to see whether its first page header has a CRC (a
#: header holds the page's statistics too: long strings may take more, and the file is then
#: walked whole, as if it had CRCs).
_HEADER_PROBE = 4096


@dataclass(frozen=True)
class _Column:
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


def splice_pair(
    source: ParquetInput,
    plan: ExportPlan,
    lookups: Lookups,
    export_path: Path,
    onshore_path: Path,
) -> tuple[FileRecord, FileRecord, dict[str, int]]:
    """Split `source` into its pair of part files by copying column chunks; also its
    detector hit counts (by ``path\\x1fdetector``)."""
    layout = read_layout(source.path)
    # The outputs' schemas, from the plan's: a scan of the input would parse its footer again.
    full = split_lazy(pl.LazyFrame(schema=plan.schema), plan, lookups)
    schemas = {"export": full.export.collect_schema(), "onshore": full.onshore.collect_schema()}
    copied = {side: _copied_columns(side, plan, lookups, layout) for side in _SIDES}
    copied["export"], judged = _dictionaries_pass(source, plan, lookups, layout,
                                                  copied["export"])
    computed = _computed_query(plan, lookups, schemas, copied)
    counts: Counter[str] = Counter(full.known_counts)
    # The computed columns' reads decode what they read; the rest is decoded here.
    decoded = _Background(_decode_leaves, source, plan, layout, set(computed.needed),
                          _column_bytes(layout))
    with (
        decoded,
        part_pair(export_path, onshore_path) as (export_file, onshore_file),
        _open_input(source) as input_file,
    ):
        empty = computed.run(None)
        counts.update(empty.counts)  # every count the queries make, at 0 for a file of no rows
        columns = {side: _output_columns(side, schemas[side], copied[side], empty)
                   for side in _SIDES}
        writers = {side: _PartAssembler(side, part, columns[side], layout, empty,
                                        judged if side == "export" else {})
                   for side, part in (("export", export_file), ("onshore", onshore_file))}
        needed = _Columns.of(computed.needed, plan, layout)
        reads = _ChunkFiles(input_file.fileno(), layout.source)
        groups = _computed_row_groups(reads, needed, layout, computed)
        for group, computed_group in prefetched(groups):
            counts.update(computed_group.counts)
            for writer in writers.values():
                writer.add_row_group(group, input_file.fileno(), computed_group)
        decoded.result()  # a page the copy passed unread must decode
        for writer in writers.values():
            writer.finish(layout.created_by or VTX_WRITER, schemas[writer.side])
    return (writers["export"].record(), writers["onshore"].record(), dict(counts))


class _Background:
    """A call run in a daemon thread; `result()` waits for it and raises what it raised.

    The call is given a `threading.Event` last, set when the block that uses this (a
    context manager) ends before `result()`: a run stopped by an error tells the check to stop
    after its current piece, rather than decoding on (half a minute at 50M rows) in a
    pipeline's process. A daemon, so that an interruption does not wait for that piece.
    """

    def __init__(self, call: Callable[..., None], *args: object) -> None:
        self._error: BaseException | None = None
        self._stop = threading.Event()

        def run() -> None:
            try:
                call(*args, self._stop)
            except BaseException as exc:  # handed to the caller of result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="vtx-decode", daemon=True)
        self._thread.start()

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()

    def result(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _computed_row_groups(
    reads: _ChunkFiles, needed: _Columns, layout: ParquetLayout, computed: _ComputedQuery
) -> Iterator[tuple[RowGroupLayout, _ComputedColumns]]:
    """Every row group that holds rows, with its computed columns (from the `needed` input
    columns: Polars reads a file of their chunks)."""
    for group in layout.row_groups():
        if group.rows:
            yield group, computed.run(pl.read_parquet(reads.file([group], needed)))


@dataclass(frozen=True)
class _ComputedColumns:
    """One row group's computed columns, encoded: an in-memory Parquet file and its layout."""

    data: bytes
    layout: ParquetLayout
    group: RowGroupLayout | None  # None for no rows
    counts: dict[str, int]


@dataclass(frozen=True)
class _ComputedQuery:
    """The engine's queries for the columns the copy cannot take from the input."""

    plan: ExportPlan  # the plan cut to the columns they need
    lookups: Lookups
    needed: list[str]  # input columns they read
    names: dict[Destination, list[str]]  # computed output columns per side, token first

    def run(self, frame: pl.DataFrame | None) -> _ComputedColumns:
        """Compute and encode one row group's columns (from the input columns they need; an
        empty frame for None)."""
        if frame is None:
            frame = pl.DataFrame(schema=self.plan.schema)
        frame = frame.cast({c: t for c, t in self.plan.schema.items() if frame.schema[c] != t})
        queries = split_lazy(frame.lazy(), self.plan, self.lookups)
        onshore = [pl.col(c).alias(_ONSHORE_PREFIX + c) for c in self.names["onshore"][1:]]
        outputs = [queries.export.select(self.names["export"])]
        if onshore:
            outputs.append(queries.onshore.select(onshore))
        if queries.detections is not None:
            outputs.append(queries.detections)
        results = pl.collect_all(outputs)
        sides = results[: 1 + bool(onshore)]
        detections = results[len(sides):]
        encoded = pl.concat(sides, how="horizontal") if onshore else sides[0]
        buffer = io.BytesIO()
        encoded.write_parquet(buffer, **PARQUET_OPTIONS, statistics=True,
                              row_group_size=max(encoded.height, 1))
        data = buffer.getvalue()
        layout = layout_in_memory(data, "computed columns")
        groups = [g for g in layout.row_groups() if g.rows]
        if len(groups) != bool(encoded.height):
            raise RuntimeError(f"Polars wrote {len(groups)} row groups, not one")
        counts = dict(detections[0].row(0, named=True)) if detections else {}
        return _ComputedColumns(data, layout, groups[0] if groups else None, counts)


def _computed_query(
    plan: ExportPlan,
    lookups: Lookups,
    schemas: dict[Destination, pl.Schema],
    copied: dict[Destination, dict[str, SchemaNode]],
) -> _ComputedQuery:
    names = {side: [TOKEN_COLUMN] + [c for c in schemas[side]
                                     if c not in copied[side] and c != TOKEN_COLUMN]
             for side in _SIDES}
    needed = {plan.vehicle_id_column}
    needed |= {c for side in _SIDES for c in names[side] if c != TOKEN_COLUMN}
    columns = [c for c in plan.schema if c in needed]  # input order
    cut = dataclasses.replace(
        plan,
        fields=tuple(d for d in plan.fields if d.column in needed),
        schema=pl.Schema({c: plan.schema[c] for c in columns}),
    )
    return _ComputedQuery(cut, lookups, columns, names)


def _copied_columns(
    side: Destination, plan: ExportPlan, lookups: Lookups, layout: ParquetLayout
) -> dict[str, SchemaNode]:
    """The columns of `side` copied from the input, each with its schema subtree cut to the
    leaves the side holds."""
    copied = {}
    for column, leaves in unchanged_columns(plan, lookups, side).items():
        node = layout.columns.get(column)
        if node is None or not _chunk_carries(plan.schema[column]):
            continue
        kept = node.pruned(leaves)
        if all(_physical(n) in _COPIED_PHYSICAL for n in _leaf_nodes(kept)):
            copied[column] = kept
    return copied


def _dictionaries_pass(
    source: ParquetInput, plan: ExportPlan, lookups: Lookups, layout: ParquetLayout,
    copied: dict[str, SchemaNode],
) -> tuple[dict[str, SchemaNode], dict[tuple[int, int], tuple[int, int]]]:
    """The export's `copied` columns without those whose string chunks (of scanned fields)
    have a dictionary value some detector hits, or that `parquet_pages` cannot read page by
    page to tell: those are encoded anew from their values. Also the byte range of every
    chunk judged, by (row group, leaf), which the copy must find where it copies from.

    A dictionary may hold values no row uses, which no read of the column returns (so no value
    table holds them) and a copy would take along. The chunks are found with pyarrow's reading
    of the footer (its own decode, in C++, of a 40-row-group footer costs some 100 ms here);
    `_PartAssembler` refuses a chunk whose range vtx's reading gives otherwise.
    """
    scanned = {d.column for d in plan.fields if d.scanned}
    leaves = {column: [leaf for leaf, n in zip(node.leaves, _leaf_nodes(node), strict=True)
                       if _physical(n) == _BYTE_ARRAY]
              for column, node in copied.items() if column in scanned}
    leaves = {column: found for column, found in leaves.items() if found}
    if not leaves:
        return copied, {}
    values: dict[str, set[bytes]] = {column: set() for column in leaves}
    unreadable: set[str] = set()
    ranges: dict[tuple[int, int], tuple[int, int]] = {}
    buffer = bytearray()
    try:
        footer = pq.read_metadata(source.path)
    except (pa.ArrowException, OSError):
        return {c: n for c, n in copied.items() if c not in leaves}, {}
    with _open_input(source) as input_file:
        for index in range(footer.num_row_groups):
            group = footer.row_group(index)
            if not group.num_rows:
                continue
            for column, column_leaves in leaves.items():
                for leaf in column_leaves:
                    chunk = group.column(leaf)
                    codec = _CODEC_IDS.get(chunk.compression)
                    start = chunk_start(chunk.data_page_offset, chunk.dictionary_page_offset)
                    length = chunk.total_compressed_size
                    ranges[index, leaf] = (start, length)
                    if column in unreadable:
                        continue
                    if codec is None or start < len(MAGIC) or length < 0 \
                            or start + length > source.bytes:
                        unreadable.add(column)
                        continue
                    if len(buffer) < length:
                        buffer = bytearray(length)
                    view = memoryview(buffer)[:length]
                    _read_into(input_file.fileno(), view, start, layout.source)
                    found = dictionary_values(view, codec)
                    if found is None:
                        unreadable.add(column)
                    else:
                        values[column].update(found)
    # The values a value table already judged (a copied scanned column has tables, none of
    # whose values hit) need no second look; the others are judged together, in one query.
    tables = [(d.column, lookups.tables.get(d.path)) for d in plan.fields if d.scanned]
    judged = {column: {v.encode() for c, table in tables if c == column and table
                       for v in table.values} for column in values}
    unknown = {column: {v for v in found if v not in judged[column]}
               for column, found in values.items()}
    hit = set(unreadable)
    pending = sorted({v for column, found in unknown.items() if column not in hit for v in found})
    if pending:
        strings = pl.Series(pending, dtype=pl.Binary).cast(pl.String, strict=False)
        # Bytes that are not UTF-8 are no string a detector could judge: they count as hits.
        flags = pl.select(any_hit(pl.lit(strings), pl.String, lookups.vins).fill_null(True))
        hitting = {v for v, flag in zip(pending, flags.to_series(), strict=True) if flag}
        hit |= {column for column, found in unknown.items() if found & hitting}
    kept = {column: node for column, node in copied.items() if column not in hit}
    judged_leaves = {leaf for column in leaves if column not in hit for leaf in leaves[column]}
    return kept, {key: where for key, where in ranges.items() if key[1] in judged_leaves}


def _output_columns(
    side: Destination, schema: pl.Schema, copied: dict[str, SchemaNode],
    computed_group: _ComputedColumns,
) -> list[_Column]:
    """Every output column of `side`, in the output's order, with where it comes from."""
    columns = []
    for name in schema:
        if name in copied:
            columns.append(_Column(name, copied[name], True, name))
            continue
        source = name if side == "export" or name == TOKEN_COLUMN else _ONSHORE_PREFIX + name
        node = computed_group.layout.columns[source]
        if source != name:  # the output's name, not the in-memory file's
            element = dict(node.element)
            element[SchemaElement.NAME] = thrift.Field(thrift.BINARY, name.encode())
            node = SchemaNode(element, node.children, node.leaves)
        columns.append(_Column(name, node, False, source))
    return columns


class _PartAssembler:
    """Writes one part file: the magic, then each row group's chunks, then the footer."""

    def __init__(
        self, side: Destination, part: HashingFile, columns: list[_Column],
        layout: ParquetLayout, empty: _ComputedColumns,
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
        self, group: RowGroupLayout, input_fd: int, computed_group: _ComputedColumns
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
                    chunks.append(self._copy(input_fd, group.chunks[leaf], start, length,
                                             f"row group {group.index}, column "
                                             f"{column.name!r}"))
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
        _read_into(fd, view, start, self.layout.source)
        _check_pages(view, self.layout.source, where)
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

    def record(self) -> FileRecord:
        """The finished part file's record."""
        return FileRecord(self.part.path, self.rows, self.part.size, self.part.sha256)


def _check_pages(chunk: memoryview, source: str, where: str) -> None:
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
    with _open_input(source) as input_file:
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
                _read_into(fd, view, start, layout.source)
                where = f"row group {group.index}, column {names[leaf]!r}"
                _check_pages(view, layout.source, where)


def _read(fd: int, start: int, length: int, source: str) -> memoryview:
    """`length` bytes of `fd` (the input, named `source`) from `start` on."""
    view = memoryview(bytearray(length))
    _read_into(fd, view, start, source)
    return view


def _rename_path(chunk: thrift.Struct, name: str) -> None:
    """Give the relocated `chunk` (its ColumnMetaData a copy) the output's top-level `name` in
    its path_in_schema: the in-memory file's internal name would leave the footer's paths
    naming no column of its schema, which Spark refuses and fastparquet reads as nulls."""
    meta = chunk[ColumnChunk.META_DATA].value
    path = meta[ColumnMetaData.PATH_IN_SCHEMA].value
    meta[ColumnMetaData.PATH_IN_SCHEMA] = thrift.Field(thrift.LIST, thrift.ThriftList(
        path.element, [name.encode(), *path.items[1:]]))


def _decode_leaves(
    source: ParquetInput, plan: ExportPlan, layout: ParquetLayout, skip: set[str],
    column_bytes: dict[str, int], stop: threading.Event,
) -> None:
    """Decode every value of `source`'s columns but `skip`, and discard them: the copy reads
    none of them, and a damaged page must fail the run. Returns early once `stop` is set.

    Polars reads them a piece at a time, each piece a Parquet file in memory (`_ChunkFiles`):
    the columns of one pass (`check_passes`) in `CHECK_GROUPS` consecutive row groups, or in
    as many as `CHECK_PASS_BYTES` holds (`column_bytes`: each column's share of a row group).
    With one small file at a time, Polars has nothing to read ahead.
    """
    checks: dict[str, list[pl.Expr]] = {}  # by top-level column: a pass reads it whole
    for decision in plan.fields:
        if decision.column in skip:
            continue
        value, dtype = plan.leaf(decision)
        nested = dtype.is_nested()  # a list's null count need not read its elements
        checks.setdefault(decision.column, []).append(
            (value.hash().sum() if nested else value.null_count()).alias(decision.path))
    row_bytes = sum(column_bytes.get(c, 0) for c in checks)
    groups_per_piece = max(CHECK_GROUPS, CHECK_PASS_BYTES // max(row_bytes, 1))
    passes = check_passes([(c, groups_per_piece * column_bytes.get(c, 0)) for c in checks],
                          CHECK_PASS_BYTES)
    pieces = [(_Columns.of(columns, plan, layout), [e for c in columns for e in checks[c]])
              for columns in passes]
    groups = (g for g in layout.row_groups() if g.rows)
    with _open_input(source) as input_file:
        files = _ChunkFiles(input_file.fileno(), layout.source)
        for run in _runs(groups, groups_per_piece):
            for columns, exprs in pieces:
                if stop.is_set():
                    return
                pl.scan_parquet(files.file(run, columns)).select(exprs).collect(
                    engine="streaming")


@dataclass(frozen=True)
class _Columns:
    """Some top-level columns of the input, as Polars reads them from a file of their chunks
    (`_ChunkFiles`)."""

    leaves: tuple[int, ...]  # their leaf columns, in file order
    footer: FooterParts  # their schema, for the footers of such files
    names: tuple[str, ...]  # the top-level column of each leaf, for messages

    @classmethod
    def of(cls, columns: list[str], plan: ExportPlan, layout: ParquetLayout) -> _Columns:
        nodes = [layout.columns[c] for c in columns]
        # The Arrow schema makes Polars read them as the plan's types, as a scan of the input
        # does.
        arrow = polars_arrow_schema(pl.Schema({c: plan.schema[c] for c in columns}))
        return cls(tuple(leaf for n in nodes for leaf in n.leaves),
                   footer_parts(layout.version, nodes, arrow, VTX_WRITER, []),
                   tuple(c for c, n in zip(columns, nodes, strict=True) for _ in n.leaves))


class _ChunkFiles:
    """Parquet files in memory, each made of some of the input's chunks, for Polars to read:
    so that a read holds the row groups asked for and nothing more. Polars, given the whole
    file, reads row groups ahead of what it decodes, and parses the whole footer again for
    every query.

    One per thread: the chunks are read into one buffer, kept from file to file, and copied
    once into the file's bytes (a fresh buffer per file cost twice the CPU time: the kernel
    clears every page of a new allocation).
    """

    def __init__(self, fd: int, source: str) -> None:
        self._fd = fd
        self._source = source
        self._buffer = bytearray()

    def file(self, groups: Sequence[RowGroupLayout], columns: _Columns) -> bytes:
        """A Parquet file of the chunks of `columns` in `groups`: their bytes, and a footer
        that says where they are and nothing a reader could answer from without decoding
        them (no statistics)."""
        placed = []  # (start in the input, length, start in the file, what it is)
        entries = []
        where = len(MAGIC)
        for ordinal, group in enumerate(groups):
            chunks = []
            for leaf, name in zip(columns.leaves, columns.names, strict=True):
                start, length = group.ranges[leaf]
                chunks.append(relocated_chunk(group.chunks[leaf], start, where,
                                              pages_only=True))
                placed.append((start, length, where, f"row group {group.index}, column {name!r}"))
                where += length
            entries.append(row_group_entry(chunks, group.rows, ordinal))
        tail = columns.footer.footer(entries, sum(g.rows for g in groups))
        size = where + len(tail)
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        with memoryview(self._buffer) as view:
            view[:len(MAGIC)] = MAGIC
            for start, length, at, what in placed:
                _read_into(self._fd, view[at:at + length], start, self._source)
                # Polars does not check page CRCs: a damaged page that decodes would reach a
                # computed column (a token from a damaged VIN) unnoticed.
                _check_pages(view[at:at + length], self._source, what)
            view[where:size] = tail
            return bytes(view[:size])


def _runs(items: Iterable[RowGroupLayout], size: int) -> Iterator[list[RowGroupLayout]]:
    """`items` in consecutive runs of `size` (the last may be shorter)."""
    run: list[RowGroupLayout] = []
    for item in items:
        run.append(item)
        if len(run) == size:
            yield run
            run = []
    if run:
        yield run


def _open_input(source: ParquetInput) -> BinaryIO:
    """The input file, open for reading; an `InputError` if it cannot be (the caller reports
    an `OSError` as the output's)."""
    try:
        return source.path.open("rb")
    except OSError as exc:
        raise InputError(f"{source.path}: cannot read: {exc.strerror or exc}") from None


def _read_into(fd: int, view: memoryview, start: int, source: str) -> None:
    """Fill `view` with the bytes of `fd` (the input, named `source`) from `start` on."""
    done = 0
    while done < len(view):
        try:
            got = os.preadv(fd, [view[done:]], start + done)
        except OSError as exc:  # the input's failure, not the output's
            raise InputError(f"{source}: cannot read byte {start + done}: "
                             f"{exc.strerror or exc}") from None
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


def _column_bytes(layout: ParquetLayout) -> dict[str, int]:
    """Each top-level column's uncompressed bytes in the first row group with rows (none:
    an empty dict)."""
    group = next((g for g in layout.row_groups() if g.rows), None)
    if group is None:
        return {}
    return {name: sum(int(group.chunks[leaf][ColumnChunk.META_DATA]
                          .value[ColumnMetaData.TOTAL_UNCOMPRESSED_SIZE].value)
                      for leaf in node.leaves)
            for name, node in layout.columns.items()}


def _chunk_carries(dtype: pl.DataType) -> bool:
    """Whether a column of `dtype`, with the Arrow schema Polars writes for it, reads back
    from the input's own chunks: not so where Polars keeps more than Parquet says."""
    if isinstance(dtype, _ENCODED_DTYPES):
        return False
    if isinstance(dtype, pl.Struct):
        return all(_chunk_carries(f.dtype) for f in dtype.fields)
    if isinstance(dtype, pl.List | pl.Array):
        return _chunk_carries(dtype.inner)
    return True


def _leaf_nodes(node: SchemaNode) -> list[SchemaNode]:
    return [node] if not node.children else [n for c in node.children for n in _leaf_nodes(c)]


def _physical(node: SchemaNode) -> int | None:
    field = node.element.get(SchemaElement.TYPE)
    return field.value if field is not None else None


