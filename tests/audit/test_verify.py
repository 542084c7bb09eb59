"""Verifying published outputs (filter/audit/verify.py and the checks it runs,
filter/cli/verify.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from filter import InputError, split
from filter.audit.integrity import check_directory
from filter.audit.verify import verify_output
from filter.cli import vtx
from filter.formats.protobuf.descriptors import load_schema
from filter.outputs.manifest import sha256_file
from tests import manifests
from tests.conftest import KEY, MINI_CATALOGUE
from tests.engines.test_protobuf_split import TEST_SET, record_stream
from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload

PART = "part-00000.parquet"


@pytest.fixture
def outputs(batch_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A published after-sales split of the sample batch (it exports a list-of-string field)."""
    split(batch_file, tmp_path / "export", tmp_path / "onshore", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    return tmp_path / "export", tmp_path / "onshore"


def verify(export: Path, onshore: Path | None = None) -> list[str]:
    return [str(f) for f in verify_output(export, onshore, MINI_CATALOGUE).failures]


def edit_manifest(directory: Path, change) -> None:
    path = directory  # the output holding the manifest
    manifest = json.loads(manifests.manifest_text(path))
    change(manifest)
    manifests.write_text(path, json.dumps(manifest))


def replace_part(directory: Path, frame: pl.DataFrame) -> None:
    """Write `frame` as the part and make the manifest agree (hash, rows, bytes, the manifest
    file's schema)."""
    frame.write_parquet(directory / PART)
    manifests.match_schema(directory, directory / PART)

    def refresh(manifest) -> None:
        record = manifest["files"][0]
        record.update(sha256=sha256_file(directory / PART), rows=frame.height,
                      bytes=(directory / PART).stat().st_size)
        manifest["rows"] = frame.height

    edit_manifest(directory, refresh)


def test_a_fresh_output_verifies(outputs) -> None:
    export, onshore = outputs
    report = verify_output(export, onshore, MINI_CATALOGUE)
    assert report.ok, report.failures
    assert report.files == 2 and report.rows == 120
    assert "ok" in report.summary()
    assert verify(export) == []


def test_a_flipped_bit_is_caught(outputs) -> None:
    export, onshore = outputs
    data = bytearray((export / PART).read_bytes())
    data[len(data) // 2] ^= 0x10
    (export / PART).write_bytes(bytes(data))
    (failure,) = verify(export, onshore)
    assert PART in failure and "sha256 differs" in failure


def test_extra_and_missing_files_are_caught(outputs) -> None:
    export, onshore = outputs
    (export / "part-00001.parquet").write_bytes((export / PART).read_bytes())
    (onshore / PART).unlink()
    failures = verify(export, onshore)
    assert any("part-00001.parquet: not listed in the manifest" in f for f in failures)
    assert any(f"onshore/{PART}: listed in the manifest but missing" in f for f in failures)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda m: m["files"][0].update(rows=121), "holds 120 rows, the manifest says 121"),
        (lambda m: m["files"][0].update(sha256="0" * 64), "sha256 differs"),
        (lambda m: m.update(schema_version=99), "unknown schema_version 99"),
        (lambda m: m["catalogue"].update(sha256="f" * 64), "catalogue sha256 is ffff"),
        (lambda m: m.update(scenario="rnd"), "not in scenario"),
        (lambda m: m["columns"].pop(), "in the part but not in the manifest's columns"),
        (lambda m: m.update(rows="many"), "malformed: rows"),
        (lambda m: m["files"][0].update(name="../onshore/part-00000.parquet"), "plain, unique"),
        (lambda m: m.update(run_id="another"), "different runs"),
        # A claim verify cannot read is not passed over: the manifest is refused.
        (lambda m: m.update(exported_to="31.2304,121.4737"),
         "_manifest.parquet: malformed: exported_to is not a key vtx writes"),
        (lambda m: m["files"][0].update(note="x"), "malformed: files[0].note is not a key"),
    ],
)
def test_an_edited_manifest_is_caught(outputs, change, fragment) -> None:
    export, onshore = outputs
    edit_manifest(export, change)
    failures = verify(export, onshore)
    assert any(fragment in f for f in failures), failures


