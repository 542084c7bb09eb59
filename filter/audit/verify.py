"""Check a published output against its manifest, its catalogue and its counterpart.

In: an export directory, optionally its onshore counterpart, and a catalogue (object, path, or
None for the shipped one).
Out: a `VerifyReport` whose `failures` list every problem found, each naming the directory or
file, and the column and detector where one applies; never a data value. Checks:

- **Integrity**, each directory: the manifest parses and has a known `schema_version`; every
  file it lists exists with the listed SHA-256 and, from the Parquet footer, the listed row
  count; no file in the directory besides `_manifest.json` (and `_manifest.sig`) is unlisted
  (an onshore ``quarantine/`` holds exactly the bad records its manifest lists, with their
  SHA-256).
- **Policy**, the export: the catalogue's SHA-256 equals the manifest's; the scenario exists and
  accepts the manifest's origin; every leaf column of every part is a key column (the
  vehicle token, the manifest's timestamp) or is classified by the catalogue into an ordinary
  class the scenario exports (`policy.plan.decide_path`); no binary column; the parts' columns
  are the manifest's.
- **Values**, the export: no string value (string and list-of-string leaves other than the
  keys) hits a value detector (`filter.apply.detectors`); with the onshore side given, no export
  string (the token included) holds a VIN of the onshore VIN column.
- **Signature**, each directory (`outputs.signing.check_signature`): a `_manifest.sig` must be
  exactly what vtx writes; with a public key, each manifest must carry a valid signature by
  that key; with `require_signature`, each must carry one.
- **Pairing**, an onshore output alone: whether its export half stands where the manifest's
  `counterpart` says, as an output of the same run; if not, `VerifyReport.missing_half` says
  so (a *half pair*, left by a run killed between its two renames, or an export moved away
  since). Not a failure: the onshore output itself may be whole.
- **Reconciliation**, with the onshore side: both manifests name the same `run_id` and the
  same `keys.key_id` (the tokens' key), list the same file names with equal row counts, and
  every part pair holds the same `vehicle_token` column, row by row.

Parts are streamed (Polars' streaming engine, one query per part); only the distinct VINs of
the onshore side are held in memory. A part whose hash does not match its manifest is reported
and not read further (its content cannot be trusted, and may not even parse).
May fail: `CatalogueError` for a catalogue that cannot be loaded, `InputError` for an export or
onshore path that is not a directory. Everything wrong *inside* an output is a failure in the
report, not an exception.

Part formats are looked up by file suffix in `PART_FORMATS`: Parquet, and delimited protobuf
streams (`--output-format protobuf`), which are decoded into the rows the same split writes to
Parquet (the export's vehicle identifier field holds the token). For streams, each side holds
one message per input message: the part pairs must hold as many messages, and the entries of
both sides add up to the entries read; in plain streams every field the catalogue withholds
must be unset in the export.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq
from google.protobuf.descriptor import Descriptor

from filter.apply.detectors import as_strings, detector_hits, is_scannable
from filter.apply.reconstruct import INPUT_INDEX, SIDE, WRITTEN_INDEX, entry_positions
from filter.engines.parquet import resolve_catalogue
from filter.engines.protobuf import QUARANTINE_DIR
from filter.errors import InputError, first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf import schema as pb
from filter.formats.protobuf.schema import UNKNOWN_FIELDS
from filter.outputs.manifest import MANIFEST_NAME, SCHEMA_VERSION, manifest_if_any, sha256_file
from filter.outputs.signing import SIGNATURE_NAME, check_signature
from filter.outputs.signing_keys import load_public_key
from filter.policy.catalogue import Catalogue
from filter.policy.plan import TOKEN_COLUMN, decide_path

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

#: Manifest schema versions this verifier understands.
KNOWN_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})
#: VINs at least this long are also looked for inside export strings, not only as whole values.
_MIN_EMBEDDED_VIN = 10
_SEP = "\x1f"


@dataclass(frozen=True)
class PartFormat:
    """How the verifier reads one kind of part file: its row count, schema and a lazy scan."""

    rows: Callable[[Path], int]
    schema: Callable[[Path], pl.Schema]
    scan: Callable[[Path], pl.LazyFrame]


def _stream_messages(path: Path) -> int:
    """How many messages a delimited protobuf part holds (the manifest's rows)."""
    return sum(1 for _ in pb.iter_frames(path, "delimited"))


@functools.lru_cache(maxsize=8)
def _stream_reader(directory: Path) -> tuple[pb.ProtoSchema, bool]:
    """The message type a directory's protobuf parts hold (from its manifest), and whether it
    is an export (whose vehicle identifier field holds the token)."""
    manifest = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    source = manifest["input_format"]
    descriptor = source.get("descriptor_set")
    schema = pb.load_schema(
        None if descriptor in (None, pb.SHIPPED_SOURCE) else descriptor, source["message"],
        kv_field=None)
    return schema, manifest["destination"] == "export"


def _stream_rows(path: Path) -> pl.DataFrame:
    """A protobuf part decoded into the rows vtx writes to Parquet for the same input; in an
    export, the vehicle identifier field is named for what it holds: the token."""
    schema, export = _stream_reader(path.parent.absolute())
    batches = [b.rows for b in protobuf_batches.iter_batches(schema, path, "delimited")]
    rows = pl.concat(batches) if batches else (
        pb.key_value_schema(schema) if schema.key_value else pb.polars_schema(schema)
    ).to_frame()
    if export:
        vin = json.loads((path.parent / MANIFEST_NAME).read_text())["keys"]["vehicle_id"]
        # A message whose VIN gets no token has no field: "" on the wire, null in Parquet.
        rows = rows.rename({vin: TOKEN_COLUMN}).with_columns(
            pl.col(TOKEN_COLUMN).replace("", None))
        if rows[UNKNOWN_FIELDS].null_count() == rows.height:  # none on the wire: no column
            rows = rows.drop(UNKNOWN_FIELDS)
    return rows


PART_FORMATS: dict[str, PartFormat] = {
    ".parquet": PartFormat(
        rows=lambda p: pq.read_metadata(p).num_rows,
        # glob=False: a part is that file, even under a directory with `[` in its name.
        schema=lambda p: pl.scan_parquet(p, glob=False).collect_schema(),
        scan=lambda p: pl.scan_parquet(p, glob=False),
    ),
    # Delimited streams of the input's type (`--output-format protobuf`): rows are messages;
    # the content is checked on the rows they decode to, with the type the manifest names.
    ".pb": PartFormat(
        rows=_stream_messages,
        schema=lambda p: _stream_rows(p).schema,
        scan=lambda p: _stream_rows(p).lazy(),
    ),
}


@dataclass(frozen=True)
class Failure:
    """One problem: where (a directory, or a file with a column) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    """What `verify_output` checked and found."""

    export_dir: Path | None  # None when an onshore output was checked alone
    onshore_dir: Path | None
    run_id: str | None
    files: int  # part files checked, both sides
    rows: int  # rows of the export (of the onshore output checked alone), as its footers give
    failures: tuple[Failure, ...]
    # An onshore output checked alone whose export half is not where its manifest says: why.
    missing_half: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures

    def summary(self) -> str:
        """One line: what was checked and the verdict."""
        sides = " and ".join(str(d) for d in (self.export_dir, self.onshore_dir) if d)
        verdict = "ok" if self.ok else f"{len(self.failures)} failure(s)"
        return (f"{sides}: {verdict}: run {self.run_id or '?'}, {self.files} file(s), "
                f"{self.rows:,} rows")


@dataclass
class OutputCheck:
    """One output directory as read and checked: its manifest and its trustworthy parts."""

    directory: Path
    manifest: dict[str, Any] | None = None
    intact: dict[str, Path] = field(default_factory=dict)  # name -> part whose hash matches
    rows: dict[str, int] = field(default_factory=dict)  # name -> footer rows
    failures: list[Failure] = field(default_factory=list)

    def fail(self, where: str | Path, message: str) -> None:
        self.failures.append(Failure(str(where), message))


def verify_output(
    output_dir: str | Path,
    onshore_dir: str | Path | None = None,
    catalogue: Catalogue | str | Path | None = None,
    *,
    public_key: Ed25519PublicKey | str | Path | None = None,
    require_signature: bool = False,
) -> VerifyReport:
    """Check a published export and its onshore counterpart, or either side alone; see the
    module doc.

    `output_dir`: the export, or, without `onshore_dir`, either side (the side its manifest's
    `destination` names). An onshore output alone gets the integrity checks and its own
    claims; the policy and value checks are the export's, the reconciliation needs both.
    `public_key` (a key or its PEM file): each side's manifest must be signed by it.
    `require_signature`: each side must be signed (by any key, when no `public_key` is given).
    """
    cat = resolve_catalogue(catalogue)
    if isinstance(public_key, str | Path):
        public_key = load_public_key(public_key)
    first = check_directory(output_dir, "export" if onshore_dir is not None else None)
    export: OutputCheck | None = first
    onshore: OutputCheck | None = None
    if onshore_dir is not None:
        onshore = check_directory(onshore_dir, "onshore")
    elif first.manifest is not None and first.manifest["destination"] == "onshore":
        export, onshore = None, first
    elif first.manifest is not None and first.manifest["destination"] != "export":
        first.fail(first.directory / MANIFEST_NAME, f"destination is "
                   f"{first.manifest['destination']!r}, neither 'export' nor 'onshore'")
    sides = [s for s in (export, onshore) if s is not None]
    for side in sides:
        if side.manifest is not None:
            side.failures += [Failure(str(side.directory), problem) for problem in
                              check_signature(side.directory, public_key,
                                              required=require_signature)]
    for side in sides:
        if side.manifest is not None:
            _check_claims(side)
    found: list[Failure] = []
    if export is not None and export.manifest is not None and (
            export.manifest["destination"] == "export"):
        schemas = _schemas(export)
        found += _check_policy(export, schemas, cat)
        vins = _onshore_vins(onshore) if onshore is not None else None
        found += _check_values(export, schemas, vins)
    elif onshore is not None:  # alone: its VIN column must be there and readable
        _onshore_vins(onshore)
    if onshore is not None and onshore.manifest is not None:
        _check_onshore_columns(onshore)
    if export is not None and onshore is not None and export.manifest is not None and (
            onshore.manifest is not None):
        found += _reconcile(export, onshore)
    failures = [f for side in sides for f in side.failures] + found
    missing_half = None
    if export is None and onshore is not None and onshore.manifest is not None:
        missing_half = _missing_export_half(onshore.manifest)
    return VerifyReport(
        export_dir=export.directory if export else None,
        onshore_dir=onshore.directory if onshore else None,
        run_id=(first.manifest or {}).get("run_id"),
        files=sum(len(side.rows) for side in sides),
        rows=sum(first.rows.values()),
        failures=tuple(failures),
        missing_half=missing_half,
    )


def _missing_export_half(onshore: Mapping[str, Any]) -> str | None:
    """Why the export half of this onshore manifest's run is not where it says, or None."""
    counterpart = onshore.get("counterpart")
    where = counterpart.get("path") if isinstance(counterpart, dict) else None
    if not isinstance(where, str):
        return "export half unknown: the manifest names no counterpart"
    path = Path(where)
    export = manifest_if_any(path)
    if export is None:
        if (path / MANIFEST_NAME).exists():
            return f"export half missing: {path / MANIFEST_NAME} cannot be read"
        state = "absent" if not path.exists() else "holds no published output"
        return (f"export half missing: {path} {state} (a half-published pair: re-run the "
                "same split to complete it)")
    if export.get("destination") != "export" or export.get("run_id") != onshore.get("run_id"):
        return (f"export half missing: {path} holds run {export.get('run_id')}, not "
                f"{onshore.get('run_id')} (replaced since; this onshore output no longer has "
                "its export half)")
    return None


def check_directory(directory: str | Path, destination: str | None = None) -> OutputCheck:
    """Integrity of one output directory: manifest, hashes, footer row counts, no stray files.

    `destination` ("export" or "onshore"), when given, must be the manifest's. The result's
    `failures` list what is wrong; `intact` the parts whose content can be trusted.
    """
    side = OutputCheck(Path(directory).absolute())
    if not side.directory.is_dir():
        raise InputError(f"{side.directory}: not a directory (give a published vtx output)")
    manifest_path = side.directory / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        side.fail(side.directory, f"no {MANIFEST_NAME}: not a published vtx output")
        return side
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        side.fail(manifest_path, f"cannot be read: {first_line(exc)}")
        return side
    if (problem := manifest_problem(manifest)) is not None:
        side.fail(manifest_path, problem)
        return side
    side.manifest = manifest
    if manifest["schema_version"] not in KNOWN_SCHEMA_VERSIONS:
        side.fail(manifest_path, f"unknown schema_version {manifest['schema_version']!r} "
                  f"(this vtx reads {', '.join(map(str, sorted(KNOWN_SCHEMA_VERSIONS)))})")
    if destination is not None and manifest["destination"] != destination:
        side.fail(manifest_path, f"destination is {manifest['destination']!r}, "
                  f"not {destination!r}: is this the {destination} directory?")
    listed = {f["name"]: f for f in manifest["files"]}
    # The signature is checked by verify_output (`outputs.signing.check_signature`).
    present = {p.name for p in side.directory.iterdir()} - {MANIFEST_NAME, SIGNATURE_NAME}
    quarantined = manifest.get("quarantined")
    if isinstance(quarantined, list) and (QUARANTINE_DIR in present or quarantined):
        present.discard(QUARANTINE_DIR)  # bad records kept raw, listed apart from the parts
        _check_quarantine(side, quarantined)
    for name in sorted(present - set(listed)):
        side.fail(side.directory / name, "not listed in the manifest")
    for name, record in listed.items():
        _check_file(side, name, record, present)
    if sum(f["rows"] for f in manifest["files"]) != manifest["rows"]:
        side.fail(manifest_path, f"rows {manifest['rows']} is not the sum of its files' rows")
    return side


def _check_claims(side: OutputCheck) -> None:
    """What a manifest states about its counts, against each other and its own files: the
    inputs' rows add up to its rows (key/value entries in Parquet parts: the entries' counts
    give each side's rows), its `class_counts` count its columns, its quarantine count is its
    quarantined records'."""
    manifest = side.manifest
    assert manifest is not None
    where = side.directory / MANIFEST_NAME
    columns = manifest["columns"]
    counted = dict(Counter(str(c.get("class")) for c in columns))
    if manifest.get("class_counts") != counted:
        side.fail(where, f"class_counts {manifest.get('class_counts')} are not the classes of "
                  f"its columns {counted}")
    inputs = manifest.get("inputs")
    if not (isinstance(inputs, list) and all(
            isinstance(i, dict) and _count(i.get("rows")) for i in inputs)):
        side.fail(where, "inputs: malformed (each input needs its rows)")
        inputs = None
    entries = manifest.get("entries")
    if entries is not None:
        if not (isinstance(entries, dict) and all(_count(v) for v in entries.values())
                and _count(entries.get("entries")) and _count(entries.get("exported"))):
            side.fail(where, "entries: malformed (counts needed, entries and exported among them)")
            entries = None
        else:
            for name, count in entries.items():
                if count > entries["entries"]:
                    side.fail(where, f"entries: {name} {count} is more than the entries read "
                              f"({entries['entries']})")
    rows = manifest["rows"]
    per_entry = manifest.get("input_format", {}).get("layout") == "key_value" and not (
        _is_stream(manifest))
    if per_entry:  # a row per entry: the side's share of the entries read
        if entries is not None:
            export = manifest["destination"] == "export"
            share = entries["exported"] if export else entries["entries"] - entries["exported"]
            if rows != share:
                side.fail(where, f"rows {rows} are not the entries "
                          f"{'exported' if export else 'kept onshore'} ({share}) its entries give")
        else:
            side.fail(where, "entries: missing (a key/value output counts its entries)")
    elif inputs is not None and (read := sum(i["rows"] for i in inputs)) != rows:
        side.fail(where, f"inputs: their rows add up to {read}, not the manifest's rows {rows}")
    count = manifest.get("quarantined_records")
    listed = manifest.get("quarantined")
    if count is not None and not _count(count):
        side.fail(where, "quarantined_records: not a count")
    elif isinstance(listed, list) and count != len(listed):
        side.fail(where, f"quarantined_records {count} is not the {len(listed)} quarantined "
                  "record(s) listed")


def _count(value: Any) -> bool:
    """Whether `value` is a count (a non-negative integer; not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_onshore_columns(onshore: OutputCheck) -> None:
    """Plain Parquet onshore parts: their leaf columns are the manifest's columns (and the
    scanned fields a detector moved values of), and each scanned field holds as many values as
    the manifest's `detections` say were moved."""
    manifest = onshore.manifest
    assert manifest is not None
    if manifest["destination"] != "onshore" or _is_stream(manifest) or manifest.get(
            "input_format", {}).get("layout") == "key_value":
        return  # entries and whole messages: their columns are the layout's, not the fields'
    detections = manifest.get("detections")
    if not (isinstance(detections, list) and all(
            isinstance(d, dict) and isinstance(d.get("field"), str) and _count(
                d.get("moved_values")) for d in detections)):
        onshore.fail(onshore.directory / MANIFEST_NAME,
                     "detections: malformed (each needs a field and its moved_values)")
        return
    moved = {d["field"]: d["moved_values"] for d in detections}
    listed = {c["name"] for c in manifest["columns"]}
    held: dict[str, int] = dict.fromkeys(moved, 0)
    for name, schema in _schemas(onshore).items():
        part = onshore.intact[name]
        paths = {path: expr for column, dtype in schema.items()
                 for path, expr, _leaf in _leaves(column, dtype)}
        for path in sorted(paths.keys() - listed - moved.keys()):
            onshore.fail(f"{part}: column {path!r}", "in the part but not in the manifest's "
                         "columns")
        for path in sorted(listed - paths.keys()):
            onshore.fail(f"{part}: column {path!r}", "in the manifest's columns but not in the "
                         "part")
        present = [paths[p].count().alias(p) for p in moved if p in paths]
        if present:
            try:
                counts = (PART_FORMATS[part.suffix].scan(part).select(present)
                          .collect(engine="streaming").row(0, named=True))
            except READ_ERRORS as exc:
                onshore.fail(part, f"values cannot be read: {first_line(exc)}")
                return
            for path, count in counts.items():
                held[path] += count
    if len(onshore.intact) != len(manifest["files"]):
        return  # a part not read: the counts cannot add up
    for path, count in held.items():
        if count != moved[path]:
            onshore.fail(onshore.directory / MANIFEST_NAME, f"detections: field {path!r} "
                         f"moved_values {moved[path]}, but the parts hold {count} value(s) of it")


