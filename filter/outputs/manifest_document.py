"""The manifest as a typed document: `Manifest` and its sections, to and from JSON.

In: the sections of one output's manifest (`filter.outputs.manifest.build_manifest` fills them
for a run), or a stored manifest's parsed JSON (`Manifest.from_json`) or text
(`parse_manifest`).
Out: a frozen `Manifest`; `Manifest.to_json()` the JSON object vtx writes for it, key for key
and in the order vtx writes them (`manifest.manifest_text` makes its bytes, which a signature
signs), so a manifest read and written again is the document it was.
May fail: `ValueError` naming the field, for a document that is not a manifest: not an object,
a key missing, a value of the wrong type (a count that is negative or not an integer), a part
file name that is not a plain file name, or a key no section of the manifest has.

A key this model does not know is refused, not dropped: `vtx verify` checks every claim a
manifest makes, and a claim it cannot read it cannot check. The order of keys is not part of the
document (a signature signs a canonical form: `filter.outputs.signing`).

Older schema versions parse too: version 2 has the same sections; version 1 keeps each input's
path, size and SHA-256 in the export's manifest (`InputRecord` holds them where present) and the
oldest of them no `keys.key_id` (None). Whether a version is one this vtx reads is the
verifier's question (`filter.audit.integrity`), not the parser's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from filter.outputs.json_fields import JsonFields, JsonObject, JsonValue

#: The version of the manifest's layout vtx writes (see `filter.outputs.manifest`).
SCHEMA_VERSION = 3
MANIFEST_NAME = "_manifest.parquet"
#: The manifest and signature files of outputs written before schema version 3.
LEGACY_MANIFEST_NAME = "_manifest.json"
LEGACY_SIGNATURE_NAME = "_manifest.sig"

#: The two sides of a run a manifest can describe.
Side = Literal["export", "onshore"]
Layout = Literal["key_value", "plain"]


@dataclass(frozen=True)
class CatalogueRef:
    """The catalogue the run was split with (`catalogue`)."""

    id: str
    version: str
    sha256: str


@dataclass(frozen=True)
class ManifestKeys:
    """The key columns and how the token is made (`keys`)."""

    vehicle_id: str  # the VIN column (onshore only)
    timestamp: str
    token: str  # the pseudonym column both sides carry
    token_method: str
    key_id: str | None = None  # the token key's id (`apply.pseudonym.key_id`); None: not recorded
    key_id_method: str | None = None


@dataclass(frozen=True)
class InputRecord:
    """One input of the run (`inputs[]`): in an export's manifest its rows only."""

    rows: int
    path: str | None = None  # None, with `bytes` and `sha256`: an export's (schema version 2 on)
    bytes: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class PartRecord:
    """One part file of the output (`files[]`), by its name in the output directory."""

    name: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ColumnRecord:
    """One column (field, or key/value key) of the output and why it is there (`columns[]`)."""

    name: str
    data_class: str  # the JSON's `class`
    rule: str | None  # None: no rule classifies it (withheld)
    basis: str
    reason: str
    action: str | None = None  # what was done to the exported value; None: nothing


@dataclass(frozen=True)
class Detection:
    """The value detectors' hits on one exported string field (`detections[]`): counts only."""

    field: str
    moved_values: int  # values moved onshore (nulled in the export) by any detector
    hits: Mapping[str, int]  # by detector


@dataclass(frozen=True)
class Counterpart:
    """Where the other side of the run was published (`counterpart`)."""

    destination: Side
    path: str


@dataclass(frozen=True)
class InputFormat:
    """Protobuf input: the message type and how it was read (`input_format`)."""

    format: str  # "protobuf"
    message: str
    framing: str
    descriptor_set: str  # its path, or "shipped"
    layout: Layout
    namespace: str | None = None  # the catalogue namespace of key/value keys; plain: None


@dataclass(frozen=True)
class OutputFormat:
    """Protobuf stream parts (`output_format`); a Parquet output has none."""

    format: str  # "protobuf"
    message: str
    framing: str


@dataclass(frozen=True)
class QuarantinedRecord:
    """A bad input record kept raw under the onshore output's ``quarantine/`` (`quarantined[]`)."""

    file: str  # its path in the onshore output
    input: str
    message_index: int
    byte_offset: int
    bytes: int
    sha256: str
    reason: str

    def to_json(self) -> JsonObject:
        """The record as the manifest writes it."""
        return {"file": self.file, "input": self.input, "message_index": self.message_index,
                "byte_offset": self.byte_offset, "bytes": self.bytes, "sha256": self.sha256,
                "reason": self.reason}

    @classmethod
    def from_json(cls, value: JsonValue) -> QuarantinedRecord:
        """A record from its JSON (`ValueError` naming the field where it is not one)."""
        return _quarantined(JsonFields(value, "quarantined record"))


