"""Splitting files into published outputs (filter/engines/parquet.py, publish.py, manifest.py)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from filter import InputError, OutputError, read_manifest, split, split_frame
from filter.apply.reconstruct import reconstruct
from filter.outputs.manifest import sha256_file
from filter.outputs.manifest_document import InputRecord
from tests import manifests
from tests.conftest import KEY, MINI_CATALOGUE


def run(inputs, tmp_path: Path, **kw):
    return split(inputs, tmp_path / "export", tmp_path / "onshore", kw.pop("scenario", "rnd"),
                 key=KEY, catalogue=MINI_CATALOGUE, **kw)


def test_split_publishes_both_outputs_with_manifests(batch_file: Path, batch, tmp_path) -> None:
    result = run(batch_file, tmp_path)
    export, onshore = read_manifest(tmp_path / "export"), read_manifest(tmp_path / "onshore")
    assert export.run_id == onshore.run_id
    assert export.rows == onshore.rows == batch.height == result.rows
    assert onshore.inputs[0].sha256 == sha256_file(batch_file)
    assert export.inputs == (InputRecord(batch.height),)  # where and what: onshore only
    assert export.catalogue.id == "mini" and export.scenario == "rnd"
    for manifest, directory in ((export, tmp_path / "export"), (onshore, tmp_path / "onshore")):
        assert manifest.schema_version == 3
        names = sorted(p.name for p in directory.iterdir())
        assert names == ["_manifest.parquet", "part-00000.parquet"]
        (part,) = manifest.files
        assert part.sha256 == sha256_file(directory / part.name)
        assert part.rows == pq.read_metadata(directory / part.name).num_rows
    export_cols = {c.name: c for c in export.columns}
    assert "vin" not in export_cols
    assert export_cols["Vehicle.Speed"].data_class == "test"
    assert export_cols["Vehicle.Speed"].basis == "test basis: test"
    onshore_cols = {c.name: c for c in onshore.columns}
    assert onshore_cols["x_debug_counter"].data_class == "unclassified"
    assert onshore.class_counts["location"] == 3
    # Nothing but the published directories beside them: staging is gone.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_outputs_reconstruct_the_input_file(batch_file: Path, batch, tmp_path) -> None:
    run(batch_file, tmp_path, scenario="after-sales")
    export = pl.read_parquet(tmp_path / "export" / "part-00000.parquet")
    onshore = pl.read_parquet(tmp_path / "onshore" / "part-00000.parquet")
    assert_frame_equal(reconstruct(export, onshore, batch.schema), batch)
    assert "vin" not in export.columns
    strings = [c for c, t in export.schema.items() if t == pl.String]
    exported_values = set(export.select(strings).unpivot()["value"])
    assert not set(batch["vin"]) & exported_values


def test_many_inputs_directories_and_globs(batch, tmp_path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    batch.head(50).write_parquet(src / "a.parquet")
    batch.slice(50, 30).write_parquet(src / "sub" / "b.parquet")
    batch.tail(40).write_parquet(tmp_path / "c.parquet")
    (src / "_ignored.parquet").write_bytes(b"not parquet")
    result = run([src, str(tmp_path / "c*.parquet")], tmp_path)
    manifest = result.export_manifest
    assert [i.rows for i in manifest.inputs] == [50, 30, 40]
    assert [f.name for f in manifest.files] == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [f.rows for f in result.onshore_manifest.files] == [50, 30, 40]


def test_schema_mismatch_between_inputs_is_refused(batch, tmp_path) -> None:
    batch.write_parquet(tmp_path / "a.parquet")
    batch.drop("x_debug_counter").write_parquet(tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet: schema differs.*x_debug_counter"):
        run([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path)
    assert not (tmp_path / "export").exists()


def test_non_empty_target_needs_overwrite(batch_file: Path, tmp_path) -> None:
    first = run(batch_file, tmp_path)
    with pytest.raises(OutputError, match=r"not empty.*--overwrite"):
        run(batch_file, tmp_path)
    second = run(batch_file, tmp_path, overwrite=True)
    assert second.export_manifest.run_id != first.export_manifest.run_id
    assert read_manifest(tmp_path / "export").run_id == second.export_manifest.run_id


def test_corrupt_input_publishes_nothing(batch_file: Path, batch, tmp_path) -> None:
    good = tmp_path / "good.parquet"
    batch.write_parquet(good)
    data = bytearray(batch_file.read_bytes())
    # Overwrite the middle of the file (data pages), leaving the footer intact.
    mid = len(data) // 2
    data[mid - 2000 : mid + 2000] = b"\xff" * 4000
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad\.parquet"):
        run([good, bad], tmp_path)
    assert not (tmp_path / "export").exists() and not (tmp_path / "onshore").exists()
    assert not [p for p in tmp_path.iterdir() if ".vtx-" in p.name]


def test_truncated_input(batch_file: Path, tmp_path) -> None:
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(batch_file.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"truncated\.parquet: not a readable Parquet file"):
        run(truncated, tmp_path)
    assert not (tmp_path / "export").exists()


def test_missing_input_and_empty_glob(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file"):
        run(tmp_path / "absent.parquet", tmp_path)
    with pytest.raises(InputError, match="matches no files"):
        run(str(tmp_path / "*.parquet"), tmp_path)


def test_stale_staging_of_a_dead_run_is_removed(batch_file: Path, tmp_path) -> None:
    stale = tmp_path / f".export.vtx-staging-{_host()}-999999999-deadbeef"
    stale.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"half")
    run(batch_file, tmp_path)
    assert not stale.exists()


def test_targets_must_be_apart(batch_file: Path, tmp_path) -> None:
    with pytest.raises(OutputError, match="separate directories"):
        split(batch_file, tmp_path / "out", tmp_path / "out" / "onshore", "rnd", key=KEY,
              catalogue=MINI_CATALOGUE)


def test_empty_input_file_gives_empty_parts(batch, tmp_path) -> None:
    empty = tmp_path / "empty.parquet"
    batch.clear().write_parquet(empty)
    result = run(empty, tmp_path)
    assert result.rows == 0
    assert pl.read_parquet(tmp_path / "export" / "part-00000.parquet").height == 0


def test_manifest_is_valid_json_without_values(batch_file: Path, batch, tmp_path) -> None:
    run(batch_file, tmp_path)
    text = manifests.manifest_text(tmp_path / "onshore")
    json.loads(text)
    assert batch["vin"][0] not in text


def _host() -> str:
    import socket

    return socket.gethostname().replace("-", "_") or "host"


def test_progress_is_reported_per_file(batch, tmp_path) -> None:
    batch.head(70).write_parquet(tmp_path / "a.parquet")
    batch.tail(50).write_parquet(tmp_path / "b.parquet")
    events: list[tuple[int, int, int, int]] = []
    run([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path,
        progress=lambda *event: events.append(event))
    assert events == [(1, 2, 70, 120), (2, 2, 120, 120)]


def test_maps_and_lists_are_classified_whole(tmp_path) -> None:
    import pyarrow as pa

    table = pa.table({
        "vin": ["LSV00000000000001", "LSV00000000000002"],
        "ts": [1, 2],
        "Vehicle.Diagnostics.DTCList": [["P0420"], []],
        "Vehicle.Service.Notes": pa.array([[("a", 1)], []], type=pa.map_(pa.string(), pa.int64())),
        "Vehicle.Cabin.Extras": pa.array([[("b", 2)], None],
                                         type=pa.map_(pa.string(), pa.int64())),
    })
    pq.write_table(table, tmp_path / "maps.parquet")
    result = run(tmp_path / "maps.parquet", tmp_path, scenario="after-sales")
    fields = {f.path: f.destination for f in result.plan.fields}
    assert fields["Vehicle.Diagnostics.DTCList"] == "export"
    assert fields["Vehicle.Service.Notes"] == "export"
    assert fields["Vehicle.Cabin.Extras"] == "onshore"
    export = pl.read_parquet(tmp_path / "export" / "part-00000.parquet")
    assert "Vehicle.Cabin.Extras" not in export.columns
    stored = pl.read_parquet(tmp_path / "maps.parquet")
    assert export["Vehicle.Service.Notes"].equals(stored["Vehicle.Service.Notes"])


def test_scanned_fields_without_hits_are_reported_with_zero_counts(batch_file, tmp_path) -> None:
    result = run(batch_file, tmp_path, scenario="after-sales")
    (dtcs,) = result.export_manifest.detections
    assert dtcs.field == "Vehicle.Diagnostics.DTCList"
    assert dtcs.moved_values == 0 and set(dtcs.hits.values()) == {0}


# --- the batch's own VINs in exported strings (issue 23, item 3) ---------------------------

NOTES = "Vehicle.Service.Notes"
OIL = "Vehicle.Powertrain.CombustionEngine.EngineOil.Level"  # few values: a value table
VIN_A = "LRW3E7EK0PC100001"  # its ISO 3779 check digit is wrong: no `vin` detector hit
VIN_B = "LRW3E7EK0PC100002"
FULL_WIDTH_A = "".join(chr(ord(c) + 0xFEE0) for c in VIN_A)  # in full-width letters


def _vin_batch() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two files: notes and an enumeration that hold the other file's VIN, its own VIN in
    lower case, inside a word, in full-width letters; and ordinary values."""
    stamps = [datetime(2026, 11, 24, 0, 0, s) for s in range(4)]
    first = pl.DataFrame({
        "vin": [VIN_A] * 4, "timestamp": stamps,
        NOTES: ["ok", f"owner of {VIN_A.lower()} called", f"see {VIN_B}", None],
        OIL: ["Low", "Low", "Normal", VIN_B],
    })
    second = pl.DataFrame({
        "vin": [VIN_B] * 4, "timestamp": stamps,
        NOTES: [f"x{VIN_A}y", f"tow {FULL_WIDTH_A} today", "fine", "fine"],
        OIL: ["Low", "Normal", "Normal", "Low"],
    })
    return first, second