def _check_quarantine(side: OutputCheck, records: Sequence[Any]) -> None:
    """The onshore ``quarantine/`` holds exactly the bad records its manifest lists, each with
    its listed size and SHA-256."""
    directory = side.directory / QUARANTINE_DIR
    listed: dict[str, Mapping[str, Any]] = {}
    for record in records:
        name = str(record.get("file", "")) if isinstance(record, dict) else ""
        name = name.removeprefix(f"{QUARANTINE_DIR}/")
        if name in listed:  # two records, one file: one of them was overwritten
            side.fail(directory / name, "listed for more than one quarantined record")
        listed[name] = record
    present = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
    for name in sorted(present - set(listed)):
        side.fail(directory / name, "not listed in the manifest's quarantined records")
    for name, record in listed.items():
        path = directory / name
        if name not in present or "/" in name or not path.is_file():
            side.fail(path, "listed as a quarantined record but missing")
        elif sha256_file(path) != record.get("sha256") or path.stat().st_size != record.get(
                "bytes"):
            side.fail(path, "quarantined record differs from the manifest's size or sha256")


def _check_file(side: OutputCheck, name: str, record: Mapping[str, Any], present: set[str]) -> None:
    path = side.directory / name
    if name not in present:
        side.fail(path, "listed in the manifest but missing")
        return
    fmt = PART_FORMATS.get(path.suffix)
    if fmt is None or not path.is_file():
        side.fail(path, "not a part file vtx writes")
        return
    if sha256_file(path) != record["sha256"]:
        side.fail(path, "sha256 differs from the manifest's (the file changed since it was "
                  "published)")
        return
    try:
        rows = fmt.rows(path)
    except READ_ERRORS as exc:  # pyarrow raises several types for a bad footer
        side.fail(path, f"footer cannot be read: {first_line(exc)}")
        return
    side.rows[name] = rows
    if rows != record["rows"]:
        side.fail(path, f"holds {rows} rows, the manifest says {record['rows']}")
        return
    side.intact[name] = path


