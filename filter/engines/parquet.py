"""Run a split: a Parquet batch in, two published outputs out; and the in-memory split.

In (`split`): input paths (files, directories, globs), the export and onshore target
directories, a scenario, a catalogue (object, path or None for the shipped one), the
pseudonymisation key, and options.
Out: both targets published atomically, each with Parquet part files (``part-00000.parquet`` for
the first input, and so on: the same names, rows and row order on both sides) and a manifest;
a `SplitResult` with both manifests and the time taken.
May fail: `CatalogueError`, `ScenarioError`, `KeyFileError`, `InputError`,
`UnclassifiedFieldsError`, `OutputError`. On any failure, and on interruption, nothing is
published and the staging directories are removed.

How: the plan is compiled once from the batch's schema; the distinct VINs of the batch are read
(one column, `LOOKUP_RUN_ROWS` rows at a time) and tokenised once each, and the distinct values
of low-cardinality exported strings are run through the detectors once each; then each input
file is split row group by row group (`filter.formats.parquet.splice`): the columns a side holds
unchanged are copied as their encoded column chunks, the others (the token, fields an action or
a detector changes) computed by the engine and encoded by Polars, so memory is bounded by a row
group, not the input. With `reencode`, every input file is streamed by Polars through both
projections in a single pass (`sink_parquet(lazy=True)` + `collect_all`) instead. Inputs are
hashed in a background thread while the split runs (and there, for those Polars decodes whole,
their page CRCs checked); outputs are hashed as they are written.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq

from filter.apply import value_tables
from filter.apply.columns import Lookups, split_lazy
from filter.apply.detectors import BatchVins
from filter.apply.pseudonym import check_key, key_id, token_mapping
from filter.apply.value_tables import (
    distinct_query,
    enum_categories,
    enumeration_fields,
    value_table,
)
from filter.errors import CatalogueError, InputError, OutputError, first_line
from filter.formats.parquet.inputs import (
    ParquetInput,
    expand_inputs,
    inspect_batch,
    locate_corruption,
    scan,
)
from filter.formats.parquet.splice import check_page_checksums, splice_pair, splice_refusal
from filter.outputs.half_pair import find_half_pair
from filter.outputs.manifest import FileRecord, build_manifest, sha256_file, write_manifest
from filter.outputs.parts import PARQUET_OPTIONS, HashingFile, part_pair
from filter.outputs.publish import StagedOutput, stage_all
from filter.outputs.signing import sign_manifest
from filter.outputs.signing_keys import resolve_signing_key
from filter.policy.catalogue import Catalogue
from filter.policy.catalogue_loading import load_catalogue
from filter.policy.plan import TOKEN_COLUMN, ExportPlan, OnUnknown, plan

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from filter.outputs.signing_keys import SigningKey

#: Rows of a Parquet batch one query of `batch_lookups` reads. Polars' streaming `unique`
#: holds memory in proportion to the rows it has read (pola-rs/polars#25607): alone, the
#: distinct VINs of 10M rows peaked at 216 MB of RSS, of 50M rows at 375 MB. Runs of this
#: many rows hold what one run holds, however long the batch.
LOOKUP_RUN_ROWS = 5_000_000
#: Called after each input file with (files done, files in all, rows done, rows in all).
ProgressCallback = Callable[[int, int, int, int], None]


@dataclass(frozen=True)
class SplitResult:
    """What a split published."""

    export_dir: Path
    onshore_dir: Path
    export_manifest: dict[str, Any]
    onshore_manifest: dict[str, Any]
    plan: ExportPlan
    seconds: float

    @classmethod
    def published(
        cls,
        targets: tuple[Path, Path],
        manifests: dict[str, dict[str, Any]],
        plan: ExportPlan,
        started: float,
    ) -> SplitResult:
        """The result of a run that published (export, onshore) `targets` with `manifests`;
        `started` is its `time.perf_counter()` at the start."""
        return cls(
            export_dir=targets[0],
            onshore_dir=targets[1],
            export_manifest=manifests["export"],
            onshore_manifest=manifests["onshore"],
            plan=plan,
            seconds=time.perf_counter() - started,
        )

    @property
    def rows(self) -> int:
        """Rows in each output (equal to the input's)."""
        return int(self.export_manifest["rows"])


def check_pin(catalogue: Catalogue, sha256: str | None) -> None:
    """Refuse `catalogue` unless its SHA-256 is `sha256` (when one is given)."""
    if sha256 is not None and sha256.strip().lower() != catalogue.sha256:
        raise CatalogueError(
            [f"{catalogue.source}: catalogue sha256 is {catalogue.sha256}, "
             f"not the pinned {sha256.strip().lower()}"],
            hint="the catalogue changed since it was pinned; review it with `vtx catalogue diff`",
        )


def resolve_catalogue(catalogue: Catalogue | str | Path | None) -> Catalogue:
    """A `Catalogue` from an object, a file path, or None for the shipped default."""
    return catalogue if isinstance(catalogue, Catalogue) else load_catalogue(catalogue)


def split_frame(
    frame: pl.DataFrame | pl.LazyFrame,
    catalogue: Catalogue | str | Path | None,
    scenario: str,
    *,
    key: bytes,
    on_unknown: OnUnknown = "withhold",
    origin: str | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame] | tuple[pl.LazyFrame, pl.LazyFrame]:
    """Split a frame in memory into (export, onshore), for pipelines.

    A `DataFrame` gives two `DataFrame`s; a `LazyFrame` gives two `LazyFrame`s (the VIN column
    is read once to tokenise its distinct values). The caller's frame is not modified.
    A weak `key` is refused (`filter.apply.pseudonym.check_key`).
    """
    key = check_key(key)
    cat = resolve_catalogue(catalogue)
    lazy = frame.lazy()
    export_plan = plan(lazy.collect_schema(), cat, scenario, on_unknown=on_unknown, origin=origin)
    queries = split_lazy(lazy, export_plan, batch_lookups(lazy, export_plan, key))
    if isinstance(frame, pl.LazyFrame):
        return queries.export, queries.onshore
    out_export, out_onshore = pl.collect_all([queries.export, queries.onshore])
    return out_export, out_onshore


def split(
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
    reencode: bool = False,
    signing_key: SigningKey | None = None,
) -> SplitResult:
    """Split Parquet `inputs` into published export and onshore directories.

    `origin` is where the batch comes from (a scenario may accept only some origins);
    `catalogue_sha256` pins the catalogue: any other catalogue is refused. The columns a side
    holds unchanged are copied as the input encoded them (`filter.formats.parquet.splice`);
    `reencode` has Polars decode and encode every column instead (zstd level 1). A weak
    `key` is refused (`filter.apply.pseudonym.check_key`).
    `signing_key` (an Ed25519 key or its file, not the token key): sign both manifests
    (`filter.outputs.signing`); None: unsigned.
    """
    started = time.perf_counter()
    key = check_key(key)
    cat = resolve_catalogue(catalogue)
    check_pin(cat, catalogue_sha256)
    cat.scenario(scenario)  # fail on a bad scenario before touching any file
    signer = resolve_signing_key(signing_key, key)  # refused before any file is touched
    paths = expand_inputs([inputs] if isinstance(inputs, str | Path) else inputs)
    if not paths:
        raise InputError("no input files given")
    sources = inspect_batch(paths)
    export_plan = plan(sources[0].schema, cat, scenario, on_unknown=on_unknown, origin=origin)
    export_target, onshore_target = check_targets(export_dir, onshore_dir, paths)

    run_id = uuid.uuid4().hex
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="vtx-hash") as hasher,
        staged_outputs(export_target, onshore_target, run_id, overwrite=overwrite,
                       plan=export_plan, input_paths=paths) as stages,
    ):
        export_stage, onshore_stage = stages
        input_hashes = [hasher.submit(_hash_input, s, reencode) for s in sources]
        lookups = _source_lookups(sources, export_plan, key)
        export_files, onshore_files, detections = _write_parts(
            sources, export_plan, lookups, export_stage.staging, onshore_stage.staging, progress,
            reencode=reencode,
        )
        input_records = [
            FileRecord(s.path, s.rows, s.bytes, h.result())
            for s, h in zip(sources, input_hashes, strict=True)
        ]
        _reconcile(input_records, export_files, onshore_files)
        manifests = publish_outputs(
            export_plan, run_id, input_records, stages, export_files, onshore_files, detections,
            signing_key=signer,
            key_id=key_id(key),
        )
    return SplitResult.published(
        (export_target, onshore_target), manifests, export_plan, started
    )


