"""`--output-format protobuf`: both sides as delimited streams of the input's own type
(filter/formats/protobuf/writer.py through `split_protobuf` and `vtx split`)."""

from __future__ import annotations

import struct
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from google.protobuf.internal.encoder import _VarintBytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filter import load_catalogue, read_manifest
from filter.apply.pseudonym import vehicle_token
from filter.cli import vtx
from filter.engines.run import split_protobuf
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf.descriptors import SHIPPED_SOURCE, ProtoSchema, load_schema
from filter.formats.protobuf.framing import iter_frames
from filter.outputs.manifest_document import OutputFormat
from tests import manifests
from tests.conftest import DATA, KEY
from tests.engines.test_protobuf_split import record_stream
from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload

TEST_SET = DATA / "fleet_test.binpb"


@pytest.fixture(scope="module")
def payload() -> ProtoSchema:
    return load_schema(TEST_SET, "testfleet.Payload")


def read_stream(schema: ProtoSchema, directory: Path) -> list:
    parts = sorted(directory.glob("part-*.pb"))
    return [schema.message_class.FromString(f.data)
            for part in parts for f in iter_frames(part, "delimited")]


def split_streams(schema: ProtoSchema, stream: Path, out: Path, scenario: str = "after-sales",
                  **options):
    return split_protobuf(stream, out / "e", out / "o", scenario, key=KEY,
                          message=schema.name, descriptor_set=schema.source
                          if schema.source != SHIPPED_SOURCE else None,
                          output_format="protobuf", **options)


def test_key_value_streams_hold_every_entry_once(payload, tmp_path: Path) -> None:
    inputs = [make_payload(payload, f"LSV{i}") for i in range(3)]
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*inputs))
    result = split_streams(payload, stream, tmp_path, on_bad_record="fail")
    export, onshore = read_stream(payload, tmp_path / "e"), read_stream(payload, tmp_path / "o")
    assert len(export) == len(onshore) == 3
    for raw, e, o in zip(inputs, export, onshore, strict=True):
        source = payload.message_class.FromString(raw)
        assert e.vin == vehicle_token(KEY, source.vin) and o.vin == source.vin
        assert e.created_at == o.created_at == source.created_at
        assert [d.key for d in e.data] == [8]  # Soc: the only key after-sales exports here
        both = sorted(d.SerializeToString() for d in [*e.data, *o.data])
        assert both == sorted(d.SerializeToString() for d in source.data)
    manifest = result.export_manifest
    assert manifest.files[0].name == "part-00000-00000.pb"
    assert manifest.rows == result.onshore_manifest.rows == 3  # messages on each side
    assert manifest.extra.entries["entries"] == 15 and manifest.extra.entries["exported"] == 3
    assert manifest.extra.output_format == OutputFormat("protobuf", "testfleet.Payload",
                                                        "delimited")


def test_same_entries_exported_as_with_parquet_output(payload, tmp_path: Path) -> None:
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*[make_payload(payload, f"V{i}") for i in range(4)]))
    split_streams(payload, stream, tmp_path / "pb")
    split_protobuf(stream, tmp_path / "pq" / "e", tmp_path / "pq" / "o", "after-sales",
                   key=KEY, message="testfleet.Payload", descriptor_set=TEST_SET)
    from_streams = pl.concat([b.rows for b in protobuf_batches.iter_batches(
        payload, tmp_path / "pb" / "e" / "part-00000-00000.pb", "delimited")])
    from_parquet = pl.read_parquet(tmp_path / "pq" / "e" / "*.parquet")
    assert from_streams["key"].to_list() == from_parquet["key"].to_list()
    assert from_streams["value_double"].to_list() == from_parquet["value_double"].to_list()


def test_unknown_fields_and_detected_text_stay_onshore_as_they_came(payload, tmp_path) -> None:
    datum = payload.message_class().data.add(key=8)
    datum.value.double_value = 55.0
    odd = datum.SerializeToString() + b"\x48\x01"  # the entry with an unknown field 9
    text = payload.message_class(vin="V")
    text.data.add(key=8).value.string_value = "31.230416, 121.473701"  # Soc sent as text
    raw = (b"\x0a" + bytes([len(odd)]) + odd + text.SerializeToString())
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(raw))
    result = split_streams(payload, stream, tmp_path)
    (export,) = read_stream(payload, tmp_path / "e")
    (onshore,) = read_stream(payload, tmp_path / "o")
    assert len(export.data) == 0 and len(onshore.data) == 2
    assert b"\x48\x01" in onshore.data[0].SerializeToString()
    assert result.export_manifest.extra.entries["unknown_fields"] == 1
    assert result.export_manifest.detections[0].hits == {"coordinates": 1}