def manifest_problem(manifest: Any) -> str | None:
    """What makes a parsed manifest unusable, or None: the fields verify and report rely on."""
    if not isinstance(manifest, dict):
        return "malformed: not a JSON object"
    expected: dict[str, type | tuple[type, ...]] = {
        "schema_version": int, "run_id": str, "destination": str, "catalogue": dict,
        "scenario": str, "keys": dict, "files": list, "columns": list, "rows": int,
    }
    for key, kind in expected.items():
        if not isinstance(manifest.get(key), kind):
            return f"malformed: {key} is missing or not {_kind_name(kind)}"
    if not isinstance(manifest["catalogue"].get("sha256"), str):
        return "malformed: catalogue.sha256 is missing or not a string"
    for role in ("vehicle_id", "timestamp"):
        if not isinstance(manifest["keys"].get(role), str):
            return f"malformed: keys.{role} is missing or not a string"
    if manifest.get("origin") is not None and not isinstance(manifest["origin"], str):
        return "malformed: origin is not a string"
    names: set[str] = set()
    for index, record in enumerate(manifest["files"]):
        if not (isinstance(record, dict) and isinstance(record.get("name"), str)
                and isinstance(record.get("rows"), int) and isinstance(record.get("sha256"), str)):
            return f"malformed: files[{index}] needs name, rows and sha256"
        name = record["name"]
        if name in names or name in ("", ".", "..", MANIFEST_NAME) or "/" in name or "\\" in name:
            return f"malformed: files[{index}].name {name!r} is not a plain, unique file name"
        names.add(name)
    for index, column in enumerate(manifest["columns"]):
        if not (isinstance(column, dict) and isinstance(column.get("name"), str)):
            return f"malformed: columns[{index}] needs a name"
    return None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return {int: "an integer", str: "a string", dict: "an object", list: "a list"}.get(
        kind, str(kind))  # type: ignore[call-overload]


