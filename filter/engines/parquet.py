"""The local engine's Parquet split: each input file into a pair of part files, on this machine.

In: a `SplitRun` of a `ParquetBatch` (its stagings, plan, key).
Out: ``part-00000.parquet`` for the first input, and so on, in both stagings (the same names,
rows and row order on both sides), reconciled; their records and the detector hit counts.
May fail: `InputError` (a corrupt input: file, row group and column), `OutputError` (a disk
that refuses a write).

How: the distinct VINs of the batch are read (one column, `apply.lookups.LOOKUP_RUN_ROWS`
rows at a time) and tokenised once each, and the distinct values of low-cardinality exported
strings are run through the detectors once each; then each input file is split row group by
row group (`engines.parquet_splice`): the columns a side holds unchanged are copied as their
encoded column chunks, the others (the token, fields an action or a detector changes)
computed and encoded by Polars, so memory is bounded by a row group, not the input. With
`reencode`, every input file is streamed by Polars through both projections in a single pass
(`engines.frames.write_pair`) instead. Inputs are hashed in a background thread while the
split runs (and there, for those Polars decodes whole, their page CRCs checked); outputs are
hashed as they are written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from filter.apply.columns import Lookups
from filter.apply.lookups import LOOKUP_RUN_ROWS, batch_lookups, piece_lookups
from filter.apply.value_tables import enumeration_fields
from filter.engines.engine import SplitRun, WrittenParts
from filter.engines.frames import write_pair
from filter.engines.parquet_batch import ParquetBatch
from filter.engines.parquet_splice import splice_pair
from filter.engines.request import ProgressCallback
from filter.errors import InputError, OutputError, first_line, is_disk_error, write_failed
from filter.formats.parquet.chunks import check_page_checksums
from filter.formats.parquet.decode_budget import DecodeCost, check_decoding, check_runs
from filter.formats.parquet.inputs import ParquetInput, locate_corruption, scan
from filter.formats.parquet.row_slices import row_slices
from filter.formats.parquet.sliced_scan import sliced_frames, sliced_scan
from filter.formats.parquet.splice import splice_refusal
from filter.memory_budget import (
    TOKEN_ROW_BYTES,
    MemoryBudget,
    MemoryBudgetExceeded,
)
from filter.outputs.manifest import FileRecord, sha256_file
from filter.outputs.reconcile import reconcile_pairs
from filter.policy.plan import ExportPlan


def write_parquet_parts(run: SplitRun) -> WrittenParts:
    """Split every input of `run`'s Parquet batch into its pair of part files."""
    batch = run.batch
    assert isinstance(batch, ParquetBatch)
    sources, export_plan, reencode = batch.sources, batch.plan, run.request.reencode
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vtx-hash") as hasher:
        input_hashes = [hasher.submit(_hash_input, s, reencode) for s in sources]
        budget = run.request.budget
        lookups = _source_lookups(sources, export_plan, run.key, budget)
        export_files, onshore_files, detections = _write_parts(
            sources, export_plan, lookups, *run.staging, run.request.progress, budget,
            reencode=reencode)
        inputs = [FileRecord(s.path, s.rows, s.bytes, h.result())
                  for s, h in zip(sources, input_hashes, strict=True)]
    for source, export, onshore in zip(inputs, export_files, onshore_files, strict=True):
        reconcile_pairs(source.rows, [export], [onshore])  # file for file
    return WrittenParts(inputs, export_files, onshore_files, detections, export_plan)


def _write_parts(
    sources: Sequence[ParquetInput],
    export_plan: ExportPlan,
    lookups: Lookups,
    export_dir: Path,
    onshore_dir: Path,
    progress: ProgressCallback | None,
    budget: MemoryBudget,
    *,
    reencode: bool,
) -> tuple[list[FileRecord], list[FileRecord], Counter[str]]:
    """Split every input into its pair of part files, ``part-NNNNN.parquet`` on both sides.

    Also returns the detector hit counts over the whole batch, by ``path\x1fdetector``.
    """
    export_files: list[FileRecord] = []
    onshore_files: list[FileRecord] = []
    detections: Counter[str] = Counter()
    rows_done = 0
    total_rows = sum(s.rows for s in sources)
    for index, source in enumerate(sources):
        name = f"part-{index:05d}.parquet"
        export_file, onshore_file, counts = _split_file(
            source, export_plan, lookups, export_dir / name, onshore_dir / name, budget,
            reencode=reencode,
        )
        export_files.append(export_file)
        onshore_files.append(onshore_file)
        detections.update(counts)
        rows_done += source.rows
        if progress is not None:
            progress(index + 1, len(sources), rows_done, total_rows)
    return export_files, onshore_files, detections