def test_an_unreadable_manifest_is_a_failure(outputs) -> None:
    export, _ = outputs
    manifests.write_text(export, "{not json")
    (failure,) = verify(export)
    assert "_manifest.parquet: cannot be read" in failure
    (export / "_manifest.parquet").write_bytes(b"PAR1 not a footer")
    (failure,) = verify(export)
    assert "_manifest.parquet: cannot be read" in failure
    (export / "_manifest.parquet").unlink()
    assert "no _manifest.parquet" in verify(export)[0]


def test_a_withheld_column_in_the_export_is_caught(outputs, batch) -> None:
    export, onshore = outputs
    part = pl.read_parquet(export / PART)
    replace_part(export, part.with_columns(batch["Vehicle.Cabin.HVAC.AmbientAirTemperature"]))

    def claim(manifest) -> None:  # the column listed as exported, its class counted
        manifest["columns"].append(
            {"name": "Vehicle.Cabin.HVAC.AmbientAirTemperature", "class": "after_sales",
             "rule": "after-sales", "basis": "claimed", "reason": "claimed"})
        manifest["class_counts"]["after_sales"] += 1

    edit_manifest(export, claim)
    failures = verify(export, onshore)
    assert len(failures) == 1
    assert "'Vehicle.Cabin.HVAC.AmbientAirTemperature': not allowed: withheld class 'cabin'" in (
        failures[0])


def test_detector_hits_and_onshore_vins_are_caught_without_values(outputs, batch) -> None:
    export, onshore = outputs
    part = pl.read_parquet(export / PART)
    vin = batch["vin"][5]
    dtcs = [["P0420"]] * part.height
    dtcs[3] = ["call 13812345678"]
    dtcs[7] = [f"see {vin}"]
    replace_part(export, part.with_columns(pl.Series("Vehicle.Diagnostics.DTCList", dtcs)))
    failures = verify(export, onshore)
    assert any("'Vehicle.Diagnostics.DTCList': 1 value(s) hit detector 'mobile_number'" in f
               for f in failures), failures
    assert any("'Vehicle.Diagnostics.DTCList': 1 value(s) hit a raw VIN of the onshore output"
               in f for f in failures), failures
    assert not any("13812345678" in f or vin in f for f in failures)
    # Without the onshore side, the VIN cannot be known; the detectors still run.
    assert len(verify(export)) == 1


def test_tokens_must_line_up(outputs) -> None:
    export, onshore = outputs
    part = pl.read_parquet(export / PART)
    replace_part(export, part.with_columns(pl.col("vehicle_token").reverse()))
    (failure,) = verify(export, onshore)
    assert "row(s) carry a different vehicle_token" in failure


def test_both_sides_must_carry_one_key_id(outputs) -> None:
    export, onshore = outputs
    assert verify(export, onshore) == []
    # The onshore half as if made under a rotated key: its tokens would not match.
    edit_manifest(onshore, lambda m: m["keys"].update(key_id="0" * 16))
    (failure,) = verify(export, onshore)
    assert "different keys: export key_id" in failure and "onshore key_id 0000" in failure
    assert verify(export) == []  # alone, the export has nothing to compare with
    for side in (export, onshore):  # a manifest without a key id cannot be paired either
        edit_manifest(side, lambda m: m["keys"].pop("key_id"))
    (failure,) = verify(export, onshore)
    assert "different keys: export key_id None" in failure


def test_sides_swapped_or_missing(outputs, tmp_path) -> None:
    export, onshore = outputs
    failures = verify(onshore, export)  # given as the export: the sides are swapped
    assert "destination is 'onshore', not 'export'" in failures[0]
    assert "destination is 'export', not 'onshore'" in failures[1]
    with pytest.raises(InputError, match="not a directory"):
        verify_output(tmp_path / "absent")
    assert check_directory(onshore, "onshore").failures == []