def _leaves(name: str, dtype: pl.DataType) -> list[tuple[str, pl.Expr, pl.DataType]]:
    """(dotted path, expression, type) of every leaf below a column; structs are walked."""
    out: list[tuple[str, pl.Expr, pl.DataType]] = []
    stack: list[tuple[str, pl.Expr, pl.DataType]] = [(name, pl.col(name), dtype)]
    while stack:
        path, expr, current = stack.pop()
        if isinstance(current, pl.Struct) and current.fields:
            stack.extend((f"{path}.{f.name}", expr.struct.field(f.name), f.dtype)
                         for f in reversed(current.fields))
        else:
            out.append((path, expr, current))
    return out


def _schemas(side: OutputCheck) -> dict[str, pl.Schema]:
    """The schema of every intact part (a part whose schema cannot be read fails and is dropped)."""
    schemas: dict[str, pl.Schema] = {}
    for name, path in list(side.intact.items()):
        try:
            schemas[name] = PART_FORMATS[path.suffix].schema(path)
        except READ_ERRORS as exc:  # polars/pyarrow errors on a part that hashes right
            side.fail(path, f"schema cannot be read: {first_line(exc)}")
            del side.intact[name]
    return schemas


def _check_policy(
    export: OutputCheck, schemas: Mapping[str, pl.Schema], cat: Catalogue
) -> list[Failure]:
    """Every export column allowed by the manifest's catalogue and scenario."""
    manifest = export.manifest
    assert manifest is not None
    where = str(export.directory / MANIFEST_NAME)
    failures: list[Failure] = []
    recorded = manifest["catalogue"]["sha256"]
    if recorded != cat.sha256:
        return [Failure(where, f"catalogue sha256 is {recorded}, but {cat.source} is "
                        f"{cat.sha256}: give the catalogue the output was split with "
                        "(--catalogue); columns not checked")]
    scenario = manifest["scenario"]
    if scenario not in cat.scenarios:
        return [Failure(where, f"scenario {scenario!r} is not in catalogue {cat.id!r}")]
    if cat.scenario(scenario).refuses(manifest.get("origin")):
        failures.append(Failure(where, f"scenario {scenario!r} refuses origin "
                                f"{manifest.get('origin')!r}"))
    timestamp, vin = manifest["keys"]["timestamp"], manifest["keys"]["vehicle_id"]
    layout = manifest.get("input_format", {})
    if layout.get("layout") == "key_value":
        return failures + _check_entries(export, schemas, cat, scenario, layout["namespace"], vin)
    if _is_stream(manifest):
        return failures + _check_plain_stream(export, schemas, cat, scenario, timestamp)
    listed = {c["name"] for c in manifest["columns"]}
    checked: dict[str, list[Failure]] = {}  # by the schema's text: parts share one schema
    for name, schema in schemas.items():
        part = export.directory / name
        known = repr(schema)
        if known not in checked:
            checked[known] = _check_columns(schema, cat, scenario, timestamp, vin, listed)
        failures += [Failure(f"{part}: column {f.where}", f.message) for f in checked[known]]
    return failures