def _export_bytes_hold_no_vin(export_dir: Path) -> None:
    planted = [v.encode() for vin in (VIN_A, VIN_B) for v in (vin, vin.lower())]
    planted.append(FULL_WIDTH_A.encode())
    for f in export_dir.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not [p for p in planted if p in data], f.name


@pytest.mark.parametrize("reencode", [False, True], ids=["copied", "reencode"])
def test_a_vin_of_the_batch_in_an_exported_string_stays_onshore(
    tmp_path: Path, reencode: bool
) -> None:
    from filter.audit.verify import verify_output

    first, second = _vin_batch()
    (tmp_path / "in").mkdir()
    for name, frame in (("a", first), ("b", second)):
        frame.write_parquet(tmp_path / "in" / f"{name}.parquet", compression="uncompressed")
    result = split(tmp_path / "in", tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                   reencode=reencode)
    _export_bytes_hold_no_vin(tmp_path / "e")
    exports = [pl.read_parquet(tmp_path / "e" / f"part-0000{i}.parquet") for i in (0, 1)]
    onshores = [pl.read_parquet(tmp_path / "o" / f"part-0000{i}.parquet") for i in (0, 1)]
    assert exports[0][NOTES].to_list() == ["ok", None, None, None]
    assert exports[1][NOTES].to_list() == [None, None, "fine", "fine"]
    assert exports[0][OIL].to_list() == ["Low", "Low", "Normal", None]
    assert onshores[0][NOTES].to_list()[1:3] == first[NOTES].to_list()[1:3]
    assert onshores[1][NOTES].to_list()[:2] == second[NOTES].to_list()[:2]
    assert onshores[0][OIL].to_list()[3] == VIN_B
    found = {d.field: d for d in result.export_manifest.detections}
    assert found[NOTES].moved_values == 4 and found[NOTES].hits["batch_vin"] == 4
    assert found[NOTES].hits["vin"] == 0  # no valid check digit: only the batch's own VINs
    assert found[OIL].moved_values == 1 and found[OIL].hits["batch_vin"] == 1
    report = verify_output(tmp_path / "e", tmp_path / "o")
    assert report.ok, report.failures
    for frame, export, onshore in zip((first, second), exports, onshores, strict=True):
        assert_frame_equal(reconstruct(export, onshore, frame.schema), frame)


