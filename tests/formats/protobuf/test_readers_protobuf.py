"""Protobuf input (formats/protobuf/descriptors.py, framing.py, message_rows.py): descriptors,
framing, plain and key/value rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.internal.encoder import _VarintBytes

from filter import InputError
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf.descriptors import ProtoSchema, load_schema
from filter.formats.protobuf.framing import Framing, iter_directory, iter_frames
from filter.formats.protobuf.message_rows import (
    UNKNOWN_FIELDS,
    key_value_frame,
    parse,
    plain_frame,
    polars_schema,
)
from tests.conftest import DATA

TEST_SET = DATA / "fleet_test.binpb"


def delimited(*messages: bytes) -> bytes:
    return b"".join(_VarintBytes(len(m)) + m for m in messages)


def read_all(schema: ProtoSchema, path: Path, framing: Framing = "delimited"):
    frames = list(iter_frames(path, framing))
    return frames, [parse(schema, path, f) for f in frames]


@pytest.fixture(scope="module")
def payload() -> ProtoSchema:
    return load_schema(TEST_SET, "testfleet.Payload")


@pytest.fixture(scope="module")
def sample() -> ProtoSchema:
    return load_schema(TEST_SET, "testfleet.Sample")


def make_payload(schema: ProtoSchema, vin: str = "LSV00000000000001") -> bytes:
    msg = schema.message_class(vin=vin)
    msg.created_at.seconds = 1_790_000_000
    entry = msg.data.add(key=21)  # Location
    entry.value.location_value.latitude = 31.2304
    entry.value.location_value.longitude = 121.4737
    msg.data.add(key=8).value.double_value = 80.5  # Soc
    msg.data.add(key=10).value.shift_state_value = 5  # Gear: D
    msg.data.add(key=64).value.string_value = "my car"  # VehicleName
    msg.data.add(key=999).value.int_value = 7  # a key newer than the descriptor
    return msg.SerializeToString()


def test_shipped_schemas_load_without_a_descriptor_set() -> None:
    record = load_schema(None, "vtx.telemetry.v1.Record")
    envelope = load_schema(None, "vtx.telemetry.v1.Envelope")
    assert record.key_value is None
    assert envelope.key_value is not None and envelope.key_value.entries.name == "data"
    names = polars_schema(record).names()
    assert names == ["vin", "timestamp", "vehicle", UNKNOWN_FIELDS]


def test_key_value_envelope_is_detected_or_named(payload: ProtoSchema) -> None:
    assert payload.key_value is not None
    assert (payload.key_value.key.name, payload.key_value.value.name) == ("key", "value")
    assert load_schema(TEST_SET, "testfleet.Payload", kv_field="data").key_value is not None
    with pytest.raises(InputError, match="no repeated message field 'entries'"):
        load_schema(TEST_SET, "testfleet.Payload", kv_field="entries")


def test_key_value_rows(payload: ProtoSchema, tmp_path: Path) -> None:
    path = tmp_path / "stream.bin"
    path.write_bytes(delimited(make_payload(payload), make_payload(payload, "LSV2")))
    frames, messages = read_all(payload, path)
    rows = key_value_frame(payload, messages, [f.index for f in frames])
    assert rows.height == 10
    first = rows.filter(rows["message_index"] == 0)
    assert first["key"].to_list() == ["Location", "Soc", "Gear", "VehicleName", "999"]
    assert first["member"].to_list() == [
        "location_value", "double_value", "shift_state_value", "string_value", "int_value"]
    assert first["value_location_value"][0] == {"latitude": 31.2304, "longitude": 121.4737}
    assert first["value_double"][1] == 80.5
    assert first["value_enum"][2] == "ShiftStateD"
    assert first["value_string"][3] == "my car"
    assert first["value_int"][4] == 7
    assert first["created_at"][0] == datetime.fromtimestamp(1_790_000_000, UTC)
    assert set(rows["vin"]) == {"LSV00000000000001", "LSV2"}


def test_plain_rows_with_nested_messages_lists_and_maps(sample: ProtoSchema, tmp_path) -> None:
    msg = sample.message_class(vin="LSV1", snapshot=b"\xff\xd8")
    msg.timestamp.seconds = 60
    msg.vehicle.speed = 12.5
    msg.vehicle.current_location.latitude = 31.0
    msg.vehicle.dtc_list.extend(["P0420", "C0035"])
    msg.counters["resets"] = 3
    path = tmp_path / "one.bin"
    path.write_bytes(msg.SerializeToString())
    frames, messages = read_all(sample, path, "single")
    rows = plain_frame(sample, messages, [f.data for f in frames])
    row = rows.row(0, named=True)
    assert row["vehicle"] == {
        "speed": 12.5,
        "currentLocation": {"latitude": 31.0, "longitude": 0.0},
        "dtcList": ["P0420", "C0035"],
    }
    assert row["counters"] == [{"key": "resets", "value": 3}]
    assert row["snapshot"] == b"\xff\xd8"
    assert row[UNKNOWN_FIELDS] is None


def test_unknown_fields_keep_the_raw_message(sample: ProtoSchema, tmp_path) -> None:
    known = sample.message_class(vin="LSV1").SerializeToString()
    extra = known + b"\xa8\x06\x2a"  # field 101, varint 42: not in the descriptor
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(known, extra))
    frames, messages = read_all(sample, path)
    rows = plain_frame(sample, messages, [f.data for f in frames])
    assert rows[UNKNOWN_FIELDS].to_list() == [None, extra]


def test_directory_of_single_messages(sample: ProtoSchema, tmp_path) -> None:
    for i in range(3):
        message = sample.message_class(vin=f"V{i}")
        (tmp_path / f"{i:03d}.bin").write_bytes(message.SerializeToString())
    (tmp_path / ".hidden").write_bytes(b"junk")
    found = list(iter_directory(tmp_path))
    assert [p.name for p, _ in found] == ["000.bin", "001.bin", "002.bin"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x05abc", r"message 0 at byte 0: length 5 runs past the end of the file \(3 bytes"),
        (b"\x02ab\x80", r"message 1 at byte 3: truncated length prefix"),
        (b"\xff" * 11, r"message 0 at byte 0: bad length prefix"),
        (b"\xff\xff\xff\xff\x0f", r"message 0 at byte 0: 4294967295 bytes is larger than"),
    ],
)
def test_bad_framing(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message):
        list(iter_frames(path, "delimited"))


def test_bytes_that_do_not_parse(payload: ProtoSchema, tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(delimited(make_payload(payload), b"\x0a\xff\xff"))
    frames = list(iter_frames(path, "delimited"))
    parse(payload, path, frames[0])
    with pytest.raises(InputError, match=r"garbage\.bin: message 1 at byte \d+: does not parse"):
        parse(payload, path, frames[1])


def test_descriptor_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no message type 'testfleet.Paylod'.*did you mean"):
        load_schema(TEST_SET, "testfleet.Paylod")
    junk = tmp_path / "junk.binpb"
    junk.write_bytes(b"\xff\xff\xff")
    with pytest.raises(InputError, match="not a FileDescriptorSet"):
        load_schema(junk, "testfleet.Payload")
    with pytest.raises(InputError, match="cannot read descriptor set"):
        load_schema(tmp_path / "absent.binpb", "testfleet.Payload")


def test_shipped_descriptor_set_matches_the_proto_files(tmp_path: Path) -> None:
    import shutil
    import subprocess

    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.skip("protoc is not installed (apt-get install protobuf-compiler) to regenerate")
    root = Path(__file__).parent.parent.parent.parent / "proto"
    out = tmp_path / "t.binpb"
    subprocess.run(
        [protoc, "--include_imports", "-o", str(out), "-I", str(root),
         "vtx/telemetry/v1/record.proto", "vtx/telemetry/v1/envelope.proto"],
        check=True, cwd=root,
    )
    assert out.read_bytes() == (root / "vtx/telemetry/v1/telemetry.binpb").read_bytes()


def test_batches_cover_every_message(payload: ProtoSchema, sample, tmp_path: Path) -> None:
    path = tmp_path / "stream.bin"
    path.write_bytes(delimited(*[make_payload(payload, f"V{i}") for i in range(7)]))
    batches = list(protobuf_batches.iter_batches(payload, path, "delimited", batch_size=3))
    assert [b.rows["message_index"].n_unique() for b in batches] == [3, 3, 1]
    assert [b.messages for b in batches] == [3, 3, 1]
    assert sum(b.rows.height for b in batches) == 35
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    (plain,) = protobuf_batches.iter_batches(sample, empty, "delimited")
    assert plain.rows.height == 0 and plain.rows.schema == polars_schema(sample)


def test_bad_records_go_to_the_callback_and_reading_goes_on(payload, tmp_path: Path) -> None:
    good = make_payload(payload)
    path = tmp_path / "stream.bin"
    path.write_bytes(delimited(good, b"\x0a\xff\xff", good) + b"\x40abc")  # bad, good, truncated
    bad: list[tuple[int, int, str, bytes]] = []
    batches = list(protobuf_batches.iter_batches(
        payload, path, "delimited",
        on_bad=lambda r: bad.append((r.index, r.offset, r.reason, bytes(r.data))),
    ))
    assert sorted(set(batches[0].rows["message_index"])) == [0, 2]
    assert [b[0] for b in bad] == [1, 3]
    assert "does not parse" in bad[0][2] and "runs past the end" in bad[1][2]
    assert bad[0][3] == b"\x0a\xff\xff"
    assert bad[1][3] == b"\x40abc" and bad[1][1] == len(delimited(good, b"\x0a\xff\xff", good))
    with pytest.raises(InputError, match="message 1 at byte"):
        list(protobuf_batches.iter_batches(payload, path, "delimited"))
