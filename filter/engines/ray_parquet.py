"""The Ray engine's Parquet split: the same `ExportPlan`, applied block by block on a cluster.

In: a `SplitRun` of a `ParquetBatch`.
Out: the part files in both stagings, reconciled: ``part-NNNNN.parquet`` is the N-th block in
Ray's order, on both sides with the same rows in the same order, and the manifests' ``files``
list them. Together the parts hold every input row once, but not necessarily in input order:
Ray's Parquet reader groups row groups into read tasks by size (deterministic for the same
inputs and cluster).
May fail: `InputError` naming the file and row group of a corrupt input, `OutputError`,
`RayEngineError` for a task that failed for another reason.

How: a first Ray pass over the VIN and the scanned string columns gathers their distinct
values (`dataset_lookups`); the driver tokenises each VIN once, so the key never leaves the
driver, and runs the detectors once per distinct value of each low-cardinality field. Then one
`map_batches` turns each Arrow block into a Polars frame, splits it and writes both halves as
a pair of part files into the two stagings (`engines.frames.write_pair`), returning a worker
row (`engines.ray_session.WORKER_ROW`); the driver numbers the parts and reconciles them.
Inputs are hashed by Ray tasks beside the split. On a real cluster the inputs and both targets
must be on a file system every node and the driver see at the same path.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

import filter.apply.value_tables as value_tables_module
from filter.apply.columns import Lookups
from filter.apply.lookups import DistinctValues
from filter.apply.value_tables import enumeration_fields, field_strings
from filter.engines.engine import SplitRun, WrittenParts
from filter.engines.frames import write_pair
from filter.engines.parquet_batch import ParquetBatch
from filter.engines.ray_session import (
    checked_rows,
    import_ray,
    part_entry,
    part_records,
    translated_errors,
    worker_row,
)
from filter.engines.request import ProgressCallback
from filter.errors import OutputError, first_line, is_disk_error, os_reason, write_failed
from filter.formats.parquet.decode_budget import DecodeCost, check_decoding
from filter.memory_budget import TOKEN_ROW_BYTES
from filter.outputs.manifest import FileRecord, sha256_file
from filter.outputs.reconcile import reconcile_pairs
from filter.policy.plan import ExportPlan, FieldDecision

if TYPE_CHECKING:
    from ray.data import Dataset

#: Name of a part file while its block is in flight; the driver renames it ``part-NNNNN``.
_PENDING = ".pending-"


def write_ray_parquet_parts(run: SplitRun) -> WrittenParts:
    """Split `run`'s Parquet batch on Ray into numbered pairs of part files."""
    batch = run.batch
    assert isinstance(batch, ParquetBatch)
    ray = import_ray()
    sources, export_plan = batch.sources, batch.plan
    export_staging, onshore_staging = run.staging
    # Ray's readers decode whole row groups: each is measured against the budget first.
    scanned = {d.column for d in export_plan.fields if d.scanned}
    check_decoding(sources, run.request.budget, None, DecodeCost(scanned, TOKEN_ROW_BYTES))
    hash_file = ray.remote(sha256_file)
    input_hashes = [hash_file.remote(s.path) for s in sources]
    with translated_errors(sources):
        ds = ray.data.read_parquet(
            [str(s.path) for s in sources], partitioning=None, file_extensions=None
        )
        # Same part numbers on every run (older Ray: the context current at execution).
        context = getattr(ds, "context", None) or ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        lookups = dataset_lookups(ds, export_plan, run.key)
        parts, detections = _write_parts(
            ds, export_plan, lookups, export_staging, onshore_staging,
            run.request.progress, batch.rows,
        )
        inputs = [FileRecord(s.path, s.rows, s.bytes, digest)
                  for s, digest in zip(sources, ray.get(input_hashes), strict=True)]
    export_files, onshore_files = _number_parts(parts, export_staging, onshore_staging)
    reconcile_pairs(batch.rows, export_files, onshore_files)
    return WrittenParts(inputs, export_files, onshore_files, detections, export_plan)


def dataset_lookups(ds: Dataset, export_plan: ExportPlan, key: bytes) -> Lookups:
    """What the split looks up by distinct value, as `filter.apply.lookups.batch_lookups`
    gets it locally, with the same `DistinctValues`: the enumeration fields judged on the
    Dataset's first `value_tables.SAMPLE_ROWS` rows (read by the driver), then one Ray pass
    over the VIN and those fields, each block reporting its distinct values (or that it has
    more than `value_tables.DISTINCT_LIMIT`). The driver tokenises each VIN once, so the key
    never leaves it, and runs the detectors once per distinct value.
    """
    scanned = [d for d in export_plan.fields if d.scanned]
    columns = list(dict.fromkeys([export_plan.vehicle_id_column, *(d.column for d in scanned)]))
    projected = ds.select_columns(columns)
    fields: list[FieldDecision] = []
    if scanned:
        sample = list(projected.limit(value_tables_module.SAMPLE_ROWS).iter_batches(
            batch_format="pyarrow", batch_size=None))
        if sample:
            fields = enumeration_fields(block_frame(pa.concat_tables(sample), export_plan),
                                        export_plan)
    distinct = DistinctValues(fields)
    blocks = projected.map_batches(
        _block_distincts, batch_format="pyarrow", batch_size=None,
        fn_kwargs={"export_plan": export_plan, "fields": fields,
                   "limit": value_tables_module.DISTINCT_LIMIT},  # read now: tests lower it
    )
    for batch in blocks.iter_batches(batch_format="pyarrow", batch_size=None):
        block = pl.from_arrow(batch)
        assert isinstance(block, pl.DataFrame)
        for row in block.iter_rows(named=True):
            values = row["values"]
            series = pl.Series("value", values, pl.String)
            if row["field"] == _VIN:
                distinct.add(series)
            else:
                distinct.add(None, {row["field"]: None if row["overflow"] else series})
    return distinct.lookups(export_plan, key)


