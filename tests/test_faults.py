"""Reliability under faults: killed runs, a full disk, and two runs racing for one target.

Real `vtx split` subprocesses (``python -m filter``) on a batch of about a million rows, so a run
lasts long enough to be killed in the middle; every outcome is checked with `filter.audit.verify`.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from filter.audit.integrity import check_directory
from filter.audit.verify import verify_output
from filter.cli import vtx
from filter.formats.protobuf.descriptors import load_schema
from filter.outputs.parts import HashingFile
from tests.conftest import KEY, MINI_CATALOGUE

KILLS = 20
SEED = 20261125


def write_batch(path: Path, rows: int, offset: int = 0) -> None:
    """A synthetic batch: VINs, time, exported and withheld fields, a list of strings."""
    i = pl.int_range(offset, offset + rows)
    pl.select(
        vin=pl.format("LSV{}", (i % 500).cast(pl.String).str.zfill(14)),
        timestamp=pl.datetime(2026, 11, 2) + pl.duration(seconds=i),
        **{
            "Vehicle.Speed": (i % 1200 / 10).cast(pl.Float32),
            "Vehicle.TraveledDistance": i * 7,
            "Vehicle.Powertrain.TractionBattery.StateOfHealth": (i % 97).cast(pl.Float64),
            "Vehicle.CurrentLocation.Latitude": 31.0 + (i % 9973) / 1e5,
            "Vehicle.CurrentLocation.Longitude": 121.0 + (i % 9967) / 1e5,
            "Vehicle.Cabin.HVAC.AmbientAirTemperature": (i % 30).cast(pl.Float64),
            "Vehicle.Diagnostics.DTCList": pl.concat_list(
                pl.format("P0{}", (i % 300).cast(pl.String))),
        },
    ).write_parquet(path, row_group_size=25_000)


@pytest.fixture(scope="module")
def big_batch(tmp_path_factory) -> Path:
    """Two input files of 500,000 rows each, 20 row groups apiece."""
    directory = tmp_path_factory.mktemp("big") / "in"
    directory.mkdir()
    for n in range(2):
        write_batch(directory / f"batch-{n}.parquet", 500_000, offset=n * 500_000)
    return directory


@pytest.fixture(scope="module")
def key_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("key") / "vtx.key"
    path.write_bytes(KEY)
    path.chmod(0o600)
    return path


def split_command(inputs: Path, out: Path, key_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "filter", "split", str(inputs), "--export", str(out / "export"),
            "--onshore", str(out / "onshore"), "--scenario", "after-sales", "--catalogue",
            str(MINI_CATALOGUE), "--key-file", str(key_path), "--quiet", *extra]


def leftovers(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if ".vtx-" in p.name}


def assert_absent_or_complete(out: Path) -> str:
    """Each target is absent or a complete output; both present means one verified run."""
    export, onshore = out / "export", out / "onshore"
    assert not export.exists() or onshore.exists(), "export published without its onshore half"
    for target in (export, onshore):
        if target.exists():
            assert check_directory(target).failures == [], target
    if export.exists():
        report = verify_output(export, onshore, MINI_CATALOGUE)
        assert report.ok, report.failures
        return "both"
    return "onshore" if onshore.exists() else "none"


def test_sigkill_at_random_moments_leaves_absent_or_complete_outputs(
    big_batch, key_path, tmp_path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    command = split_command(big_batch, out, key_path)
    started = time.monotonic()
    subprocess.run(command, check=True, timeout=120)
    full = time.monotonic() - started
    assert verify_output(out / "export", out / "onshore", MINI_CATALOGUE).ok
    shutil.rmtree(out / "export")
    shutil.rmtree(out / "onshore")

    rng = random.Random(SEED)
    outcomes: dict[str, int] = {}
    previous: set[str] = set()
    for attempt in range(KILLS):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        staged = False
        if attempt % 4 == 0:  # anywhere in the run, start-up included
            time.sleep(rng.uniform(0, full))
        else:  # while writing or publishing: from the moment staging appears
            begun = time.monotonic()
            deadline = begun + 3 * full + 5
            while proc.poll() is None and time.monotonic() < deadline:
                if leftovers(out) - previous:
                    staged = True
                    break
                time.sleep(0.002)
            remaining = max(full - (time.monotonic() - begun), 0.05)
            time.sleep(rng.uniform(0, remaining * 1.1))
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
        assert b"Traceback" not in stderr
        state = assert_absent_or_complete(out)
        outcomes[state] = outcomes.get(state, 0) + 1
        now = leftovers(out)
        if staged or state != "none":  # this run got past staging: the dead runs' are gone
            assert not previous & now, f"stale staging kept: {previous & now}"
        previous = now
        for target in (out / "export", out / "onshore"):
            shutil.rmtree(target, ignore_errors=True)

    # A rerun succeeds, verifies, and clears what the killed runs left behind.
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert verify_output(out / "export", out / "onshore", MINI_CATALOGUE).ok
    assert leftovers(out) == set()
    print("kill outcomes:", outcomes)
    assert outcomes.get("none", 0) >= 1, outcomes  # some kills did land mid-run


def test_disk_full_on_a_small_tmpfs(big_batch, key_path, tmp_path) -> None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux; the injected-fault test covers this")
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        done = subprocess.run(split_command(big_batch, mount, key_path), capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vtx: error: "), done.stderr
        assert "No space left on device" in lines[0] or "no space" in lines[0].lower()
        assert list(mount.iterdir()) == []  # nothing published, no staging left
    finally:
        subprocess.run(["umount", str(mount)], check=False)


class _FullDisk:
    """A part file's open file once the disk is full: every write is refused."""

    def __init__(self, file) -> None:
        self.file = file

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self.file, name)


