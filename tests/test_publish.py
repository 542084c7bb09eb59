"""Atomic publishing (filter/publish.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from filter import OutputError
from filter.publish import stage


def test_stage_then_publish(tmp_path: Path) -> None:
    staged = stage(tmp_path / "out", "run1", overwrite=False)
    assert staged.staging.parent == tmp_path and staged.staging.name.startswith(".out.vtx-")
    (staged.staging / "f").write_text("x")
    assert not (tmp_path / "out").exists()  # nothing visible before publish
    staged.publish()
    assert (tmp_path / "out" / "f").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_empty_existing_target_is_fine(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    staged = stage(tmp_path / "out", "run1", overwrite=False)
    (staged.staging / "f").write_text("x")
    staged.publish()
    assert (tmp_path / "out" / "f").exists()


def test_overwrite_replaces_whole_directory(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("old")
    with pytest.raises(OutputError, match="not empty"):
        stage(tmp_path / "out", "run1", overwrite=False)
    staged = stage(tmp_path / "out", "run2", overwrite=True)
    (staged.staging / "new").write_text("new")
    staged.publish()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_target_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("file")
    with pytest.raises(OutputError, match="not a directory"):
        stage(tmp_path / "out", "run1", overwrite=True)


def test_target_filled_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    staged = stage(tmp_path / "out", "run1", overwrite=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "theirs").write_text("x")
    with pytest.raises(OutputError, match="appeared"):
        staged.publish()
    assert (tmp_path / "out" / "theirs").exists()


def test_live_runs_staging_is_left_alone(tmp_path: Path) -> None:
    from filter.publish import _HOST

    alive = tmp_path / f".out.vtx-staging-{_HOST}-{os.getpid()}-other"
    alive.mkdir()
    dead = tmp_path / f".out.vtx-staging-{_HOST}-999999999-gone"
    dead.mkdir()
    stage(tmp_path / "out", "run1", overwrite=False).discard()
    assert alive.exists() and not dead.exists()