def test_used_car_export_carries_the_day(payload, tmp_path: Path) -> None:
    msg = payload.message_class.FromString(make_payload(payload))
    msg.created_at.nanos = 5
    msg.data.add(key=5).value.double_value = 48_211.5  # Odometer
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(msg.SerializeToString()))
    split_streams(payload, stream, tmp_path, scenario="used-car")
    (export,) = read_stream(payload, tmp_path / "e")
    (onshore,) = read_stream(payload, tmp_path / "o")
    assert export.created_at.seconds == msg.created_at.seconds // 86_400 * 86_400
    assert export.created_at.nanos == 0 and onshore.created_at == msg.created_at
    assert [d.key for d in export.data] == [5]


def test_plain_records_lose_withheld_fields_in_the_export(tmp_path: Path) -> None:
    record = load_schema(None, "vtx.telemetry.v1.Record")
    stream = record_stream(tmp_path / "records.bin")
    split_streams(record, stream, tmp_path)
    export, onshore = read_stream(record, tmp_path / "e"), read_stream(record, tmp_path / "o")
    source = [record.message_class.FromString(f.data) for f in iter_frames(stream, "delimited")]
    assert len(export) == len(onshore) == len(source) == 5
    for s, e, o in zip(source, export, onshore, strict=True):
        assert e.vin == vehicle_token(KEY, s.vin) and o.vin == s.vin
        assert not e.vehicle.HasField("current_location")  # location: withheld
        assert e.vehicle.speed == 0 and o.vehicle.speed == s.vehicle.speed  # test data
        assert e.vehicle.traveled_distance == s.vehicle.traveled_distance  # ordinary
        assert o.vehicle.current_location == s.vehicle.current_location
        assert o.vehicle.traveled_distance == 0  # exported exactly: not repeated onshore
        merged = record.message_class()
        merged.CopyFrom(o)
        merged.MergeFrom(e)
        merged.vin = s.vin
        assert merged == s  # together they hold the whole message


def test_cli_output_format(payload, tmp_path: Path) -> None:
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload)))
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    args = ["split", str(stream), "--export", str(tmp_path / "e"), "--onshore",
            str(tmp_path / "o"), "--scenario", "after-sales", "--key-file", str(key_file),
            "--descriptor-set", str(TEST_SET), "--message", "testfleet.Payload",
            "--output-format", "protobuf"]
    result = CliRunner().invoke(vtx, args)
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "e").files[0].name.endswith(".pb")
    parquet_in = tmp_path / "in.parquet"
    pl.DataFrame({"vin": ["V"]}).write_parquet(parquet_in)
    wrong = CliRunner().invoke(vtx, ["split", str(parquet_in), "--export", str(tmp_path / "e2"),
                                     "--onshore", str(tmp_path / "o2"), "--scenario",
                                     "after-sales", "--key-file", str(key_file),
                                     "--output-format", "protobuf"])
    assert wrong.exit_code == 2 and "needs protobuf input" in wrong.stderr


def envelopes(payload: ProtoSchema, messages: list, vehicles: int) -> list[bytes]:
    """Serialized envelopes, one per list of (key, value) entries: a float or text value, or
    none; the VINs taken in turn from `vehicles`, an hour and a second apart."""
    raws = []
    for i, entries in enumerate(messages):
        msg = payload.message_class(vin=f"V{i % vehicles}")
        msg.created_at.seconds = 1_790_000_000 + 3_601 * i
        for key, value in entries:
            datum = msg.data.add(key=key)
            if isinstance(value, float):
                datum.value.double_value = value
            elif isinstance(value, str):
                datum.value.string_value = value
        raws.append(msg.SerializeToString())
    return raws


_KEYS = st.sampled_from([4, 5, 8, 10, 21, 23, 64, 69, 248, 999])
_ENTRY = st.tuples(_KEYS,
                   st.one_of(st.none(), st.floats(allow_nan=False), st.text(max_size=8)))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.lists(_ENTRY, max_size=6), min_size=1, max_size=5),
       scenario=st.sampled_from(["after-sales", "used-car", "manufacturing"]))
