"""Reading and editing a published output's manifest as a test needs it: its JSON text and its
signature record, wherever the output keeps them (`_manifest.parquet`'s footer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from filter.outputs.manifest import MANIFEST_NAME, stored_manifest, write_manifest_text


def manifest_text(directory: Path) -> str:
    """The manifest's JSON text."""
    return stored_manifest(directory).text.decode("utf-8")


def write_text(directory: Path, text: str | bytes) -> None:
    """Replace the manifest's text, keeping its schema and signature (a tampering)."""
    stored = stored_manifest(directory)
    data = text.encode("utf-8") if isinstance(text, str) else text
    write_manifest_text(directory, data, pq.read_schema(stored.path), stored.signature)


def edit(directory: Path, change: Any) -> None:
    """Apply `change` to the parsed manifest and store it again."""
    manifest = json.loads(manifest_text(directory))
    change(manifest)
    write_text(directory, json.dumps(manifest, indent=2) + "\n")


def signature(directory: Path) -> bytes | None:
    """The signature record the output holds (None: unsigned)."""
    return stored_manifest(directory).signature


def write_signature(directory: Path, content: bytes | str | None) -> None:
    """Replace the signature record (None: remove it)."""
    stored = stored_manifest(directory)
    data = content.encode("utf-8") if isinstance(content, str) else content
    write_manifest_text(directory, stored.text, pq.read_schema(stored.path), data)


def match_schema(directory: Path, part: Path) -> None:
    """Give the manifest file `part`'s schema (as a tampering that makes it agree would)."""
    stored = stored_manifest(directory)
    write_manifest_text(directory, stored.text, pq.read_schema(part), stored.signature)


__all__ = [
    "MANIFEST_NAME",
    "edit",
    "manifest_text",
    "signature",
    "stored_manifest",
    "write_signature",
    "write_text",
]
