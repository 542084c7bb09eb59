"""A run killed between publishing its two halves, and the re-run that completes the pair.

The kill is real: a `vtx split` subprocess whose publisher SIGKILLs its own process right after
the onshore rename, before the export's. The half pair it leaves is then verified and completed
through the CLI, as an operator would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from filter import OutputError, split
from filter.audit.verify import verify_output
from filter.cli import vtx
from filter.formats.protobuf.descriptors import load_schema
from filter.outputs.publish import stage_all
from tests import manifests
from tests.conftest import KEY, MINI_CATALOGUE

# Runs the CLI with the publisher patched to die between the two renames (onshore is first).
_KILLED_BETWEEN_RENAMES = """
import os, signal, sys
from filter.outputs import publish
real = publish.StagedOutput.publish
def publish_then_die(self):
    real(self)
    if self.target.name == "onshore":
        os.kill(os.getpid(), signal.SIGKILL)
publish.StagedOutput.publish = publish_then_die
from filter.cli import main
sys.argv = ["vtx", *sys.argv[1:]]
main()
"""


def split_args(inputs: Path, out: Path, key_file: Path, *extra: str) -> list[str]:
    return ["split", str(inputs), "--export", str(out / "export"), "--onshore",
            str(out / "onshore"), "--scenario", "after-sales", "--catalogue", str(MINI_CATALOGUE),
            "--key-file", str(key_file), "--quiet", *extra]


def kill_between_renames(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", _KILLED_BETWEEN_RENAMES, *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr  # SIGKILL: no clean-up ran


def run_id(directory: Path) -> str:
    return json.loads(manifests.manifest_text(directory))["run_id"]


@pytest.fixture
def half_pair(batch_file, key_file, tmp_path) -> tuple[Path, list[str]]:
    """A split of `batch_file` killed between its renames: (out dir, the split's arguments)."""
    out = tmp_path / "out"
    args = split_args(batch_file, out, key_file)
    kill_between_renames(args)
    assert (out / "onshore" / "_manifest.parquet").is_file()
    assert not (out / "export").exists()
    return out, args


def test_a_kill_between_the_renames_leaves_a_half_pair_verify_names(half_pair) -> None:
    out, _ = half_pair
    checked = CliRunner().invoke(vtx, ["verify", str(out / "onshore"),
                                       "--catalogue", str(MINI_CATALOGUE)])
    assert checked.exit_code == 4, checked.output
    assert ": ok: run " in checked.stdout  # the onshore half itself is whole
    lines = checked.stderr.strip().splitlines()
    assert len(lines) == 1 and "export half missing" in lines[0], checked.stderr
    assert str(out / "export") in lines[0] and "re-run the same split" in lines[0]


def test_the_same_split_rerun_completes_the_pair_without_overwrite(half_pair) -> None:
    out, args = half_pair
    old_run = run_id(out / "onshore")
    done = CliRunner().invoke(vtx, args)
    assert done.exit_code == 0, done.output
    report = verify_output(out / "export", out / "onshore", MINI_CATALOGUE)
    assert report.ok, report.failures
    assert run_id(out / "export") == run_id(out / "onshore") != old_run  # one new, whole run
    assert not [p.name for p in out.iterdir() if ".vtx-" in p.name]  # the dead run's staging
    alone = CliRunner().invoke(vtx, ["verify", str(out / "onshore"),
                                     "--catalogue", str(MINI_CATALOGUE)])
    assert alone.exit_code == 0, alone.output
    # Complete now: a further run is the ordinary "not empty" refusal.
    again = CliRunner().invoke(vtx, args)
    assert again.exit_code == 1 and "target is not empty" in again.stderr, again.output


def _refused(args: list[str], out: Path, reason: str) -> None:
    before = run_id(out / "onshore")
    done = CliRunner().invoke(vtx, args)
    assert done.exit_code == 1, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "holds the onshore half of run" in lines[0] and reason in lines[0], lines[0]
    assert "re-run that split to complete the pair, or use --overwrite" in lines[0]
    assert run_id(out / "onshore") == before and not (out / "export").exists()
    # This run's staging is gone (a dead run's may stay until a run gets to stage).
    assert not [p.name for p in out.iterdir() if f"-{os.getpid()}-" in p.name]


def test_another_split_is_refused_and_told_what_to_do(half_pair, tmp_path, batch) -> None:
    out, args = half_pair
    other = tmp_path / "other" / "batch.parquet"
    other.parent.mkdir()
    batch.head(50).write_parquet(other)
    _refused([args[0], str(other), *args[2:]], out, "its inputs differ from this run's")
    scenario = args.index("--scenario") + 1
    _refused([*args[:scenario], "rnd", *args[scenario + 1:]], out,
             "another scenario or origin")


def test_an_input_changed_in_place_is_refused_before_publishing(
    half_pair, batch_file, batch
) -> None:
    out, args = half_pair
    batch.reverse().write_parquet(batch_file, row_group_size=40)  # same path, new content
    _refused(args, out, "its inputs have changed since")
    done = CliRunner().invoke(vtx, [*args, "--overwrite"])  # what the message says works
    assert done.exit_code == 0, done.output
    assert verify_output(out / "export", out / "onshore", MINI_CATALOGUE).ok


def test_a_foreign_file_in_the_export_target_is_no_half_pair(half_pair) -> None:
    out, args = half_pair
    (out / "export").mkdir()
    (out / "export" / "notes.txt").write_text("someone else's")
    done = CliRunner().invoke(vtx, args)
    assert done.exit_code == 1 and "target is not empty" in done.stderr, done.output


def test_a_protobuf_split_killed_between_its_renames_is_completed(key_file, tmp_path) -> None:
    from tests.engines.test_protobuf_split import TEST_SET
    from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload

    payload = load_schema(TEST_SET, "testfleet.Payload")
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*(make_payload(payload, f"LSV{i:014d}") for i in range(40))))
    out = tmp_path / "out"
    args = ["split", str(stream), "--export", str(out / "export"), "--onshore",
            str(out / "onshore"), "--scenario", "after-sales", "--key-file", str(key_file),
            "--descriptor-set", str(TEST_SET), "--message", "testfleet.Payload", "--quiet",
            "--output-format", "protobuf"]
    kill_between_renames(args)
    assert (out / "onshore").is_dir() and not (out / "export").exists()
    done = CliRunner().invoke(vtx, args)
    assert done.exit_code == 0, done.output
    verified = CliRunner().invoke(vtx, ["verify", str(out / "export"), "--onshore",
                                        str(out / "onshore")])
    assert verified.exit_code == 0, verified.output