def _source_lookups(
    sources: Sequence[ParquetInput], export_plan: ExportPlan, key: bytes, budget: MemoryBudget
) -> Lookups:
    """`batch_lookups` over every input file; a read failure names the file and row group.

    Measured against `budget` first: every row group of the columns it may read (the VINs
    and the scanned fields, whose first rows say which hold enumerations), then, once those
    are known, each run of rows of the columns it reads, as if all their values were
    distinct (a distinct-values pass keeps what it has not seen).
    """
    scanned = {d.column for d in export_plan.fields if d.scanned}
    vin = export_plan.vehicle_id_column
    try:
        groups = check_decoding(sources, budget, {vin} | scanned, DecodeCost(scanned))
    except MemoryBudgetExceeded:  # a row group too large to read whole: read in slices
        groups = None
    try:
        if groups is None:
            return _sliced_lookups(sources, export_plan, key, budget)
        # glob=False: a path is that file, even with `[` in its name (Polars would glob it).
        frame = pl.scan_parquet([s.path for s in sources], glob=False)
        fields = enumeration_fields(frame, export_plan)
        check_runs(groups, budget, {vin} | {d.column for d in fields}, LOOKUP_RUN_ROWS)
        return batch_lookups(frame, export_plan, key, rows=sum(s.rows for s in sources),
                             fields=fields)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        for source in sources:
            if (found := locate_corruption(source)) is not None:
                raise found from None
        if isinstance(exc, pl.exceptions.PanicException):  # pyarrow reads it, Polars cannot
            names = str(sources[0].path) if len(sources) == 1 else f"one of {len(sources)} inputs"
            raise InputError(f"{names}: Polars cannot read it: {first_line(exc)}") from None
        raise


def _sliced_lookups(
    sources: Sequence[ParquetInput], export_plan: ExportPlan, key: bytes, budget: MemoryBudget
) -> Lookups:
    """The lookups of inputs read a slice of rows at a time (`row_slices`), slice by slice
    (`piece_lookups`): refused (`MemoryBudgetExceeded`) where a slice does not fit, or once the
    distinct values gathered take more than a piece."""
    scanned = {d.column for d in export_plan.fields if d.scanned}
    vin = export_plan.vehicle_id_column
    files = [(s.path, row_slices(s.path, budget, {vin} | scanned, DecodeCost(scanned)))
             for s in sources]
    fields = enumeration_fields(sliced_scan(files, export_plan.schema), export_plan)
    columns = [c for c in export_plan.schema if c == vin or c in {d.column for d in fields}]
    where = str(sources[0].path) if len(sources) == 1 else f"one of {len(sources)} inputs"

    def check_held(held: int) -> None:
        budget.check(held, where, f"column {vin!r} and {len(columns) - 1} enumeration "
                     "field(s)", "keeping their distinct values")

    return piece_lookups(sliced_frames(files, export_plan.schema, columns), export_plan, key,
                         fields, check_held)


def _hash_input(source: ParquetInput, reencode: bool) -> str:
    """The SHA-256 of `source`; on the way, in the same background thread, its page CRCs
    checked where Polars decodes it whole (the copy checks those it reads itself)."""
    digest = sha256_file(source.path)
    if reencode or splice_refusal(source) is not None:
        check_page_checksums(source)
    return digest


def _split_file(
    source: ParquetInput,
    export_plan: ExportPlan,
    lookups: Lookups,
    export_path: Path,
    onshore_path: Path,
    budget: MemoryBudget,
    *,
    reencode: bool,
) -> tuple[FileRecord, FileRecord, dict[str, int]]:
    """Split one input into its two part files: its column chunks copied where a side holds
    a column unchanged, or every column streamed through Polars (`reencode`, or an input
    `splice_refusal` gives a reason not to copy), its row groups measured against `budget`
    first."""
    scanned = {d.column for d in export_plan.fields if d.scanned}
    cost = DecodeCost(scanned, TOKEN_ROW_BYTES)
    try:
        try:
            if reencode or splice_refusal(source) is not None:
                check_decoding([source], budget, None, cost)
                return write_pair(scan(source), export_plan, lookups, export_path,
                                  onshore_path)
            return splice_pair(source, export_plan, lookups, export_path, onshore_path, budget)
        except MemoryBudgetExceeded:  # a row group too large to read whole: in slices
            sliced = row_slices(source.path, budget, None, cost)
            return write_pair(sliced_scan([(source.path, sliced)], export_plan.schema),
                              export_plan, lookups, export_path, onshore_path,
                              row_group_size=min(sliced.rows.values(), default=None))
    except OSError as exc:
        raise write_failed(exc, export_path.parent) from None
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        if is_disk_error(exc):
            raise OutputError(f"cannot write output: {first_line(exc)}") from None
        if (found := locate_corruption(source)) is not None:
            raise found from None
        if isinstance(exc, pl.exceptions.PanicException):  # pyarrow reads it, Polars cannot
            raise InputError(f"{source.path}: Polars cannot read it: {first_line(exc)}") from None
        raise  # not the input's fault: report it as the error it is