def _check_columns(
    schema: pl.Schema, cat: Catalogue, scenario: str, timestamp: str, vin: str, listed: set[str]
) -> list[Failure]:
    """Problems of one export schema, as (column path, message) failures."""
    failures: list[Failure] = []
    paths: set[str] = set()
    for column, dtype in schema.items():
        if column == vin:
            failures.append(Failure(repr(column), "the raw vehicle identifier is in the export"))
            continue
        if column in (TOKEN_COLUMN, timestamp):
            paths.add(column)
            continue
        for path, _expr, leaf in _leaves(column, dtype):
            paths.add(path)
            if leaf == pl.Binary:
                failures.append(Failure(repr(path), "binary data is never exported"))
                continue
            decision = decide_path(cat, scenario, path)
            if decision.destination != "export":
                failures.append(Failure(repr(path), f"not allowed: {decision.reason}"))
    for missing in (TOKEN_COLUMN, timestamp):
        if missing not in schema:
            failures.append(Failure(repr(missing), "key column missing"))
    for path in sorted(paths - listed):
        failures.append(Failure(repr(path), "in the part but not in the manifest's columns"))
    for path in sorted(listed - paths):
        failures.append(Failure(repr(path), "in the manifest's columns but not in the part"))
    return failures


def _is_stream(manifest: Mapping[str, Any]) -> bool:
    return manifest.get("output_format", {}).get("format") == "protobuf"