@pytest.fixture
def disk_fills(monkeypatch) -> dict[str, int]:
    """The disk fills after the first buffer written to a part file: from then on the
    operating system refuses every write. Gives the count of writes tried."""
    calls = {"n": 0}
    real_write = HashingFile.write

    def write(self, data):
        calls["n"] += 1
        if calls["n"] > 1 and not isinstance(self._file, _FullDisk):
            self._file = _FullDisk(self._file)
        return real_write(self, data)

    monkeypatch.setattr(HashingFile, "write", write)
    return calls


def assert_disk_full_reported(result, tmp_path: Path) -> None:
    """One line naming the full disk, exit 1, and nothing published or left staged."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vtx: error: cannot write"), result.stderr
    assert "No space left on device" in lines[0]
    assert not [p for p in tmp_path.iterdir() if p.name in ("export", "onshore")
                or ".vtx-" in p.name]


def test_disk_full_injected(batch_file, key_file, tmp_path, disk_fills) -> None:
    # However Polars reports the failed write (as an I/O error, or as a broken page header),
    # the operator reads what the disk said.
    result = CliRunner().invoke(vtx, [
        "split", str(batch_file), "--export", str(tmp_path / "export"), "--onshore",
        str(tmp_path / "onshore"), "--scenario", "after-sales", "--catalogue",
        str(MINI_CATALOGUE), "--key-file", str(key_file)])
    assert_disk_full_reported(result, tmp_path)
    assert disk_fills["n"] > 1


@pytest.mark.parametrize("output_format", ["parquet", "protobuf"])
def test_disk_full_injected_protobuf(output_format, key_file, tmp_path, disk_fills) -> None:
    from tests.engines.test_protobuf_split import TEST_SET
    from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload

    payload = load_schema(TEST_SET, "testfleet.Payload")
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*(make_payload(payload, f"LSV{i}") for i in range(50))))
    result = CliRunner().invoke(vtx, [
        "split", str(stream), "--export", str(tmp_path / "export"), "--onshore",
        str(tmp_path / "onshore"), "--scenario", "after-sales", "--key-file", str(key_file),
        "--descriptor-set", str(TEST_SET), "--message", "testfleet.Payload",
        "--output-format", output_format])
    assert_disk_full_reported(result, tmp_path)
    assert disk_fills["n"] > 1


def test_two_runs_racing_for_one_target(big_batch, key_path, tmp_path) -> None:
    for round_ in range(3):
        out = tmp_path / f"race-{round_}"
        out.mkdir()
        command = split_command(big_batch, out, key_path)
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
        for p in procs:
            p.stdout.close()  # type: ignore[union-attr]
            p.stderr.close()  # type: ignore[union-attr]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 1], results
        loser = next(err for code, err in results if code == 1)
        lines = loser.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vtx: error: "), loser
        assert "Traceback" not in loser

        assert verify_output(out / "export", out / "onshore", MINI_CATALOGUE).ok
        assert leftovers(out) == set()


def test_a_live_runs_retired_output_is_left_alone(tmp_path) -> None:
    """While a live run swaps its output in, the old output (retired) must survive other runs'
    clean-up: until the live run's rename succeeds, it is the only copy."""
    from filter.outputs.publish import _HOST, stage

    live = tmp_path / f".out.vtx-retired-{_HOST}-{os.getpid()}-run1"
    live.mkdir()
    (live / "part-00000.parquet").write_bytes(b"old output")
    dead = tmp_path / f".out.vtx-retired-{_HOST}-999999999-run0"
    dead.mkdir()
    stage(tmp_path / "out", "run2", overwrite=False).discard()
    assert live.exists() and not dead.exists()


def test_manifest_write_failure_is_an_output_error(batch_file, tmp_path, monkeypatch) -> None:
    from filter import OutputError, split

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # The manifest file is the one file of a split pyarrow's Parquet writer writes.
    monkeypatch.setattr("filter.outputs.manifest.pq.ParquetWriter", no_space)
    with pytest.raises(OutputError, match="cannot write manifest: No space left on device"):
        split(batch_file, tmp_path / "export", tmp_path / "onshore", "rnd", key=KEY,
              catalogue=MINI_CATALOGUE)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_losing_the_rename_race_reports_the_target_appeared(tmp_path, monkeypatch) -> None:
    """Another run renames its output in between our check and our rename."""
    from filter import OutputError
    from filter.outputs.publish import stage

    staged = stage(tmp_path / "out", "run1", overwrite=False)
    (staged.staging / "part-00000.parquet").write_bytes(b"ours")
    real_rename = os.rename

    def rename(src, dst):
        if Path(dst) == tmp_path / "out" and not Path(dst).exists():
            (tmp_path / "out").mkdir()
            (tmp_path / "out" / "theirs").write_text("x")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OutputError, match="target appeared and is not empty"):
        staged.publish()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["theirs"]
