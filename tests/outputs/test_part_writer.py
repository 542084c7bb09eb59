"""The hashing part-file writer (filter/outputs/parts.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from filter.outputs import parts as part_writer
from filter.outputs.parts import HashingFile


def test_digest_and_size_match_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(part_writer, "_WRITEBACK_BYTES", 1000)  # exercise early writeback
    frame = pl.DataFrame({"a": list(range(5000)), "b": [str(i) for i in range(5000)]})
    path = tmp_path / "part.parquet"
    with HashingFile(path) as out:
        frame.lazy().sink_parquet(out)
    data = path.read_bytes()
    assert out.size == len(data)
    assert out.sha256 == hashlib.sha256(data).hexdigest()
    assert pl.read_parquet(path).equals(frame)


def test_close_is_idempotent(tmp_path: Path) -> None:
    out = HashingFile(tmp_path / "x.bin")
    out.write(b"abc")
    out.close()
    out.close()
    assert out.sha256 == hashlib.sha256(b"abc").hexdigest()
