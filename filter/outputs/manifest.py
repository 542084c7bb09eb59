"""The manifest of a published output: what went in, what came out, and why.

In: the run's plan, inputs and written part files.
Out: a `Manifest` per output directory (export and onshore; the typed document and its JSON:
`filter.outputs.manifest_document`), stored as JSON, with `schema_version`, the vtx
version, the catalogue (id, version, sha256), the scenario, the keys (with the `key_id` of the
pseudonymisation key), the inputs, the files (name, rows, bytes, sha256), the columns (name,
class, rule, basis, reason), per-class column counts and the row count. Both manifests share a
`run_id` and a `key_id`, so a verifier can pair them, and the row counts of both equal the
inputs' total: that is the reconciliation. The manifest never holds a data value.

The export manifest leaves the country, so it holds nothing derived from the inputs' content
without the key: its `inputs` give rows only (an input's path can hold a VIN, its size and
unkeyed SHA-256 are an oracle for a small input's content), and the quarantined records'
names, offsets, sizes and digests are left out of it (`FormatSections.for_destination`); it
keeps counts.
The onshore manifest holds all of it.

Where it lives: `_manifest.parquet` in the output directory, a Parquet file of no rows with the
schema of the directory's Parquet parts, the manifest's JSON text (and its signature, where the
run signed it: `filter.outputs.signing`) in its footer's key-value metadata. So every Parquet
reader reads the directory as it is, without a glob: Polars' `scan_parquet(DIR)`, which
refuses any other file in it, pyarrow datasets, DuckDB, Spark and Ray add no row for it (and
those that skip `_` files skip it). Outputs of schema versions 1 and 2 keep theirs as
`_manifest.json` (and `_manifest.sig`): `stored_manifest` reads both layouts, `read_manifest`
gives the `Manifest` either holds.

Bump `SCHEMA_VERSION` (`manifest_document`) when a change breaks readers of the manifest, and
say so in CHANGELOG.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filter._version import __version__
from filter.apply.columns import COUNT_SEPARATOR, MOVED
from filter.apply.pseudonym import KEY_ID_HEX_CHARS, KEY_ID_MESSAGE, TOKEN_HEX_CHARS
from filter.errors import output_failed
from filter.files import open_regular, read_regular
from filter.outputs.json_fields import JsonValue
from filter.outputs.manifest_document import (
    LEGACY_MANIFEST_NAME,
    LEGACY_SIGNATURE_NAME,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    CatalogueRef,
    ColumnRecord,
    Counterpart,
    Detection,
    FormatSections,
    InputRecord,
    Manifest,
    ManifestKeys,
    PartRecord,
    Side,
)
from filter.policy.plan import KEY_CLASS, TOKEN_COLUMN, ExportPlan

#: The footer keys of `_manifest.parquet` that hold the manifest's JSON and its signature.
MANIFEST_KEY = b"vtx.manifest"
SIGNATURE_KEY = b"vtx.manifest.signature"
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileRecord:
    """A file read or written by the run."""

    path: Path
    rows: int
    bytes: int
    sha256: str


def sha256_file(path: Path, *, follow_links: bool = True) -> str:
    """The hex SHA-256 of a file, read in chunks (hashlib releases the GIL, so threads help).

    A regular file only (`filter.files.open_regular`: a FIFO or device is an `OSError`, not
    read forever); ``follow_links=False`` refuses a symbolic link too."""
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_CHUNK)  # reused: a fresh bytes per chunk cost 30% more CPU
    view = memoryview(buffer)
    with open_regular(path, follow_links=follow_links) as fh:
        while size := fh.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


def build_manifest(
    *,
    destination: Side,
    plan: ExportPlan,
    run_id: str,
    inputs: Iterable[FileRecord],
    files: Iterable[FileRecord],
    counterpart: Path,
    key_id: str,
    detections: Mapping[str, int] | None = None,
    extra: FormatSections | None = None,
) -> Manifest:
    """The manifest of one output directory.

    `key_id` is the pseudonymisation key's (`filter.apply.pseudonym.key_id`). `extra`: the
    sections of the input format (a protobuf input's format, key/value entry counts,
    quarantined records); the export's manifest leaves out what describes onshore content
    record by record (`FormatSections.for_destination`).

    `detections` are detector hit counts by ``"<field>\x1f<detector>"`` (``moved`` for values
    moved by any detector); counts only, never values.
    """
    file_list = list(files)
    columns = _columns(plan, destination)
    return Manifest(
        schema_version=SCHEMA_VERSION,
        vtx_version=__version__,
        run_id=run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        destination=destination,
        catalogue=CatalogueRef(plan.catalogue_id, plan.catalogue_version, plan.catalogue_sha256),
        scenario=plan.scenario,
        origin=plan.origin,
        keys=ManifestKeys(
            vehicle_id=plan.vehicle_id_column,
            timestamp=plan.timestamp_column,
            token=TOKEN_COLUMN,
            token_method=f"HMAC-SHA256(key, VIN), hex, first {TOKEN_HEX_CHARS} characters",
            key_id=key_id,
            key_id_method=f"HMAC-SHA256(key, {KEY_ID_MESSAGE.decode()!r}), hex, first "
                          f"{KEY_ID_HEX_CHARS} characters",
        ),
        # The export's: rows only (see the module doc); the onshore's: where each came from.
        inputs=tuple(
            InputRecord(i.rows) if destination == "export" else
            InputRecord(i.rows, str(i.path), i.bytes, i.sha256)
            for i in inputs
        ),
        files=tuple(PartRecord(f.path.name, f.rows, f.bytes, f.sha256) for f in file_list),
        columns=columns,
        class_counts=dict(Counter(c.data_class for c in columns)),
        rows=sum(f.rows for f in file_list),
        detections=_detections(detections or {}),
        counterpart=Counterpart("onshore" if destination == "export" else "export",
                                str(counterpart)),
        extra=(extra or FormatSections()).for_destination(destination),
    )


def manifest_text(manifest: Manifest) -> bytes:
    """The JSON text vtx stores for `manifest` (the bytes a signature signs)."""
    return (json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(
    directory: Path, manifest: Manifest, schema: pa.Schema | None = None
) -> Path:
    """Write `manifest` into `directory` as `_manifest.parquet`: no rows, the parts' `schema`
    (None: no columns), the manifest's text in the footer (`OutputError` if it cannot)."""
    return write_manifest_text(directory, manifest_text(manifest), schema)


