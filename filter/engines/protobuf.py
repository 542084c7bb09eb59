"""The local engine's protobuf split: each batch of messages into a pair of part files.

In: a `SplitRun` of a `ProtobufBatch` (its stagings, plan, key, options).
Out: per batch of messages a pair of part files (``part-<input>-<batch>.parquet``, or ``.pb``
for protobuf output; the same names on both sides), reconciled; their records, the detector
counts, the plan the manifests list and their protobuf keys (`engines.protobuf_tally`). Plain
messages give one row per message, split column by column with the same engine
(`filter.apply.columns`); key/value envelopes give one row per entry, routed entry by entry
(`filter.apply.kv_routing`).
May fail: `InputError` for a bad record (file, byte offset and message index). With
``on_bad_record="quarantine"`` bad records are kept instead, raw, under the onshore output's
``quarantine/`` with their offsets, counted in the manifests, and the run goes on.

Streaming: messages are decoded in batches; memory is bounded by the batch, not the stream.
A batch is at most `BATCH_MESSAGES` messages, and fewer where their bytes and entries would
need more than a piece of the request's memory budget (`formats.protobuf.pieces`); a message
that alone would is refused (`MemoryBudgetExceeded`, exit 1) and nothing is published.
"""

from __future__ import annotations

import functools
import io
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from filter.apply.columns import COUNT_SEPARATOR, MOVED, Lookups, detector_counts
from filter.apply.detectors import BatchVins, any_hit
from filter.apply.kv_decoded_routing import split_decoded
from filter.apply.kv_routing import (
    KeyValueQueries,
    StringVerdicts,
    split_key_values,
)
from filter.apply.messages import timestamp_cut, write_plain_streams
from filter.apply.pseudonym import TokenMapping, token_mapping
from filter.engines.engine import SplitRun, WrittenParts
from filter.engines.frames import write_pair, written_record
from filter.engines.protobuf_batch import ProtobufBatch
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
from filter.errors import (
    OutputError,
    first_line,
    is_disk_error,
    read_failed,
    write_failed,
)
from filter.formats.parquet.metadata import plain_string_metadata
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf import writer as pbw
from filter.formats.protobuf.descriptors import ProtoSchema
from filter.formats.protobuf.message_rows import UNKNOWN_FIELDS
from filter.formats.protobuf.row_batches import Batch, RawMessages
from filter.outputs.manifest import FileRecord
from filter.outputs.manifest_document import OutputFormat
from filter.outputs.parts import PARQUET_OPTIONS, part_pair
from filter.policy.catalogue import Catalogue, action_for
from filter.policy.plan import ExportPlan
from filter.prefetch import mapped_ahead, prefetched

#: Messages decoded per batch (and per pair of part files), with Parquet output. Each batch
#: costs some 20 ms of fixed work (a few hundred calls per side and column); on 1M and 5M
#: key/value messages 50,000 split 10-15% faster than 25,000, at 710-740 MB peak (510-550).
BATCH_MESSAGES = 50_000
#: The same with protobuf output (`--output-format protobuf`), which also does best at 50,000.
STREAM_BATCH_MESSAGES = 50_000