def test_split_frame_moves_the_batch_vins_out_of_the_export() -> None:
    first, second = _vin_batch()
    frame = pl.concat([first, second])
    export, onshore = split_frame(frame, "after-sales", key=KEY)
    assert export[NOTES].to_list() == ["ok", None, None, None, None, None, "fine", "fine"]
    assert export[OIL].null_count() == 1
    assert_frame_equal(reconstruct(export, onshore, frame.schema), frame)
    lazy_export, _ = split_frame(frame.lazy(), "after-sales", key=KEY)
    assert_frame_equal(lazy_export.collect(), export)


def test_short_vin_values_hit_only_as_a_whole_value() -> None:
    """A VIN column may hold anything; a short value hits only where a string is that value,
    or every text holding its letters would move."""
    frame = pl.DataFrame({"vin": ["X1", "X1"], "timestamp": [1, 2],
                          NOTES: ["x1", "tax1 paid"]})
    export, _ = split_frame(frame, "after-sales", key=KEY)
    assert export[NOTES].to_list() == [None, "tax1 paid"]
@pytest.mark.parametrize("reencode", [False, True], ids=["spliced", "reencode"])
def test_a_path_with_glob_characters_is_that_file(batch, tmp_path, reencode) -> None:
    # `b[1].parquet` beside `b1.parquet`, which Polars would glob `b[1].parquet` to.
    batch.write_parquet(tmp_path / "b[1].parquet")
    batch.head(7).drop("Vehicle.Cabin.HVAC.AmbientAirTemperature").write_parquet(
        tmp_path / "b1.parquet")
    folder = tmp_path / "d[x]"
    folder.mkdir()
    batch.tail(5).write_parquet(folder / "a.parquet")
    given = tmp_path / "b[1].parquet"
    result = run([str(given), str(folder)], tmp_path / "out[1]", reencode=reencode)
    inputs = result.onshore_manifest.inputs
    assert [i.path for i in inputs] == [str(given), str(folder / "a.parquet")]
    assert inputs[0].sha256 == sha256_file(given) and inputs[0].rows == batch.height
    onshore = pl.read_parquet(result.onshore_dir / "part-00000.parquet", glob=False)
    assert onshore.height == batch.height
    assert "Vehicle.Cabin.HVAC.AmbientAirTemperature" in onshore.columns
    from filter.audit.verify import verify_output

    report = verify_output(result.export_dir, result.onshore_dir, MINI_CATALOGUE)
    assert report.ok, report.failures