@dataclass(frozen=True)
class FormatSections:
    """The sections an input format adds to both manifests (top-level keys of the JSON): none
    for Parquet input; protobuf input's format, quarantine and key/value entry counts."""

    input_format: InputFormat | None = None
    # Where each bad record was, with its size and digest: onshore only (`for_destination`).
    quarantined: tuple[QuarantinedRecord, ...] | None = None
    quarantined_records: int | None = None  # their count, on both sides
    entries: Mapping[str, int] | None = None  # key/value input: entries by outcome
    output_format: OutputFormat | None = None

    def for_destination(self, destination: Side) -> FormatSections:
        """The sections of `destination`'s manifest: the export's holds the count of
        quarantined records, not the records (derived from onshore content)."""
        return replace(self, quarantined=None) if destination == "export" else self

    @property
    def key_value(self) -> bool:
        """Whether the input was key/value envelopes (split entry by entry)."""
        return self.kv_namespace is not None

    @property
    def kv_namespace(self) -> str | None:
        """The catalogue namespace of key/value input's keys; None: not key/value input."""
        fmt = self.input_format
        return fmt.namespace if fmt is not None and fmt.layout == "key_value" else None

    @property
    def streams(self) -> bool:
        """Whether the parts are protobuf streams (`--output-format protobuf`)."""
        return self.output_format is not None and self.output_format.format == "protobuf"


@dataclass(frozen=True)
class Manifest:
    """One output's manifest: what went in, what came out, and why (`filter.outputs.manifest`)."""

    schema_version: int
    vtx_version: str
    run_id: str
    created_at: str  # ISO 8601, UTC, to the second
    destination: Side
    catalogue: CatalogueRef
    scenario: str
    origin: str | None
    keys: ManifestKeys
    inputs: tuple[InputRecord, ...]
    files: tuple[PartRecord, ...]
    columns: tuple[ColumnRecord, ...]
    class_counts: Mapping[str, int]  # columns per class, in the order the classes first appear
    rows: int
    detections: tuple[Detection, ...]
    counterpart: Counterpart
    extra: FormatSections = field(default_factory=FormatSections)

    def to_json(self) -> JsonObject:
        """The JSON object vtx writes for this manifest, in its order of keys."""
        k, e = self.keys, self.extra
        document: JsonObject = {
            "schema_version": self.schema_version,
            "vtx_version": self.vtx_version,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "destination": self.destination,
            "catalogue": {"id": self.catalogue.id, "version": self.catalogue.version,
                          "sha256": self.catalogue.sha256},
            "scenario": self.scenario,
            "origin": self.origin,
            "keys": _present({"vehicle_id": k.vehicle_id, "timestamp": k.timestamp,
                              "token": k.token, "token_method": k.token_method,
                              "key_id": k.key_id, "key_id_method": k.key_id_method}),
            "inputs": [{"rows": i.rows} if i.path is None else
                       {"path": i.path, "bytes": i.bytes, "sha256": i.sha256, "rows": i.rows}
                       for i in self.inputs],
            "files": [{"name": f.name, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}
                      for f in self.files],
            "columns": [_present({"name": c.name, "class": c.data_class, "rule": c.rule,
                                  "basis": c.basis, "reason": c.reason, "action": c.action},
                                 keep=("rule",)) for c in self.columns],
            "class_counts": dict(self.class_counts),
            "rows": self.rows,
            "detections": [{"field": d.field, "moved_values": d.moved_values,
                            "hits": dict(d.hits)} for d in self.detections],
            "counterpart": {"destination": self.counterpart.destination,
                            "path": self.counterpart.path},
        }
        if (fmt := e.input_format) is not None:
            document["input_format"] = _present({
                "format": fmt.format, "message": fmt.message, "framing": fmt.framing,
                "descriptor_set": fmt.descriptor_set, "layout": fmt.layout,
                "namespace": fmt.namespace})
        if e.quarantined is not None:
            document["quarantined"] = [r.to_json() for r in e.quarantined]
        if e.quarantined_records is not None:
            document["quarantined_records"] = e.quarantined_records
        if e.entries is not None:
            document["entries"] = dict(e.entries)
        if (out := e.output_format) is not None:
            document["output_format"] = {"format": out.format, "message": out.message,
                                         "framing": out.framing}
        return document

    @classmethod
    def from_json(cls, document: JsonValue) -> Manifest:
        """The manifest a stored document holds; `ValueError` naming the field where it is not
        one (see the module doc)."""
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        f = JsonFields(document, "")
        manifest = cls(
            schema_version=f.integer("schema_version"),
            vtx_version=f.text("vtx_version"),
            run_id=f.text("run_id"),
            created_at=f.text("created_at"),
            destination=_side(f, "destination"),
            catalogue=_catalogue(f.object("catalogue")),
            scenario=f.text("scenario"),
            origin=f.text_or_null("origin"),
            keys=_keys(f.object("keys")),
            inputs=tuple(_input(i) for i in f.objects("inputs")),
            files=_files(f.objects("files")),
            columns=tuple(_column(c) for c in f.objects("columns")),
            class_counts=f.counts("class_counts"),
            rows=f.count("rows"),
            detections=tuple(_detection(d) for d in f.objects("detections")),
            counterpart=_counterpart(f.object("counterpart")),
            extra=_sections(f),
        )
        f.done()
        return manifest