@contextmanager
def staged_outputs(
    export_target: Path, onshore_target: Path, run_id: str, *, overwrite: bool,
    plan: ExportPlan, input_paths: Sequence[Path],
) -> Iterator[tuple[StagedOutput, StagedOutput]]:
    """Staging directories for (export, onshore); both are removed if the block fails.

    On any failure, and on interruption, whatever was staged is discarded: nothing publishes.
    Without `overwrite`, a half-published pair of the same split (`filter.outputs.half_pair`: `plan`
    and `input_paths` say what this split is) may be replaced, so a re-run completes it; one of
    another split is refused, saying what to do.
    """
    half = None if overwrite else find_half_pair(export_target, onshore_target)
    if half is not None and (refusal := half.refusal(plan, input_paths)) is not None:
        raise refusal
    onshore, export = stage_all(
        [onshore_target, export_target], run_id, overwrite=overwrite,
        replace_if={onshore_target: half.still_there} if half is not None else None,
    )
    try:
        yield export, onshore
    except BaseException:
        for s in (onshore, export):
            s.discard()
        raise


def publish_outputs(
    export_plan: ExportPlan,
    run_id: str,
    inputs: Sequence[FileRecord],
    stages: tuple[StagedOutput, StagedOutput],
    export_files: Sequence[FileRecord],
    onshore_files: Sequence[FileRecord],
    detections: Mapping[str, int],
    *,
    key_id: str,
    extra: Mapping[str, Any] | None = None,
    signing_key: Ed25519PrivateKey | None = None,
) -> dict[str, dict[str, Any]]:
    """Write both manifests into the (export, onshore) `stages` and publish them, onshore first.

    The caller has reconciled the rows. `key_id` is the key's (`filter.apply.pseudonym.key_id`).
    `extra` adds top-level keys to both manifests (what an input format records about
    itself). With `signing_key`, each manifest is signed in staging
    (`filter.outputs.signing.sign_manifest`), so an output publishes signed or not at all.
    Returns the manifests by destination.
    """
    export_stage, onshore_stage = stages
    if onshore_stage.replace_if is not None:  # completing a half pair: still the same inputs?
        half = find_half_pair(export_stage.target, onshore_stage.target)
        if half is not None and (refusal := half.refusal(
                export_plan, [i.path for i in inputs], inputs)) is not None:
            raise refusal
    manifests = {}
    for destination, files, own, other in (
        ("export", export_files, export_stage, onshore_stage.target),
        ("onshore", onshore_files, onshore_stage, export_stage.target),
    ):
        manifests[destination] = build_manifest(
            destination=destination, plan=export_plan, run_id=run_id,
            inputs=inputs, files=files, counterpart=other, key_id=key_id, detections=detections,
            extra=extra,
        )
        write_manifest(own.staging, manifests[destination])
        if signing_key is not None:
            sign_manifest(own.staging, signing_key)
    # Onshore first: an export never stands published without its onshore half.
    onshore_stage.publish()
    export_stage.publish()
    return manifests


