"""The Ray engine's protobuf split: the result of the local protobuf split, the same part names.

In: a `SplitRun` of a `ProtobufBatch`.
Out: the part files in both stagings, reconciled, with the counts the manifests need.
May fail: what the local protobuf split may (`InputError` for a bad record: file, byte offset
and message index), `RayEngineError` for a task that failed for another reason.

How: one Ray task per input file (a delimited stream is framed sequentially, so one task reads
it whole), or per run of up to `engines.protobuf.BATCH_MESSAGES` files of a topic dump; it
decodes with `filter.formats.protobuf.batches.iter_batches`. A first pass returns each task's
distinct VINs, which the driver tokenises (the key never leaves the driver); the second decodes
again and writes a pair of part files per batch (`engines.protobuf.write_batch`), keeping bad
records under the onshore staging's ``quarantine/`` when asked; the driver merges the tallies
(`engines.protobuf_tally`) and reconciles.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

import filter.engines.protobuf as protobuf_engine
from filter.apply.pseudonym import TokenMapping, token_mapping
from filter.engines.engine import SplitRun, WrittenParts
from filter.engines.protobuf import guarded_batches, write_batch
from filter.engines.protobuf_batch import ProtobufBatch, load_message_type
from filter.engines.protobuf_tally import (
    Tally,
    check_unknown,
    manifest_extra,
    manifest_plan,
    quarantine_handler,
    reconcile_outputs,
    source_bytes,
    source_digest,
)
from filter.engines.ray_session import (
    checked_rows,
    error_row,
    import_ray,
    part_entry,
    part_records,
    translated_errors,
    worker_row,
)
from filter.engines.request import OnBadRecord, ProtobufInput
from filter.errors import InputError, OutputError
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf.descriptors import ProtoSchema
from filter.formats.protobuf.framing import BadRecord, Framing, dump_files
from filter.formats.protobuf.framing import OnBadRecord as OnBadRecordCallback
from filter.formats.protobuf.message_rows import iter_dump_batches, row_fields
from filter.formats.protobuf.pieces import Pieces
from filter.formats.protobuf.row_batches import Batch
from filter.memory_budget import MemoryBudget
from filter.outputs.manifest import FileRecord
from filter.outputs.manifest_document import QuarantinedRecord
from filter.policy.catalogue import Catalogue
from filter.policy.plan import ExportPlan


def write_ray_protobuf_parts(run: SplitRun) -> WrittenParts:
    """Split `run`'s protobuf batch on Ray: a pair of part files per batch of messages."""
    batch = run.batch
    assert isinstance(batch, ProtobufBatch)
    ray = import_ray()
    schema, sources, export_plan, options = batch.schema, batch.sources, batch.plan, batch.options
    request, cat, key = run.request, run.catalogue, run.key
    scenario, namespace, framing = request.scenario, options.namespace, options.framing
    on_bad_record, progress = options.on_bad_record, request.progress
    export_staging, onshore_staging = run.staging
    batch_size = protobuf_engine.BATCH_MESSAGES  # read now: tests lower it
    budget = request.budget
    fields = 0 if schema.key_value is not None else row_fields(schema)
    units = _units(sources, framing, batch_size, Pieces(budget), fields)
    hash_source = ray.remote(source_digest)
    input_hashes = [hash_source.remote(s) for s in sources]
    tally = Tally()
    export_files: list[FileRecord] = []
    onshore_files: list[FileRecord] = []
    with translated_errors():
        if units:
            ds = ray.data.from_items(units, override_num_blocks=len(units))
            context = getattr(ds, "context", None) or ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True
            common = {"options": options, "batch_size": batch_size, "budget": budget}
            vins = ds.map_batches(
                _unit_vins, batch_format="pyarrow", batch_size=1,
                fn_kwargs={**common, "vin_column": export_plan.vehicle_id_column,
                           "skip_bad": on_bad_record == "quarantine"},
            )
            distinct: set[str] = set()
            for row in checked_rows(vins):
                distinct.update(row["vins"])
            tokens = token_mapping(key, pl.Series("vin", sorted(distinct), pl.String))
            stats = ds.map_batches(
                _split_unit, batch_format="pyarrow", batch_size=1,
                fn_kwargs={
                    **common, "export_plan": export_plan, "catalogue": cat,
                    "scenario": scenario, "namespace": namespace, "tokens": tokens,
                    "on_bad_record": on_bad_record,
                    "export_dir": str(export_staging),
                    "onshore_dir": str(onshore_staging),
                },
            )
            for done, row in enumerate(checked_rows(stats), start=1):
                for export, onshore in part_records(row, export_staging, onshore_staging):
                    export_files.append(export)
                    onshore_files.append(onshore)
                tally.merge(_tally_from(json.loads(row["tally"]), sources))
                if progress is not None:
                    progress(done, len(units), sum(tally.messages.values()), 0)
        digests = ray.get(input_hashes)
    input_records = [
        FileRecord(s, tally.messages[s], source_bytes(s), digest)
        for s, digest in zip(sources, digests, strict=True)
    ]
    check_unknown(tally, request.on_unknown, namespace, cat.id)
    reconcile_outputs(schema, tally, export_files, onshore_files)
    decided = manifest_plan(export_plan, schema, cat, scenario, namespace, tally)
    extra = manifest_extra(schema, options.message, framing, namespace, tally)
    return WrittenParts(input_records, export_files, onshore_files, tally.detections, decided,
                        extra)


