"""Run a split on protobuf input: one more reader in front of the same plan and publishing.

In: protobuf inputs (files, globs; a directory is a topic dump of single-message files), the
message type (from a descriptor set, or vtx's shipped schemas), the framing, and the options of
`filter.engines.parquet.split`.
Out: both targets published atomically with Parquet part files and manifests, as for Parquet
input. Plain messages give one row per message, split column by column with the same engine
(`filter.apply.columns`); key/value envelopes give one row per entry, routed entry by entry
(`filter.apply.kv_routing`). Each batch of messages becomes a pair of part files
(``part-<input>-<batch>.parquet``, the same names on both sides).
May fail: what `split` may, plus `InputError` for a bad record (file, byte offset and message
index). With ``on_bad_record="quarantine"`` bad records are kept instead, raw, under the onshore
output's ``quarantine/`` with their offsets, counted in the manifests, and the run goes on.

Streaming: messages are decoded in batches; memory is bounded by the batch, not the stream.
This is the plain-protobuf decoding path (`filter.formats.protobuf.schema`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import polars as pl
import pyarrow.parquet as pq

from filter.apply.columns import COUNT_SEPARATOR, MOVED, Lookups, detector_counts
from filter.apply.detectors import BatchVins, any_hit
from filter.apply.kv_routing import (
    ENTRY_COUNTS,
    KeyValueQueries,
    StringVerdicts,
    split_decoded,
    split_key_values,
)
from filter.apply.pseudonym import TokenMapping, check_key, key_id, token_mapping
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
from filter.errors import InputError, OutputError, UnclassifiedFieldsError, first_line
from filter.files import argument_paths, check_named, entry_kind, found_special
from filter.formats.parquet.metadata import plain_string_metadata
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf import schema as pb
from filter.formats.protobuf import writer as pbw
from filter.outputs.manifest import FileRecord, sha256_file
from filter.outputs.parts import PARQUET_OPTIONS, HashingFile, part_pair
from filter.outputs.signing_keys import resolve_signing_key
from filter.policy.catalogue import Catalogue, action_for
from filter.policy.plan import KEY_CLASS, ExportPlan, FieldDecision, OnUnknown, decide_path, plan
from filter.prefetch import mapped_ahead, prefetched

if TYPE_CHECKING:
    from filter.outputs.signing_keys import SigningKey

OnBadRecord = Literal["fail", "quarantine"]
OutputFormat = Literal["parquet", "protobuf"]
#: Messages decoded per batch (and per pair of part files), with Parquet output. Each batch
#: costs some 20 ms of fixed work (a few hundred calls per side and column); on 1M and 5M
#: key/value messages 50,000 split 10-15% faster than 25,000, at 710-740 MB peak (510-550).
BATCH_MESSAGES = 50_000
#: The same with protobuf output (`--output-format protobuf`), which also does best at 50,000.
STREAM_BATCH_MESSAGES = 50_000
QUARANTINE_DIR = "quarantine"


@dataclass
class Tally:
    """What the run saw, for the manifests and the reconciliation."""

    messages: Counter[Path] = field(default_factory=Counter)
    entries: Counter[str] = field(default_factory=Counter)
    detections: Counter[str] = field(default_factory=Counter)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def merge(self, other: Tally) -> None:
        """Add what `other` saw (another part of the run) to this tally."""
        self.messages.update(other.messages)
        self.entries.update(other.entries)
        self.detections.update(other.detections)
        self.quarantined.extend(other.quarantined)
        self.keys.update(other.keys)


@dataclass(frozen=True)
class ProtobufRun:
    """What a protobuf split settles before reading any data, whatever the engine."""

    catalogue: Catalogue
    schema: pb.ProtoSchema
    sources: list[Path]
    plan: ExportPlan
    targets: tuple[Path, Path]  # (export, onshore), absolute


def prepare_run(
    inputs: str | Path | Sequence[str | Path],
    export_dir: str | Path,
    onshore_dir: str | Path,
    scenario: str,
    *,
    load: Callable[[], pb.ProtoSchema],
    catalogue: Catalogue | str | Path | None,
    catalogue_sha256: str | None,
    on_unknown: OnUnknown,
    origin: str | None,
    namespace: str,
) -> ProtobufRun:
    """Check the catalogue (pin, scenario), load the message type with `load`, find the
    inputs, plan, and check the targets, in that order: the first problem is the one shown."""
    cat = resolve_catalogue(catalogue)
    check_pin(cat, catalogue_sha256)
    cat.scenario(scenario)
    schema = load()
    sources = expand_protobuf_inputs([inputs] if isinstance(inputs, str | Path) else inputs)
    export_plan = protobuf_plan(schema, cat, scenario, on_unknown, origin, namespace)
    return ProtobufRun(cat, schema, sources, export_plan,
                       check_targets(export_dir, onshore_dir, sources))


def split_protobuf(
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
    output_format: OutputFormat = "parquet",
    signing_key: SigningKey | None = None,
) -> SplitResult:
    """Split protobuf `inputs` of type `message` into published export and onshore outputs.

    `output_format` "protobuf" writes each side as delimited streams of the input's own type
    (`formats.protobuf.writer`) instead of Parquet. `signing_key` as for `split`. A weak `key`
    is refused (`filter.apply.pseudonym.check_key`).
    """
    started = time.perf_counter()
    key = check_key(key)
    run = prepare_run(
        inputs, export_dir, onshore_dir, scenario,
        load=lambda: pb.load_schema(descriptor_set, message, kv_field=kv_field),
        catalogue=catalogue, catalogue_sha256=catalogue_sha256, on_unknown=on_unknown,
        origin=origin, namespace=namespace,
    )
    cat, schema, sources, export_plan = run.catalogue, run.schema, run.sources, run.plan
    export_target, onshore_target = run.targets
    signer = resolve_signing_key(signing_key, key)

    run_id = uuid.uuid4().hex
    tally = Tally()
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="vtx-hash") as hasher,
        staged_outputs(export_target, onshore_target, run_id, overwrite=overwrite,
                       plan=export_plan, input_paths=sources) as stages,
        # Inside the staging: on a failure, its last write ends before the staging is removed.
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="vtx-write") as writer,
    ):
        export_stage, onshore_stage = stages
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
        streams = output_format == "protobuf"
        write, suffix = (write_stream_batch, pbw.PART_SUFFIX) if streams else (
            write_batch, ".parquet")
        for index, source in enumerate(sources):
            quarantine = quarantine_handler(onshore_stage.staging, source, tally, on_bad_record)
            batches = protobuf_batches.iter_batches(
                schema, source, framing, on_bad=quarantine,
                batch_size=STREAM_BATCH_MESSAGES if streams else BATCH_MESSAGES,
            )

            def tokened(
                batches: Iterable[pb.Batch],
            ) -> Iterator[tuple[pb.Batch, TokenMapping]]:
                """Batches with the tokens of their VINs, in order (each VIN is hashed once
                per run)."""
                for batch in batches:
                    vins = batch.distinct(export_plan.vehicle_id_column)
                    tokens.update(token_mapping(key, vins.filter(~vins.is_in(list(tokens)))))
                    yield batch, dict(tokens)  # this batch's view: the next one may add to it

            def queried(
                item: tuple[pb.Batch, TokenMapping],
            ) -> tuple[pb.Batch, TokenMapping, KeyValueQueries | None]:
                batch, known = item
                queries = batch_queries(schema, batch, cat, scenario, namespace, known,
                                        rows=not streams, verdicts=verdicts)
                if streams or queries is None or not queries.files or None in queries.files:
                    return batch, known, queries
                # Both sides encoded: the writer needs their files and the counts only, and
                # the batch's decoded arrays (about 40 bytes an entry) need not wait for it.
                return pb.Batch(None, batch.messages), known, queries.files_only()

            def prepared(
                source: Path = source, batches: Iterable[pb.Batch] = batches
            ) -> Iterator[tuple[pb.Batch, TokenMapping, KeyValueQueries | None]]:
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
                    export_stage.staging / name, onshore_stage.staging / name, queries=queries,
                    **({"writer": writer} if streams else {}),
                ))
                check_unknown(tally, on_unknown, namespace, cat.id)  # stop at the first batch
                # At most one batch waits to be written: memory stays bounded.
                while len(pairs) > 1:
                    take(pairs.popleft())
            while pairs:
                take(pairs.popleft())
            if progress is not None:
                progress(index + 1, len(sources), sum(tally.messages.values()), 0)
        inputs_done = [
            FileRecord(s, tally.messages[s], source_bytes(s), h.result())
            for s, h in zip(sources, hashes, strict=True)
        ]
        reconcile_outputs(schema, tally, export_files, onshore_files, streams=streams)
        decided = manifest_plan(export_plan, schema, cat, scenario, namespace, tally)
        extra = manifest_extra(schema, message, framing, namespace, tally)
        if streams:
            extra["output_format"] = {"format": "protobuf", "message": message,
                                      "framing": "delimited"}
        manifests = publish_outputs(
            decided, run_id, inputs_done, stages, export_files, onshore_files,
            tally.detections, key_id=key_id(key), extra=extra, signing_key=signer,
        )
    return SplitResult.published(
        (export_target, onshore_target), manifests, decided, started
    )


def check_unknown(tally: Tally, on_unknown: OnUnknown, namespace: str, catalogue_id: str) -> None:
    """Under ``on_unknown="fail"``, raise `UnclassifiedFieldsError` for what the data held so
    far that no rule can classify: key numbers the descriptor's key enum lacks (each as
    ``<namespace>.<number>``), and fields the descriptor does not know (the entries or
    messages that carry them, counted), as the Parquet path stops on an unclassified column.
    (Names of the key enum and plain fields are checked before any data, by `protobuf_plan`.)
    """
    if on_unknown != "fail":
        return
    unknown = sorted((f"{namespace}.{k}" for k in tally.keys if k.lstrip("-").isdigit()),
                     key=lambda path: int(path.rsplit(".", 1)[1]))
    carrying = tally.entries["unknown_fields"]
    if carrying:
        unknown.append(f"{pb.UNKNOWN_FIELDS} (fields the descriptor does not know, in "
                       f"{carrying} entr(ies) or message(s))")
    if unknown:
        raise UnclassifiedFieldsError(unknown, catalogue_id)


def protobuf_plan(
    schema: pb.ProtoSchema,
    catalogue: Catalogue,
    scenario: str,
    on_unknown: OnUnknown,
    origin: str | None,
    namespace: str,
) -> ExportPlan:
    """The plan of the rows: per column for plain messages, the key columns for key/value.

    Under ``on_unknown="fail"`` the fields that no rule classifies (plain: columns; key/value:
    the names of the key enum) stop the run. Key numbers and fields the descriptor does not
    know can only be found in the data: `check_unknown` stops the run on them.
    """
    if schema.key_value is None:
        decided = plan(pb.polars_schema(schema), catalogue, scenario, origin=origin)
        unknown = [p for p in decided.unclassified if p != pb.UNKNOWN_FIELDS]
    else:
        decided = plan(pb.key_value_schema(schema), catalogue, scenario, origin=origin)
        names = [v.name for v in schema.key_value.key.enum_type.values]
        unknown = [] if on_unknown != "fail" else [
            f"{namespace}.{n}" for n in names if catalogue.classify(f"{namespace}.{n}") is None]
    if on_unknown == "fail" and unknown:
        raise UnclassifiedFieldsError(unknown, catalogue.id)
    return decided


def expand_protobuf_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, glob patterns expanded, directories kept whole (topic dumps).

    As for Parquet (`filter.formats.parquet.inputs.expand_inputs`): an existing path is that path,
    a pattern is expanded once by vtx, no link vtx finds itself is followed (a pattern's
    match, a topic dump's entry: `filter.formats.protobuf.schema.dump_files`), and a FIFO, device or
    socket is refused rather than read.
    """
    found: list[Path] = []
    for item in inputs:
        paths, matched = argument_paths(item)
        for path in paths:
            kind = entry_kind(path) if matched else check_named(path)
            if kind == "special":
                raise found_special(path, f"matched by pattern {str(item)!r}")
            if kind == "directory":
                pb.dump_files(path)  # its links and special files refused before any read
            found.append(path)
    if not found:
        raise InputError("no input files given")
    return list(dict.fromkeys(p.resolve() for p in found))