def _present(members: dict[str, JsonValue], keep: Sequence[str] = ()) -> JsonObject:
    """`members` without the optional ones that are None (absent from the JSON); `keep`: those
    written as null."""
    return {k: v for k, v in members.items() if v is not None or k in keep}


def parse_manifest(text: bytes | str) -> Manifest:
    """The manifest of a stored manifest's JSON text (`ValueError` if it is not JSON or not a
    manifest)."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return Manifest.from_json(document)


def _side(f: JsonFields, key: str) -> Side:
    value = f.text(key)
    if value == "export" or value == "onshore":
        return value
    raise ValueError(f"{f.name(key)} is {value!r}, neither 'export' nor 'onshore'")


def _layout(f: JsonFields, key: str) -> Layout:
    value = f.text(key)
    if value == "key_value" or value == "plain":
        return value
    raise ValueError(f"{f.name(key)} is {value!r}, neither 'key_value' nor 'plain'")


def _catalogue(f: JsonFields) -> CatalogueRef:
    ref = CatalogueRef(f.text("id"), f.text("version"), f.text("sha256"))
    f.done()
    return ref


def _keys(f: JsonFields) -> ManifestKeys:
    keys = ManifestKeys(f.text("vehicle_id"), f.text("timestamp"), f.text("token"),
                        f.text("token_method"), f.optional_text("key_id"),
                        f.optional_text("key_id_method"))
    f.done()
    return keys


def _input(f: JsonFields) -> InputRecord:
    if any(f.has(k) for k in ("path", "bytes", "sha256")):  # onshore, or schema version 1
        record = InputRecord(f.count("rows"), f.text("path"), f.count("bytes"), f.text("sha256"))
    else:  # an export's: rows only
        record = InputRecord(f.count("rows"))
    f.done()
    return record


#: Names a part file cannot have: the manifest's own files, and what is not a plain file name.
_NOT_PART_NAMES = frozenset({"", ".", "..", MANIFEST_NAME, LEGACY_MANIFEST_NAME,
                             LEGACY_SIGNATURE_NAME})


def _files(records: list[JsonFields]) -> tuple[PartRecord, ...]:
    parts: list[PartRecord] = []
    for f in records:
        part = PartRecord(f.text("name"), f.count("rows"), f.count("bytes"), f.text("sha256"))
        f.done()
        # A verifier opens `<directory>/<name>`: nothing outside the directory, nor its manifest.
        if (part.name in _NOT_PART_NAMES or "/" in part.name or "\\" in part.name
                or any(p.name == part.name for p in parts)):
            raise ValueError(f"{f.name('name')} {part.name!r} is not a plain, unique file name")
        parts.append(part)
    return tuple(parts)


def _column(f: JsonFields) -> ColumnRecord:
    column = ColumnRecord(f.text("name"), f.text("class"), f.text_or_null("rule"),
                          f.text("basis"), f.text("reason"), f.optional_text("action"))
    f.done()
    return column


def _detection(f: JsonFields) -> Detection:
    found = Detection(f.text("field"), f.count("moved_values"), f.counts("hits"))
    f.done()
    return found


def _counterpart(f: JsonFields) -> Counterpart:
    counterpart = Counterpart(_side(f, "destination"), f.text("path"))
    f.done()
    return counterpart


def _quarantined(f: JsonFields) -> QuarantinedRecord:
    record = QuarantinedRecord(f.text("file"), f.text("input"), f.count("message_index"),
                               f.count("byte_offset"), f.count("bytes"), f.text("sha256"),
                               f.text("reason"))
    f.done()
    return record


def _input_format(f: JsonFields) -> InputFormat:
    layout = _layout(f, "layout")
    # Key/value keys are classified under a namespace, which a key/value input names; a plain
    # one has none.
    namespace = f.text("namespace") if layout == "key_value" else None
    found = InputFormat(f.text("format"), f.text("message"), f.text("framing"),
                        f.text("descriptor_set"), layout, namespace)
    f.done()
    return found


def _output_format(f: JsonFields) -> OutputFormat:
    found = OutputFormat(f.text("format"), f.text("message"), f.text("framing"))
    f.done()
    return found


def _sections(f: JsonFields) -> FormatSections:
    """The input format's sections among the manifest's top-level members."""
    return FormatSections(
        input_format=_input_format(f.object("input_format")) if f.has("input_format") else None,
        quarantined=tuple(_quarantined(r) for r in f.objects("quarantined"))
        if f.has("quarantined") else None,
        quarantined_records=f.optional_count("quarantined_records"),
        # Every key/value manifest counts the entries read and exported (0 included).
        entries=f.counts("entries", required=("entries", "exported"))
        if f.has("entries") else None,
        output_format=_output_format(f.object("output_format"))
        if f.has("output_format") else None,
    )


__all__ = [
    "LEGACY_MANIFEST_NAME",
    "LEGACY_SIGNATURE_NAME",
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "CatalogueRef",
    "ColumnRecord",
    "Counterpart",
    "Detection",
    "FormatSections",
    "InputFormat",
    "InputRecord",
    "Manifest",
    "ManifestKeys",
    "OutputFormat",
    "PartRecord",
    "QuarantinedRecord",
    "parse_manifest",
]