def test_property_streams_reconcile(payload, tmp_path_factory, messages, scenario) -> None:
    out = tmp_path_factory.mktemp("p")
    raws = envelopes(payload, messages, vehicles=2)
    stream = out / "kv.bin"
    stream.write_bytes(delimited(*raws))
    result = split_streams(payload, stream, out, scenario=scenario)
    export, onshore = read_stream(payload, out / "e"), read_stream(payload, out / "o")
    shipped = load_catalogue()
    allowed = {k for k in ("VehicleSpeed", "Odometer", "Soc", "Gear", "Location", "GpsHeading",
                           "VehicleName", "TpmsPressureFl", "MediaNowPlayingTitle")
               if shipped.classify(f"fleet.{k}") is not None}
    names = payload.key_value.key.enum_type.values_by_number
    total = 0
    for raw, e, o in zip(raws, export, onshore, strict=True):
        source = payload.message_class.FromString(raw)
        assert sorted(d.SerializeToString() for d in [*e.data, *o.data]) == sorted(
            d.SerializeToString() for d in source.data)
        for d in e.data:  # fail closed: no key the enum lacks, none the catalogue withholds
            assert d.key in names and names[d.key].name in allowed
        total += len(source.data)
    assert len(export) == len(onshore) == len(raws)
    assert result.export_manifest.extra.entries["entries"] == total


def test_verify_checks_stream_outputs(payload, tmp_path: Path) -> None:
    from filter.audit.verify import verify_output

    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), make_payload(payload, "LSV2")))
    split_streams(payload, stream, tmp_path / "kv")
    assert verify_output(tmp_path / "kv" / "e", tmp_path / "kv" / "o").ok
    record = load_schema(None, "vtx.telemetry.v1.Record")
    split_streams(record, record_stream(tmp_path / "records.bin"), tmp_path / "plain")
    report = verify_output(tmp_path / "plain" / "e", tmp_path / "plain" / "o")
    assert report.ok, report.failures
    # A withheld location smuggled into the export stream (manifest rehashed) is caught.
    part = tmp_path / "plain" / "e" / "part-00000-00000.pb"
    messages = read_stream(record, tmp_path / "plain" / "e")
    messages[0].vehicle.current_location.latitude = 31.2
    part.write_bytes(delimited(*(m.SerializeToString() for m in messages)))
    rehash(tmp_path / "plain" / "e", part)
    failures = [str(f) for f in verify_output(tmp_path / "plain" / "e").failures]
    assert any("vehicle.currentLocation.latitude" in f and "not allowed" in f for f in failures)
    # A withheld entry moved into a key/value export stream is caught by its key.
    kv_part = tmp_path / "kv" / "e" / "part-00000-00000.pb"
    exported = read_stream(payload, tmp_path / "kv" / "e")
    exported[0].data.add(key=21).value.location_value.latitude = 31.2
    kv_part.write_bytes(delimited(*(m.SerializeToString() for m in exported)))
    rehash(tmp_path / "kv" / "e", kv_part)
    failures = [str(f) for f in verify_output(tmp_path / "kv" / "e", tmp_path / "kv" / "o"
                                              ).failures]
    assert any("fleet.Location" in f for f in failures)
    assert any("entries do not reconcile" in f for f in failures)


def rehash(directory: Path, part: Path) -> None:
    import hashlib
    import json

    manifest_path = directory  # the output holding the manifest
    manifest = json.loads(manifests.manifest_text(manifest_path))
    for record in manifest["files"]:
        if record["name"] == part.name:
            record["sha256"] = hashlib.sha256(part.read_bytes()).hexdigest()
            record["bytes"] = part.stat().st_size
    manifests.write_text(manifest_path, json.dumps(manifest))


