"""The `_manifest.json` of a published output: what went in, what came out, and why.

In: the run's plan, inputs and written part files.
Out: a JSON document per output directory (export and onshore) with `schema_version`, the vtx
version, the catalogue (id, version, sha256), the scenario, the keys (with the `key_id` of the
pseudonymisation key), the inputs, the files (name, rows, bytes, sha256), the columns (name,
class, rule, basis, reason), per-class column counts and the row count. Both manifests share a
`run_id` and a `key_id`, so a verifier can pair them, and the row counts of both equal the
inputs' total: that is the reconciliation. The manifest never holds a data value.

The export manifest leaves the country, so it holds nothing derived from the inputs' content
without the key: its `inputs` give rows only (an input's path can hold a VIN, its size and
unkeyed SHA-256 are an oracle for a small input's content), and `ONSHORE_ONLY` sections (the
quarantined records' names, offsets, sizes and digests) are left out of it; it keeps counts.
The onshore manifest holds all of it.

Bump `SCHEMA_VERSION` when a change breaks readers of the manifest, and say so in CHANGELOG.md.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filter._version import __version__
from filter.apply.columns import COUNT_SEPARATOR, MOVED
from filter.apply.pseudonym import KEY_ID_HEX_CHARS, KEY_ID_MESSAGE, TOKEN_HEX_CHARS
from filter.errors import OutputError
from filter.files import open_regular, read_regular
from filter.policy.plan import KEY_CLASS, TOKEN_COLUMN, Destination, ExportPlan

SCHEMA_VERSION = 2
MANIFEST_NAME = "_manifest.json"
_HASH_CHUNK = 1024 * 1024
#: Sections an input format adds (`build_manifest`'s `extra`) that describe onshore content
#: record by record: written to the onshore manifest only.
ONSHORE_ONLY = frozenset({"quarantined"})


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
    destination: Destination,
    plan: ExportPlan,
    run_id: str,
    inputs: Iterable[FileRecord],
    files: Iterable[FileRecord],
    counterpart: Path,
    key_id: str,
    detections: Mapping[str, int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of one output directory.

    `key_id` is the pseudonymisation key's (`filter.apply.pseudonym.key_id`). `extra` adds
    reader-specific sections (a protobuf input's format, key/value entry counts, quarantined
    records); it cannot replace the common keys, and its `ONSHORE_ONLY` sections are left out
    of the export's manifest.

    `detections` are detector hit counts by ``"<field>\x1f<detector>"`` (``moved`` for values
    moved by any detector); counts only, never values.
    """
    file_list = list(files)
    columns = _columns(plan, destination)
    common = {
        "schema_version": SCHEMA_VERSION,
        "vtx_version": __version__,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "destination": destination,
        "catalogue": {
            "id": plan.catalogue_id,
            "version": plan.catalogue_version,
            "sha256": plan.catalogue_sha256,
        },
        "scenario": plan.scenario,
        "origin": plan.origin,
        "keys": {
            "vehicle_id": plan.vehicle_id_column,
            "timestamp": plan.timestamp_column,
            "token": TOKEN_COLUMN,
            "token_method": f"HMAC-SHA256(key, VIN), hex, first {TOKEN_HEX_CHARS} characters",
            "key_id": key_id,
            "key_id_method": f"HMAC-SHA256(key, {KEY_ID_MESSAGE.decode()!r}), hex, first "
                             f"{KEY_ID_HEX_CHARS} characters",
        },
        # The export's: rows only (see the module doc); the onshore's: where each came from.
        "inputs": [
            {"rows": i.rows} if destination == "export" else
            {"path": str(i.path), "bytes": i.bytes, "sha256": i.sha256, "rows": i.rows}
            for i in inputs
        ],
        "files": [
            {"name": f.path.name, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}
            for f in file_list
        ],
        "columns": columns,
        "class_counts": dict(Counter(c["class"] for c in columns)),
        "rows": sum(f.rows for f in file_list),
        "detections": _detections(detections or {}),
        "counterpart": {
            "destination": "onshore" if destination == "export" else "export",
            "path": str(counterpart),
        },
    }
    return {**common, **{k: v for k, v in (extra or {}).items() if k not in common
                          and not (destination == "export" and k in ONSHORE_ONLY)}}


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest` as `_manifest.json` in `directory` (`OutputError` if it cannot)."""
    path = directory / MANIFEST_NAME
    try:
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    except OSError as exc:  # disk full or gone while publishing: nothing will be published
        raise OutputError(f"{path}: cannot write manifest: {exc.strerror or exc}") from None
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read the manifest of a published output directory."""
    return json.loads((Path(directory) / MANIFEST_NAME).read_text(encoding="utf-8"))


#: A manifest is a few kilobytes per part; a larger file is not one vtx wrote.
MANIFEST_LIMIT = 64 * 1024 * 1024


def manifest_if_any(directory: Path) -> dict[str, Any] | None:
    """The manifest `directory` holds, or None where there is none to trust: the directory or
    its manifest a link (never followed), the manifest not a regular file, larger than
    `MANIFEST_LIMIT`, not JSON, or not a JSON object."""
    if directory.is_symlink() or not directory.is_dir():
        return None
    path = directory / MANIFEST_NAME
    try:
        if path.lstat().st_size > MANIFEST_LIMIT:
            return None
        manifest = json.loads(read_regular(path, follow_links=False))
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    return manifest if isinstance(manifest, dict) else None


def _detections(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    by_field: dict[str, dict[str, int]] = {}
    for name, count in counts.items():
        path, detector = name.split(COUNT_SEPARATOR)
        by_field.setdefault(path, {})[detector] = int(count)
    return [
        {"field": path, "moved_values": hits.pop(MOVED, 0), "hits": dict(sorted(hits.items()))}
        for path, hits in by_field.items()
    ]


def _columns(plan: ExportPlan, destination: Destination) -> list[dict[str, Any]]:
    token = {
        "name": TOKEN_COLUMN,
        "class": KEY_CLASS,
        "rule": "keys.vehicle_id",
        "basis": "keyed pseudonym of the vehicle identifier",
        "reason": "lines the export and onshore outputs up without the raw VIN",
    }
    return [token] + [
        {
            "name": d.path,
            "class": d.data_class,
            "rule": d.rule,
            "basis": d.basis,
            "reason": d.reason,
            **({"action": d.action.describe()} if d.action else {}),
        }
        for d in plan.decisions_for(destination)
    ]
