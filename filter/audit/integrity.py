"""Integrity of one output directory: manifest, hashes, footer row counts, no stray files.

In: a published output directory, and optionally the destination its manifest must name.
Out: `check_directory`'s `OutputCheck`: the manifest (when usable), the parts whose SHA-256 and
row count match the manifest (`intact`), and the failures: a manifest that is missing, cannot
be read, is malformed (a key missing or of the wrong type, or one vtx does not write:
`Manifest.from_json`) or has an unknown `schema_version`; a listed file missing, changed or
holding other rows; a file in the directory besides `_manifest.parquet` (older outputs:
`_manifest.json` and `_manifest.sig`) that is not listed; a manifest file that holds rows,
footer keys of its own or another schema than the parts'; an onshore ``quarantine/`` that
does not hold exactly the bad records its manifest lists, with their SHA-256.
`usable_manifest`: the `Manifest` a parsed document holds, or what makes it unusable (the audit
report asks too).
May fail: `InputError` for a path that is not a directory. Everything wrong inside it is a
failure in the result, not an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filter.audit.output_check import OutputCheck
from filter.audit.part_formats import PART_FORMATS
from filter.engines.protobuf_tally import QUARANTINE_DIR
from filter.errors import InputError, first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.memory_budget import MemoryBudget, MemoryBudgetExceeded
from filter.outputs.json_fields import JsonValue
from filter.outputs.manifest import (
    MANIFEST_KEY,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    SIGNATURE_KEY,
    sha256_file,
    stored_manifest,
)
from filter.outputs.manifest_document import Manifest, PartRecord, QuarantinedRecord

#: Manifest schema versions this verifier understands.
#: Version 2 is version 3 stored as `_manifest.json`: the same fields.
KNOWN_SCHEMA_VERSIONS = frozenset({2, SCHEMA_VERSION})


def check_directory(
    directory: str | Path, destination: str | None = None,
    budget: MemoryBudget | None = None,
) -> OutputCheck:
    """Integrity of one output directory: manifest, hashes, footer row counts, no stray files.

    `destination` ("export" or "onshore"), when given, must be the manifest's. The result's
    `failures` list what is wrong; `intact` the parts whose content can be trusted. Its parts
    are read within `budget` (None: the default); one that would not fit raises
    `MemoryBudgetExceeded`, before it is decoded.
    """
    side = OutputCheck(Path(directory).absolute(), budget=budget)
    if not side.directory.is_dir():
        raise InputError(f"{side.directory}: not a directory (give a published vtx output)")
    manifest_path = side.directory / MANIFEST_NAME
    try:
        stored = stored_manifest(side.directory)
        manifest_path = stored.path
        document = stored.document()
    except FileNotFoundError:
        side.fail(side.directory, f"no {MANIFEST_NAME}: not a published vtx output")
        return side
    except (OSError, ValueError) as exc:  # ValueError: not a manifest, not JSON or not UTF-8
        side.fail(manifest_path, f"cannot be read: {first_line(exc)}")
        return side
    if isinstance(manifest := usable_manifest(document), str):
        side.fail(manifest_path, manifest)
        return side
    side.manifest = manifest
    if manifest.schema_version not in KNOWN_SCHEMA_VERSIONS:
        side.fail(manifest_path, f"unknown schema_version {manifest.schema_version!r} "
                  f"(this vtx reads {', '.join(map(str, sorted(KNOWN_SCHEMA_VERSIONS)))})")
    if destination is not None and manifest.destination != destination:
        side.fail(manifest_path, f"destination is {manifest.destination!r}, "
                  f"not {destination!r}: is this the {destination} directory?")
    listed = {f.name: f for f in manifest.files}
    # The signature is checked by verify_output (`outputs.signing.check_signature`).
    present = {p.name for p in side.directory.iterdir()} - stored.files
    if stored.path.name == MANIFEST_NAME:
        _check_manifest_file(side, stored.path, [side.directory / name for name in listed])
    quarantined = manifest.extra.quarantined
    if quarantined is not None and (QUARANTINE_DIR in present or quarantined):
        present.discard(QUARANTINE_DIR)  # bad records kept raw, listed apart from the parts
        _check_quarantine(side, quarantined)
    for name in sorted(present - set(listed)):
        side.fail(side.directory / name, "not listed in the manifest")
    for name, record in listed.items():
        _check_file(side, name, record, present)
    if sum(f.rows for f in manifest.files) != manifest.rows:
        side.fail(manifest_path, f"rows {manifest.rows} is not the sum of its files' rows")
    return side


def _check_manifest_file(side: OutputCheck, path: Path, parts: Sequence[Path]) -> None:
    """`_manifest.parquet` is read as data by every reader of the directory, so it must hold
    no data: no row group, no footer key but its schema, the manifest and the signature; and
    the parts' schema, so that a reader meets one schema in every file."""
    try:
        opened = pq.ParquetFile(path)
        meta, schema = opened.metadata, opened.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        side.fail(path, f"cannot be read as Parquet: {first_line(exc)}")
        return
    if meta.num_rows or meta.num_row_groups:
        side.fail(path, f"holds {meta.num_row_groups} row group(s) of {meta.num_rows} row(s); "
                  "a manifest file holds none")
    extra = sorted(k.decode("utf-8", "replace") for k in (meta.metadata or {})
                   if k not in _MANIFEST_FOOTER_KEYS)
    if extra:
        side.fail(path, f"footer holds keys a manifest file does not: {', '.join(extra)}")
    parquet_parts = [p for p in parts if p.suffix == ".parquet" and p.is_file()]
    if parquet_parts:
        try:
            expected = pq.read_schema(parquet_parts[0])
        except (pa.ArrowException, OSError):
            return  # the part's own check reports it
        if not schema.remove_metadata().equals(expected.remove_metadata()):
            side.fail(path, "its schema is not the parts' schema")
    elif len(schema):
        side.fail(path, "has columns, but the output has no Parquet part")