def test_a_pattern_is_expanded_once_into_literal_paths(batch, tmp_path) -> None:
    batch.head(3).write_parquet(tmp_path / "c[1]x.parquet")  # only a match holds `[`
    batch.tail(4).write_parquet(tmp_path / "c1x.parquet")
    result = run(str(tmp_path / "c*.parquet"), tmp_path / "out")
    assert [(Path(i.path).name, i.rows) for i in result.onshore_manifest.inputs] == [
        ("c1x.parquet", 4), ("c[1]x.parquet", 3)]
    for part, rows in (("part-00000.parquet", batch.tail(4)), ("part-00001.parquet",
                                                              batch.head(3))):
        onshore = pl.read_parquet(result.onshore_dir / part)
        assert onshore["vin"].to_list() == rows["vin"].to_list(), part
    with pytest.raises(InputError, match=r"c\?\?\?\.parquet: pattern matches no files"):
        run(str(tmp_path / "c???.parquet"), tmp_path / "none")


def test_links_inside_an_input_directory_are_refused(batch, tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    batch.write_parquet(src / "a.parquet")
    outside = tmp_path / "outside"
    outside.mkdir()
    batch.write_parquet(outside / "b.parquet")
    (src / "notes.txt").symlink_to(outside / "b.parquet")  # never read: left alone
    (src / "b.parquet").symlink_to(outside / "b.parquet")
    with pytest.raises(InputError, match=r"src/b\.parquet: is a symbolic link inside input "):
        run(src, tmp_path / "o1")
    (src / "b.parquet").unlink()
    (src / "more").symlink_to(outside)
    with pytest.raises(InputError, match=r"src/more: is a symbolic link inside input "):
        run(src, tmp_path / "o2")
    (src / "more").unlink()
    os.mkfifo(src / "c.parquet")
    with pytest.raises(InputError, match=r"c\.parquet: is a FIFO inside input directory"):
        run(src, tmp_path / "o3")
    (src / "c.parquet").unlink()
    with pytest.raises(InputError, match=r"notes\.txt: is a symbolic link matched by pattern"):
        run(str(src / "*"), tmp_path / "o4")  # matches notes.txt, a link
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("o") and p.name != "outside"]
    # A link the user names is followed: the user chose it.
    (tmp_path / "named.parquet").symlink_to(outside / "b.parquet")
    assert run(tmp_path / "named.parquet", tmp_path / "o5").rows == batch.height


def test_an_export_target_that_cannot_be_published_leaves_onshore_unpublished(
    tmp_path: Path,
) -> None:
    # Issue 23, item 17: a link to an empty directory as the export target was refused only
    # when the export was renamed into place, after onshore had been published.
    from click.testing import CliRunner

    from filter.cli import vtx

    source = tmp_path / "in.parquet"
    pl.DataFrame({"vin": ["LRW3E7EK0PC100001"], "timestamp": [datetime(2026, 11, 24)],
                  "Vehicle.Speed": [1.0]}).write_parquet(source)
    (tmp_path / "empty").mkdir()
    (tmp_path / "e").symlink_to(tmp_path / "empty")
    key_file = tmp_path / "k"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    result = CliRunner().invoke(vtx, ["split", str(source), "--export", str(tmp_path / "e"),
                                      "--onshore", str(tmp_path / "o"), "--scenario",
                                      "after-sales", "--key-file", str(key_file), "-q"])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("vtx: error: ") and "e: is a symbolic link" in line
    assert not (tmp_path / "o").exists() and not any((tmp_path / "empty").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e", "empty", "in.parquet", "k"]