def test_plain_detector_hits_stay_onshore(tmp_path: Path) -> None:
    record = load_schema(None, "vtx.telemetry.v1.Record")
    msg = record.message_class(vin="LSV1")
    msg.vehicle.traveled_distance = 12
    msg.vehicle.diagnostics.dtc_list.extend(["P0420", "31.230416, 121.473701"])
    clean = record.message_class(vin="LSV2")
    clean.vehicle.diagnostics.dtc_list.append("P0300")
    stream = tmp_path / "r.bin"
    stream.write_bytes(delimited(msg.SerializeToString(), clean.SerializeToString()))
    result = split_streams(record, stream, tmp_path)
    export, onshore = read_stream(record, tmp_path / "e"), read_stream(record, tmp_path / "o")
    assert list(export[0].vehicle.diagnostics.dtc_list) == []
    assert list(onshore[0].vehicle.diagnostics.dtc_list) == ["P0420", "31.230416, 121.473701"]
    assert list(export[1].vehicle.diagnostics.dtc_list) == ["P0300"]
    assert export[0].vehicle.traveled_distance == 12
    (found,) = result.export_manifest.detections
    assert found.field == "vehicle.diagnostics.dtcList" and found.moved_values == 1


def test_messages_without_entries_get_their_token_in_any_batch(payload, tmp_path) -> None:
    odd = payload.message_class(vin="V1")
    odd.data.add(key=8).value.double_value = 1.0
    unknown = odd.SerializeToString() + b"\xa8\x06\x2a"  # sends the batch through the runtime
    empty = payload.message_class(vin="NO-ENTRIES").SerializeToString()
    for messages in ([unknown, empty], [empty]):
        stream = tmp_path / "kv.bin"
        stream.write_bytes(delimited(*messages))
        out = tmp_path / str(len(messages))
        split_streams(payload, stream, out)
        export = read_stream(payload, out / "e")
        assert export[-1].vin == vehicle_token(KEY, "NO-ENTRIES")
        split_protobuf(stream, out / "pe", out / "po", "after-sales", key=KEY,
                       message="testfleet.Payload", descriptor_set=TEST_SET)


def test_streams_coarsen_like_the_parquet_output(payload, tmp_path: Path) -> None:
    """Any duration the catalogue accepts ("1mo" has no fixed length) truncates as Polars
    truncates the Parquet output's timestamps."""
    text = (DATA / "mini-catalogue.toml").read_text().replace(
        'aliases = ["timestamp", "ts"]',
        'aliases = ["timestamp", "ts", "created_at"]\nactions = { "*" = { coarsen = "1mo" } }')
    text += ('\n[[rules]]\nid = "soc"\nclass = "after_sales"\npatterns = ["fleet.Soc"]\n'
             'basis = "test basis"\n')
    (tmp_path / "c.toml").write_text(text)
    msg = payload.message_class.FromString(make_payload(payload))  # 2026-09-21 14:13:20
    msg.created_at.nanos = 7
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(msg.SerializeToString()))
    options = {"key": KEY, "message": "testfleet.Payload", "descriptor_set": TEST_SET,
               "catalogue": tmp_path / "c.toml"}
    split_protobuf(stream, tmp_path / "s" / "e", tmp_path / "s" / "o", "after-sales",
                   output_format="protobuf", **options)
    split_protobuf(stream, tmp_path / "p" / "e", tmp_path / "p" / "o", "after-sales", **options)
    (export,) = read_stream(payload, tmp_path / "s" / "e")
    parquet = pl.read_parquet(tmp_path / "p" / "e" / "*.parquet")["created_at"][0]
    assert parquet.isoformat() == "2026-09-01T00:00:00+00:00"
    assert export.created_at.seconds == int(parquet.timestamp()) and export.created_at.nanos == 0
    (onshore,) = read_stream(payload, tmp_path / "s" / "o")
    assert onshore.created_at == msg.created_at


_TEXT = st.one_of(st.text(max_size=8), st.sampled_from(["31.230416, 121.473701", "沪A12345"]))


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.lists(st.tuples(
    _KEYS, st.one_of(st.none(), st.floats(allow_nan=False), _TEXT)), max_size=6),
    min_size=1, max_size=6), unknown=st.sets(st.integers(0, 5), max_size=2))
