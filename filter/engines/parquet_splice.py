"""The Parquet engine's splice: split a file by copying its encoded column chunks, what is
unchanged as it is, and computing the rest.

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
  (`ChunkFiles`): a row group's columns for the computed ones, a piece for the check. Given
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
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from filter.apply.columns import Lookups, split_lazy, unchanged_columns
from filter.apply.detectors import any_hit
from filter.formats.parquet.chunks import (
    CODEC_IDS,
    ChunkColumns,
    ChunkFiles,
    check_passes,
    column_bytes,
    open_input,
    read_into,
    runs,
)
from filter.formats.parquet.inputs import ParquetInput
from filter.formats.parquet.layout import (
    MAGIC,
    VTX_WRITER,
    ParquetLayout,
    RowGroupLayout,
    SchemaNode,
    chunk_start,
    layout_in_memory,
    read_layout,
)
from filter.formats.parquet.page_sizes import chunk_sizes
from filter.formats.parquet.pages import dictionary_values
from filter.formats.parquet.splice import (
    BYTE_ARRAY,
    COPIED_PHYSICAL,
    ONSHORE_PREFIX,
    ComputedColumns,
    PartAssembler,
    chunk_carries,
    leaf_nodes,
    output_columns,
    physical_type,
)
from filter.memory_budget import TOKEN_ROW_BYTES, MemoryBudget, format_size
from filter.outputs.manifest import FileRecord
from filter.outputs.parts import PARQUET_OPTIONS, part_pair
from filter.policy.plan import TOKEN_COLUMN, Destination, ExportPlan
from filter.prefetch import prefetched

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


_SIDES: tuple[Destination, Destination] = ("export", "onshore")


def splice_pair(
    source: ParquetInput,
    plan: ExportPlan,
    lookups: Lookups,
    export_path: Path,
    onshore_path: Path,
    budget: MemoryBudget,
) -> tuple[FileRecord, FileRecord, dict[str, int]]:
    """Split `source` into its pair of part files by copying column chunks; also its
    detector hit counts (by ``path\\x1fdetector``). What Polars decodes is measured against
    `budget` first (`ChunkFiles`)."""
    layout = read_layout(source.path)
    # The outputs' schemas, from the plan's: a scan of the input would parse its footer again.
    full = split_lazy(pl.LazyFrame(schema=plan.schema), plan, lookups)
    schemas = {"export": full.export.collect_schema(), "onshore": full.onshore.collect_schema()}
    copied = {side: _copied_columns(side, plan, lookups, layout) for side in _SIDES}
    copied["export"], judged = _dictionaries_pass(source, plan, lookups, layout,
                                                  copied["export"], budget)
    computed = _computed_query(plan, lookups, schemas, copied)
    counts: Counter[str] = Counter(full.known_counts)
    # The computed columns' reads decode what they read; the rest is decoded here.
    decoded = _Background(_decode_leaves, source, plan, layout, set(computed.needed),
                          column_bytes(layout), budget)
    with (
        decoded,
        part_pair(export_path, onshore_path) as (export_file, onshore_file),
        open_input(source) as input_file,
    ):
        empty = computed.run(None)
        counts.update(empty.counts)  # every count the queries make, at 0 for a file of no rows
        columns = {side: output_columns(side, schemas[side], copied[side], empty)
                   for side in _SIDES}
        writers = {side: PartAssembler(side, part, columns[side], layout, empty,
                                        judged if side == "export" else {})
                   for side, part in (("export", export_file), ("onshore", onshore_file))}
        scanned = {d.column for d in plan.fields if d.scanned}
        needed = ChunkColumns.of(computed.needed, plan.schema, layout, scanned=scanned,
                                 row_bytes=TOKEN_ROW_BYTES)
        reads = ChunkFiles(input_file.fileno(), layout.source, budget)
        groups = _computed_row_groups(reads, needed, layout, computed)
        for group, computed_group in prefetched(groups):
            counts.update(computed_group.counts)
            for writer in writers.values():
                writer.add_row_group(group, input_file.fileno(), computed_group)
        decoded.result()  # a page the copy passed unread must decode
        for writer in writers.values():
            writer.finish(layout.created_by or VTX_WRITER, schemas[writer.side])
    records = {side: FileRecord(part.path, writers[side].rows, part.size, part.sha256)
               for side, part in (("export", export_file), ("onshore", onshore_file))}
    return records["export"], records["onshore"], dict(counts)


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
    reads: ChunkFiles, needed: ChunkColumns, layout: ParquetLayout, computed: _ComputedQuery
) -> Iterator[tuple[RowGroupLayout, ComputedColumns]]:
    """Every row group that holds rows, with its computed columns (from the `needed` input
    columns: Polars reads a file of their chunks)."""
    for group in layout.row_groups():
        if group.rows:
            yield group, computed.run(pl.read_parquet(reads.file([group], needed)))


@dataclass(frozen=True)
class _ComputedQuery:
    """The engine's queries for the columns the copy cannot take from the input."""

    plan: ExportPlan  # the plan cut to the columns they need
    lookups: Lookups
    needed: list[str]  # input columns they read
    names: dict[Destination, list[str]]  # computed output columns per side, token first

    def run(self, frame: pl.DataFrame | None) -> ComputedColumns:
        """Compute and encode one row group's columns (from the input columns they need; an
        empty frame for None)."""
        if frame is None:
            frame = pl.DataFrame(schema=self.plan.schema)
        frame = frame.cast({c: t for c, t in self.plan.schema.items() if frame.schema[c] != t})
        queries = split_lazy(frame.lazy(), self.plan, self.lookups)
        onshore = [pl.col(c).alias(ONSHORE_PREFIX + c) for c in self.names["onshore"][1:]]
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
        return ComputedColumns(data, layout, groups[0] if groups else None, counts)


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
        if node is None or not chunk_carries(plan.schema[column]):
            continue
        kept = node.pruned(leaves)
        if all(physical_type(n) in COPIED_PHYSICAL for n in leaf_nodes(kept)):
            copied[column] = kept
    return copied