def guarded_batches(source: Path, batches: Iterable[pb.Batch]) -> Iterable[pb.Batch]:
    """`batches` of `source`, with a read failure reported as the `InputError` naming it."""
    try:
        yield from batches
    except OSError as exc:
        raise InputError(f"{source}: cannot read: {exc.strerror or exc}") from None


def write_batch(
    schema: pb.ProtoSchema,
    batch: pb.Batch,
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
        return _record(export_out), _record(onshore_out)
    except OSError as exc:
        raise OutputError(f"cannot write {export_path.parent}: {exc.strerror or exc}") from None
    except pl.exceptions.PolarsError as exc:
        if is_disk_error(exc):
            raise OutputError(f"cannot write output: {first_line(exc)}") from None
        raise


def write_stream_batch(
    schema: pb.ProtoSchema,
    batch: pb.Batch,
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
            pbw.write_plain_streams(schema, raw, export_plan, detected, tokens, keys, e, o)))
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
        raise OutputError(f"cannot write {export_path.parent}: {exc.strerror or exc}") from None
    return (FileRecord(export_path, messages, export_file.size, export_file.sha256),
            FileRecord(onshore_path, messages, onshore_file.size, onshore_file.sha256))


_STREAM_BUFFER = 1 << 20


def stream_keys(
    schema: pb.ProtoSchema, export_plan: ExportPlan, catalogue: Catalogue, scenario: str
) -> pbw.StreamKeys:
    """The proto names of the key fields, and the export's timestamp action."""
    by_column = {(f.name if schema.key_value else f.json_name): f.name
                 for f in schema.descriptor.fields}
    return pbw.StreamKeys(
        vin=by_column[export_plan.vehicle_id_column],
        timestamp=by_column[export_plan.timestamp_column],
        coarsen=action_for(catalogue.keys["timestamp"].actions, scenario),
    )