def test_compiled_and_runtime_decoding_write_the_same_streams(
    payload, tmp_path_factory, monkeypatch, messages, unknown
) -> None:
    # The compiled decoder hands the writer a flag per entry; the runtime path, positions.
    # Messages in `unknown` carry a field the descriptor lacks, so some batches mix the two.
    import functools

    out = tmp_path_factory.mktemp("same")
    raws = [raw + b"\xa8\x06\x01" if i in unknown else raw  # field 101, varint 1
            for i, raw in enumerate(envelopes(payload, messages, vehicles=3))]
    stream = out / "kv.bin"
    stream.write_bytes(delimited(*raws))
    split_streams(payload, stream, out / "compiled")
    with monkeypatch.context() as patch:
        patch.setattr(protobuf_batches, "iter_batches",
                      functools.partial(protobuf_batches.iter_batches, decoder="plain"))
        split_streams(payload, stream, out / "runtime")
    for side in ("e", "o"):
        compiled = sorted((out / "compiled" / side).glob("part-*.pb"))
        runtime = sorted((out / "runtime" / side).glob("part-*.pb"))
        assert [p.name for p in compiled] == [p.name for p in runtime]
        for a, b in zip(compiled, runtime, strict=True):
            assert a.read_bytes() == b.read_bytes()


def test_batches_written_in_the_writer_thread_keep_their_order_and_bytes(
    payload, tmp_path: Path, monkeypatch
) -> None:
    """Key/value streams are written by a second thread while the next batch is spliced:
    with 4 messages a batch, every part file holds its own batch's messages, in order, and the
    manifests' hashes are the files' own."""
    import hashlib

    from filter.engines import protobuf as protobuf_split

    monkeypatch.setattr(protobuf_split, "STREAM_BATCH_MESSAGES", 4)
    inputs = [make_payload(payload, f"LSV{i:02d}") for i in range(19)]
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*inputs))
    result = split_streams(payload, stream, tmp_path)
    for side, manifest in (("e", result.export_manifest), ("o", result.onshore_manifest)):
        files = sorted((tmp_path / side).glob("part-*.pb"))
        assert [f.name for f in files] == [f"part-00000-{n:05d}.pb" for n in range(5)]
        assert [r.rows for r in manifest.files] == [4, 4, 4, 4, 3]
        for record, path in zip(manifest.files, files, strict=True):
            assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    onshore = read_stream(payload, tmp_path / "o")
    assert [m.vin for m in onshore] == [f"LSV{i:02d}" for i in range(19)]


# --- exported entries hold what was classified, nothing else (issue 23, item 2) ---------------

def _tag(number: int, wire: int) -> bytes:
    return _VarintBytes((number << 3) | wire)


def _nested(number: int, *fields: bytes) -> bytes:
    body = b"".join(fields)
    return _tag(number, 2) + _VarintBytes(len(body)) + body


def _double(number: int, value: float) -> bytes:
    return _tag(number, 1) + struct.pack("<d", value)


def _text(number: int, value: str) -> bytes:
    return _nested(number, value.encode())


def _varint(number: int, value: int) -> bytes:
    return _tag(number, 0) + _VarintBytes(value)


# Wire bytes a parser reads as something else than they carry: the planted values are only in
# copies a parser discards (an earlier oneof member, an earlier copy of a field), or in fields
# the descriptor does not know.
_LATITUDE, _LONGITUDE = 30.572815, 104.066801
_PLANTED_TEXT = "30.572815, 104.066801"
_PLANTED_SECONDS = 1_212_121_212


def _hiding_envelope() -> bytes:
    """Payload (data 1, created_at 2, vin 3) whose exported entries (Soc 8, Odometer 5) hide
    coordinates: a location before the double that replaces it in the oneof; a whole earlier
    value message holding a location; a coordinate text before the string that replaces it;
    and a created_at sent twice, its first copy with other seconds, the second with a field
    the descriptor does not know."""
    location = _nested(7, _double(1, _LATITUDE), _double(2, _LONGITUDE))
    entries = [
        _nested(1, _varint(1, 8), _nested(2, location, _double(5, 80.5))),
        _nested(1, _varint(1, 8), _nested(2, location), _nested(2, _double(5, 55.0))),
        _nested(1, _varint(1, 5), _nested(2, _text(1, _PLANTED_TEXT), _text(1, "ok"))),
        _nested(1, _varint(1, 21), _varint(1, 8), _nested(2, _double(5, 12.5))),  # key twice
    ]
    stamps = [_nested(2, _varint(1, _PLANTED_SECONDS)),
              _nested(2, _varint(1, 1_790_000_000), _text(9, _PLANTED_TEXT))]
    return b"".join([*entries, *stamps, _text(3, "LSV1")])


