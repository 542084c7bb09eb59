"""No data value in any log or audit output: every command over data seeded with markers.

Withheld fields (cabin, occupant) and one exported string that a detector moves onshore hold
unique marker strings; none may reach stdout, stderr, a manifest, the report, or the export's
files, and all must be in the onshore part files (nothing is lost).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from click.testing import CliRunner

from filter.cli import vtx
from filter.cli.sample import sample_batch
from tests import manifests
from tests.conftest import MINI_CATALOGUE

MARK = "MARKER-7f3a-"
OCCUPANT = "Vehicle.Occupant.Row1.DriverSide.Identifier.Subject"
CABIN = "Vehicle.Cabin.Infotainment.Media.Played.Track"
DTCS = "Vehicle.Diagnostics.DTCList"


def seeded_batch(path: Path) -> None:
    frame = sample_batch(vehicles=6, samples=10, seed=5)
    n = frame.height
    i = pl.int_range(n).cast(pl.String)
    frame = frame.with_columns(
        pl.format(f"{MARK}occupant-{{}}", i).alias(OCCUPANT),
        pl.format(f"{MARK}cabin-{{}}", i).alias(CABIN),
        # An exported list of strings whose one value is an e-mail address: moved onshore.
        pl.when(pl.int_range(n) == 3).then(pl.lit([f"{MARK}mail@example.com"]))
        .otherwise(pl.col(DTCS)).alias(DTCS),
    )
    frame.write_parquet(path, row_group_size=25)


def text_of_parts(directory: Path) -> str:
    return "\n".join(pl.read_parquet(p).write_ndjson() for p in sorted(directory.glob("*.parquet")))


def test_no_marker_leaves_in_logs_manifests_report_or_export(tmp_path, key_file) -> None:
    source = tmp_path / "in" / "batch.parquet"
    source.parent.mkdir()
    seeded_batch(source)
    export, onshore, html = tmp_path / "export", tmp_path / "onshore", tmp_path / "report.html"
    cat = ["--catalogue", str(MINI_CATALOGUE)]
    commands = [
        ["split", str(source), "--export", str(export), "--onshore", str(onshore),
         "--scenario", "after-sales", "--key-file", str(key_file), *cat],
        ["explain", str(source), "--scenario", "after-sales", *cat],
        ["explain", str(source), "--scenario", "after-sales", "--format", "json", *cat],
        ["verify", str(export), "--onshore", str(onshore), *cat],
        ["report", str(export), str(onshore), "--html", str(html)],
        ["catalogue", "show", str(MINI_CATALOGUE)],
        ["catalogue", "show", str(MINI_CATALOGUE), "--format", "json"],
    ]
    runner = CliRunner()
    for args in commands:
        result = runner.invoke(vtx, args)
        assert result.exit_code == 0, (args, result.output)
        assert MARK not in result.stdout and MARK not in result.stderr, args

    for text in (manifests.manifest_text(export), manifests.manifest_text(onshore),
                 html.read_text()):
        assert MARK not in text
    for path in export.iterdir():
        assert MARK.encode() not in path.read_bytes(), path
    exported = text_of_parts(export)
    assert MARK not in exported and "occupant" not in exported.lower()

    kept = text_of_parts(onshore)
    for marker in (f"{MARK}occupant-0", f"{MARK}cabin-59", f"{MARK}mail@example.com"):
        assert marker in kept


def test_no_marker_leaves_a_protobuf_split(tmp_path, key_file) -> None:
    from filter.formats.protobuf.descriptors import load_schema
    from tests.conftest import DATA
    from tests.formats.protobuf.test_readers_protobuf import delimited

    descriptors = DATA / "fleet_test.binpb"
    payload = load_schema(descriptors, "testfleet.Payload").message_class
    messages = []
    for i in range(5):
        msg = payload(vin=f"LSV{i:014d}")
        msg.data.add(key=64).value.string_value = f"{MARK}name-{i}"  # VehicleName: personal
        msg.data.add(key=248).value.string_value = f"{MARK}track-{i}"  # media: cabin
        msg.data.add(key=8).value.string_value = f"{MARK}x@example.com"  # Soc, but an e-mail
        msg.data.add(key=8).value.double_value = 50.0
        messages.append(msg.SerializeToString())
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*messages))
    export, onshore, html = tmp_path / "export", tmp_path / "onshore", tmp_path / "report.html"
    runner = CliRunner()
    for args in (
        ["split", str(stream), "--export", str(export), "--onshore", str(onshore), "--scenario",
         "after-sales", "--key-file", str(key_file), "--message", "testfleet.Payload",
         "--descriptor-set", str(descriptors)],
        ["verify", str(export), "--onshore", str(onshore)],
        ["report", str(export), str(onshore), "--html", str(html)],
    ):
        result = runner.invoke(vtx, args)
        assert result.exit_code == 0, (args, result.output)
        assert MARK not in result.stdout and MARK not in result.stderr, args
    assert MARK not in html.read_text()
    for path in export.iterdir():
        assert MARK.encode() not in path.read_bytes(), path
    kept = "\n".join(pl.read_parquet(p).select(pl.col(pl.String)).write_ndjson()
                     for p in sorted(onshore.glob("*.parquet")))
    for marker in (f"{MARK}name-4", f"{MARK}track-0", f"{MARK}x@example.com"):
        assert marker in kept
