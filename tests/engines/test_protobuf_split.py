"""Splitting protobuf streams into published outputs (filter/engines/protobuf.py, `vtx split`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from filter import InputError, UnclassifiedFieldsError, read_manifest
from filter.cli import vtx
from filter.engines.run import split_protobuf
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf.descriptors import ProtoSchema, load_schema
from filter.outputs.manifest_document import Detection
from tests import manifests
from tests.conftest import DATA, KEY
from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload

TEST_SET = DATA / "fleet_test.binpb"


@pytest.fixture(scope="module")
def payload() -> ProtoSchema:
    return load_schema(TEST_SET, "testfleet.Payload")


def record_stream(path: Path, count: int = 5) -> Path:
    record = load_schema(None, "vtx.telemetry.v1.Record")
    messages = []
    for i in range(count):
        msg = record.message_class(vin=f"LSV{i % 3:014d}")
        msg.timestamp.seconds = 1_790_000_000 + i
        msg.vehicle.speed = 10.0 + i
        msg.vehicle.traveled_distance = 1000 * i
        msg.vehicle.current_location.latitude = 31.2
        msg.vehicle.powertrain.traction_battery.state_of_health = 95.5
        msg.vehicle.diagnostics.dtc_list.extend(["P0420"] if i % 2 else [])
        messages.append(msg.SerializeToString())
    path.write_bytes(delimited(*messages))
    return path


def test_plain_records_split_by_column(tmp_path: Path) -> None:
    stream = record_stream(tmp_path / "records.bin")
    result = split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                            message="vtx.telemetry.v1.Record")
    export = pl.read_parquet(tmp_path / "e" / "part-00000-00000.parquet")
    onshore = pl.read_parquet(tmp_path / "o" / "part-00000-00000.parquet")
    assert export.height == onshore.height == 5 == result.rows
    assert "vin" not in export.columns
    vehicle = export["vehicle"].struct.fields
    assert "currentLocation" not in vehicle and "traveledDistance" in vehicle
    assert "currentLocation" in onshore["vehicle"].struct.fields
    manifest = read_manifest(tmp_path / "e")
    assert manifest.extra.input_format.layout == "plain"
    assert manifest.inputs[0].rows == 5
    assert manifest.extra.quarantined_records == 0 and manifest.extra.quarantined is None


def test_key_value_entries_split_by_key(payload, tmp_path: Path) -> None:
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), make_payload(payload, "LSV2")))
    result = split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                            message="testfleet.Payload", descriptor_set=TEST_SET)
    export = pl.read_parquet(tmp_path / "e" / "part-00000-00000.parquet")
    onshore = pl.read_parquet(tmp_path / "o" / "part-00000-00000.parquet")
    assert export["key"].to_list() == ["Soc", "Soc"]
    assert export.columns[:3] == ["vehicle_token", "created_at", "message_index"]
    assert onshore.height == 8
    entries = result.export_manifest.extra.entries
    assert entries == {"entries": 10, "exported": 2, "unknown_keys": 2, "unknown_fields": 0,
                       "detected": 0}
    fields = {c.name: c for c in result.onshore_manifest.columns}
    assert fields["fleet.Location"].data_class == "location"
    assert result.export_manifest.inputs[0].rows == 2


def test_key_value_parts_hold_plain_strings_whichever_decoder_read_them(
    payload, tmp_path: Path, monkeypatch
) -> None:
    # The compiled decoder hands the writer its repeating strings as codes (pl.Enum); the
    # files must still read back as the strings the runtime path writes, in Polars and Arrow.
    import pyarrow.parquet as pq

    from filter.formats.protobuf import kv_tables

    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*(make_payload(payload, f"LSV{i}") for i in range(3))))
    parts = {}
    for decoder in ("compiled", "runtime"):
        if decoder == "runtime":
            monkeypatch.setattr(kv_tables, "compile_tables", lambda schema: None)
        split_protobuf(stream, tmp_path / decoder / "e", tmp_path / decoder / "o", "after-sales",
                       key=KEY, message="testfleet.Payload", descriptor_set=TEST_SET)
        parts[decoder] = [tmp_path / decoder / side / "part-00000-00000.parquet"
                          for side in ("e", "o")]
    for compiled, runtime in zip(parts["compiled"], parts["runtime"], strict=True):
        assert pl.read_parquet(compiled).equals(pl.read_parquet(runtime))
        assert pl.read_parquet(compiled).schema == pl.read_parquet(runtime).schema
        assert pq.read_schema(compiled) == pq.read_schema(runtime)
    onshore = pl.read_parquet(parts["compiled"][1])
    assert onshore.schema["key"] == onshore.schema["vin"] == pl.String
    assert "999" in onshore["key"].to_list()  # an unknown key number, as its digits


def test_key_value_detections_reach_the_manifests(payload, tmp_path: Path) -> None:
    msg = payload.message_class(vin="LSV1")
    msg.created_at.seconds = 1_790_000_000
    msg.data.add(key=64).value.string_value = "parked at 31.230416, 121.473701"
    msg.data.add(key=64).value.string_value = "my car"
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(msg.SerializeToString()))
    result = split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                            message="testfleet.Payload", descriptor_set=TEST_SET)
    assert result.export_manifest.extra.entries["detected"] == 1
    assert result.export_manifest.detections == (
        Detection("value_string", moved_values=1, hits={"coordinates": 1}),)


def test_bad_record_fails_and_publishes_nothing(payload, tmp_path: Path) -> None:
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), b"\x0a\xff\xff"))
    with pytest.raises(InputError, match=r"kv\.bin: message 1 at byte \d+: does not parse"):
        split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                       message="testfleet.Payload", descriptor_set=TEST_SET)
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


def test_quarantine_keeps_bad_records_onshore(payload, tmp_path: Path) -> None:
    good = make_payload(payload)
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(good, b"\x0a\xff\xff", good) + b"\x40abc")
    result = split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                            message="testfleet.Payload", descriptor_set=TEST_SET,
                            on_bad_record="quarantine")
    kept = result.onshore_manifest.extra.quarantined
    assert [(q.message_index, q.bytes) for q in kept] == [(1, 3), (3, 4)]
    for q in kept:
        assert (tmp_path / "o" / q.file).stat().st_size == q.bytes
    assert result.export_manifest.inputs[0].rows == 2
    assert not (tmp_path / "e" / "quarantine").exists()


def test_topic_dump_directory(payload, tmp_path: Path) -> None:
    dump = tmp_path / "topic"
    dump.mkdir()
    for i in range(3):
        (dump / f"{i:04d}.bin").write_bytes(make_payload(payload, f"LSV{i}"))
    result = split_protobuf(dump, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                            message="testfleet.Payload", descriptor_set=TEST_SET)
    assert result.export_manifest.extra.entries["entries"] == 15
    assert result.export_manifest.inputs[0].rows == 3
    # Each file is one message, indexed by its place in the dump.
    onshore = pl.read_parquet(tmp_path / "o" / "part-00000-00000.parquet")
    assert sorted(set(onshore["message_index"])) == [0, 1, 2]


def test_on_unknown_fail_lists_unclassified_keys(tmp_path: Path) -> None:
    stream = tmp_path / "kv.bin"
    stream.write_bytes(b"")
    mini = tmp_path / "mini.toml"
    mini.write_text((DATA / "mini-catalogue.toml").read_text().replace(
        'aliases = ["timestamp", "ts"]', 'aliases = ["timestamp", "ts", "created_at"]'))
    with pytest.raises(UnclassifiedFieldsError, match=r"fleet\.Unknown"):
        split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                       message="testfleet.Payload", descriptor_set=TEST_SET, catalogue=mini,
                       on_unknown="fail")


def test_cli_protobuf_split(payload, tmp_path: Path) -> None:
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload)))
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    args = ["split", str(stream), "--export", str(tmp_path / "e"), "--onshore",
            str(tmp_path / "o"), "--scenario", "after-sales", "--key-file", str(key_file),
            "--descriptor-set", str(TEST_SET), "--message", "testfleet.Payload"]
    result = CliRunner().invoke(vtx, args)
    assert result.exit_code == 0, result.output
    assert "entries" in result.stdout
    bad = CliRunner().invoke(vtx, [*args[:-4], "--format", "protobuf", "--message", "nope.X",
                                   "--overwrite"])
    assert bad.exit_code == 1 and "no message type 'nope.X'" in bad.stderr


def test_cli_auto_detects_parquet_and_refuses_unknown_bytes(tmp_path: Path) -> None:
    junk = tmp_path / "data.bin"
    junk.write_bytes(b"\x08\x01")
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    result = CliRunner().invoke(vtx, [
        "split", str(junk), "--export", str(tmp_path / "e"), "--onshore", str(tmp_path / "o"),
        "--scenario", "after-sales", "--key-file", str(key_file)])
    assert result.exit_code == 1
    assert "not a Parquet file" in result.stderr and "--message" in result.stderr


def test_verify_checks_key_value_outputs(payload, tmp_path: Path) -> None:
    from filter.audit.verify import verify_output

    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), make_payload(payload, "LSV2")))
    split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                   message="testfleet.Payload", descriptor_set=TEST_SET)
    report = verify_output(tmp_path / "e", tmp_path / "o")
    assert report.ok, report.failures
    # A withheld entry smuggled into the export (manifest rehashed) is caught by key.
    part = tmp_path / "e" / "part-00000-00000.parquet"
    onshore = pl.read_parquet(tmp_path / "o" / "part-00000-00000.parquet")
    smuggled = onshore.filter(pl.col("key") == "Location").select(pl.read_parquet(part).columns)
    pl.concat([pl.read_parquet(part), smuggled]).write_parquet(part)
    manifest_path = tmp_path / "e"  # the output holding the manifest
    manifest = json.loads(manifests.manifest_text(manifest_path))
    data = part.read_bytes()
    manifest["files"][0].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                                rows=manifest["files"][0]["rows"] + smuggled.height)
    manifests.write_text(manifest_path, json.dumps(manifest))
    failures = "\n".join(str(f) for f in verify_output(tmp_path / "e", tmp_path / "o").failures)
    assert "entries of 'fleet.Location'" in failures
    assert "are out of place" in failures


def test_verify_passes_plain_protobuf_outputs(tmp_path: Path) -> None:
    from filter.audit.verify import verify_output

    stream = record_stream(tmp_path / "records.bin")
    split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                   message="vtx.telemetry.v1.Record")
    report = verify_output(tmp_path / "e", tmp_path / "o")
    assert report.ok, report.failures


def test_report_shows_entries_and_quarantine(payload, tmp_path: Path) -> None:
    from filter.audit.report import write_report

    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), b"\x0a\xff\xff"))
    split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                   message="testfleet.Payload", descriptor_set=TEST_SET,
                   on_bad_record="quarantine")
    write_report([tmp_path / "e", tmp_path / "o"], tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "Protobuf input" in html and "key_value messages" in html
    assert "entries 5" in html and "exported 1" in html
    assert "1 (raw bytes under the onshore output" in html
    assert "Entries reconcile: 5 read, 1 exported and 4 kept onshore" in html
    assert "do not reconcile" not in html


def test_explain_a_message_type() -> None:
    runner = CliRunner()
    kv = runner.invoke(vtx, ["explain", "--scenario", "after-sales", "--message",
                             "testfleet.Payload", "--descriptor-set", str(TEST_SET),
                             "--format", "json"])
    assert kv.exit_code == 0, kv.output
    rows = {r["field"]: r for r in json.loads(kv.stdout)}
    assert rows["fleet.Soc"]["destination"] == "export"
    assert rows["fleet.Location"]["destination"] == "onshore"
    assert rows["vin"]["destination"] == "onshore" and rows["created_at"]["destination"] == "both"
    assert len([f for f in rows if f.startswith("fleet.")]) == 10
    plain = runner.invoke(vtx, ["explain", "--scenario", "after-sales", "--message",
                                "vtx.telemetry.v1.Record", "--format", "json"])
    fields = {r["field"]: r for r in json.loads(plain.stdout)}
    assert fields["vehicle.currentLocation.latitude"]["class"] == "location"
    assert fields["unknown_fields"]["destination"] == "onshore"
    none = runner.invoke(vtx, ["explain", "--scenario", "after-sales"])
    assert none.exit_code == 2 and "--message" in none.stderr


@pytest.mark.parametrize("output_format", ["parquet", "protobuf"])
def test_plain_records_hold_back_the_batch_vins_in_strings(
    tmp_path: Path, output_format: str
) -> None:
    """Issue 23, item 3: a string field bound for the export that holds a VIN of the batch
    (lower case, its check digit wrong) stays onshore, as a detector hit does."""
    from filter.audit.verify import verify_output

    vins = ["LRW3E7EK0PC100001", "LRW3E7EK0PC100002"]
    record = load_schema(None, "vtx.telemetry.v1.Record")
    messages = []
    for i, dtcs in enumerate([["P0420"], [f"P0300 {vins[0].lower()}"], [f"see {vins[1]}"]]):
        msg = record.message_class(vin=vins[i % 2])
        msg.timestamp.seconds = 1_790_000_000 + i
        msg.vehicle.diagnostics.dtc_list.extend(dtcs)
        messages.append(msg.SerializeToString())
    stream = tmp_path / "records.bin"
    stream.write_bytes(delimited(*messages))
    result = split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                            message="vtx.telemetry.v1.Record", output_format=output_format)
    for f in (tmp_path / "e").rglob("*"):
        data = f.read_bytes() if f.is_file() else b""
        assert not [v for v in vins if v.encode() in data or v.lower().encode() in data]
    found = {d.field: d for d in result.export_manifest.detections}
    dtc = found["vehicle.diagnostics.dtcList"]
    assert dtc.moved_values == 2 and dtc.hits["batch_vin"] == 2
    report = verify_output(tmp_path / "e", tmp_path / "o")
    assert report.ok, report.failures
def cli_split(*args: str) -> Any:
    return CliRunner().invoke(vtx, ["split", *args, "--scenario", "after-sales",
                                    "--descriptor-set", str(TEST_SET), "--message",
                                    "testfleet.Payload", "-q"])


def test_the_export_manifest_holds_nothing_derived_from_onshore_content(
    payload, tmp_path: Path
) -> None:
    # A bad record holding a VIN, and a broken length prefix (the rest of the file is kept),
    # in an input named after a vehicle: the export manifest must give none of it away.
    vin = "LSVAU2180N2183294"
    bad = b"\x0a\x11" + vin.encode() + b"\xff\xff"  # the VIN field, then a truncated tag
    stream = tmp_path / f"{vin}.bin"
    stream.write_bytes(delimited(make_payload(payload, vin), bad, make_payload(payload))
                       + b"\x40abc")
    key_file = tmp_path / "vtx.key"
    key_file.write_bytes(KEY + b"\n")
    key_file.chmod(0o600)
    result = cli_split(str(stream), "--export", str(tmp_path / "e"), "--onshore",
                       str(tmp_path / "o"), "--key-file", str(key_file),
                       "--on-bad-record", "quarantine")
    assert result.exit_code == 0, result.output
    onshore = read_manifest(tmp_path / "o")
    kept = onshore.extra.quarantined
    assert [q.message_index for q in kept] == [1, 3]
    assert onshore.inputs[0].sha256 == hashlib.sha256(stream.read_bytes()).hexdigest()
    export_text = manifests.manifest_text(tmp_path / "e")
    export = json.loads(export_text)
    assert export["quarantined_records"] == onshore.extra.quarantined_records == 2
    assert "quarantined" not in export
    assert export["inputs"] == [{"rows": 2}]
    onshore_content = [(tmp_path / "o" / q.file).read_bytes() for q in kept]
    assert onshore_content[0] == bad
    for data in (*onshore_content, stream.read_bytes(), key_file.read_bytes(), KEY):
        digest = hashlib.sha256(data).hexdigest()
        assert digest[:16] not in export_text
    assert vin not in export_text  # nor the input's name, which holds it
    # verify and report still work, on both sides and on the export alone.
    checked = CliRunner().invoke(vtx, ["verify", str(tmp_path / "e"), "--onshore",
                                       str(tmp_path / "o")])
    assert checked.exit_code == 0, checked.output
    for sides, shown in (([tmp_path / "e", tmp_path / "o"], onshore.inputs[0].sha256),
                         ([tmp_path / "e"], "paths, sizes and SHA-256 are in the onshore")):
        report = CliRunner().invoke(vtx, ["report", *map(str, sides), "--html",
                                          str(tmp_path / "r.html")])
        assert report.exit_code == 0, report.output
        html = (tmp_path / "r.html").read_text()
        assert "2 (raw bytes under the onshore output" in html and shown in html


def test_a_quarantine_is_verified_against_the_onshore_manifest(payload, tmp_path: Path) -> None:
    from filter.audit.verify import verify_output

    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), b"\x0a\xff\xff"))
    split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                   message="testfleet.Payload", descriptor_set=TEST_SET,
                   on_bad_record="quarantine")
    assert verify_output(tmp_path / "e", tmp_path / "o").ok
    (kept,) = (tmp_path / "o" / "quarantine").iterdir()
    kept.write_bytes(b"\x0a\xff\xfe")
    (tmp_path / "o" / "quarantine" / "stray.bin").write_bytes(b"x")
    failures = [str(f) for f in verify_output(tmp_path / "e", tmp_path / "o").failures]
    assert len(failures) == 2
    assert any("stray.bin: not listed in the manifest's quarantined records" in f
               for f in failures)
    assert any(f"{kept.name}: quarantined record differs" in f for f in failures)
    # Two bad records under one file name (one overwrote the other) fail too.
    edit = tmp_path / "o"  # the output holding the manifest
    manifest = json.loads(manifests.manifest_text(edit))
    manifest["quarantined"].append(dict(manifest["quarantined"][0]))
    manifests.write_text(edit, json.dumps(manifest))
    assert any("listed for more than one quarantined record" in str(f)
               for f in verify_output(tmp_path / "e", tmp_path / "o").failures)


def test_a_link_in_a_topic_dump_is_refused(payload, tmp_path: Path) -> None:
    # A link planted in a dump, pointing at the key file: read as a message, it would have
    # been quarantined onshore (the key's bytes) and hashed into the manifests.
    key_file = tmp_path / "vtx.key"
    key_file.write_bytes(KEY + b"\n")
    key_file.chmod(0o600)
    dump = tmp_path / "topic"
    dump.mkdir()
    (dump / "0001.bin").write_bytes(make_payload(payload))
    (dump / "0002.bin").symlink_to(key_file)
    targets = ["--export", str(tmp_path / "e"), "--onshore", str(tmp_path / "o")]
    for given in (str(dump), str(dump / "*.bin")):  # the dump, and a pattern over its files
        result = cli_split(given, *targets, "--key-file", str(key_file), "--framing", "single",
                           "--on-bad-record", "quarantine")
        assert result.exit_code == 1, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith("vtx: error: ") and "0002.bin: is a symbolic link" in line
        assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()
    (dump / "0002.bin").unlink()
    (dump / "0002.bin").symlink_to(dump / "0001.bin")  # a link inside the dump: refused too
    with pytest.raises(InputError, match="is a symbolic link in topic dump"):
        split_protobuf(dump, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                       message="testfleet.Payload", descriptor_set=TEST_SET)
    (dump / "0002.bin").unlink()
    os.mkfifo(dump / "0002.bin")  # a FIFO: refused, not waited on
    with pytest.raises(InputError, match=r"0002\.bin: is a FIFO in topic dump"):
        split_protobuf(dump, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                       message="testfleet.Payload", descriptor_set=TEST_SET)
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


def test_a_pattern_does_not_reach_through_a_directory_link(payload, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.bin").write_bytes(delimited(make_payload(payload)))
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.bin").write_bytes(delimited(make_payload(payload)))
    (inputs / "more").symlink_to(outside)
    with pytest.raises(InputError, match=r"more: is a symbolic link matched by pattern"):
        split_protobuf(str(inputs / "**" / "*.bin"), tmp_path / "e", tmp_path / "o",
                       "after-sales", key=KEY, message="testfleet.Payload",
                       descriptor_set=TEST_SET)
    # The literal directories before the pattern may be links: the user named them.
    (tmp_path / "named").symlink_to(inputs)
    (inputs / "more").unlink()
    result = split_protobuf(str(tmp_path / "named" / "*.bin"), tmp_path / "e", tmp_path / "o",
                            "after-sales", key=KEY, message="testfleet.Payload",
                            descriptor_set=TEST_SET)
    assert result.onshore_manifest.inputs[0].rows == 1


def test_a_stream_named_like_a_pattern_is_that_file(payload, tmp_path: Path) -> None:
    from filter.audit.verify import verify_output

    (tmp_path / "s[1].bin").write_bytes(delimited(make_payload(payload, "LSVBRACKET0000001")))
    (tmp_path / "s1.bin").write_bytes(delimited(make_payload(payload, "LSVPLAIN000000001")))
    folder = tmp_path / "dump[x]"
    folder.mkdir()
    (folder / "0001.bin").write_bytes(make_payload(payload, "LSVFOLDER00000001"))
    for given, framing, vin in ((tmp_path / "s[1].bin", "delimited", "LSVBRACKET0000001"),
                                (folder, "single", "LSVFOLDER00000001")):
        out = tmp_path / f"out-{vin}"
        result = split_protobuf(str(given), out / "e[1]", out / "o[1]", "after-sales", key=KEY,
                                message="testfleet.Payload", descriptor_set=TEST_SET,
                                framing=framing)  # type: ignore[arg-type]
        assert result.onshore_manifest.inputs[0].path == str(given)
        onshore = pl.read_parquet(out / "o[1]" / "part-00000-00000.parquet", glob=False)
        assert set(onshore["vin"]) == {vin}
        assert verify_output(out / "e[1]", out / "o[1]").ok


def _cli_split(stream: Path, out: Path, *extra: str) -> tuple[int, str]:
    key_file = out.parent / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    result = CliRunner().invoke(vtx, [
        "split", str(stream), "--export", str(out / "e"), "--onshore", str(out / "o"),
        "--scenario", "after-sales", "--key-file", str(key_file), "--descriptor-set",
        str(TEST_SET), "--message", "testfleet.Payload", *extra])
    return result.exit_code, result.stderr


def test_export_numbers_entries_densely_and_onshore_maps_them(payload, tmp_path: Path) -> None:
    from filter.apply.reconstruct import reconstruct_entries

    first = payload.message_class.FromString(make_payload(payload))  # 21 8 10 64 999
    first.data.add(key=5).value.double_value = 48_211.5  # Odometer: exported, after a gap
    second = payload.message_class.FromString(make_payload(payload, "LSV2"))
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(first.SerializeToString(), second.SerializeToString()))
    assert _cli_split(stream, tmp_path / "out") == (0, "")
    export = pl.read_parquet(tmp_path / "out" / "e" / "*.parquet")
    onshore = pl.read_parquet(tmp_path / "out" / "o" / "*.parquet")
    assert export.select("message_index", "entry_index", "key").rows() == [
        (0, 0, "Soc"), (0, 1, "Odometer"), (1, 0, "Soc")]  # no gap shows the withheld
    assert onshore.filter(pl.col("message_index") == 0).select(
        "entry_index", "exported_before").rows() == [(0, 0), (2, 1), (3, 1), (4, 1)]
    merged = reconstruct_entries(export, onshore)
    rows = pl.concat([b.rows for b in protobuf_batches.iter_batches(payload, stream, "delimited")])
    assert merged.select("message_index", "entry_index", "key").equals(
        rows.select("message_index", "entry_index", "key"))
    verified = CliRunner().invoke(vtx, ["verify", str(tmp_path / "out" / "e"), "--onshore",
                                        str(tmp_path / "out" / "o")])
    assert verified.exit_code == 0, verified.stderr
    # The export renumbered as the input had it (gaps where withheld entries were) is caught.
    part = tmp_path / "out" / "e" / "part-00000-00000.parquet"
    export.with_columns(pl.Series("entry_index", [1, 5, 1])).write_parquet(part)
    manifest_path = tmp_path / "out" / "e"  # the output holding the manifest
    manifest = json.loads(manifests.manifest_text(manifest_path))
    data = part.read_bytes()
    manifest["files"][0].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    manifests.write_text(manifest_path, json.dumps(manifest))
    verified = CliRunner().invoke(vtx, ["verify", str(tmp_path / "out" / "e"), "--onshore",
                                        str(tmp_path / "out" / "o")])
    assert verified.exit_code == 3 and "are out of place" in verified.stderr


@pytest.mark.parametrize("output_format", ["parquet", "protobuf"])
def test_on_unknown_fail_stops_on_what_the_data_holds(payload, tmp_path, output_format) -> None:
    """A key number the descriptor's enum lacks, or a field it does not know (in an entry, in
    an envelope, in a plain message), is unclassified: under --on-unknown fail, exit 1 naming
    it, nothing published; withheld (exit 0) without."""
    known = payload.message_class(vin="LSV1")
    known.created_at.seconds = 1_790_000_000
    known.data.add(key=8).value.double_value = 80.5
    newer_key = make_payload(payload)  # holds key 999
    datum = payload.message_class().data.add(key=8)
    datum.value.double_value = 1.0
    odd = datum.SerializeToString() + b"\x48\x01"  # an entry with a field 9 the schema lacks
    odd_entry = known.SerializeToString() + b"\x0a" + bytes([len(odd)]) + odd
    odd_envelope = known.SerializeToString() + b"\xa8\x06\x01"  # envelope field 101
    record = load_schema(None, "vtx.telemetry.v1.Record")
    plain = record.message_class(vin="LSV1").SerializeToString() + b"\xa8\x06\x01"
    cases = [("key", [newer_key], "testfleet.Payload", r"fleet\.999"),
             ("entry", [odd_entry], "testfleet.Payload", "unknown_fields"),
             ("envelope", [odd_envelope], "testfleet.Payload", "unknown_fields"),
             ("plain", [plain], "vtx.telemetry.v1.Record", "unknown_fields")]
    key_file = tmp_path / "vtx.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    for name, messages, message, named in cases:
        stream = tmp_path / f"{name}.bin"
        stream.write_bytes(delimited(known.SerializeToString(), *messages)
                           if message == "testfleet.Payload" else delimited(*messages))
        out = tmp_path / name
        args = ["split", str(stream), "--export", str(out / "e"), "--onshore", str(out / "o"),
                "--scenario", "after-sales", "--key-file", str(key_file), "--message", message,
                "--output-format", output_format]
        if message == "testfleet.Payload":
            args += ["--descriptor-set", str(TEST_SET)]
        failed = CliRunner().invoke(vtx, [*args, "--on-unknown", "fail"])
        assert failed.exit_code == 1, (name, failed.output)
        assert failed.stderr.startswith("vtx: error: ") and "not classified" in failed.stderr
        assert re.search(named, failed.stderr), (name, failed.stderr)
        assert not (out / "e").exists() and not (out / "o").exists()
        assert not out.exists() or not list(out.iterdir())  # no staging left either
        withheld = CliRunner().invoke(vtx, args)
        assert withheld.exit_code == 0, (name, withheld.output)


def test_a_split_does_not_import_pandas(tmp_path: Path) -> None:
    # pyarrow's numpy conversions (`np.asarray` of an array) import pandas where it is
    # installed: some 0.1 s of every run, found in a benchmark. Parquet and protobuf splits,
    # both output formats, in a process of their own.
    code = f"""
import sys
from pathlib import Path
import polars as pl
from filter import split, split_protobuf
from filter.formats.protobuf.descriptors import load_schema
from tests.conftest import DATA, KEY
from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload

root = Path({str(tmp_path)!r})
schema = load_schema(DATA / "fleet_test.binpb", "testfleet.Payload")
stream = root / "kv.bin"
stream.write_bytes(delimited(*(make_payload(schema, f"LSV0000000000000{{i}}") for i in range(5))))
for out in ("parquet", "protobuf"):
    split_protobuf(stream, root / out / "e", root / out / "o", "after-sales", key=KEY,
                   message="testfleet.Payload", descriptor_set=DATA / "fleet_test.binpb",
                   output_format=out)
frame = pl.DataFrame({{"vin": ["LSV00000000000001"], "Vehicle.Speed": [1.0],
                      "timestamp": [1_790_000_000]}})
frame = frame.with_columns(pl.from_epoch("timestamp"))
frame.write_parquet(root / "in.parquet")
split(root / "in.parquet", root / "pe", root / "po", "after-sales", key=KEY)
print("pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