def _planted() -> list[bytes]:
    return [struct.pack("<d", _LATITUDE), struct.pack("<d", _LONGITUDE), _PLANTED_TEXT.encode(),
            _varint(1, _PLANTED_SECONDS)]


def _assert_holds_only_what_parses(schema: ProtoSchema, directory: Path) -> list:
    """No planted byte in any file of `directory`; every message of its streams parses with
    no unknown field and is as long as the runtime's own serialisation of what it parsed
    (no byte a parser skips or overwrites). The messages, in order."""
    from google.protobuf.unknown_fields import UnknownFieldSet

    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for planted in _planted():
                assert planted not in data, (path.name, planted)
    messages = []
    for part in sorted(directory.glob("part-*.pb")):
        for frame in iter_frames(part, "delimited"):
            message = schema.message_class.FromString(frame.data)
            assert message.ByteSize() == len(frame.data)
            assert not len(UnknownFieldSet(message))
            for entry in getattr(message, "data", []):
                assert not len(UnknownFieldSet(entry)) and not len(UnknownFieldSet(entry.value))
            messages.append(message)
    return messages


@pytest.mark.parametrize("decoder", ["auto", "plain"])
def test_exported_entries_carry_no_hidden_copies(payload, tmp_path, monkeypatch, decoder) -> None:
    import functools

    plain = payload.message_class(vin="LSV2")  # a batch-mate the compiled decoder reads itself
    plain.created_at.seconds = 1_790_000_001
    plain.data.add(key=8).value.double_value = 1.5
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(_hiding_envelope(), plain.SerializeToString()))
    if decoder == "plain":
        monkeypatch.setattr(protobuf_batches, "iter_batches",
                            functools.partial(protobuf_batches.iter_batches, decoder="plain"))
    split_streams(payload, stream, tmp_path)
    export = _assert_holds_only_what_parses(payload, tmp_path / "e")
    first = export[0]
    assert [(d.key, d.value.WhichOneof("value")) for d in first.data] == [
        (8, "double_value"), (8, "double_value"), (5, "string_value"), (8, "double_value")]
    assert [d.value.double_value for d in first.data if d.key == 8] == [80.5, 55.0, 12.5]
    assert first.data[2].value.string_value == "ok"
    assert first.created_at.seconds == 1_790_000_000 and first.vin == vehicle_token(KEY, "LSV1")
    # The onshore stream keeps the envelope's fields as they came, both timestamps included.
    # (What a parser discards inside an exported entry is in neither output, as with Parquet
    # output: no reader of the input sees it.)
    onshore = b"".join(p.read_bytes() for p in sorted((tmp_path / "o").glob("part-*.pb")))
    assert _varint(1, _PLANTED_SECONDS) in onshore and _PLANTED_TEXT.encode() in onshore


def test_exported_entries_equal_the_runtime_serialisation_of_every_scalar(tmp_path) -> None:
    """Every member and leaf type, both signs, encoded anew from the compiled decoder's arrays:
    byte for byte the runtime's serialisation of the parsed entry."""
    from tests.formats.protobuf.test_kv_decoder import scalar_schema, scalar_values

    schema = scalar_schema(tmp_path)
    catalogue = tmp_path / "all.toml"
    catalogue.write_text((DATA / "mini-catalogue.toml").read_text().replace(
        'aliases = ["timestamp", "ts"]', 'aliases = ["timestamp", "ts", "seconds"]')
        + '\n[[rules]]\nid = "all"\nclass = "after_sales"\n'
          'patterns = ["fleet.Scalar", "fleet.Leaves", "fleet.Leaves.all"]\n'
          'basis = "test basis"\n')
    messages = []
    for sign in (1, -1):
        msg = schema.message_class(vin="V")
        leaf = msg.data.add(key=2).value.all
        for name, value in scalar_values(sign).items():
            msg.data.add(key=1).value.__setattr__(f"m_{name}", value)
            setattr(leaf, name, value)
        msg.data.add(key=2).value.all.SetInParent()  # a member message with no leaf set
        messages.append(msg.SerializeToString())
    stream = tmp_path / "s.bin"
    stream.write_bytes(delimited(*messages))
    split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                   message=schema.name, descriptor_set=schema.source, catalogue=catalogue,
                   output_format="protobuf")
    exported = read_stream(schema, tmp_path / "e")
    for raw, export in zip(messages, exported, strict=True):
        source = schema.message_class.FromString(raw)
        assert len(export.data) == len(source.data)
        for mine, theirs in zip(export.data, source.data, strict=True):
            assert mine.SerializeToString() == theirs.SerializeToString()