def write_protobuf_parts(run: SplitRun) -> WrittenParts:
    """Split every input of `run`'s protobuf batch into pairs of part files, batch by batch."""
    batch_of_run = run.batch
    assert isinstance(batch_of_run, ProtobufBatch)
    schema, sources, export_plan = batch_of_run.schema, batch_of_run.sources, batch_of_run.plan
    options, request, cat, key = batch_of_run.options, run.request, run.catalogue, run.key
    scenario, namespace, framing = request.scenario, options.namespace, options.framing
    export_staging, onshore_staging = run.staging
    tally = Tally()
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="vtx-hash") as hasher,
        # Inside the staging: on a failure, its last write ends before the staging is removed.
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="vtx-write") as writer,
    ):
        hashes = [hasher.submit(source_digest, s) for s in sources]
        export_files: list[FileRecord] = []
        onshore_files: list[FileRecord] = []
        pairs: deque[PartPair] = deque()

        def take(pair: PartPair) -> None:
            """Record a written batch (waiting for its writer thread, if it has one)."""
            export_file, onshore_file = pair.result() if isinstance(pair, Future) else pair
            export_files.append(export_file)
            onshore_files.append(onshore_file)

        tokens: TokenMapping = {}
        verdicts = StringVerdicts()  # the detectors' verdicts on key/value string values
        streams = request.output_format == "protobuf"
        write, suffix = (write_stream_batch, pbw.PART_SUFFIX) if streams else (
            write_batch, ".parquet")
        for index, source in enumerate(sources):
            quarantine = quarantine_handler(onshore_staging, source, tally,
                                            options.on_bad_record)
            batches = protobuf_batches.iter_batches(
                schema, source, framing, on_bad=quarantine,
                batch_size=STREAM_BATCH_MESSAGES if streams else BATCH_MESSAGES,
                budget=request.budget,
            )

            def tokened(
                batches: Iterable[Batch],
            ) -> Iterator[tuple[Batch, TokenMapping]]:
                """Batches with the tokens of their VINs, in order (each VIN is hashed once
                per run)."""
                for batch in batches:
                    vins = batch.distinct(export_plan.vehicle_id_column)
                    tokens.update(token_mapping(key, vins.filter(~vins.is_in(list(tokens)))))
                    yield batch, dict(tokens)  # this batch's view: the next one may add to it

            def queried(
                item: tuple[Batch, TokenMapping],
            ) -> tuple[Batch, TokenMapping, KeyValueQueries | None]:
                batch, known = item
                queries = batch_queries(schema, batch, cat, scenario, namespace, known,
                                        rows=not streams, verdicts=verdicts)
                if streams or queries is None or not queries.files or None in queries.files:
                    return batch, known, queries
                # Both sides encoded: the writer needs their files and the counts only, and
                # the batch's decoded arrays (about 40 bytes an entry) need not wait for it.
                return Batch(None, batch.messages), known, queries.files_only()

            def prepared(
                source: Path = source, batches: Iterable[Batch] = batches
            ) -> Iterator[tuple[Batch, TokenMapping, KeyValueQueries | None]]:
                """Batches with their tokens and queries: built ahead, in the read-ahead
                thread, while the previous batch is written. For Parquet output a thread of
                its own decodes the next batch, and the next batch's queries (its two sides
                encoded) are built while this one's are: one batch's serial steps (routing,
                detectors) overlap the other's encoding, which keeps both cores busy."""
                decoded = guarded_batches(source, batches)
                if streams:
                    yield from map(queried, tokened(decoded))
                else:
                    yield from mapped_ahead(queried, tokened(prefetched(decoded)))

            for number, (batch, known, queries) in enumerate(prefetched(prepared())):
                tally.messages[source] += batch.messages
                name = f"part-{index:05d}-{number:05d}{suffix}"
                pairs.append(write(
                    schema, batch, export_plan, cat, scenario, namespace, known, tally,
                    export_staging / name, onshore_staging / name, queries=queries,
                    **({"writer": writer} if streams else {}),
                ))
                # Stopped at the first batch that holds what no rule classifies.
                check_unknown(tally, request.on_unknown, namespace, cat.id)
                # At most one batch waits to be written: memory stays bounded.
                while len(pairs) > 1:
                    take(pairs.popleft())
            while pairs:
                take(pairs.popleft())
            if request.progress is not None:
                request.progress(index + 1, len(sources), sum(tally.messages.values()), 0)
        inputs_done = [
            FileRecord(s, tally.messages[s], source_bytes(s), h.result())
            for s, h in zip(sources, hashes, strict=True)
        ]
    reconcile_outputs(schema, tally, export_files, onshore_files, streams=streams)
    decided = manifest_plan(export_plan, schema, cat, scenario, namespace, tally)
    extra = manifest_extra(schema, options.message, framing, namespace, tally)
    if streams:
        extra = replace(extra, output_format=OutputFormat("protobuf", options.message,
                                                          "delimited"))
    return WrittenParts(inputs_done, export_files, onshore_files, tally.detections, decided,
                        extra)


def guarded_batches(source: Path, batches: Iterable[Batch]) -> Iterable[Batch]:
    """`batches` of `source`, with a read failure reported as the `InputError` naming it."""
    try:
        yield from batches
    except OSError as exc:
        raise read_failed(exc, source) from None


