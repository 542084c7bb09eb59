"""Run the split on Ray Data: the same `ExportPlan`, applied block by block on a Ray cluster.

In (`split_dataset`): a `ray.data.Dataset` of the batch, a catalogue, a scenario and the key.
Out: two lazy Datasets, (export, onshore), for pipelines.
In (`split_ray`, behind ``vtx split --engine ray``): what `filter.engines.parquet.split` takes, plus
the address of a Ray cluster (none: a local one, started for the run and shut down after).
Out: the same published outputs and `SplitResult` as the local engine, except that the part
files follow Ray's blocks instead of the input files: ``part-NNNNN.parquet`` is the N-th block
in Ray's order, on both sides with the same rows in the same order, and the manifests'
``files`` list them. Together the parts hold every input row once, but not necessarily in
input order: Ray's Parquet reader groups row groups into read tasks by size (deterministic
for the same inputs and cluster). Each manifest reconciles the inputs' rows with its own.
May fail: `RayUnavailableError` (exit 2) when Ray is not installed; the local engine's
errors (`InputError` naming the file and row group of a corrupt input, `OutputError`, ...);
`RayEngineError` for a task that failed for another reason. As with the local engine, a
failed or interrupted run publishes nothing.

How: the driver plans from the inputs' footers. A first Ray pass over the VIN and the
scanned string columns gathers their distinct values (`dataset_lookups`); the driver
tokenises each VIN once, so the key never leaves the driver, and runs the detectors once per
distinct value of each low-cardinality field, as the local engine does. Then one
`map_batches` turns each Arrow block into a Polars frame, splits it with
`filter.apply.columns.split_lazy` and writes both halves as a pair of part files into the two
staging directories, returning one small stats row (rows, bytes and SHA-256 of each side,
detector hit counts); the driver numbers the parts, reconciles the rows, sums the hit
counts, writes both manifests and publishes onshore first, as `filter.engines.parquet.split` does
(the same `staged_outputs`, `write_pair` and `publish_outputs`). Inputs are hashed by Ray
tasks beside the split.

Protobuf input (`split_ray_protobuf`, behind ``vtx split --engine ray --message ...``): the
same result as `filter.engines.protobuf.split_protobuf`, the same part names. One Ray task per
input file (a delimited stream is framed sequentially, so one task reads it whole), or per run
of up to `BATCH_MESSAGES` files of a topic dump; it decodes with
`filter.formats.protobuf.batches.iter_batches`. A first pass returns each task's distinct VINs,
which the driver tokenises; the second decodes again and writes a pair of part files per batch
(`filter.engines.protobuf.write_batch`), keeping bad records under the onshore staging's
``quarantine/`` when asked; the driver merges the tallies, reconciles and publishes with the
helpers of the local protobuf split.

Ray is imported lazily, here only: ``import filter`` never imports it. On a real cluster the
inputs and both targets must be on a file system every node and the driver see at the same
path, and vtx must be installed on every node.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
import pyarrow as pa

import filter.apply.value_tables as value_tables_module
import filter.engines.protobuf as protobuf_split_module
from filter.apply.columns import Lookups, split_lazy
from filter.apply.detectors import BatchVins
from filter.apply.pseudonym import TokenMapping, check_key, key_id, token_mapping
from filter.apply.value_tables import ValueTable, enum_categories, field_strings, value_table
from filter.engines.parquet import (
    ProgressCallback,
    SplitResult,
    check_pin,
    check_targets,
    is_disk_error,
    publish_outputs,
    resolve_catalogue,
    staged_outputs,
    write_pair,
)
from filter.engines.protobuf import (
    OnBadRecord,
    Tally,
    check_unknown,
    guarded_batches,
    manifest_extra,
    manifest_plan,
    prepare_run,
    quarantine_handler,
    reconcile_outputs,
    source_bytes,
    source_digest,
    write_batch,
)
from filter.errors import EXIT_DATA, EXIT_USAGE, InputError, OutputError, VtxError, first_line
from filter.formats.parquet.inputs import (
    ParquetInput,
    expand_inputs,
    inspect_batch,
    locate_corruption,
)
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf import schema as pb
from filter.outputs.manifest import FileRecord, sha256_file
from filter.outputs.signing_keys import resolve_signing_key
from filter.policy.catalogue import Catalogue
from filter.policy.plan import ExportPlan, OnUnknown, plan

if TYPE_CHECKING:
    from ray.data import Dataset

    from filter.outputs.signing_keys import SigningKey

_INSTALL_HINT = ("the ray engine needs the ray extra: pip install '.[ray]' in a vtx checkout "
                 "(distribution vtx-egress)")
#: Name of a part file while its block is in flight; the driver renames it ``part-NNNNN``.
_PENDING = ".pending-"


class RayEngineError(VtxError):
    """The Ray engine failed for a reason that is not the input's or the target's."""

    exit_code = EXIT_DATA


class RayUnavailableError(RayEngineError):
    """Ray is not installed (the ``ray`` extra)."""

    exit_code = EXIT_USAGE


def import_ray() -> ModuleType:
    """The `ray` module, with `ray.data` loaded; `RayUnavailableError` without the extra."""
    try:
        import ray
        import ray.data  # loads the submodule: ray.data.read_parquet, DataContext
    except ImportError:
        raise RayUnavailableError(_INSTALL_HINT) from None
    return ray


# --- in-memory: Dataset in, two Datasets out -------------------------------------------------


def split_dataset(
    ds: Dataset,
    catalogue: Catalogue | str | Path | None,
    scenario: str,
    *,
    key: bytes,
    on_unknown: OnUnknown = "withhold",
    origin: str | None = None,
) -> tuple[Dataset, Dataset]:
    """Split a Ray `Dataset` into lazy (export, onshore) Datasets, for pipelines.

    The plan comes from the Dataset's schema; its distinct VINs and scanned strings are read
    now, in one pass over those columns (`dataset_lookups`); the rest is lazy. Each side is
    its own `map_batches` over `ds` (Arrow blocks in, Polars inside): consuming both runs the
    split twice, each time computing only its side, which costs less than materialising a
    combined block and keeps each Dataset independent. Both hold one row per input row and,
    with ``DataContext.execution_options.preserve_order``, in the same order; otherwise pair
    them by ``vehicle_token`` and the timestamp. Detector hit counts are not reported here
    (`split_ray` writes them to the manifests). A weak `key` is refused
    (`filter.apply.pseudonym.check_key`).
    """
    key = check_key(key)
    import_ray()
    cat = resolve_catalogue(catalogue)
    schema = ds.schema()
    if schema is None:
        raise InputError("the dataset has no schema (is it empty?)")
    base = schema.base_schema if hasattr(schema, "base_schema") else schema
    export_plan = plan(base, cat, scenario, on_unknown=on_unknown, origin=origin)
    lookups = dataset_lookups(ds, export_plan, key)
    sides: list[Dataset] = [
        ds.map_batches(
            _split_side, batch_format="pyarrow", batch_size=None,
            fn_kwargs={"export_plan": export_plan, "lookups": lookups, "side": side},
        )
        for side in ("export", "onshore")
    ]
    return sides[0], sides[1]


def dataset_lookups(ds: Dataset, export_plan: ExportPlan, key: bytes) -> Lookups:
    """What the split looks up by distinct value, from one Ray pass over the VIN and the
    scanned string columns of `ds`, as `filter.engines.parquet.batch_lookups` gets it locally.

    Each block reports its distinct VINs and, per scanned field, its distinct strings (or that
    it has more than `filter.apply.value_tables.DISTINCT_LIMIT`); the driver unions them, tokenises
    each VIN once and runs the detectors once per distinct value of each field that stays
    within the limit (`filter.apply.value_tables.value_tables`). Fields over the limit get no table:
    the engine scans them row by row. Every field within the limit gets a table here, where the
    local engine first judges on a sample which fields hold enumerations, so a field may be
    scanned the other way (same values moved; the onshore side may then hold the field's
    column).
    """
    limit = value_tables_module.DISTINCT_LIMIT  # read now: tests lower it
    scanned = [d for d in export_plan.fields if d.scanned]
    columns = list(dict.fromkeys([export_plan.vehicle_id_column, *(d.column for d in scanned)]))
    blocks = ds.select_columns(columns).map_batches(
        _block_distincts, batch_format="pyarrow", batch_size=None,
        fn_kwargs={"export_plan": export_plan, "limit": limit},
    )
    distinct = pl.DataFrame(schema={"field": pl.String, "value": pl.String})
    over: set[str] = set()
    for batch in blocks.iter_batches(batch_format="pyarrow", batch_size=None):
        block = pl.from_arrow(batch)
        assert isinstance(block, pl.DataFrame)
        over.update(block.filter("overflow")["field"])
        distinct = pl.concat([
            distinct,
            block.filter(~pl.col("field").is_in(over))
            .explode("values").select("field", value="values").drop_nulls("value"),
        ]).unique()
        sizes = distinct.group_by("field").len()
        over.update(sizes.filter(pl.col("len") > limit, pl.col("field") != _VIN)["field"])
        distinct = distinct.filter(~pl.col("field").is_in(over))
    vins = distinct.filter(pl.col("field") == _VIN)["value"]
    batch_vins = BatchVins.of(vins.to_list())  # looked for in the strings, as locally
    tables: dict[str, ValueTable] = {}
    for decision in scanned:
        if decision.path in over:
            continue
        values = distinct.filter(pl.col("field") == decision.path)["value"]
        categories = enum_categories(export_plan.leaf(decision)[1])
        if (table := value_table(values, batch_vins, categories=categories)) is not None:
            tables[decision.path] = table
    return Lookups(tokens=token_mapping(key, vins), tables=tables)


#: The name under which a block reports its distinct VINs (no field path can be it).
_VIN = "\x00vin"


def _block_distincts(batch: pa.Table, *, export_plan: ExportPlan, limit: int) -> pa.Table:
    """One block's distinct VINs and distinct strings per scanned field (runs on a worker).

    Rows: field, values (a list; empty when over `limit`), overflow.
    """
    exprs = [
        pl.col(export_plan.vehicle_id_column).cast(pl.String).unique().drop_nulls()
        .implode().alias(_VIN)
    ]
    for decision in (d for d in export_plan.fields if d.scanned):
        strings = field_strings(*export_plan.leaf(decision))
        exprs.append(strings.unique().drop_nulls().implode().alias(decision.path))
    found = _as_frame(batch, export_plan).select(exprs).collect()
    over = (pl.col("values").list.len() > limit) & (pl.col("field") != _VIN)
    return found.unpivot(variable_name="field", value_name="values").select(
        "field",
        pl.when(over).then(pl.lit([], dtype=pl.List(pl.String))).otherwise("values")
        .alias("values"),
        over.alias("overflow"),
    ).to_arrow()


def _split_side(
    batch: pa.Table, *, export_plan: ExportPlan, lookups: Lookups,
    side: Literal["export", "onshore"],
) -> pa.Table:
    """One side of one block (runs on a worker)."""
    queries = split_lazy(_as_frame(batch, export_plan), export_plan, lookups)
    return (queries.export if side == "export" else queries.onshore).collect().to_arrow()


def _as_frame(batch: pa.Table, export_plan: ExportPlan) -> pl.LazyFrame:
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


@dataclass(frozen=True)
class _Part:
    """What a worker wrote for one block (its stats row)."""

    name: str
    rows: int
    export: FileRecord
    onshore: FileRecord
    detections: dict[str, int]


def split_ray(
    inputs: str | Path | Sequence[str | Path],
    export_dir: str | Path,
    onshore_dir: str | Path,
    scenario: str,
    *,
    key: bytes,
    catalogue: Catalogue | str | Path | None = None,
    on_unknown: OnUnknown = "withhold",
    origin: str | None = None,
    catalogue_sha256: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    address: str | None = None,
    signing_key: SigningKey | None = None,
) -> SplitResult:
    """Split Parquet `inputs` on Ray into published export and onshore directories.

    Takes what `filter.engines.parquet.split` takes (`signing_key` included: the driver signs, the
    key never goes to a worker), plus `address`: when Ray is not initialised
    yet, connect to the cluster there (``"auto"``: the one ``ray start`` runs on this machine;
    None: start a local one) for the run and disconnect after; when it is, use that session.
    `progress` is called per block written, with (blocks done, blocks done, rows done, rows).
    """
    key = check_key(key)
    ray = import_ray()
    started = time.perf_counter()
    cat = resolve_catalogue(catalogue)
    check_pin(cat, catalogue_sha256)
    cat.scenario(scenario)  # fail on a bad scenario before touching any file
    signer = resolve_signing_key(signing_key, key)
    paths = expand_inputs([inputs] if isinstance(inputs, str | Path) else inputs)
    if not paths:
        raise InputError("no input files given")
    sources = inspect_batch(paths)
    export_plan = plan(sources[0].schema, cat, scenario, on_unknown=on_unknown, origin=origin)
    export_target, onshore_target = check_targets(export_dir, onshore_dir, paths)

    run_id = uuid.uuid4().hex
    with (
        ray_session(address),
        staged_outputs(export_target, onshore_target, run_id, overwrite=overwrite,
                       plan=export_plan, input_paths=paths) as stages,
    ):
        export_stage, onshore_stage = stages
        hash_file = ray.remote(sha256_file)
        input_hashes = [hash_file.remote(s.path) for s in sources]
        with _translated_errors(sources):
            ds = ray.data.read_parquet(
                [str(s.path) for s in sources], partitioning=None, file_extensions=None
            )
            # Same part numbers on every run (older Ray: the context current at execution).
            context = getattr(ds, "context", None) or ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True
            lookups = dataset_lookups(ds, export_plan, key)
            parts = _write_parts(
                ds, export_plan, lookups, export_stage.staging, onshore_stage.staging,
                progress, sum(s.rows for s in sources),
            )
            input_records = [
                FileRecord(s.path, s.rows, s.bytes, digest)
                for s, digest in zip(sources, ray.get(input_hashes), strict=True)
            ]
        export_files, onshore_files = _number_parts(
            parts, export_stage.staging, onshore_stage.staging
        )
        _reconcile(input_records, parts)
        detections: Counter[str] = Counter()
        for part in parts:
            detections.update(part.detections)
        manifests = publish_outputs(
            export_plan, run_id, input_records, stages, export_files, onshore_files, detections,
            signing_key=signer,
            key_id=key_id(key),
        )
    return SplitResult.published(
        (export_target, onshore_target), manifests, export_plan, started
    )


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Use the running Ray session, or start one (local, or connected to `address`) for the
    block, with Ray's logging kept to errors and Ray Data's progress output off, and shut it
    down after."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    # Workers print nothing of ours; streaming their logs would only add Ray's own lines
    # (e.g. at shutdown) to the one-line output of the CLI.
    options: dict[str, Any] = {
        # "local": a new cluster even when `ray start` runs one here or RAY_ADDRESS is set.
        "address": address or "local", "logging_level": logging.ERROR, "log_to_driver": False,
    }
    if address is None:
        options["include_dashboard"] = False
    context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.print_on_execution_start)
    data_logger = logging.getLogger("ray.data")
    saved_level = data_logger.level
    try:
        ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RayEngineError(
            f"cannot start or reach the Ray cluster at {address or 'a new local cluster'}: "
            f"{first_line(exc)}",
            hint="start one with `ray start --head`, then use --ray-address auto",
        ) from None
    try:
        # Our own errors name the file; Ray Data's progress lines and its copies of a task's
        # traceback would break the one-line error of the CLI.
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        data_logger.setLevel(logging.CRITICAL)
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        data_logger.setLevel(saved_level)
        ray.shutdown()


def _write_parts(
    ds: Dataset,
    export_plan: ExportPlan,
    lookups: Lookups,
    export_dir: Path,
    onshore_dir: Path,
    progress: ProgressCallback | None,
    total_rows: int,
) -> list[_Part]:
    """Map every block to its pair of part files; the stats rows, in the Dataset's order."""
    stats = ds.map_batches(
        _split_block, batch_format="pyarrow", batch_size=None,
        fn_kwargs={
            "export_plan": export_plan, "lookups": lookups,
            "export_dir": str(export_dir), "onshore_dir": str(onshore_dir),
        },
    )
    parts: list[_Part] = []
    rows_done = 0
    rows = iter(stats.iter_rows())
    try:
        for row in rows:
            if row["error"]:
                error = OutputError if row["error"] == "output" else InputError
                raise error(row["message"])
            parts.append(_Part(
                name=row["name"],
                rows=row["rows"],
                export=FileRecord(
                    export_dir / row["name"], row["export_rows"], row["export_bytes"],
                    row["export_sha256"],
                ),
                onshore=FileRecord(
                    onshore_dir / row["name"], row["onshore_rows"], row["onshore_bytes"],
                    row["onshore_sha256"],
                ),
                detections=json.loads(row["detections"]),
            ))
            rows_done += row["rows"]
            if progress is not None:
                progress(len(parts), len(parts), rows_done, total_rows)
    finally:
        # On failure, stop the blocks still running before the caller discards the staging.
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    return parts


