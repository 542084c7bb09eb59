"""Atomic publishing (filter/outputs/publish.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from filter import OutputError
from filter.outputs.publish import stage, stage_all


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
    from filter.outputs.publish import _HOST

    alive = tmp_path / f".out.vtx-staging-{_HOST}-{os.getpid()}-other"
    alive.mkdir()
    dead = tmp_path / f".out.vtx-staging-{_HOST}-999999999-gone"
    dead.mkdir()
    stage(tmp_path / "out", "run1", overwrite=False).discard()
    assert alive.exists() and not dead.exists()


def test_a_link_planted_at_a_staging_name_is_not_followed(tmp_path: Path) -> None:
    # Hardening (rmtree refused links already): a link named like a dead run's staging
    # directory, pointing at a directory to destroy, is neither followed nor emptied.
    from filter.outputs.publish import _HOST

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep me")
    planted = tmp_path / f".out.vtx-staging-{_HOST}-999999999-gone"
    planted.symlink_to(victim)
    staged = stage(tmp_path / "out", "run1", overwrite=False)
    (staged.staging / "f").write_text("x")
    staged.publish()
    assert (victim / "keep").read_text() == "keep me" and planted.is_symlink()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f"]


def test_staging_several_targets_clears_every_dead_run_first(tmp_path: Path,
                                                             monkeypatch) -> None:
    # A run killed between creating its first and its second staging dir must not leave a
    # dead run's staging beside the second target: every target is swept before any
    # staging dir of this run appears.
    import filter.outputs.publish as publish

    dead = [tmp_path / f".{name}.vtx-staging-{publish._HOST}-999999999-gone"
            for name in ("onshore", "export")]
    for directory in dead:
        directory.mkdir()
    seen_when_created: list[list[str]] = []
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args, **kwargs) -> None:
        if ".vtx-staging-" in self.name:
            seen_when_created.append(sorted(p.name for p in tmp_path.iterdir()))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    staged = stage_all([tmp_path / "onshore", tmp_path / "export"], "run1", overwrite=False)
    assert [s.target.name for s in staged] == ["onshore", "export"]
    assert seen_when_created[0] == []  # no dead run's staging left when the first is made
    assert not any(d.exists() for d in dead)


def test_a_refused_target_leaves_no_staging_of_the_others(tmp_path: Path) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "old").write_text("old")
    with pytest.raises(OutputError, match="not empty"):
        stage_all([tmp_path / "onshore", tmp_path / "export"], "run1", overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_every_published_file_reached_the_disk_before_its_rename(tmp_path: Path,
                                                                 monkeypatch) -> None:
    # Part files are not fsynced as they are written (that waited for the disk once per
    # batch); publishing fsyncs each one, and the directory, before the rename.
    import polars as pl

    import filter.outputs.publish as publish
    from filter import split
    from tests.conftest import KEY

    synced: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def rename(src: str | Path, dst: str | Path) -> None:
        synced.append(f"rename {src}")
        real_rename(src, dst)

    monkeypatch.setattr(publish.os, "fsync", fsync)
    monkeypatch.setattr(publish.os, "rename", rename)
    pl.DataFrame({"vin": ["LSV00000000000001"] * 3, "ts": [1, 2, 3],
                  "Vehicle.Speed": [1.0, 2.0, 3.0]}).write_parquet(tmp_path / "in.parquet")
    split(tmp_path / "in.parquet", tmp_path / "e", tmp_path / "o", "after-sales", key=KEY)
    for side in ("e", "o"):
        staging = next(s[len("rename "):] for s in synced if s.startswith("rename ")
                       and Path(s[len("rename "):]).name.startswith(f".{side}."))
        renamed_at = synced.index(f"rename {staging}")
        before = {Path(s).relative_to(staging).as_posix() for s in synced[:renamed_at]
                  if s.startswith(staging + "/")}
        published = {p.relative_to(tmp_path / side).as_posix()
                     for p in (tmp_path / side).rglob("*") if p.is_file()}
        assert published and published <= before
        assert staging in synced[:renamed_at]  # the directory itself


def test_a_target_that_is_a_link_is_refused_before_any_side_is_staged(tmp_path: Path) -> None:
    # Issue 23, item 17: an export target that is a link to an empty directory passed the
    # check, onshore was published, then the export's rename failed: a half pair.
    (tmp_path / "empty").mkdir()
    (tmp_path / "export").symlink_to(tmp_path / "empty")
    with pytest.raises(OutputError, match="export: is a symbolic link"):
        stage_all([tmp_path / "onshore", tmp_path / "export"], "run1", overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "export"]
    assert not any((tmp_path / "empty").iterdir())