def write_batch(
    schema: ProtoSchema,
    batch: Batch,
    export_plan: ExportPlan,
    catalogue: Catalogue,
    scenario: str,
    namespace: str,
    tokens: TokenMapping,
    tally: Tally,
    export_path: Path,
    onshore_path: Path,
    *,
    queries: KeyValueQueries | None = None,
) -> tuple[FileRecord, FileRecord]:
    """Split one batch of rows into its pair of part files, adding its counts to `tally`.

    Plain rows: the column engine (`write_pair`, tokens only); key/value rows: entry by entry
    (`batch_queries`, unless already built). A full or read-only disk is an `OutputError`.
    """
    try:
        if schema.key_value is None:
            export_file, onshore_file, counts = write_pair(
                batch.rows.lazy(), export_plan, Lookups(tokens, {}), export_path, onshore_path
            )
            tally.detections.update(counts)
            _tally_unknown_messages(tally, batch.rows)
            return export_file, onshore_file
        if queries is None:
            queries = batch_queries(schema, batch, catalogue, scenario, namespace, tokens)
        assert queries is not None
        files = queries.files or (None, None)
        with part_pair(export_path, onshore_path) as (export_out, onshore_out):
            sinks = []
            for side, out, file in ((queries.export, export_out, files[0]),
                                    (queries.onshore, onshore_out, files[1])):
                if file is not None:  # encoded already
                    out.write(file)
                    continue
                sinks.append(side.sink_parquet(
                    out, lazy=True, **PARQUET_OPTIONS,
                    metadata=plain_string_metadata(side.collect_schema())))
            *_, counts, detections = pl.collect_all(
                [*sinks, queries.counts, queries.detections])
        _tally_entries(tally, counts, detections)
        return written_record(export_out), written_record(onshore_out)
    except OSError as exc:
        raise write_failed(exc, export_path.parent) from None
    except pl.exceptions.PolarsError as exc:
        if is_disk_error(exc):
            raise OutputError(f"cannot write output: {first_line(exc)}") from None
        raise


def write_stream_batch(
    schema: ProtoSchema,
    batch: Batch,
    export_plan: ExportPlan,
    catalogue: Catalogue,
    scenario: str,
    namespace: str,
    tokens: TokenMapping,
    tally: Tally,
    export_path: Path,
    onshore_path: Path,
    *,
    queries: KeyValueQueries | None = None,
    writer: Executor | None = None,
) -> PartPair:
    """Like `write_batch`, with delimited protobuf streams of the input's type as the part
    files (`formats.protobuf.writer`): one message per input message on each side.

    With a `writer`, key/value streams are written (hashed, handed to the kernel) in its
    thread while the caller goes on with the next batch; the result is then a `Future`.
    """
    assert batch.raw is not None
    raw = batch.raw()
    messages = len(raw)
    keys = stream_keys(schema, export_plan, catalogue, scenario)
    if schema.key_value is None:
        detected = _plain_detections(batch.rows, raw, export_plan, tally,
                                     BatchVins.of(tokens, automaton=True))
        _tally_unknown_messages(tally, batch.rows)
        return _write_streams(export_path, onshore_path, messages, lambda e, o: (
            write_plain_streams(schema, raw, export_plan, detected, tokens, keys, e, o)))
    if queries is None:
        queries = batch_queries(schema, batch, catalogue, scenario, namespace, tokens,
                                rows=False)
    assert queries is not None
    chosen: pbw.EntrySelection
    if queries.exported is not None:  # the decoder's arrays: a flag per entry
        counts, detections = pl.collect_all([queries.counts, queries.detections])
        chosen = queries.exported
    else:
        assert queries.positions is not None
        positions, counts, detections = pl.collect_all(
            [queries.positions, queries.counts, queries.detections])
        chosen = (positions["message_index"].to_numpy(), positions["entry_index"].to_numpy())
    _tally_entries(tally, counts, detections)
    export_held, onshore_held = _HeldWrites(), _HeldWrites()
    pbw.write_key_value_streams(schema, raw, chosen, tokens, keys, export_held, onshore_held,
                                decoded=batch.entries if queries.exported is not None else None)
    job = functools.partial(_write_streams, export_path, onshore_path, messages, lambda e, o: (
        export_held.replay(e), onshore_held.replay(o)))
    return job() if writer is None else writer.submit(job)


#: A batch's pair of part file records, or their future while a writer thread writes them.
PartPair = tuple[FileRecord, FileRecord] | Future[tuple[FileRecord, FileRecord]]


class _HeldWrites:
    """A binary sink that holds what is written to it, to `replay` it into a file later.

    It keeps the caller's buffers, not copies: for writers that hand over buffers they never
    touch again (`filter.formats.protobuf.writer.write_key_value_streams`: fresh arrays per batch).
    """

    def __init__(self) -> None:
        self.parts: list[memoryview] = []

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.parts.append(view)
        return view.nbytes

    def replay(self, out: BinaryIO) -> None:
        """Write everything held to `out`, in order."""
        for part in self.parts:
            out.write(part)