#: The stats row a worker returns for a block.
_STATS = pa.schema([
    ("error", pa.string()),  # None, "input" or "output"
    ("message", pa.string()),
    ("name", pa.string()),
    ("rows", pa.int64()),
    ("export_rows", pa.int64()),
    ("export_bytes", pa.int64()),
    ("export_sha256", pa.string()),
    ("onshore_rows", pa.int64()),
    ("onshore_bytes", pa.int64()),
    ("onshore_sha256", pa.string()),
    ("detections", pa.string()),  # JSON: {"<path>\x1f<detector>": count}
])


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
    row: dict[str, Any] = dict.fromkeys(_STATS.names)
    row.update(name=name, rows=batch.num_rows)
    try:
        out_e, out_o, counts = write_pair(
            _as_frame(batch, export_plan), export_plan, lookups,
            Path(export_dir) / name, Path(onshore_dir) / name,
        )
    except OSError as exc:
        row.update(error="output", message=f"cannot write {export_dir}: {exc.strerror or exc}")
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        if is_disk_error(exc):
            row.update(error="output", message=f"cannot write output: {first_line(exc)}")
        else:  # the block was read, so it is data the plan does not fit
            row.update(error="input", message=f"a block of the input: {first_line(exc)}")
    else:
        row.update(
            export_rows=out_e.rows, export_bytes=out_e.bytes, export_sha256=out_e.sha256,
            onshore_rows=out_o.rows, onshore_bytes=out_o.bytes, onshore_sha256=out_o.sha256,
            detections=json.dumps({k: int(v) for k, v in counts.items()}),
        )
    return pa.Table.from_pylist([row], schema=_STATS)


