"""Integrity of one output directory: manifest, hashes, footer row counts, no stray files.

In: a published output directory, and optionally the destination its manifest must name.
Out: `check_directory`'s `OutputCheck`: the manifest (when usable), the parts whose SHA-256 and
row count match the manifest (`intact`), and the failures: a manifest that is missing, cannot
be read, is malformed or has an unknown `schema_version`; a listed file missing, changed or
holding other rows; a file in the directory besides `_manifest.parquet` (older outputs:
`_manifest.json` and `_manifest.sig`) that is not listed; a manifest file that holds rows,
footer keys of its own or another schema than the parts'; an onshore ``quarantine/`` that
does not hold exactly the bad records its manifest lists, with their SHA-256.
`manifest_problem`: what makes a parsed manifest unusable (the audit report asks too).
May fail: `InputError` for a path that is not a directory. Everything wrong inside it is a
failure in the result, not an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from filter.audit.output_check import OutputCheck
from filter.audit.part_formats import PART_FORMATS
from filter.engines.protobuf_tally import QUARANTINE_DIR
from filter.errors import InputError, first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.outputs.manifest import (
    LEGACY_MANIFEST_NAME,
    MANIFEST_KEY,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    SIGNATURE_KEY,
    sha256_file,
    stored_manifest,
)

#: Manifest schema versions this verifier understands.
#: Version 2 is version 3 stored as `_manifest.json`: the same fields.
KNOWN_SCHEMA_VERSIONS = frozenset({2, SCHEMA_VERSION})


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
        stored = stored_manifest(side.directory)
        manifest_path = stored.path
        manifest = stored.document()
    except FileNotFoundError:
        side.fail(side.directory, f"no {MANIFEST_NAME}: not a published vtx output")
        return side
    except (OSError, ValueError) as exc:  # ValueError: not a manifest, not JSON or not UTF-8
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
    present = {p.name for p in side.directory.iterdir()} - stored.files
    if stored.path.name == MANIFEST_NAME:
        _check_manifest_file(side, stored.path, [side.directory / f["name"]
                                                 for f in manifest["files"]])
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
        if name in names or name in ("", ".", "..", MANIFEST_NAME, LEGACY_MANIFEST_NAME) \
                or "/" in name or "\\" in name:
            return f"malformed: files[{index}].name {name!r} is not a plain, unique file name"
        names.add(name)
    for index, column in enumerate(manifest["columns"]):
        if not (isinstance(column, dict) and isinstance(column.get("name"), str)):
            return f"malformed: columns[{index}] needs a name"
    return None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return {int: "an integer", str: "a string", dict: "an object", list: "a list"}.get(
        kind, str(kind))  # type: ignore[call-overload]


__all__ = [
    "KNOWN_SCHEMA_VERSIONS",
    "check_directory",
    "manifest_problem",
]