def write_manifest_text(
    directory: Path, text: bytes, schema: pa.Schema | None = None,
    signature: bytes | None = None,
) -> Path:
    """Write `_manifest.parquet` holding the manifest `text` and its `signature` record."""
    path = directory / MANIFEST_NAME
    schema = pa.schema([]) if schema is None else schema
    metadata = {k: v for k, v in (schema.metadata or {}).items()
                if k not in (MANIFEST_KEY, SIGNATURE_KEY)}
    metadata[MANIFEST_KEY] = text
    if signature is not None:
        metadata[SIGNATURE_KEY] = signature
    try:
        # No row group at all: nothing a reader could take for a row, no statistics.
        with pq.ParquetWriter(path, schema.with_metadata(metadata)):
            pass
    except OSError as exc:  # disk full or gone while publishing: nothing will be published
        raise output_failed(exc, path, "write manifest") from None
    return path


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as an output directory holds it."""

    path: Path  # the file it is in
    text: bytes  # its JSON text: what a signature signs
    signature: bytes | None  # the signature record (`filter.outputs.signing`); None: none
    files: frozenset[str]  # the names of the directory's files that hold the two

    def document(self) -> JsonValue:
        """The manifest's JSON, parsed as it is (`ValueError` if its text is not JSON): what
        `Manifest.from_json` reads."""
        try:
            document: JsonValue = json.loads(self.text.decode("utf-8"))
        except RecursionError:
            raise ValueError("nested too deeply") from None
        return document


def stored_manifest(directory: str | Path) -> StoredManifest:
    """The manifest in `directory`: `_manifest.parquet`, or an older output's `_manifest.json`
    (and `_manifest.sig`). Links are never followed; a file over `MANIFEST_LIMIT` is not one
    vtx wrote. `FileNotFoundError` where there is none; `OSError`; `ValueError` where the file
    is not a manifest vtx writes."""
    folder = Path(directory)
    path = folder / MANIFEST_NAME
    if not os.path.lexists(path) and os.path.lexists(folder / LEGACY_MANIFEST_NAME):
        legacy = folder / LEGACY_MANIFEST_NAME
        signature_path = folder / LEGACY_SIGNATURE_NAME
        signature = (_bounded(signature_path) if os.path.lexists(signature_path) else None)
        names = {LEGACY_MANIFEST_NAME} | ({LEGACY_SIGNATURE_NAME} if signature is not None
                                          else set())
        return StoredManifest(legacy, _bounded(legacy), signature, frozenset(names))
    data = _bounded(path)
    try:
        meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a Parquet file: {exc}") from None
    held = meta.metadata or {}
    if MANIFEST_KEY not in held:
        raise ValueError("its footer holds no vtx manifest")
    return StoredManifest(path, held[MANIFEST_KEY], held.get(SIGNATURE_KEY),
                          frozenset({MANIFEST_NAME}))


def _bounded(path: Path) -> bytes:
    """The bytes of the regular file `path` (not a link), at most `MANIFEST_LIMIT` of them."""
    if path.lstat().st_size > MANIFEST_LIMIT:
        raise ValueError(f"larger than {MANIFEST_LIMIT} bytes")
    return read_regular(path, follow_links=False)


def read_manifest(directory: str | Path) -> Manifest:
    """Read the manifest of a published output directory (`ValueError` naming the field where
    it is not a manifest: `Manifest.from_json`)."""
    document = stored_manifest(directory).document()
    try:
        return Manifest.from_json(document)
    except ValueError as exc:
        raise ValueError(f"{directory}: the manifest is malformed: {exc}") from None


#: A manifest is a few kilobytes per part; a larger file is not one vtx wrote.
MANIFEST_LIMIT = 64 * 1024 * 1024


def manifest_if_any(directory: Path) -> Manifest | None:
    """The manifest `directory` holds, or None where there is none to trust: the directory or
    its manifest a link (never followed), the manifest not a regular file, larger than
    `MANIFEST_LIMIT`, not one vtx writes, or not a manifest (`Manifest.from_json`)."""
    if directory.is_symlink() or not directory.is_dir():
        return None
    try:
        return Manifest.from_json(stored_manifest(directory).document())
    except (OSError, ValueError):  # ValueError: not a manifest, not JSON, or not UTF-8
        return None


def _detections(counts: Mapping[str, int]) -> tuple[Detection, ...]:
    by_field: dict[str, dict[str, int]] = {}
    for name, count in counts.items():
        path, detector = name.split(COUNT_SEPARATOR)
        by_field.setdefault(path, {})[detector] = int(count)
    return tuple(
        Detection(path, hits.pop(MOVED, 0), dict(sorted(hits.items())))
        for path, hits in by_field.items()
    )


def _columns(plan: ExportPlan, destination: Side) -> tuple[ColumnRecord, ...]:
    token = ColumnRecord(
        name=TOKEN_COLUMN,
        data_class=KEY_CLASS,
        rule="keys.vehicle_id",
        basis="keyed pseudonym of the vehicle identifier",
        reason="lines the export and onshore outputs up without the raw VIN",
    )
    return (token, *(
        ColumnRecord(d.path, d.data_class, d.rule, d.basis, d.reason,
                     d.action.describe() if d.action else None)
        for d in plan.decisions_for(destination)
    ))