@functools.cache
def _message_type(options: ProtobufInput) -> ProtoSchema:
    """The message type, loaded once per worker process (descriptors do not pickle)."""
    return load_message_type(options)


def _units(
    sources: Sequence[Path], framing: Framing, batch_size: int, pieces: Pieces, fields: int,
) -> list[dict[str, Any]]:
    """The tasks' work, in output order: each input file whole (its messages are framed one
    after another), or a run of up to `batch_size` files of a topic dump (one message each),
    fewer where their sizes say they could need more than one of the `pieces` (a run is one
    batch, read as one: `Pieces.plain_bound` is the most its files can need, whatever they
    hold, so a task never has to cut it, and its part numbers stay the local split's;
    `fields`: a plain row's columns, `message_rows.row_fields`, 0 for key/value).

    Each unit: the input's index, its files, their framing, whether they are a dump's, and
    the batch number its first part file takes (a dump's runs number on).
    """
    units: list[dict[str, Any]] = []
    for index, source in enumerate(sources):
        if not source.is_dir():
            units.append({"source": index, "paths": [str(source)], "framing": framing,
                          "dump": False, "first": 0})
            continue
        files = dump_files(source)
        runs = _dump_runs(files, batch_size, pieces, fields)
        for number, (start, stop) in enumerate(runs):
            units.append({"source": index, "paths": [str(p) for p in files[start:stop]],
                          "framing": "single", "dump": True, "first": number, "start": start})
    return units