def _write_streams(
    export_path: Path, onshore_path: Path, messages: int,
    write: Callable[[BinaryIO, BinaryIO], object],
) -> tuple[FileRecord, FileRecord]:
    """A batch's two part files, filled by `write` (export, onshore) through buffers of
    `_STREAM_BUFFER` bytes; their records. A refused write is an `OutputError`."""
    try:
        with (
            part_pair(export_path, onshore_path) as (export_file, onshore_file),
            io.BufferedWriter(export_file, _STREAM_BUFFER) as export_out,
            io.BufferedWriter(onshore_file, _STREAM_BUFFER) as onshore_out,
        ):
            write(export_out, onshore_out)
    except OSError as exc:
        raise write_failed(exc, export_path.parent) from None
    return (FileRecord(export_path, messages, export_file.size, export_file.sha256),
            FileRecord(onshore_path, messages, onshore_file.size, onshore_file.sha256))


_STREAM_BUFFER = 1 << 20


def stream_keys(
    schema: ProtoSchema, export_plan: ExportPlan, catalogue: Catalogue, scenario: str
) -> pbw.StreamKeys:
    """The proto names of the key fields, and the export's timestamp action."""
    by_column = {(f.name if schema.key_value else f.json_name): f.name
                 for f in schema.descriptor.fields}
    return pbw.StreamKeys(
        vin=by_column[export_plan.vehicle_id_column],
        timestamp=by_column[export_plan.timestamp_column],
        coarsen=timestamp_cut(action_for(catalogue.keys["timestamp"].actions, scenario)),
    )


def _plain_detections(
    rows: pl.DataFrame, raw: RawMessages, export_plan: ExportPlan, tally: Tally,
    vins: BatchVins,
) -> dict[int, set[str]]:
    """Per message index, the exported string fields a detector hit, or that are or hold one
    of `vins` (counted in `tally`)."""
    scanned = [d for d in export_plan.fields if d.scanned and d.destination == "export"]
    if not scanned or rows.height == 0:
        return {}
    hit = rows.select(
        any_hit(*export_plan.leaf(d), vins).fill_null(False).alias(d.path) for d in scanned)
    found: dict[int, set[str]] = {}
    for d in scanned:
        where = hit[d.path].arg_true().to_list()
        if not where:
            continue
        for row in where:
            found.setdefault(int(raw.indexes[row]), set()).add(d.path)
        tally.detections[f"{d.path}{COUNT_SEPARATOR}{MOVED}"] += len(where)
        per = rows[where].select(detector_counts(*export_plan.leaf(d), d.path, vins))
        tally.detections.update({k: v for k, v in per.row(0, named=True).items() if v})
    return found


def _tally_unknown_messages(tally: Tally, rows: pl.DataFrame) -> None:
    """Plain messages: how many carry fields the descriptor does not know (for
    `check_unknown`; the manifests count entries of key/value input only)."""
    tally.entries["unknown_fields"] += rows.height - rows[UNKNOWN_FIELDS].null_count()


def _tally_entries(tally: Tally, counts: pl.DataFrame, detections: pl.DataFrame) -> None:
    tally.detections.update({k: v for k, v in detections.row(0, named=True).items() if v})
    seen = counts.row(0, named=True)
    tally.keys.update(k for k in seen.pop("keys") if k is not None)
    tally.entries.update(seen)


def batch_queries(
    schema: ProtoSchema,
    batch: Batch,
    catalogue: Catalogue,
    scenario: str,
    namespace: str,
    tokens: TokenMapping,
    *,
    rows: bool = True,
    verdicts: StringVerdicts | None = None,
) -> KeyValueQueries | None:
    """The split queries of a key/value batch (None for plain messages); without `rows` the
    sides' rows are only built if their queries are collected; with, each side is encoded as
    its Parquet file (`kv_decoded_routing.split_decoded`), or, where it cannot be, its repeating
    strings are coded for the Parquet writer (`write_batch` declares them as strings). `verdicts`:
    the run's detector verdicts on string values (`kv_engine.StringVerdicts`)."""
    if schema.key_value is None:
        return None
    if batch.entries is not None:  # the compiled decoder's arrays: each side built apart
        return split_decoded(batch.entries, catalogue, scenario, tokens, namespace=namespace,
                             build_rows=rows, verdicts=verdicts, coded=rows, encoded=rows)
    return split_key_values(batch.rows.lazy(), catalogue, scenario, tokens, namespace=namespace)