def _plain_detections(
    rows: pl.DataFrame, raw: pb.RawMessages, export_plan: ExportPlan, tally: Tally,
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
    tally.entries["unknown_fields"] += rows.height - rows[pb.UNKNOWN_FIELDS].null_count()


def _tally_entries(tally: Tally, counts: pl.DataFrame, detections: pl.DataFrame) -> None:
    tally.detections.update({k: v for k, v in detections.row(0, named=True).items() if v})
    seen = counts.row(0, named=True)
    tally.keys.update(k for k in seen.pop("keys") if k is not None)
    tally.entries.update(seen)


def batch_queries(
    schema: pb.ProtoSchema,
    batch: pb.Batch,
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
    its Parquet file (`kv_engine.split_decoded`), or, where it cannot be, its repeating
    strings are coded for the Parquet writer (`write_batch` declares them as strings). `verdicts`:
    the run's detector verdicts on string values (`kv_engine.StringVerdicts`)."""
    if schema.key_value is None:
        return None
    if batch.entries is not None:  # the compiled decoder's arrays: each side built apart
        return split_decoded(batch.entries, catalogue, scenario, tokens, namespace=namespace,
                             build_rows=rows, verdicts=verdicts, coded=rows, encoded=rows)
    return split_key_values(batch.rows.lazy(), catalogue, scenario, tokens, namespace=namespace)


def _record(part: HashingFile) -> FileRecord:
    return FileRecord(part.path, pq.read_metadata(part.path).num_rows, part.size, part.sha256)


def quarantine_handler(
    onshore_staging: Path, source: Path, tally: Tally, on_bad_record: OnBadRecord
) -> pb.OnBadRecord | None:
    """A bad-record handler that keeps the raw bytes onshore, or None to fail on the first."""
    if on_bad_record == "fail":
        return None
    directory = onshore_staging / QUARANTINE_DIR

    def keep(record: pb.BadRecord) -> None:
        directory.mkdir(exist_ok=True)
        name = f"{record.path.stem}-{record.index:08d}-{record.offset}.bin"
        data = bytes(record.data)
        (directory / name).write_bytes(data)
        tally.quarantined.append({
            "file": f"{QUARANTINE_DIR}/{name}", "input": str(record.path),
            "message_index": record.index, "byte_offset": record.offset,
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "reason": record.reason.split(": ", 1)[-1],
        })

    return keep


def source_digest(source: Path) -> str:
    """The SHA-256 of an input; of a topic dump, over its files' names and digests."""
    if not source.is_dir():
        return sha256_file(source)
    digest = hashlib.sha256()  # a topic dump: its files' names and digests, in order
    for path in pb.dump_files(source):
        digest.update(f"{path.name}\0{sha256_file(path, follow_links=False)}\n".encode())
    return digest.hexdigest()


def source_bytes(source: Path) -> int:
    """The size of an input in bytes (a topic dump: of the files it is read from)."""
    if not source.is_dir():
        return source.stat().st_size
    return sum(p.lstat().st_size for p in pb.dump_files(source))


def reconcile_outputs(
    schema: pb.ProtoSchema,
    tally: Tally,
    export_files: list[FileRecord],
    onshore_files: list[FileRecord],
    *,
    streams: bool = False,
) -> None:
    """Every message (plain) or entry (key/value) is in the outputs exactly once.

    Protobuf streams hold one message per input message on each side (the entries were
    counted as they were routed)."""
    if schema.key_value is None or streams:
        for export, onshore in zip(export_files, onshore_files, strict=True):
            if export.rows != onshore.rows:
                raise OutputError(f"{export.path.name}: rows do not reconcile: export "
                                  f"{export.rows}, onshore {onshore.rows}; nothing was published")
        if sum(f.rows for f in export_files) != sum(tally.messages.values()):
            raise OutputError("messages do not reconcile with the rows written; "
                              "nothing was published")
        return
    written = sum(f.rows for f in export_files) + sum(f.rows for f in onshore_files)
    if written != tally.entries["entries"] or sum(f.rows for f in export_files) != (
        tally.entries["exported"]
    ):
        raise OutputError(f"entries do not reconcile: read {tally.entries['entries']}, written "
                          f"{written}; nothing was published")


def descriptor_plan(
    schema: pb.ProtoSchema,
    catalogue: Catalogue,
    scenario: str,
    *,
    on_unknown: OnUnknown = "withhold",
    origin: str | None = None,
    namespace: str = "fleet",
) -> ExportPlan:
    """The decisions for a message type, from its descriptor alone (what `vtx explain` shows).

    Plain messages: one decision per field, as for Parquet columns. Key/value envelopes: the
    key columns, then one decision per name of the key enum (``<namespace>.<Key>``); key
    numbers the enum does not know are withheld when they arrive.
    """
    decided = protobuf_plan(schema, catalogue, scenario, on_unknown, origin, namespace)
    if schema.key_value is None:
        return decided
    tally = Tally()
    tally.keys.update(v.name for v in schema.key_value.key.enum_type.values)
    return manifest_plan(decided, schema, catalogue, scenario, namespace, tally)


def manifest_plan(
    export_plan: ExportPlan,
    schema: pb.ProtoSchema,
    catalogue: Catalogue,
    scenario: str,
    namespace: str,
    tally: Tally,
) -> ExportPlan:
    """The plan the manifests list: for key/value input, one decision per key seen."""
    if schema.key_value is None:
        return export_plan
    keys = [f for f in export_plan.fields if f.data_class == KEY_CLASS]
    decided = [
        decide_path(catalogue, scenario, f"{namespace}.{name}") for name in sorted(tally.keys)
    ]
    return ExportPlan(**{
        **export_plan.__dict__,
        "fields": tuple(keys) + tuple(_as_entry(d) for d in decided),
    })


def _as_entry(decision: FieldDecision) -> FieldDecision:
    return FieldDecision(**{**decision.__dict__, "dtype": "entry"})


def manifest_extra(
    schema: pb.ProtoSchema, message: str, framing: str, namespace: str, tally: Tally
) -> dict[str, Any]:
    """What the manifests record about protobuf input: format, quarantine, entry counts."""
    extra: dict[str, Any] = {
        "input_format": {"format": "protobuf", "message": message, "framing": framing,
                         "descriptor_set": schema.source,
                         "layout": "key_value" if schema.key_value else "plain",
                         **({"namespace": namespace} if schema.key_value else {})},
        # Where each bad record was, its size and digest: onshore only (`ONSHORE_ONLY`); the
        # count goes to both sides.
        "quarantined": tally.quarantined,
        "quarantined_records": len(tally.quarantined),
    }
    if schema.key_value is not None:
        # Every count, 0 included: an input without entries still reconciles (read 0).
        extra["entries"] = {k: int(tally.entries[k]) for k in ENTRY_COUNTS}
    return extra