def _write_parts(
    sources: Sequence[ParquetInput],
    export_plan: ExportPlan,
    lookups: Lookups,
    export_dir: Path,
    onshore_dir: Path,
    progress: ProgressCallback | None,
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
            source, export_plan, lookups, export_dir / name, onshore_dir / name, reencode=reencode
        )
        export_files.append(export_file)
        onshore_files.append(onshore_file)
        detections.update(counts)
        rows_done += source.rows
        if progress is not None:
            progress(index + 1, len(sources), rows_done, total_rows)
    return export_files, onshore_files, detections


def check_targets(
    export_dir: str | Path, onshore_dir: str | Path, inputs: Iterable[Path]
) -> tuple[Path, Path]:
    """The absolute targets; refused when they overlap each other or hold an input."""
    export_target = Path(export_dir).absolute()
    onshore_target = Path(onshore_dir).absolute()
    e, o = export_target.resolve(), onshore_target.resolve()
    if e == o or e in o.parents or o in e.parents:
        raise OutputError(
            f"export {export_target} and onshore {onshore_target} must be separate directories, "
            "neither inside the other"
        )
    for path in inputs:
        for target in (e, o):
            if target in path.parents:
                raise OutputError(f"{target}: target holds input {path}; choose another target")
    return export_target, onshore_target