#: The footer keys of `_manifest.parquet`: its Arrow schema, the manifest and its signature.
_MANIFEST_FOOTER_KEYS = frozenset({b"ARROW:schema", MANIFEST_KEY, SIGNATURE_KEY})


def _check_quarantine(side: OutputCheck, records: Sequence[QuarantinedRecord]) -> None:
    """The onshore ``quarantine/`` holds exactly the bad records its manifest lists, each with
    its listed size and SHA-256."""
    directory = side.directory / QUARANTINE_DIR
    listed: dict[str, QuarantinedRecord] = {}
    for record in records:
        name = record.file.removeprefix(f"{QUARANTINE_DIR}/")
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
        elif sha256_file(path) != record.sha256 or path.stat().st_size != record.bytes:
            side.fail(path, "quarantined record differs from the manifest's size or sha256")


def _check_file(side: OutputCheck, name: str, record: PartRecord, present: set[str]) -> None:
    path = side.directory / name
    if name not in present:
        side.fail(path, "listed in the manifest but missing")
        return
    fmt = PART_FORMATS.get(path.suffix)
    if fmt is None or not path.is_file():
        side.fail(path, "not a part file vtx writes")
        return
    if sha256_file(path) != record.sha256:
        side.fail(path, "sha256 differs from the manifest's (the file changed since it was "
                  "published)")
        return
    try:
        assert side.manifest is not None  # read before its files
        fmt.fits(path, side.budget, side.manifest.destination == "export")
        rows = fmt.rows(path, side.budget)
    except MemoryBudgetExceeded:  # not a fault of the part: the check cannot be made
        raise
    except InputError as exc:  # pages that are not pages (`check_decoding`)
        side.fail(path, exc.message)
        return
    except READ_ERRORS as exc:  # pyarrow raises several types for a bad footer
        side.fail(path, f"footer cannot be read: {first_line(exc)}")
        return
    side.rows[name] = rows
    if rows != record.rows:
        side.fail(path, f"holds {rows} rows, the manifest says {record.rows}")
        return
    side.intact[name] = path


def usable_manifest(document: JsonValue) -> Manifest | str:
    """The manifest a parsed document holds, or what makes it unusable (``malformed: <the
    field and what is wrong with it>``: `Manifest.from_json`); the audit report asks too."""
    try:
        return Manifest.from_json(document)
    except ValueError as exc:
        return f"malformed: {exc}"


__all__ = [
    "KNOWN_SCHEMA_VERSIONS",
    "check_directory",
    "usable_manifest",
]