#: The name under which a block reports its distinct VINs (no field path can be it).
_VIN = "\x00vin"


def _block_distincts(
    batch: pa.Table, *, export_plan: ExportPlan, fields: list[FieldDecision], limit: int
) -> pa.Table:
    """One block's distinct VINs and distinct strings of each of `fields` (runs on a worker).

    Rows: field, values (a list; empty when over `limit`), overflow.
    """
    exprs = [
        pl.col(export_plan.vehicle_id_column).cast(pl.String).unique().drop_nulls()
        .implode().alias(_VIN)
    ]
    for decision in fields:
        strings = field_strings(*export_plan.leaf(decision))
        exprs.append(strings.unique().drop_nulls().implode().alias(decision.path))
    found = block_frame(batch, export_plan).select(exprs).collect()
    over = (pl.col("values").list.len() > limit) & (pl.col("field") != _VIN)
    return found.unpivot(variable_name="field", value_name="values").select(
        "field",
        pl.when(over).then(pl.lit([], dtype=pl.List(pl.String))).otherwise("values")
        .alias("values"),
        over.alias("overflow"),
    ).to_arrow()


def block_frame(batch: pa.Table, export_plan: ExportPlan) -> pl.LazyFrame:
    """A block as a Polars frame of exactly the planned types (strict: no silent change).

    A block may hold only some of the planned columns (a projection); a column the split
    needs and the block lacks fails the split, naming it.
    """
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    differ = {
        c: t for c, t in export_plan.schema.items() if c in frame.schema and frame.schema[c] != t
    }
    return (frame.cast(differ) if differ else frame).lazy()


# --- files in, two published directories out ------------------------------------------------


def _write_parts(
    ds: Dataset,
    export_plan: ExportPlan,
    lookups: Lookups,
    export_dir: Path,
    onshore_dir: Path,
    progress: ProgressCallback | None,
    total_rows: int,
) -> tuple[list[tuple[FileRecord, FileRecord]], Counter[str]]:
    """Map every block to its pair of part files: their records, in the Dataset's order, and
    the detector hit counts of all blocks."""
    stats = ds.map_batches(
        _split_block, batch_format="pyarrow", batch_size=None,
        fn_kwargs={
            "export_plan": export_plan, "lookups": lookups,
            "export_dir": str(export_dir), "onshore_dir": str(onshore_dir),
        },
    )
    parts: list[tuple[FileRecord, FileRecord]] = []
    detections: Counter[str] = Counter()
    rows_done = 0
    for row in checked_rows(stats):
        parts += part_records(row, export_dir, onshore_dir)
        detections.update(json.loads(row["tally"])["detections"])
        rows_done += row["rows"]
        if progress is not None:
            progress(len(parts), len(parts), rows_done, total_rows)
    return parts, detections


def _split_block(
    batch: pa.Table, *, export_plan: ExportPlan, lookups: Lookups, export_dir: str,
    onshore_dir: str,
) -> pa.Table:
    """Split one block into a pair of part files; return its stats row (runs on a worker).

    Errors vtx can name are returned in the row, not raised: Ray Data would wrap them and
    lose their type. A retried block writes under a fresh name; the driver drops the
    leftovers.
    """
    name = f"{_PENDING}{uuid.uuid4().hex}.parquet"
    try:
        out_e, out_o, counts = write_pair(
            block_frame(batch, export_plan), export_plan, lookups,
            Path(export_dir) / name, Path(onshore_dir) / name,
        )
    except OSError as exc:
        return worker_row(error="output", message=write_failed(exc, export_dir).message)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        if is_disk_error(exc):
            return worker_row(error="output", message=f"cannot write output: {first_line(exc)}")
        # the block was read, so it is data the plan does not fit
        return worker_row(error="input", message=f"a block of the input: {first_line(exc)}")
    return worker_row(rows=batch.num_rows, parts=json.dumps([part_entry(name, out_e, out_o)]),
                      tally=json.dumps({"detections": {k: int(v) for k, v in counts.items()}}))


def _number_parts(
    parts: Sequence[tuple[FileRecord, FileRecord]], export_dir: Path, onshore_dir: Path
) -> tuple[list[FileRecord], list[FileRecord]]:
    """Rename the parts ``part-NNNNN.parquet`` in block order; remove leftovers of retries."""
    kept = {export.path.name for export, _ in parts}
    for directory in (export_dir, onshore_dir):
        for leftover in directory.glob(f"{_PENDING}*"):
            if leftover.name not in kept:
                leftover.unlink()
    export_files: list[FileRecord] = []
    onshore_files: list[FileRecord] = []
    for index, (export, onshore) in enumerate(parts):
        final = f"part-{index:05d}.parquet"
        for record, files in ((export, export_files), (onshore, onshore_files)):
            try:
                record.path.rename(record.path.with_name(final))
            except OSError as exc:
                raise OutputError(
                    f"cannot rename {record.path}: {os_reason(exc)}"
                ) from None
            files.append(FileRecord(record.path.with_name(final), record.rows, record.bytes,
                                    record.sha256))
    return export_files, onshore_files