def _dump_runs(
    files: list[Path], batch_size: int, pieces: Pieces, fields: int,
) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of a dump's `files`: up to `batch_size` files, and no more
    than one piece can hold at their worst (a file alone may exceed it: reading it refuses
    it if it does)."""
    start, wire = 0, 0
    for i, path in enumerate(files):
        size = _file_size(path)
        if i > start and (i - start == batch_size
                          or pieces.plain_bound(i + 1 - start, wire + size, fields)
                          > pieces.limit):
            yield start, i
            start, wire = i, 0
        wire += size
    if start < len(files):
        yield start, len(files)


def _file_size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:  # gone since it was listed: reading it reports that
        return 0


def _unit_batches(
    schema: ProtoSchema, unit: dict[str, Any], batch_size: int,
    on_bad: OnBadRecordCallback | None, budget: MemoryBudget,
) -> Iterator[Batch]:
    """The batches of one unit: a file's batches; a dump's run of files as one batch (each
    cut to fit in a piece of `budget`: a dump's run was made to fit, `_dump_runs`)."""
    paths = [Path(p) for p in unit["paths"]]
    if not unit["dump"]:
        yield from guarded_batches(paths[0], protobuf_batches.iter_batches(
            schema, paths[0], unit["framing"], batch_size=batch_size, on_bad=on_bad,
            budget=budget))
        return
    # The run's files as one batch, indexed by their place in the whole dump, as locally.
    yield from guarded_batches(paths[0].parent, iter_dump_batches(
        schema, paths, first_index=unit["start"], batch_size=len(paths), on_bad=on_bad,
        pieces=Pieces(budget)))


def _unit_vins(
    batch: pa.Table, *, options: ProtobufInput, batch_size: int, budget: MemoryBudget,
    vin_column: str, skip_bad: bool,
) -> pa.Table:
    """First pass: the distinct VINs of one unit (runs on a worker); bad records are skipped
    when they are to be quarantined (the second pass keeps them), else fail the unit."""
    (unit,) = batch.to_pylist()
    schema = _message_type(options)
    vins: set[str] = set()
    try:
        for read in _unit_batches(schema, unit, batch_size, _skip if skip_bad else None,
                                  budget):
            column = read.distinct(vin_column).drop_nulls()
            vins.update(column.to_list())
    except (InputError, OutputError, OSError) as exc:
        return error_row(exc)
    return worker_row(vins=sorted(vins))


def _skip(record: BadRecord) -> None:
    """A bad-record handler that ignores the record."""


def _split_unit(
    batch: pa.Table, *, options: ProtobufInput, batch_size: int, budget: MemoryBudget,
    export_plan: ExportPlan,
    catalogue: Catalogue, scenario: str, namespace: str, tokens: TokenMapping,
    on_bad_record: OnBadRecord, export_dir: str, onshore_dir: str,
) -> pa.Table:
    """Second pass: split one unit into a pair of part files per batch, keeping bad records
    under the onshore staging's quarantine when asked (runs on a worker).

    Part names are those of the local split, so a retried task rewrites the same files.
    """
    (unit,) = batch.to_pylist()
    schema = _message_type(options)
    tally = Tally()
    source = Path(unit["paths"][0])
    keep = quarantine_handler(Path(onshore_dir), source, tally, on_bad_record)
    parts: list[list[Any]] = []
    messages = 0
    try:
        for number, read in enumerate(_unit_batches(schema, unit, batch_size, keep, budget),
                                      start=unit["first"]):
            messages += read.messages
            name = f"part-{unit['source']:05d}-{number:05d}.parquet"
            out_e, out_o = write_batch(
                schema, read, export_plan, catalogue, scenario, namespace, tokens, tally,
                Path(export_dir) / name, Path(onshore_dir) / name,
            )
            parts.append(part_entry(name, out_e, out_o))
    except (InputError, OutputError, OSError) as exc:
        return error_row(exc)
    summary = {
        "source": unit["source"], "messages": messages,
        "entries": {k: int(v) for k, v in tally.entries.items()},
        "detections": {k: int(v) for k, v in tally.detections.items()},
        "quarantined": [r.to_json() for r in tally.quarantined], "keys": sorted(tally.keys),
    }
    return worker_row(parts=json.dumps(parts), tally=json.dumps(summary))


def _tally_from(summary: dict[str, Any], sources: Sequence[Path]) -> Tally:
    """A unit's tally from the JSON its worker returned."""
    return Tally(
        messages=Counter({sources[summary["source"]]: summary["messages"]}),
        entries=Counter(summary["entries"]),
        detections=Counter(summary["detections"]),
        quarantined=[QuarantinedRecord.from_json(r) for r in summary["quarantined"]],
        keys=set(summary["keys"]),
    )