def batch_lookups(
    frame: pl.LazyFrame, export_plan: ExportPlan, key: bytes, *, rows: int | None = None
) -> Lookups:
    """What the split looks up by distinct value: one pass over the VIN column and the
    string fields that hold enumerations (`filter.apply.value_tables`).

    `rows`: the frame's height, given when a slice of the frame reads only its own rows (a
    Parquet scan); the pass then reads `LOOKUP_RUN_ROWS` rows at a time. None: one query.
    """
    enumerations = enumeration_fields(frame, export_plan)
    vins = pl.col(export_plan.vehicle_id_column).cast(pl.String).unique()
    runs = ([frame] if rows is None or rows <= LOOKUP_RUN_ROWS else
            [frame.slice(offset, LOOKUP_RUN_ROWS) for offset in range(0, rows, LOOKUP_RUN_ROWS)])
    distinct_vins: pl.Series | None = None
    distinct: dict[str, pl.Series] = {}  # by path: what the runs so far found
    for run in runs:
        # A field already past the limit gets no table: it is not read again.
        fields = [d for d in enumerations
                  if len(distinct.get(d.path, ())) <= value_tables.DISTINCT_LIMIT]
        queries = [run.select(vins), *(distinct_query(run, export_plan, d) for d in fields)]
        # A slice's queries one by one: `collect_all` would cache the slice they share, whole.
        found, *values = (pl.collect_all(queries) if len(runs) == 1 else
                          [query.collect(engine="streaming") for query in queries])
        distinct_vins = _union(distinct_vins, found.to_series())
        for decision, frame_values in zip(fields, values, strict=True):
            distinct[decision.path] = _union(distinct.get(decision.path),
                                             frame_values.to_series())
    assert distinct_vins is not None
    # The batch's own VINs are looked for in its strings too (the `batch_vin` detector).
    batch_vins = BatchVins.of(distinct_vins.to_list())
    dtypes = {d.path: export_plan.leaf(d)[1] for d in enumerations}
    tables = {
        path: table for path, values in distinct.items()
        if (table := value_table(values, batch_vins,
                                 categories=enum_categories(dtypes[path]))) is not None
    }
    return Lookups(tokens=token_mapping(key, distinct_vins), tables=tables)


def _union(seen: pl.Series | None, found: pl.Series) -> pl.Series:
    """The distinct values of `seen` and `found` together."""
    return found if seen is None else pl.concat([seen, found]).unique()


