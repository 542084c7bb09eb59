"""Integrity of one output directory: manifest, hashes, footer row counts, no stray files.

In: a published output directory, and optionally the destination its manifest must name.
Out: `check_directory`'s `OutputCheck`: the manifest (when usable), the parts whose SHA-256 and
row count match the manifest (`intact`), and the failures: a manifest that is missing, cannot
be read, is malformed or has an unknown `schema_version`; a listed file missing, changed or
holding other rows; a file in the directory besides `_manifest.json` (and `_manifest.sig`)
that is not listed; an onshore ``quarantine/`` that does not hold exactly the bad records its
manifest lists, with their SHA-256. `manifest_problem`: what makes a parsed manifest unusable
(the audit report asks too).
May fail: `InputError` for a path that is not a directory. Everything wrong inside it is a
failure in the result, not an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from filter.audit.output_check import OutputCheck
from filter.audit.part_formats import PART_FORMATS
from filter.engines.protobuf_tally import QUARANTINE_DIR
from filter.errors import InputError, first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.outputs.manifest import MANIFEST_NAME, SCHEMA_VERSION, sha256_file
from filter.outputs.signing import SIGNATURE_NAME

#: Manifest schema versions this verifier understands.
KNOWN_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})


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


__all__ = [
    "KNOWN_SCHEMA_VERSIONS",
    "check_directory",
    "manifest_problem",
]
