"""A Polars frame's split: in memory (`split_frame`, for pipelines), or written in one pass
as a pair of Parquet part files (`write_pair`, for the engines).

In: a frame, a catalogue and scenario (or a plan and its lookups), the token key.
Out: (export, onshore) frames, or the two part files' records and the detector hit counts.
May fail: `KeyFileError` (a weak key), `CatalogueError`, `ScenarioError`,
`UnclassifiedFieldsError`; `write_pair`: `OSError` and Polars' errors as they come, for the
caller to translate (it knows what was read).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from filter.apply.columns import Lookups, split_lazy
from filter.apply.lookups import batch_lookups
from filter.apply.pseudonym import check_key
from filter.outputs.manifest import FileRecord
from filter.outputs.parts import PARQUET_OPTIONS, HashingFile, part_pair
from filter.policy.catalogue import Catalogue
from filter.policy.pin import resolve_catalogue
from filter.policy.plan import ExportPlan, OnUnknown, plan


def split_frame(
    frame: pl.DataFrame | pl.LazyFrame,
    scenario: str,
    *,
    key: bytes,
    catalogue: Catalogue | str | Path | None = None,
    on_unknown: OnUnknown = "withhold",
    origin: str | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame] | tuple[pl.LazyFrame, pl.LazyFrame]:
    """Split a frame in memory into (export, onshore), for pipelines.

    A `DataFrame` gives two `DataFrame`s; a `LazyFrame` gives two `LazyFrame`s (the VIN column
    is read once to tokenise its distinct values). The caller's frame is not modified.
    `catalogue`: an object, a file, or None for the shipped one. A weak `key` is refused
    (`filter.apply.pseudonym.check_key`).
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


def write_pair(
    frame: pl.LazyFrame,
    export_plan: ExportPlan,
    lookups: Lookups,
    export_path: Path,
    onshore_path: Path,
    *,
    row_group_size: int | None = None,
) -> tuple[FileRecord, FileRecord, dict[str, int]]:
    """Split `frame` into a pair of part files in one pass; also its detector hit counts.

    Both files hold the frame's rows in its order, in row groups of `row_group_size` rows
    (None: Polars' choice); each is hashed as it is written.
    Raises `OSError` (also where Polars failed on a write the disk refused) and Polars errors
    as they come: the caller knows what was read.
    """
    queries = split_lazy(frame, export_plan, lookups)
    options = {**PARQUET_OPTIONS, **({"row_group_size": row_group_size} if row_group_size
                                     else {})}
    with part_pair(export_path, onshore_path) as (export_file, onshore_file):
        done = pl.collect_all([
            queries.export.sink_parquet(export_file, lazy=True, **options),
            queries.onshore.sink_parquet(onshore_file, lazy=True, **options),
            *([queries.detections] if queries.detections is not None else []),
        ])
    counts = dict(queries.known_counts)
    if queries.detections is not None:
        counts.update(done[2].row(0, named=True))
    return written_record(export_file), written_record(onshore_file), counts


def written_record(part: HashingFile) -> FileRecord:
    """The record of a finished part file; rows come from its footer."""
    return FileRecord(part.path, pq.read_metadata(part.path).num_rows, part.size, part.sha256)