def _source_lookups(
    sources: Sequence[ParquetInput], export_plan: ExportPlan, key: bytes
) -> Lookups:
    """`batch_lookups` over every input file; a read failure names the file and row group."""
    try:
        # glob=False: a path is that file, even with `[` in its name (Polars would glob it).
        frame = pl.scan_parquet([s.path for s in sources], glob=False)
        return batch_lookups(frame, export_plan, key, rows=sum(s.rows for s in sources))
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        for source in sources:
            if (found := locate_corruption(source)) is not None:
                raise found from None
        if isinstance(exc, pl.exceptions.PanicException):  # pyarrow reads it, Polars cannot
            names = str(sources[0].path) if len(sources) == 1 else f"one of {len(sources)} inputs"
            raise InputError(f"{names}: Polars cannot read it: {first_line(exc)}") from None
        raise


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
    *,
    reencode: bool,
) -> tuple[FileRecord, FileRecord, dict[str, int]]:
    """Split one input into its two part files: its column chunks copied where a side holds
    a column unchanged, or every column streamed through Polars (`reencode`, or an input
    `splice_refusal` gives a reason not to copy)."""
    try:
        if reencode or splice_refusal(source) is not None:
            return write_pair(scan(source), export_plan, lookups, export_path, onshore_path)
        return splice_pair(source, export_plan, lookups, export_path, onshore_path)
    except OSError as exc:
        raise OutputError(f"cannot write {export_path.parent}: {exc.strerror or exc}") from None
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        if is_disk_error(exc):
            raise OutputError(f"cannot write output: {first_line(exc)}") from None
        if (found := locate_corruption(source)) is not None:
            raise found from None
        if isinstance(exc, pl.exceptions.PanicException):  # pyarrow reads it, Polars cannot
            raise InputError(f"{source.path}: Polars cannot read it: {first_line(exc)}") from None
        raise  # not the input's fault: report it as the error it is


def write_pair(
    frame: pl.LazyFrame,
    export_plan: ExportPlan,
    lookups: Lookups,
    export_path: Path,
    onshore_path: Path,
) -> tuple[FileRecord, FileRecord, dict[str, int]]:
    """Split `frame` into a pair of part files in one pass; also its detector hit counts.

    Both files hold the frame's rows in its order; each is hashed as it is written.
    Raises `OSError` (also where Polars failed on a write the disk refused) and Polars errors
    as they come: the caller knows what was read.
    """
    queries = split_lazy(frame, export_plan, lookups)
    with part_pair(export_path, onshore_path) as (export_file, onshore_file):
        done = pl.collect_all([
            queries.export.sink_parquet(export_file, lazy=True, **PARQUET_OPTIONS),
            queries.onshore.sink_parquet(onshore_file, lazy=True, **PARQUET_OPTIONS),
            *([queries.detections] if queries.detections is not None else []),
        ])
    counts = dict(queries.known_counts)
    if queries.detections is not None:
        counts.update(done[2].row(0, named=True))
    return _written(export_file), _written(onshore_file), counts


def _written(part: HashingFile) -> FileRecord:
    """The record of a finished part file; rows come from its footer."""
    return FileRecord(part.path, pq.read_metadata(part.path).num_rows, part.size, part.sha256)


def _reconcile(
    inputs: list[FileRecord], export: list[FileRecord], onshore: list[FileRecord]
) -> None:
    """Both outputs must hold exactly the input's rows, file for file; else nothing publishes."""
    for source, out_e, out_o in zip(inputs, export, onshore, strict=True):
        if not source.rows == out_e.rows == out_o.rows:
            raise OutputError(
                f"{source.path}: rows do not reconcile: input {source.rows}, "
                f"export {out_e.rows}, onshore {out_o.rows}; nothing was published"
            )


def is_disk_error(exc: BaseException) -> bool:
    """Whether a writer's error is the disk's (full, over quota, read-only)."""
    text = str(exc).lower()
    return "no space left" in text or "disk quota" in text or "read-only file system" in text


__all__ = ["TOKEN_COLUMN", "SplitResult", "split", "split_frame"]