def test_plain_export_is_built_from_the_exported_fields_only(tmp_path: Path) -> None:
    from google.protobuf.unknown_fields import UnknownFieldSet

    record = load_schema(None, "vtx.telemetry.v1.Record")
    # Record: vin 1, timestamp 2, vehicle 3 {traveled_distance 2, service 8 {distance 1}}.
    # The vehicle sent twice (merged: its first copy's location is still the message's, and
    # withheld); an exported message with a field the descriptor does not know.
    first = _nested(3, _nested(3, _double(1, _LATITUDE), _double(2, _LONGITUDE)),
                    _varint(2, 7))
    second = _nested(3, _varint(2, 12), _nested(8, _tag(1, 5) + struct.pack("<f", 900.0),
                                                _text(9, _PLANTED_TEXT)))
    raw = _text(1, "LSV1") + _nested(2, _varint(1, 1_790_000_000)) + first + second
    stream = tmp_path / "r.bin"
    stream.write_bytes(delimited(raw))
    split_streams(record, stream, tmp_path)
    (export,) = _assert_holds_only_what_parses(record, tmp_path / "e")
    assert export.vehicle.traveled_distance == 12
    assert export.vehicle.service.distance_to_service == 900.0
    assert not export.vehicle.HasField("current_location")
    assert not len(UnknownFieldSet(export.vehicle.service))
    (onshore,) = read_stream(record, tmp_path / "o")
    assert onshore.vehicle.current_location.latitude == _LATITUDE
    assert _PLANTED_TEXT.encode() in (tmp_path / "o" / "part-00000-00000.pb").read_bytes()


@pytest.mark.parametrize("output_format", ["parquet", "protobuf"])
def test_entries_with_declared_fields_no_column_holds_stay_onshore(tmp_path, output_format):
    """A schema whose entries (or values) declare fields beside the key and the value's oneof:
    no row column holds them, so an entry that sets one is kept whole onshore, never exported
    (and never lost)."""
    from google.protobuf import descriptor_pb2

    files = descriptor_pb2.FileDescriptorSet.FromString(TEST_SET.read_bytes())
    (test_file,) = [f for f in files.file if f.package == "testfleet"]
    types = {m.name: m for m in test_file.message_type}
    text = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    types["Datum"].field.add(name="note", number=3, type=text, label=optional, json_name="note")
    types["Value"].field.add(name="comment", number=50, type=text, label=optional,
                             json_name="comment")
    extended = tmp_path / "extended.binpb"
    extended.write_bytes(files.SerializeToString())
    schema = load_schema(extended, "testfleet.Payload")
    msg = schema.message_class(vin="LSV1")
    msg.created_at.seconds = 1_790_000_000
    msg.data.add(key=8, note=_PLANTED_TEXT).value.double_value = 80.5  # Soc, noted
    msg.data.add(key=5).value.comment = _PLANTED_TEXT  # Odometer, a comment beside no member
    msg.data.add(key=8).value.double_value = 12.5  # Soc alone: exported
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(msg.SerializeToString()))
    result = split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                            message=schema.name, descriptor_set=extended,
                            output_format=output_format)
    assert result.export_manifest.extra.entries["exported"] == 1
    assert result.export_manifest.extra.entries["unknown_fields"] == 2
    for path in (tmp_path / "e").iterdir():
        assert _PLANTED_TEXT.encode() not in path.read_bytes()
    onshore = b"".join(p.read_bytes() for p in (tmp_path / "o").glob("part-*"))
    if output_format == "protobuf":
        (kept,) = read_stream(schema, tmp_path / "o")
        assert [d.note for d in kept.data] == [_PLANTED_TEXT, ""]
        assert kept.data[1].value.comment == _PLANTED_TEXT
    else:
        kept = pl.read_parquet(tmp_path / "o" / "*.parquet")["unknown_fields"].drop_nulls()
        assert kept.len() == 2 and _PLANTED_TEXT.encode() in kept[0] + kept[1]
    assert onshore