def _check_plain_stream(
    export: OutputCheck, schemas: Mapping[str, pl.Schema], cat: Catalogue, scenario: str,
    timestamp: str,
) -> list[Failure]:
    """Plain protobuf export: every leaf the scenario does not export is unset everywhere."""
    failures: list[Failure] = []
    defaults = _enum_defaults(_stream_reader(export.directory.absolute())[0].descriptor)
    for name, schema in schemas.items():
        part = export.directory / name
        sent: list[pl.Expr] = []
        for column, dtype in schema.items():
            if column in (TOKEN_COLUMN, timestamp):
                continue
            for path, expr, leaf in _leaves(column, dtype):
                if column == UNKNOWN_FIELDS or decide_path(cat, scenario, path).destination \
                        != "export":
                    held = _is_set(expr, leaf)
                    if path in defaults:  # an enum not sent reads as its default's name
                        held = held & (expr != defaults[path])
                    sent.append(held.sum().alias(path))
        if not sent:
            continue
        try:
            row = PART_FORMATS[part.suffix].scan(part).select(sent).collect().row(0, named=True)
        except READ_ERRORS as exc:
            failures.append(Failure(f"{part}", f"messages cannot be read: {first_line(exc)}"))
            continue
        failures += [Failure(f"{part}: field {path!r}", f"set in {count} message(s) but not "
                             "allowed in the export") for path, count in row.items() if count]
    return failures


def _enum_defaults(descriptor: Descriptor, prefix: str = "", depth: int = 0) -> dict[str, str]:
    """The name of the default value of every single enum leaf of a message type, by the
    dotted path of JSON names its decoded column has (messages walked, lists not)."""
    found: dict[str, str] = {}
    for member in descriptor.fields:
        path = f"{prefix}{member.json_name}"
        if member.is_repeated:
            continue
        if member.enum_type is not None:
            value = member.enum_type.values_by_number.get(member.default_value)
            if value is not None:
                found[path] = value.name
        elif member.message_type is not None and depth < pb.MAX_DEPTH:
            found.update(_enum_defaults(member.message_type, f"{path}.", depth + 1))
    return found