def test_a_half_pair_that_changes_while_the_rerun_writes_is_left_alone(tmp_path) -> None:
    """The publisher checks the condition again just before it replaces the target."""
    target = tmp_path / "onshore"
    target.mkdir()
    (target / "theirs").write_text("x")
    (staged,) = stage_all([target], "run1", overwrite=False, replace_if={target: lambda _: False})
    (staged.staging / "part-00000.parquet").write_bytes(b"ours")
    with pytest.raises(OutputError, match="target changed while this run was writing"):
        staged.publish()
    staged.discard()
    assert [p.name for p in target.iterdir()] == ["theirs"]


def test_an_export_moved_away_is_named_by_verify_of_its_onshore(batch_file, tmp_path) -> None:
    out = tmp_path / "out"
    split(batch_file, out / "export", out / "onshore", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    assert verify_output(out / "onshore", catalogue=MINI_CATALOGUE).missing_half is None
    (out / "export").rename(tmp_path / "shipped")
    report = verify_output(out / "onshore", catalogue=MINI_CATALOGUE)
    assert report.ok and report.missing_half is not None
    assert "export half missing" in report.missing_half
    # Another run's export in its place is not this onshore output's half either.
    split(batch_file, out / "export", tmp_path / "onshore2", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    replaced = verify_output(out / "onshore", catalogue=MINI_CATALOGUE).missing_half
    assert replaced is not None and "holds run" in replaced
    assert pl.read_parquet(out / "onshore" / "part-00000.parquet").height > 0
