"""What a protobuf split counts as it goes, and what its manifests make of the counts.

In: the counts of each batch (messages per input, entries by outcome, detector hits, keys
seen, quarantined records), merged into one `Tally` per run, whatever the engine.
Out: the check that stops a run on what no rule classifies (`check_unknown`), the
reconciliation of the part files against the counts, the plan the manifests list
(`manifest_plan`: one decision per key seen), their protobuf-specific keys (`manifest_extra`),
and the inputs' digests and sizes (a topic dump: over its files).
May fail: `UnclassifiedFieldsError`, `OutputError` (counts that do not reconcile).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filter.apply.kv_routing import ENTRY_COUNTS
from filter.engines.request import OnBadRecord
from filter.errors import UnclassifiedFieldsError
from filter.formats.protobuf.descriptors import ProtoSchema
from filter.formats.protobuf.framing import BadRecord, dump_files
from filter.formats.protobuf.framing import OnBadRecord as OnBadRecordCallback
from filter.formats.protobuf.message_rows import UNKNOWN_FIELDS
from filter.outputs.manifest import FileRecord, sha256_file
from filter.outputs.manifest_document import FormatSections, InputFormat, QuarantinedRecord
from filter.outputs.reconcile import reconcile_entries, reconcile_pairs
from filter.policy.catalogue import Catalogue
from filter.policy.plan import KEY_CLASS, ExportPlan, FieldDecision, OnUnknown, decide_path

QUARANTINE_DIR = "quarantine"


@dataclass
class Tally:
    """What the run saw, for the manifests and the reconciliation."""

    messages: Counter[Path] = field(default_factory=Counter)
    entries: Counter[str] = field(default_factory=Counter)
    detections: Counter[str] = field(default_factory=Counter)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def merge(self, other: Tally) -> None:
        """Add what `other` saw (another part of the run) to this tally."""
        self.messages.update(other.messages)
        self.entries.update(other.entries)
        self.detections.update(other.detections)
        self.quarantined.extend(other.quarantined)
        self.keys.update(other.keys)


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
        unknown.append(f"{UNKNOWN_FIELDS} (fields the descriptor does not know, in "
                       f"{carrying} entr(ies) or message(s))")
    if unknown:
        raise UnclassifiedFieldsError(unknown, catalogue_id)


def reconcile_outputs(
    schema: ProtoSchema,
    tally: Tally,
    export_files: Sequence[FileRecord],
    onshore_files: Sequence[FileRecord],
    *,
    streams: bool = False,
) -> None:
    """Every message (plain) or entry (key/value) is in the outputs exactly once.

    Protobuf streams hold one message per input message on each side (the entries were
    counted as they were routed)."""
    if schema.key_value is None or streams:
        reconcile_pairs(sum(tally.messages.values()), export_files, onshore_files,
                        unit="messages")
    else:
        reconcile_entries(tally.entries["entries"], tally.entries["exported"], export_files,
                          onshore_files)


def manifest_plan(
    export_plan: ExportPlan,
    schema: ProtoSchema,
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
    schema: ProtoSchema, message: str, framing: str, namespace: str, tally: Tally
) -> FormatSections:
    """What the manifests record about protobuf input: format, quarantine, entry counts."""
    key_value = schema.key_value is not None
    return FormatSections(
        input_format=InputFormat("protobuf", message, framing, schema.source,
                                 "key_value" if key_value else "plain",
                                 namespace if key_value else None),
        # Where each bad record was, its size and digest: onshore only
        # (`FormatSections.for_destination`); the count goes to both sides.
        quarantined=tuple(tally.quarantined),
        quarantined_records=len(tally.quarantined),
        # Every count, 0 included: an input without entries still reconciles (read 0).
        entries={k: int(tally.entries[k]) for k in ENTRY_COUNTS} if key_value else None,
    )


def quarantine_handler(
    onshore_staging: Path, source: Path, tally: Tally, on_bad_record: OnBadRecord
) -> OnBadRecordCallback | None:
    """A bad-record handler that keeps the raw bytes onshore, or None to fail on the first."""
    if on_bad_record == "fail":
        return None
    directory = onshore_staging / QUARANTINE_DIR

    def keep(record: BadRecord) -> None:
        directory.mkdir(exist_ok=True)
        name = f"{record.path.stem}-{record.index:08d}-{record.offset}.bin"
        data = bytes(record.data)
        (directory / name).write_bytes(data)
        tally.quarantined.append(QuarantinedRecord(
            file=f"{QUARANTINE_DIR}/{name}", input=str(record.path),
            message_index=record.index, byte_offset=record.offset,
            bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
            reason=record.reason.split(": ", 1)[-1],
        ))

    return keep


def source_digest(source: Path) -> str:
    """The SHA-256 of an input; of a topic dump, over its files' names and digests."""
    if not source.is_dir():
        return sha256_file(source)
    digest = hashlib.sha256()  # a topic dump: its files' names and digests, in order
    for path in dump_files(source):
        digest.update(f"{path.name}\0{sha256_file(path, follow_links=False)}\n".encode())
    return digest.hexdigest()


def source_bytes(source: Path) -> int:
    """The size of an input in bytes (a topic dump: of the files it is read from)."""
    if not source.is_dir():
        return source.stat().st_size
    return sum(p.lstat().st_size for p in dump_files(source))