def _number_parts(
    parts: Sequence[_Part], export_dir: Path, onshore_dir: Path
) -> tuple[list[FileRecord], list[FileRecord]]:
    """Rename the parts ``part-NNNNN.parquet`` in block order; remove leftovers of retries."""
    kept = {p.name for p in parts}
    for directory in (export_dir, onshore_dir):
        for leftover in directory.glob(f"{_PENDING}*"):
            if leftover.name not in kept:
                leftover.unlink()
    export_files: list[FileRecord] = []
    onshore_files: list[FileRecord] = []
    for index, part in enumerate(parts):
        final = f"part-{index:05d}.parquet"
        for record, files in ((part.export, export_files), (part.onshore, onshore_files)):
            try:
                record.path.rename(record.path.with_name(final))
            except OSError as exc:
                raise OutputError(
                    f"cannot rename {record.path}: {exc.strerror or exc}"
                ) from None
            files.append(FileRecord(record.path.with_name(final), record.rows, record.bytes,
                                    record.sha256))
    return export_files, onshore_files


def _reconcile(inputs: Sequence[FileRecord], parts: Sequence[_Part]) -> None:
    """Every block's rows must be in both of its parts, and the blocks must hold the inputs'
    rows; else nothing publishes."""
    for part in parts:
        if not part.rows == part.export.rows == part.onshore.rows:
            raise OutputError(
                f"{part.export.path.name}: rows do not reconcile: block {part.rows}, "
                f"export {part.export.rows}, onshore {part.onshore.rows}; nothing was published"
            )
    expected, got = sum(i.rows for i in inputs), sum(p.rows for p in parts)
    if expected != got:
        raise OutputError(
            f"rows do not reconcile: inputs {expected}, outputs {got}; nothing was published"
        )