def test_cli_verify(outputs, tmp_path) -> None:
    export, onshore = outputs
    runner = CliRunner()
    args = ["verify", str(export), "--onshore", str(onshore), "--catalogue", str(MINI_CATALOGUE)]
    ok = runner.invoke(vtx, args)
    assert ok.exit_code == 0, ok.output
    assert len(ok.stdout.splitlines()) == 1 and ": ok: run " in ok.stdout
    (export / "stray.txt").write_text("x")
    (onshore / PART).write_bytes(b"PAR1")
    bad = runner.invoke(vtx, args)
    assert bad.exit_code == 3 and bad.stdout == ""
    lines = bad.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("vtx: verify: ") for line in lines)
    # The shipped catalogue is not the one the output was split with.
    shipped = runner.invoke(vtx, ["verify", str(export)])
    assert shipped.exit_code == 3 and "catalogue sha256 is" in shipped.stderr
    missing = runner.invoke(vtx, ["verify", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and missing.stderr.startswith("vtx: error: ")


def protobuf_split(tmp_path: Path, stream: Path, *args: str, message: str = "testfleet.Payload",
                   name: str = "") -> tuple[Path, Path]:
    """`vtx split` of a protobuf stream (the test descriptor set for the test message)."""
    export, onshore = tmp_path / f"e{name}", tmp_path / f"o{name}"
    descriptor = ["--descriptor-set", str(TEST_SET)] if message == "testfleet.Payload" else []
    result = CliRunner().invoke(vtx, [
        "split", str(stream), "--export", str(export), "--onshore", str(onshore),
        "--scenario", "after-sales", "--message", message, *descriptor, "-q",
        "--key-file", str(key_file(tmp_path)), *args])
    assert result.exit_code == 0, result.output
    return export, onshore


def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "vtx.key"
    path.write_bytes(KEY + b"\n")
    path.chmod(0o600)
    return path


def cli_verify(*args: str | Path) -> Any:
    return CliRunner().invoke(vtx, ["verify", *map(str, args)])


OUTPUT_FORMATS = [(), ("--output-format", "protobuf")]


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
@pytest.mark.parametrize("message", ["testfleet.Payload", "vtx.telemetry.v1.Record"])
def test_a_quarantine_run_verifies(output_format, message, tmp_path) -> None:
    if message == "testfleet.Payload":
        good = make_payload(load_schema(TEST_SET, message))
    else:
        good = record_stream(tmp_path / "records.bin", 1).read_bytes()[1:]  # one short message
    stream = tmp_path / "in.bin"
    stream.write_bytes(delimited(good, b"\x0a\xff\xff", good) + b"\x40abc")
    export, onshore = protobuf_split(tmp_path, stream, "--on-bad-record", "quarantine",
                                     *output_format, message=message)
    assert len(list((onshore / "quarantine").iterdir())) == 2
    result = cli_verify(export, "--onshore", onshore)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
@pytest.mark.parametrize("message", ["testfleet.Payload", "vtx.telemetry.v1.Record"])
def test_the_outputs_of_an_empty_protobuf_input_verify(output_format, message, tmp_path) -> None:
    stream = tmp_path / "empty.bin"
    stream.write_bytes(b"")
    export, onshore = protobuf_split(tmp_path, stream, *output_format, message=message)
    result = cli_verify(export, "--onshore", onshore)
    assert result.exit_code == 0, result.output
    assert ": ok: run " in result.stdout


def test_either_side_verifies_alone_and_both_together(outputs) -> None:
    export, onshore = outputs
    for args, summary in (([export], f"{export}: ok"), ([onshore], f"{onshore}: ok"),
                          ([export, "--onshore", onshore], f"{export} and {onshore}: ok")):
        result = cli_verify(*args, "--catalogue", MINI_CATALOGUE)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(summary) and "120 rows" in result.stdout
    report = verify_output(onshore, catalogue=MINI_CATALOGUE)
    assert report.ok and report.export_dir is None and report.onshore_dir == onshore


def test_an_onshore_output_alone_gets_the_integrity_checks(outputs) -> None:
    _export, onshore = outputs
    (onshore / "stray.txt").write_text("x")
    data = bytearray((onshore / PART).read_bytes())
    data[100] ^= 1
    (onshore / PART).write_bytes(bytes(data))
    result = cli_verify(onshore, "--catalogue", MINI_CATALOGUE)
    assert result.exit_code == 3 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines  # these two, and no complaint about the side
    assert "stray.txt: not listed in the manifest" in result.stderr
    assert f"{PART}: sha256 differs" in result.stderr
    assert all(line.startswith("vtx: verify: ") for line in result.stderr.splitlines())


def test_an_onshore_output_alone_must_hold_its_vin_column(outputs) -> None:
    _export, onshore = outputs
    replace_part(onshore, pl.read_parquet(onshore / PART).drop("vin"))
    result = cli_verify(onshore, "--catalogue", MINI_CATALOGUE)
    assert result.exit_code == 3 and "VIN column 'vin' cannot be read" in result.stderr


def kv_outputs(tmp_path: Path) -> tuple[Path, Path]:
    """A key/value protobuf split with a quarantined record, Parquet parts."""
    good = make_payload(load_schema(TEST_SET, "testfleet.Payload"))
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(good, b"\x0a\xff\xff", good))
    return protobuf_split(tmp_path, stream, "--on-bad-record", "quarantine")


def _bump(*keys: str | int, by: int = 1000):
    def change(manifest) -> None:
        *path, last = keys
        target = manifest
        for key in path:
            target = target[key]
        target[last] += by
    return change


def _drop_column(name: str):
    return lambda m: m.update(columns=[c for c in m["columns"] if c["name"] != name])


#: (outputs, side edited, the edit of one claim, what the failure names)
CLAIMS = [
    ("parquet", "export", _bump("inputs", 0, "rows"), "inputs: their rows add up to 1120"),
    ("parquet", "onshore", _bump("inputs", 0, "rows"), "inputs: their rows add up to 1120"),
    ("parquet", "export", _bump("class_counts", "after_sales"), "class_counts"),
    ("parquet", "onshore", _bump("class_counts", "location", by=-1), "class_counts"),
    ("parquet", "onshore", _drop_column("x_debug_counter"),
     "column 'x_debug_counter': in the part but not in the manifest's columns"),
    ("parquet", "export", _bump("detections", 0, "moved_values", by=5), "detections differ"),
    ("parquet", "onshore", _bump("detections", 0, "moved_values", by=5),
     "detections: field 'Vehicle.Diagnostics.DTCList' moved_values 5, but the parts hold 0"),
    ("parquet", "export", _bump("rows"), "is not the sum of its files' rows"),
    ("kv", "export", _bump("entries", "exported"), "rows 2 are not the entries exported"),
    ("kv", "onshore", _bump("entries", "entries"), "are not the entries kept onshore"),
    ("kv", "onshore", _bump("entries", "unknown_keys"), "is more than the entries read"),
    ("kv", "export", _bump("inputs", 0, "rows"), "inputs: rows differ"),
    ("kv", "onshore", _bump("quarantined_records"),
     "quarantined_records 1001 is not the 1 quarantined record(s) listed"),
    ("kv", "export", _bump("quarantined_records"), "quarantined_records differ"),
    ("kv", "onshore", lambda m: m.update(quarantined=[]), "not listed in the manifest's "
     "quarantined records"),
]


@pytest.mark.parametrize(("kind", "side", "change", "fragment"), CLAIMS)
def test_every_claim_of_the_manifest_is_checked(kind, side, change, fragment, request,
                                                tmp_path) -> None:
    export, onshore = (request.getfixturevalue("outputs") if kind == "parquet"
                       else kv_outputs(tmp_path))
    args = [export, "--onshore", onshore, "--catalogue", str(MINI_CATALOGUE)] if (
        kind == "parquet") else [export, "--onshore", onshore]
    assert cli_verify(*args).exit_code == 0
    edit_manifest(export if side == "export" else onshore, change)
    result = cli_verify(*args)
    assert result.exit_code == 3 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert all(line.startswith("vtx: verify: ") for line in lines)
    assert any(fragment in line for line in lines), lines


# --- the manifest file: read as data by every reader of the directory ------------------------


def _rewrite_manifest_file(directory: Path, table: Any) -> None:
    """Replace `_manifest.parquet` with `table`, keeping the manifest's text in its footer."""
    import pyarrow.parquet as pq

    stored = manifests.stored_manifest(directory)
    metadata = {**(table.schema.metadata or {}), b"vtx.manifest": stored.text}
    with pq.ParquetWriter(stored.path, table.schema.with_metadata(metadata)) as writer:
        if table.num_rows:  # none: no row group, as vtx writes it
            writer.write_table(table.replace_schema_metadata(metadata))


def test_rows_smuggled_into_the_manifest_file_fail(outputs) -> None:
    # Polars, DuckDB and Ray read `_manifest.parquet` with the parts: a row in it is exported.
    export, _ = outputs
    onshore_rows = pl.read_parquet(outputs[1] / PART).head(1)
    smuggled = pl.read_parquet(export / PART).head(1).with_columns(
        pl.lit(onshore_rows["vin"][0]).alias("vehicle_token"))
    _rewrite_manifest_file(export, smuggled.to_arrow())
    (failure,) = verify(export)
    assert "_manifest.parquet: holds 1 row group(s) of 1 row(s)" in failure


def test_a_manifest_file_with_other_footer_keys_or_schema_fails(outputs) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    export, _ = outputs
    empty = pq.read_schema(export / PART).empty_table()
    _rewrite_manifest_file(export, empty.replace_schema_metadata({b"note": b"31.2304,121.4737"}))
    (failure,) = verify(export)
    assert "footer holds keys a manifest file does not: note" in failure
    assert "31.2304" not in failure
    _rewrite_manifest_file(export, pa.table({"other": pa.array([], pa.int64())}))
    failures = verify(export)
    assert any("_manifest.parquet: its schema is not the parts' schema" in f for f in failures)


def test_an_output_of_schema_version_2_still_verifies(outputs) -> None:
    # Written before the manifest moved into `_manifest.parquet`: `_manifest.json` beside the
    # parts. verify and read_manifest read it as they did; an edit is still caught.
    export, onshore = outputs
    for side in outputs:
        text = manifests.manifest_text(side).replace('"schema_version": 3', '"schema_version": 2')
        (side / "_manifest.parquet").unlink()
        (side / "_manifest.json").write_text(text)
    report = verify_output(export, onshore, MINI_CATALOGUE)
    assert report.ok, report.failures
    manifest = json.loads((export / "_manifest.json").read_text())
    manifest["rows"] += 1
    (export / "_manifest.json").write_text(json.dumps(manifest))
    assert any("rows" in f for f in verify(export))


def test_open_export_gives_a_lazy_frame_of_a_verified_output(outputs) -> None:
    from filter import UnverifiedOutputError, open_export

    export, onshore = outputs
    frame = open_export(export, catalogue=MINI_CATALOGUE)
    assert isinstance(frame, pl.LazyFrame)
    assert frame.collect().equals(pl.read_parquet(export / PART))
    assert open_export(onshore, catalogue=MINI_CATALOGUE).collect().height == 120
    edit_manifest(export, lambda m: m.update(rows=m["rows"] + 1))
    with pytest.raises(UnverifiedOutputError, match="does not verify") as refused:
        open_export(export, catalogue=MINI_CATALOGUE)
    assert refused.value.exit_code == 3