def _dictionaries_pass(
    source: ParquetInput, plan: ExportPlan, lookups: Lookups, layout: ParquetLayout,
    copied: dict[str, SchemaNode], budget: MemoryBudget,
) -> tuple[dict[str, SchemaNode], dict[tuple[int, int], tuple[int, int]]]:
    """The export's `copied` columns without those whose string chunks (of scanned fields)
    have a dictionary value some detector hits, or that `parquet_pages` cannot read page by
    page to tell: those are encoded anew from their values. Also the byte range of every
    chunk judged, by (row group, leaf), which the copy must find where it copies from.

    A dictionary may hold values no row uses, which no read of the column returns (so no value
    table holds them) and a copy would take along. The chunks are found with pyarrow's reading
    of the footer (its own decode, in C++, of a 40-row-group footer costs some 100 ms here);
    `PartAssembler` refuses a chunk whose range vtx's reading gives otherwise.
    """
    scanned = {d.column for d in plan.fields if d.scanned}
    leaves = {column: [leaf for leaf, n in zip(node.leaves, leaf_nodes(node), strict=True)
                       if physical_type(n) == BYTE_ARRAY]
              for column, node in copied.items() if column in scanned}
    leaves = {column: found for column, found in leaves.items() if found}
    if not leaves:
        return copied, {}
    values: dict[str, set[bytes]] = {column: set() for column in leaves}
    unreadable: set[str] = set()
    ranges: dict[tuple[int, int], tuple[int, int]] = {}
    buffer = bytearray()
    held = 0  # the values found so far, as Python objects, and the chunk being read
    try:
        footer = pq.read_metadata(source.path)
    except (pa.ArrowException, OSError):
        return {c: n for c, n in copied.items() if c not in leaves}, {}
    with open_input(source) as input_file:
        for index in range(footer.num_row_groups):
            group = footer.row_group(index)
            if not group.num_rows:
                continue
            for column, column_leaves in leaves.items():
                for leaf in column_leaves:
                    chunk = group.column(leaf)
                    codec = CODEC_IDS.get(chunk.compression)
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
                    read_into(input_file.fileno(), view, start, layout.source)
                    # Its dictionaries decompressed and held as Python values, at most.
                    where = f"row group {index}, column {column!r}"
                    sizes = chunk_sizes(view, 8, codec, layout.source, where, 0)  # no value read
                    held += sizes.dictionary_bytes + 64 * sizes.dictionary_values
                    budget.check(held + length + sizes.largest_page, layout.source, where,
                                 "reading its dictionary, of "
                                 f"{format_size(sizes.dictionary_bytes)} decompressed, with those "
                                 "read before")
                    # The page headers' min and max too: bytes the writer chose.
                    found = dictionary_values(view, codec, statistics=True)
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


def _decode_leaves(
    source: ParquetInput, plan: ExportPlan, layout: ParquetLayout, skip: set[str],
    column_bytes: dict[str, int], budget: MemoryBudget, stop: threading.Event,
) -> None:
    """Decode every value of `source`'s columns but `skip`, and discard them: the copy reads
    none of them, and a damaged page must fail the run. Returns early once `stop` is set.

    Polars reads them a piece at a time, each piece a Parquet file in memory (`ChunkFiles`):
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
    # The check only counts: Polars keeps dictionary strings as views of their dictionary.
    pieces = [(ChunkColumns.of(columns, plan.schema, layout, copies=False),
               [e for c in columns for e in checks[c]]) for columns in passes]
    groups = (g for g in layout.row_groups() if g.rows)
    with open_input(source) as input_file:
        files = ChunkFiles(input_file.fileno(), layout.source, budget)
        for run in runs(groups, groups_per_piece):
            for columns, exprs in pieces:
                if stop.is_set():
                    return
                pl.scan_parquet(files.file(run, columns)).select(exprs).collect(
                    engine="streaming")