def _is_set(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """True where a decoded protobuf leaf holds something other than its default."""
    if isinstance(dtype, pl.List):
        return expr.list.len().fill_null(0) > 0
    if dtype in (pl.String, pl.Binary):
        return expr.is_not_null() & (expr.cast(pl.Binary).bin.size() > 0)
    if dtype == pl.Boolean:
        return expr.fill_null(False)
    if dtype.is_numeric():
        return expr.fill_null(0) != 0
    return expr.is_not_null()


def _check_entries(
    export: OutputCheck,
    schemas: Mapping[str, pl.Schema],
    cat: Catalogue,
    scenario: str,
    namespace: str,
    vin: str,
) -> list[Failure]:
    """Key/value output: every exported entry's key (and message member) is exported."""
    failures: list[Failure] = []
    for name, schema in schemas.items():
        part = export.directory / name
        for forbidden in (vin, UNKNOWN_FIELDS):
            if forbidden in schema:
                failures.append(Failure(f"{part}: column {forbidden!r}", "never exported"))
        members = [c for c, t in schema.items() if c.startswith("value_") and
                   isinstance(t, pl.Struct)]
        query = PART_FORMATS[part.suffix].scan(part).select(
            "key", *(pl.col(m).is_not_null().alias(m) for m in members)
        ).unique()
        try:
            seen = query.collect(engine="streaming")
        except READ_ERRORS as exc:
            failures.append(Failure(f"{part}", f"entries cannot be read: {first_line(exc)}"))
            continue
        for row in seen.iter_rows(named=True):
            paths = [f"{namespace}.{row['key']}"] + [
                f"{namespace}.{row['key']}.{m.removeprefix('value_')}" for m in members if row[m]
            ]
            for path in paths:
                decision = decide_path(cat, scenario, path)
                if decision.destination != "export":
                    failures.append(Failure(f"{part}: entries of {path!r}",
                                            f"not allowed: {decision.reason}"))
    return failures


def _onshore_vins(onshore: OutputCheck) -> list[str] | None:
    """The distinct raw VINs of the onshore side's intact parts (None when none can be read)."""
    if onshore.manifest is None or onshore.manifest["destination"] != "onshore":
        return None
    vin = onshore.manifest["keys"]["vehicle_id"]
    values: set[str] = set()
    for name, path in onshore.intact.items():
        try:
            found = (PART_FORMATS[path.suffix].scan(path)
                     .select(pl.col(vin).cast(pl.String).drop_nulls().unique())
                     .filter(pl.col(vin).str.strip_chars() != "")  # a blank VIN names no one
                     .collect(engine="streaming"))
        except READ_ERRORS as exc:  # a missing VIN column, or a part polars cannot read
            onshore.fail(onshore.directory / name,
                         f"VIN column {vin!r} cannot be read: {first_line(exc)}")
            continue
        values.update(found.to_series())
    return sorted(values)


def _check_values(
    export: OutputCheck, schemas: Mapping[str, pl.Schema], vins: Sequence[str] | None
) -> list[Failure]:
    """Detector hits and onshore VINs in the export's string values, per part and column."""
    manifest = export.manifest
    assert manifest is not None
    keys = {TOKEN_COLUMN, manifest["keys"]["timestamp"]}
    failures: list[Failure] = []
    for name, schema in schemas.items():
        path = export.intact[name]
        counts: list[pl.Expr] = []
        for column, dtype in schema.items():
            for leaf_path, expr, leaf in _leaves(column, dtype):
                if not is_scannable(leaf):
                    continue
                if column not in keys:
                    counts += [hit.sum().alias(f"{leaf_path}{_SEP}detector {detector!r}")
                               for detector, hit in detector_hits(expr, leaf).items()]
                if vins:
                    counts.append(_vin_hits(expr, leaf, vins).sum()
                                  .alias(f"{leaf_path}{_SEP}a raw VIN of the onshore output"))
        if not counts:
            continue
        try:
            row = (PART_FORMATS[path.suffix].scan(path).select(counts)
                   .collect(engine="streaming").row(0, named=True))
        except READ_ERRORS as exc:  # polars errors on content that hashes right but will not read
            failures.append(Failure(str(path), f"values cannot be read: {first_line(exc)}"))
            continue
        for label, count in row.items():
            if count:
                column, what = label.split(_SEP)
                failures.append(Failure(f"{path}: column {column!r}",
                                        f"{count} value(s) hit {what}"))
    return failures


def _vin_hits(expr: pl.Expr, dtype: pl.DataType, vins: Sequence[str]) -> pl.Expr:
    """True where a string (or any element of a list of strings) is or holds an onshore VIN."""
    long = [v for v in vins if len(v) >= _MIN_EMBEDDED_VIN]

    def hit(value: pl.Expr) -> pl.Expr:
        found = value.is_in(list(vins))
        return found | value.str.contains_any(long) if long else found

    strings, many = as_strings(expr, dtype)  # categoricals, enums, nested lists too
    if not many:
        return hit(strings)
    return strings.list.eval(hit(pl.element())).list.any()


def _reconcile(export: OutputCheck, onshore: OutputCheck) -> list[Failure]:
    """Both sides of one run: run id, file names and rows, and the token column row by row."""
    e, o = export.manifest, onshore.manifest
    assert e is not None and o is not None
    where = f"{export.directory} and {onshore.directory}"
    if e["run_id"] != o["run_id"]:
        return [Failure(where, f"different runs: export {e['run_id']}, onshore {o['run_id']}")]
    e_key, o_key = e["keys"].get("key_id"), o["keys"].get("key_id")
    if not isinstance(e_key, str) or e_key != o_key:  # tokens of two keys never line up
        return [Failure(where, f"different keys: export key_id {e_key}, onshore key_id "
                        f"{o_key}; the tokens were not made with one key")]
    failures = [Failure(where, f"{claim} differ: export {e.get(claim)}, onshore {o.get(claim)}")
                for claim in ("entries", "quarantined_records", "detections")
                if e.get(claim) != o.get(claim)]
    e_inputs = [i.get("rows") for i in e.get("inputs") or [] if isinstance(i, dict)]
    o_inputs = [i.get("rows") for i in o.get("inputs") or [] if isinstance(i, dict)]
    if e_inputs != o_inputs:
        failures.append(Failure(where, f"inputs: rows differ: export {e_inputs}, onshore "
                                f"{o_inputs}"))
    if e.get("input_format", {}).get("layout") == "key_value":
        return failures + _reconcile_entries(export, onshore)
    streams = _is_stream(e)
    if e["rows"] != o["rows"]:
        failures.append(Failure(where, f"rows do not reconcile: export {e['rows']}, onshore "
                                f"{o['rows']}"))
    e_rows = {f["name"]: f["rows"] for f in e["files"]}
    o_rows = {f["name"]: f["rows"] for f in o["files"]}
    if list(e_rows) != list(o_rows):
        failures.append(Failure(where, "the manifests list different part files"))
    for name in e_rows.keys() & o_rows.keys():
        if e_rows[name] != o_rows[name]:
            failures.append(Failure(f"{where}: {name}", f"rows do not reconcile: export "
                                    f"{e_rows[name]}, onshore {o_rows[name]}"))
        elif name in export.intact and name in onshore.intact and not streams:
            failures += _same_tokens(export.intact[name], onshore.intact[name])
    return failures


def _reconcile_entries(export: OutputCheck, onshore: OutputCheck) -> list[Failure]:
    """Key/value output: every entry read is on exactly one side, once."""
    e, o = export.manifest, onshore.manifest
    assert e is not None and o is not None
    where = f"{export.directory} and {onshore.directory}"
    failures: list[Failure] = []
    read = e.get("entries", {}).get("entries")
    if _is_stream(e):
        return _reconcile_stream_entries(export, onshore, read)
    written = e["rows"] + o["rows"]
    if read != written:
        failures.append(Failure(where, f"entries do not reconcile: read {read}, written {written}"))
    for name in export.intact.keys() & onshore.intact.keys():
        # The export numbers each message's entries 0..k-1; onshore rows keep their input
        # index and the count of exported entries before them: merged, each entry must fall
        # in its own place, once (`reconstruct.entry_positions`).
        scans = [PART_FORMATS[p.suffix].scan(p) for p in (export.intact[name],
                                                           onshore.intact[name])]
        placed = entry_positions(*scans)
        misplaced = pl.col(WRITTEN_INDEX) != pl.when(pl.col(SIDE) == "onshore").then(
            pl.col(INPUT_INDEX)).otherwise(pl.int_range(pl.len()).over("message_index", SIDE))
        try:
            wrong = placed.select(misplaced.sum()).collect().item()
        except READ_ERRORS as exc:
            failures.append(Failure(f"{where}: {name}", f"entries cannot be read: "
                                    f"{first_line(exc)}"))
            continue
        if wrong:
            failures.append(Failure(f"{where}: {name}", f"{wrong} entr(ies) are out of place "
                                    "(on both sides, or numbered apart from the input)"))
    return failures


def _reconcile_stream_entries(
    export: OutputCheck, onshore: OutputCheck, read: int | None
) -> list[Failure]:
    """Key/value streams: part pairs hold as many messages; the entries add up."""
    e, o = export.manifest, onshore.manifest
    assert e is not None and o is not None
    where = f"{export.directory} and {onshore.directory}"
    failures: list[Failure] = []
    e_rows = {f["name"]: f["rows"] for f in e["files"]}
    o_rows = {f["name"]: f["rows"] for f in o["files"]}
    if e_rows != o_rows:
        failures.append(Failure(where, "the part files do not hold the same messages"))
    written = 0
    for side in (export, onshore):
        for path in side.intact.values():
            try:
                written += _stream_rows(path).height
            except READ_ERRORS as exc:
                failures.append(Failure(f"{path}", f"entries cannot be read: {first_line(exc)}"))
                return failures
    complete = len(export.intact) == len(e["files"]) and len(onshore.intact) == len(o["files"])
    if complete and read != written:
        failures.append(Failure(where, f"entries do not reconcile: read {read}, written {written}"))
    return failures


def _same_tokens(export_part: Path, onshore_part: Path) -> list[Failure]:
    """The two parts' `vehicle_token` columns, streamed side by side, must be equal."""
    scans = [PART_FORMATS[p.suffix].scan(p).select(pl.col(TOKEN_COLUMN).alias(side))
             for p, side in ((export_part, "e"), (onshore_part, "o"))]
    try:
        differ = (pl.concat(scans, how="horizontal")
                  .select(pl.col("e").ne_missing(pl.col("o")).sum())
                  .collect(engine="streaming").item())
    except READ_ERRORS as exc:  # a missing token column, or a part polars cannot read
        return [Failure(f"{export_part}", f"{TOKEN_COLUMN} cannot be compared with "
                        f"{onshore_part}: {first_line(exc)}")]
    if differ:
        return [Failure(f"{export_part}", f"{differ} row(s) carry a different {TOKEN_COLUMN} "
                        f"than {onshore_part}")]
    return []


__all__ = [
    "KNOWN_SCHEMA_VERSIONS",
    "PART_FORMATS",
    "Failure",
    "OutputCheck",
    "VerifyReport",
    "check_directory",
    "manifest_problem",
    "verify_output",
]