@contextmanager
def _translated_errors(sources: Sequence[ParquetInput] = ()) -> Iterator[None]:
    """Turn a failed Ray task into the error vtx would report: a corrupt input names its file
    and row group (found by reading the inputs again on the driver), else `RayEngineError`."""
    try:
        yield
    except VtxError:
        raise
    except Exception as exc:
        for source in sources:
            if (found := locate_corruption(source)) is not None:
                raise found from None
        raise RayEngineError(
            f"a Ray task failed: {_worker_error(exc)}; nothing was published",
            hint="run with --debug for the traceback",
        ) from exc


def _worker_error(exc: BaseException) -> str:
    """The worker's own error line from a Ray error's text (its last ``Name: message`` line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        name, sep, _ = line.partition(": ")
        if sep and name.replace(".", "").isidentifier() and name[:1].isupper():
            return line
    return first_line(exc)


# --- protobuf files in, two published directories out ---------------------------------------


@dataclass(frozen=True)
class _ProtoType:
    """What a worker needs to rebuild the message type (descriptors do not pickle)."""

    descriptor_set: str | None
    message: str
    kv_field: str | None

    def load(self) -> pb.ProtoSchema:
        """The resolved message type, loaded once per worker process."""
        return _load_proto(self)


@functools.cache
def _load_proto(proto: _ProtoType) -> pb.ProtoSchema:
    return pb.load_schema(proto.descriptor_set, proto.message, kv_field=proto.kv_field)


def split_ray_protobuf(
    inputs: str | Path | Sequence[str | Path],
    export_dir: str | Path,
    onshore_dir: str | Path,
    scenario: str,
    *,
    key: bytes,
    message: str,
    descriptor_set: str | Path | None = None,
    framing: pb.Framing = "delimited",
    kv_field: str | None = None,
    namespace: str = "fleet",
    catalogue: Catalogue | str | Path | None = None,
    on_unknown: OnUnknown = "withhold",
    on_bad_record: OnBadRecord = "fail",
    origin: str | None = None,
    catalogue_sha256: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    address: str | None = None,
    signing_key: SigningKey | None = None,
) -> SplitResult:
    """Split protobuf `inputs` on Ray, with the result of `split_protobuf` (same arguments).

    `address` as for `split_ray`. `progress` is called per task done, with (tasks done,
    tasks, messages done, 0). One task per input file, or per run of a topic dump's files.
    """
    key = check_key(key)
    ray = import_ray()
    started = time.perf_counter()
    proto = _ProtoType(
        None if descriptor_set is None else str(descriptor_set), message, kv_field
    )
    run = prepare_run(
        inputs, export_dir, onshore_dir, scenario, load=proto.load, catalogue=catalogue,
        catalogue_sha256=catalogue_sha256, on_unknown=on_unknown, origin=origin,
        namespace=namespace,
    )
    cat, schema, sources, export_plan = run.catalogue, run.schema, run.sources, run.plan
    export_target, onshore_target = run.targets
    signer = resolve_signing_key(signing_key, key)
    batch_size = protobuf_split_module.BATCH_MESSAGES  # read now: tests lower it
    units = _units(sources, framing, batch_size)

    run_id = uuid.uuid4().hex
    with (
        ray_session(address),
        staged_outputs(export_target, onshore_target, run_id, overwrite=overwrite,
                       plan=export_plan, input_paths=sources) as stages,
    ):
        export_stage, onshore_stage = stages
        hash_source = ray.remote(source_digest)
        input_hashes = [hash_source.remote(s) for s in sources]
        tally = Tally()
        export_files: list[FileRecord] = []
        onshore_files: list[FileRecord] = []
        with _translated_errors():
            if units:
                ds = ray.data.from_items(units, override_num_blocks=len(units))
                context = getattr(ds, "context", None) or ray.data.DataContext.get_current()
                context.execution_options.preserve_order = True
                common = {"proto": proto, "batch_size": batch_size}
                vins = ds.map_batches(
                    _unit_vins, batch_format="pyarrow", batch_size=1,
                    fn_kwargs={**common, "vin_column": export_plan.vehicle_id_column,
                               "skip_bad": on_bad_record == "quarantine"},
                )
                distinct: set[str] = set()
                for row in _checked_rows(vins):
                    distinct.update(row["vins"])
                tokens = token_mapping(key, pl.Series("vin", sorted(distinct), pl.String))
                stats = ds.map_batches(
                    _split_unit, batch_format="pyarrow", batch_size=1,
                    fn_kwargs={
                        **common, "export_plan": export_plan, "catalogue": cat,
                        "scenario": scenario, "namespace": namespace, "tokens": tokens,
                        "on_bad_record": on_bad_record,
                        "export_dir": str(export_stage.staging),
                        "onshore_dir": str(onshore_stage.staging),
                    },
                )
                for done, row in enumerate(_checked_rows(stats), start=1):
                    for name, e_rows, e_bytes, e_sha, o_rows, o_bytes, o_sha in json.loads(
                        row["parts"]
                    ):
                        export_files.append(
                            FileRecord(export_stage.staging / name, e_rows, e_bytes, e_sha))
                        onshore_files.append(
                            FileRecord(onshore_stage.staging / name, o_rows, o_bytes, o_sha))
                    tally.merge(_tally_from(json.loads(row["tally"]), sources))
                    if progress is not None:
                        progress(done, len(units), sum(tally.messages.values()), 0)
            digests = ray.get(input_hashes)
        input_records = [
            FileRecord(s, tally.messages[s], source_bytes(s), digest)
            for s, digest in zip(sources, digests, strict=True)
        ]
        check_unknown(tally, on_unknown, namespace, cat.id)
        reconcile_outputs(schema, tally, export_files, onshore_files)
        decided = manifest_plan(export_plan, schema, cat, scenario, namespace, tally)
        extra = manifest_extra(schema, message, framing, namespace, tally)
        manifests = publish_outputs(
            decided, run_id, input_records, stages, export_files, onshore_files,
            tally.detections, key_id=key_id(key), extra=extra, signing_key=signer,
        )
    return SplitResult.published(
        (export_target, onshore_target), manifests, decided, started
    )


def _units(sources: Sequence[Path], framing: pb.Framing, batch_size: int) -> list[dict[str, Any]]:
    """The tasks' work, in output order: each input file whole (its messages are framed one
    after another), or a run of up to `batch_size` files of a topic dump (one message each).

    Each unit: the input's index, its files, their framing, whether they are a dump's, and
    the batch number its first part file takes (a dump's runs number on).
    """
    units: list[dict[str, Any]] = []
    for index, source in enumerate(sources):
        if not source.is_dir():
            units.append({"source": index, "paths": [str(source)], "framing": framing,
                          "dump": False, "first": 0})
            continue
        files = [str(p) for p in pb.dump_files(source)]
        for number, start in enumerate(range(0, len(files), batch_size)):
            units.append({"source": index, "paths": files[start : start + batch_size],
                          "framing": "single", "dump": True, "first": number, "start": start})
    return units


def _unit_batches(
    schema: pb.ProtoSchema, unit: dict[str, Any], batch_size: int,
    on_bad: pb.OnBadRecord | None,
) -> Iterator[pb.Batch]:
    """The batches of one unit: a file's batches; a dump's run of files as one batch."""
    paths = [Path(p) for p in unit["paths"]]
    if not unit["dump"]:
        yield from guarded_batches(paths[0], protobuf_batches.iter_batches(
            schema, paths[0], unit["framing"], batch_size=batch_size, on_bad=on_bad))
        return
    # The run's files as one batch, indexed by their place in the whole dump, as locally.
    yield from guarded_batches(paths[0].parent, pb.iter_dump_batches(
        schema, paths, first_index=unit["start"], batch_size=len(paths), on_bad=on_bad))


#: The row a worker returns for a unit: an error, or its VINs (first pass) or its parts and
#: tally as JSON (second pass).
_UNIT_ROW = pa.schema([
    ("error", pa.string()),  # None, "input" or "output"
    ("message", pa.string()),
    ("vins", pa.list_(pa.string())),
    ("parts", pa.string()),  # JSON: [[name, export rows, bytes, sha256, onshore rows, ...]]
    ("tally", pa.string()),  # JSON: messages, entries, detections, quarantined, keys
])


def _unit_row(**values: Any) -> pa.Table:
    row: dict[str, Any] = dict.fromkeys(_UNIT_ROW.names)
    row.update(values)
    return pa.Table.from_pylist([row], schema=_UNIT_ROW)


def _error_row(exc: Exception) -> pa.Table:
    """What vtx can name about a failure, returned rather than raised (Ray would wrap it)."""
    if isinstance(exc, InputError):
        return _unit_row(error="input", message=exc.message)
    if isinstance(exc, OutputError):
        return _unit_row(error="output", message=exc.message)
    assert isinstance(exc, OSError)
    return _unit_row(error="output", message=f"cannot write output: {exc.strerror or exc}")


def _unit_vins(
    batch: pa.Table, *, proto: _ProtoType, batch_size: int, vin_column: str, skip_bad: bool
) -> pa.Table:
    """First pass: the distinct VINs of one unit (runs on a worker); bad records are skipped
    when they are to be quarantined (the second pass keeps them), else fail the unit."""
    (unit,) = batch.to_pylist()
    schema = proto.load()
    vins: set[str] = set()
    try:
        for read in _unit_batches(schema, unit, batch_size, _skip if skip_bad else None):
            column = read.distinct(vin_column).drop_nulls()
            vins.update(column.to_list())
    except (InputError, OutputError, OSError) as exc:
        return _error_row(exc)
    return _unit_row(vins=sorted(vins))


def _skip(record: pb.BadRecord) -> None:
    """A bad-record handler that ignores the record."""


def _split_unit(
    batch: pa.Table, *, proto: _ProtoType, batch_size: int, export_plan: ExportPlan,
    catalogue: Catalogue, scenario: str, namespace: str, tokens: TokenMapping,
    on_bad_record: OnBadRecord, export_dir: str, onshore_dir: str,
) -> pa.Table:
    """Second pass: split one unit into a pair of part files per batch, keeping bad records
    under the onshore staging's quarantine when asked (runs on a worker).

    Part names are those of the local split, so a retried task rewrites the same files.
    """
    (unit,) = batch.to_pylist()
    schema = proto.load()
    tally = Tally()
    source = Path(unit["paths"][0])
    keep = quarantine_handler(Path(onshore_dir), source, tally, on_bad_record)
    parts: list[list[Any]] = []
    messages = 0
    try:
        for number, read in enumerate(_unit_batches(schema, unit, batch_size, keep),
                                      start=unit["first"]):
            messages += read.messages
            name = f"part-{unit['source']:05d}-{number:05d}.parquet"
            out_e, out_o = write_batch(
                schema, read, export_plan, catalogue, scenario, namespace, tokens, tally,
                Path(export_dir) / name, Path(onshore_dir) / name,
            )
            parts.append([name, out_e.rows, out_e.bytes, out_e.sha256,
                          out_o.rows, out_o.bytes, out_o.sha256])
    except (InputError, OutputError, OSError) as exc:
        return _error_row(exc)
    summary = {
        "source": unit["source"], "messages": messages,
        "entries": {k: int(v) for k, v in tally.entries.items()},
        "detections": {k: int(v) for k, v in tally.detections.items()},
        "quarantined": tally.quarantined, "keys": sorted(tally.keys),
    }
    return _unit_row(parts=json.dumps(parts), tally=json.dumps(summary))


def _tally_from(summary: dict[str, Any], sources: Sequence[Path]) -> Tally:
    """A unit's tally from the JSON its worker returned."""
    return Tally(
        messages=Counter({sources[summary["source"]]: summary["messages"]}),
        entries=Counter(summary["entries"]),
        detections=Counter(summary["detections"]),
        quarantined=summary["quarantined"],
        keys=set(summary["keys"]),
    )


def _checked_rows(ds: Dataset) -> Iterator[dict[str, Any]]:
    """The unit rows of `ds` in order; a worker's error is raised as the error it names."""
    rows = iter(ds.iter_rows())
    try:
        for row in rows:
            if row["error"]:
                raise (OutputError if row["error"] == "output" else InputError)(row["message"])
            yield row
    finally:
        # On failure, stop the tasks still running before the caller discards the staging.
        close = getattr(rows, "close", None)
        if close is not None:
            close()

__all__ = [
    "RayEngineError",
    "RayUnavailableError",
    "dataset_lookups",
    "import_ray",
    "ray_session",
    "split_dataset",
    "split_ray",
    "split_ray_protobuf",
]
