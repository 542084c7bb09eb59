"""Key/value splitting (filter/apply/kv_routing.py) on streams of the test fleet schema."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from filter import load_catalogue
from filter.apply.columns import COUNT_SEPARATOR, MOVED
from filter.apply.kv_decoded_routing import split_decoded
from filter.apply.kv_routing import split_key_values
from filter.apply.pseudonym import token_mapping
from filter.apply.reconstruct import reconstruct_entries
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf.descriptors import ProtoSchema, load_schema
from filter.formats.protobuf.message_rows import UNKNOWN_FIELDS
from tests.conftest import DATA, KEY
from tests.formats.parquet.test_parquet_encoder import assert_same_files, polars_file
from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload

# 100_000 and -5: key numbers the enum lacks, far apart (routing counts by range only when
# the numbers of a batch span a small one).
KEY_NUMBERS = [0, 4, 5, 8, 10, 21, 23, 64, 69, 248, 300, 999, 100_000, -5]


@pytest.fixture(scope="module")
def payload() -> ProtoSchema:
    return load_schema(DATA / "fleet_test.binpb", "testfleet.Payload")


@pytest.fixture(scope="module")
def shipped():
    return load_catalogue()


def split(schema: ProtoSchema, path: Path, catalogue, scenario: str = "after-sales"):
    """Split with the frame engine, and check the compiled decoder's arrays split the same."""
    (batch,) = protobuf_batches.iter_batches(schema, path, "delimited")
    rows = batch.rows
    tokens = token_mapping(KEY, batch.distinct("vin"))  # every message's, as a run has them
    queries = split_key_values(rows.lazy(), catalogue, scenario, tokens)
    frames = pl.collect_all(
        [queries.export, queries.onshore, queries.counts, queries.detections])
    if batch.entries is not None:
        decoded = split_decoded(batch.entries, catalogue, scenario, tokens)
        got = pl.collect_all(
            [decoded.export, decoded.onshore, decoded.counts, decoded.detections])
        for mine, want in zip(got, frames, strict=True):
            assert_frame_equal(mine, want)
        # Each side encoded straight to Parquet reads back as Polars writes the same rows.
        encoded = split_decoded(batch.entries, catalogue, scenario, tokens, coded=True,
                                encoded=True)
        assert encoded.files is not None
        for file, side, want in zip(encoded.files, (encoded.export, encoded.onshore),
                                    frames[:2], strict=True):
            assert file is not None
            assert_same_files(file, polars_file(want))
            assert_frame_equal(side.collect(), want)  # its rows, if a caller asks for them
    export, onshore, counts, detections = frames
    counts = counts.row(0, named=True)
    keys = [k for k in counts.pop("keys") if k is not None]
    assert sorted(keys) == sorted(rows["key"].drop_nulls().unique())
    found = {k.split(COUNT_SEPARATOR)[1]: v for k, v in detections.row(0, named=True).items()}
    assert found.pop(MOVED) == counts["detected"]
    hits = {k: v for k, v in found.items() if v}
    assert sum(hits.values()) >= counts["detected"] >= (1 if hits else 0)
    return rows, export, onshore, counts | {"hits": hits}


def test_entries_go_where_their_keys_belong(payload, shipped, tmp_path: Path) -> None:
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(make_payload(payload)))
    rows, export, onshore, counts = split(payload, path, shipped)
    assert export["key"].to_list() == ["Soc"]  # battery: ordinary in after-sales
    assert sorted(onshore["key"]) == ["999", "Gear", "Location", "VehicleName"]
    assert "vin" not in export.columns and "vehicle_token" in export.columns
    assert export.height + onshore.height == rows.height == counts["entries"]
    assert counts == {"entries": 5, "exported": 1, "unknown_keys": 1, "unknown_fields": 0,
                      "detected": 0, "hits": {}}


def test_location_text_under_an_ordinary_key_is_withheld(payload, shipped, tmp_path) -> None:
    msg = payload.message_class(vin="LSV1")
    msg.data.add(key=8).value.string_value = "(37.412374 N, 122.145867 W)"
    msg.data.add(key=8).value.double_value = 55.0
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(msg.SerializeToString()))
    _, export, onshore, counts = split(payload, path, shipped)
    assert export["value_double"].to_list() == [55.0]
    assert onshore["value_string"].to_list() == ["(37.412374 N, 122.145867 W)"]
    assert counts["detected"] == 1 and counts["hits"] == {"coordinates": 1}


def test_message_value_under_a_scalar_key_is_withheld(payload, shipped, tmp_path) -> None:
    msg = payload.message_class(vin="LSV1")
    msg.data.add(key=8).value.location_value.latitude = 31.2  # a location under "Soc"
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(msg.SerializeToString()))
    _, export, onshore, _ = split(payload, path, shipped)
    assert export.height == 0 and onshore["key"].to_list() == ["Soc"]


def test_key_numbers_the_enum_lacks_stay_onshore_even_under_a_catch_all_rule(
    payload, tmp_path: Path
) -> None:
    text = (DATA / "mini-catalogue.toml").read_text().replace(
        'aliases = ["timestamp", "ts"]', 'aliases = ["timestamp", "ts", "created_at"]') + (
        '\n[[rules]]\nid = "all-fleet"\nclass = "after_sales"\npatterns = ["fleet.*"]\n'
        'basis = "test basis: everything"\n')
    (tmp_path / "c.toml").write_text(text)
    catalogue = load_catalogue(tmp_path / "c.toml")
    msg = payload.message_class(vin="LSV1")
    msg.data.add(key=8).value.double_value = 55.0
    msg.data.add(key=999).value.double_value = 7.0  # newer firmware: "fleet.999" matches too
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(msg.SerializeToString()))
    _, export, onshore, counts = split(payload, path, catalogue)
    assert export["key"].to_list() == ["Soc"] and onshore["key"].to_list() == ["999"]
    assert counts["unknown_keys"] == 1


def test_a_message_member_split_between_the_sides(payload, tmp_path: Path) -> None:
    # Location's location_value is exported, Soc's is not: each side holds some of the
    # entries holding that member (the decoder picks them out of the member's leaves).
    text = (DATA / "mini-catalogue.toml").read_text().replace(
        'aliases = ["timestamp", "ts"]', 'aliases = ["timestamp", "ts", "created_at"]') + (
        '\n[[rules]]\nid = "all-fleet"\nclass = "after_sales"\npatterns = ["fleet.*"]\n'
        'basis = "test basis: every key"\n'
        '\n[[rules]]\nid = "location-member"\nclass = "after_sales"\n'
        'patterns = ["fleet.Location.location_value"]\nbasis = "test basis: one member"\n')
    (tmp_path / "c.toml").write_text(text)
    catalogue = load_catalogue(tmp_path / "c.toml")
    messages = []
    for i in range(3):
        msg = payload.message_class(vin=f"LSV{i}")
        held = msg.data.add(key=8).value.location_value  # under "Soc": no rule, withheld
        held.latitude, held.longitude = 1.0 + i, 2.0
        msg.data.add(key=8).value.double_value = 55.0 + i
        sent = msg.data.add(key=21).value.location_value
        sent.latitude, sent.longitude = 10.0 + i, 20.0
        messages.append(msg.SerializeToString())
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(*messages))
    _, export, onshore, counts = split(payload, path, catalogue)
    assert export["key"].to_list() == ["Soc", "Location"] * 3
    assert export["value_location_value"].to_list() == [
        None, {"latitude": 10.0, "longitude": 20.0}, None,
        {"latitude": 11.0, "longitude": 20.0}, None, {"latitude": 12.0, "longitude": 20.0}]
    assert onshore["key"].to_list() == ["Soc"] * 3
    assert onshore["value_location_value"].struct.field("latitude").to_list() == [1.0, 2.0, 3.0]
    assert counts["entries"] == 9 and counts["exported"] == 6


def test_used_car_exports_the_day_not_the_time(payload, shipped, tmp_path: Path) -> None:
    # created_at: 2026-09-21 14:13:20 UTC
    msg = payload.message_class.FromString(make_payload(payload))
    msg.data.add(key=5).value.double_value = 48_211.5  # Odometer: condition and history
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(msg.SerializeToString()))
    _, export, onshore, _ = split(payload, path, shipped, scenario="used-car")
    assert export.height > 0
    assert {t.isoformat() for t in export["created_at"]} == {"2026-09-21T00:00:00+00:00"}
    assert {t.isoformat() for t in onshore["created_at"]} == {"2026-09-21T14:13:20+00:00"}


def test_unknown_envelope_fields_get_an_onshore_row(payload, shipped, tmp_path) -> None:
    msg = payload.message_class(vin="LSV1")
    msg.data.add(key=8).value.double_value = 55.0
    raw = msg.SerializeToString() + b"\xa8\x06\x2a"  # envelope field 101: newer firmware
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(raw))
    _, export, onshore, counts = split(payload, path, shipped)
    assert export["key"].to_list() == ["Soc"]
    (kept,) = onshore.rows(named=True)
    assert kept["entry_index"] == -1 and kept["key"] is None
    assert kept[UNKNOWN_FIELDS].endswith(b"\xa8\x06\x2a")
    assert counts["unknown_fields"] == 1 and counts["entries"] == 2


def test_unknown_fields_keep_the_entry_onshore(payload, shipped, tmp_path) -> None:
    datum = payload.message_class().data.add(key=8)
    datum.value.double_value = 55.0
    # The entry (field 1 of the envelope) with an unknown field 9 (varint 1) appended.
    entry = datum.SerializeToString() + b"\x48\x01"
    raw = b"\x0a" + bytes([len(entry)]) + entry + payload.message_class(vin="V").SerializeToString()
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(raw))
    _, export, onshore, counts = split(payload, path, shipped)
    assert export.height == 0 and counts["unknown_fields"] == 1
    assert onshore["unknown_fields"].to_list() == [entry]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(st.lists(st.tuples(st.sampled_from(KEY_NUMBERS),
                                           st.sampled_from(["double", "string", "location",
                                                            "none", "sensitive"])),
                                 max_size=6), min_size=1, max_size=5),
       scenario=st.sampled_from(["after-sales", "used-car", "manufacturing"]))
def test_no_withheld_key_in_the_export_and_entries_reconcile(payload, shipped, entries,
                                                              scenario, tmp_path_factory) -> None:
    messages = []
    for i, datums in enumerate(entries):
        msg = payload.message_class(vin=f"LSV{i:014d}")
        for number, kind in datums:
            value = msg.data.add(key=number).value
            if kind == "double":
                value.double_value = 1.5
            elif kind == "string":
                value.string_value = "ok"
            elif kind == "sensitive":
                value.string_value = "call 13812345678"
            elif kind == "location":
                value.location_value.latitude = 31.2
        messages.append(msg.SerializeToString())
    path = tmp_path_factory.mktemp("kv") / "s.bin"
    path.write_bytes(delimited(*messages))
    rows, export, onshore, counts = split(payload, path, shipped, scenario)
    allowed = shipped.scenario(scenario).classes
    for key in export["key"]:
        match = shipped.classify(f"fleet.{key}")
        assert match is not None and match.rule.data_class in allowed, key
    assert "call 13812345678" not in set(export["value_string"].drop_nulls())
    assert export["value_location_value"].drop_nulls().len() == 0 or all(
        shipped.classify(f"fleet.{k}.location_value") is not None
        for k in export.filter(pl.col("value_location_value").is_not_null())["key"])
    assert export.height + onshore.height == rows.height == counts["entries"]
    assert counts["exported"] == export.height
    # The export numbers a message's entries 0..k-1; with the onshore side's mapping every
    # entry is back in its place, with its key and value.
    for _, group in export.group_by("message_index"):
        assert sorted(group["entry_index"]) == list(range(group.height))
    merged = reconstruct_entries(export, onshore)
    columns = ["message_index", "entry_index", "key", "value_string", "value_double"]
    assert merged.select(columns).equals(rows.select(columns))


def test_string_verdicts_are_the_detectors_batch_after_batch() -> None:
    # Remembered verdicts (and a memory too small to remember them) give the same answers as
    # testing each value, in every batch.
    from filter.apply.detectors import any_hit
    from filter.apply.kv_routing import _DETECTED, StringVerdicts, _detections

    batches = [
        ["D", "P", "D", "沪A12345", "D", "N"],
        ["沪A12345", "D", "call 13812345678", "D", "R", "D"],
        ["x", "y", "z", "31.230416, 121.473701"],  # mostly distinct: tested one by one
    ]
    for limit in (100_000, 1):
        verdicts = StringVerdicts(limit=limit)
        for values in batches:
            strings = pl.Series(values, dtype=pl.String)
            expected = pl.select(any_hit(pl.lit(strings), pl.String)).to_series().to_list()
            assert verdicts.hits(strings).tolist() == expected
            # The counts per detector, from each distinct string's remembered detectors, are
            # those of a query over the rows a detector hit.
            hit = strings.filter(pl.Series(expected))
            counted = pl.DataFrame({"value_string": hit, _DETECTED: True}).lazy()
            assert_frame_equal(verdicts.detections(hit), _detections(counted).collect())


def test_a_detected_value_seen_in_an_earlier_batch_still_moves(payload, shipped, tmp_path,
                                                              monkeypatch) -> None:
    from filter.engines import protobuf as protobuf_split
    from filter.engines.run import split_protobuf

    monkeypatch.setattr(protobuf_split, "BATCH_MESSAGES", 2)
    raws = []
    for i in range(6):  # the same location text under Odometer (exported) in every batch
        msg = payload.message_class(vin=f"V{i}")
        msg.created_at.seconds = 1_790_000_000 + i
        msg.data.add(key=5).value.string_value = "31.230416, 121.473701" if i % 2 else "ok"
        msg.data.add(key=5).value.string_value = "ok"
        raws.append(msg.SerializeToString())
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*raws))
    result = split_protobuf(
        stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
        message="testfleet.Payload", descriptor_set=DATA / "fleet_test.binpb", catalogue=shipped)
    export = pl.read_parquet(tmp_path / "e" / "*.parquet")
    onshore = pl.read_parquet(tmp_path / "o" / "*.parquet")
    assert export["value_string"].to_list() == ["ok"] * 9
    assert onshore["value_string"].to_list() == ["31.230416, 121.473701"] * 3
    assert len(result.export_manifest.files) == 3  # three batches


# --- the batch's own VINs in string values (issue 23, item 3) -----------------------------

VIN_A = "LRW3E7EK0PC100001"  # its ISO 3779 check digit is wrong: no `vin` detector hit
VIN_B = "LRW3E7EK0PC100002"


def envelope_stream(path: Path) -> Path:
    """Two `vtx.telemetry.v1.Envelope`s; under ChargeState (exported in after-sales) string
    values that hold the other message's VIN, in lower case, and inside a word."""
    envelope = load_schema(None, "vtx.telemetry.v1.Envelope")
    charge_state = envelope.key_value.key.enum_type.values_by_name["ChargeState"].number
    raws = []
    for i, (vin, values) in enumerate([
        (VIN_A, ["Charging", f"paired with {VIN_B}", f"car {VIN_A.lower()}"]),
        (VIN_B, [f"x{VIN_A}y", "Complete"]),
    ]):
        msg = envelope.message_class(vin=vin)
        msg.created_at.seconds = 1_790_000_000 + i
        for value in values:
            msg.data.add(key=charge_state).value.string_value = value
        raws.append(msg.SerializeToString())
    path.write_bytes(delimited(*raws))
    return path


def _no_vin_in(directory: Path) -> None:
    planted = [v.encode() for vin in (VIN_A, VIN_B) for v in (vin, vin.lower())]
    for f in directory.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not [p for p in planted if p in data], f.name


@pytest.mark.parametrize("output_format", ["parquet", "protobuf"])
def test_an_entry_holding_a_vin_of_the_batch_stays_onshore(
    shipped, tmp_path: Path, output_format: str
) -> None:
    from filter.audit.verify import verify_output
    from filter.engines.run import split_protobuf

    stream = envelope_stream(tmp_path / "kv.bin")
    result = split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                            message="vtx.telemetry.v1.Envelope", output_format=output_format)
    _no_vin_in(tmp_path / "e")
    assert result.export_manifest.extra.entries["exported"] == 2
    assert result.export_manifest.extra.entries["detected"] == 3
    [found] = result.export_manifest.detections
    assert found.field == "value_string" and found.moved_values == 3
    assert found.hits == {"batch_vin": 3}
    report = verify_output(tmp_path / "e", tmp_path / "o")
    assert report.ok, report.failures
    if output_format == "parquet":
        export = pl.read_parquet(tmp_path / "e" / "*.parquet")
        assert sorted(export["value_string"]) == ["Charging", "Complete"]


def test_both_key_value_engines_hold_back_the_batch_vins(shipped, tmp_path: Path) -> None:
    # The frame engine and the compiled decoder's arrays route the same (`split` checks it).
    stream = envelope_stream(tmp_path / "kv.bin")
    envelope = load_schema(None, "vtx.telemetry.v1.Envelope")
    rows, export, onshore, counts = split(envelope, stream, shipped)
    assert sorted(export["value_string"]) == ["Charging", "Complete"]
    assert export.height + onshore.height == rows.height
    assert counts["detected"] == 3 and counts["hits"] == {"batch_vin": 3}


def test_string_verdicts_do_not_carry_one_batch_vins_into_the_next() -> None:
    """Detector verdicts are remembered from batch to batch; whether a string holds a VIN of
    the batch is not: the next batch has other VINs."""
    from filter.apply.detectors import BatchVins
    from filter.apply.kv_routing import StringVerdicts, batch_vin_flags

    def hits(vins: BatchVins | None = None) -> list[bool]:  # as `split_decoded` takes them
        found = verdicts.hits(strings)
        return (found | batch_vin_flags(strings, vins) if vins else found).tolist()

    verdicts = StringVerdicts()
    strings = pl.Series([f"see {VIN_A}", "ok", f"see {VIN_A}"])
    assert hits(BatchVins.of([VIN_A])) == [True, False, True]
    assert hits(BatchVins.of([VIN_B])) == [False, False, False]
    assert hits() == [False, False, False]


@pytest.mark.parametrize("writer", ["vtx", "polars", "runtime"])
def test_a_message_whose_entries_all_stay_onshore_leaves_no_trace_in_the_export(
        payload, shipped, tmp_path, monkeypatch, writer) -> None:
    # The export's token column is one value per message, dictionary-coded: a message with no
    # exported entry must not have its token (or its time) in the dictionary page, where no
    # row reads it but the bytes are there.
    from filter import vehicle_token
    from filter.engines.run import split_protobuf
    from filter.formats.parquet import entry_columns
    from filter.formats.parquet.array_buffers import UnsupportedColumn

    if writer == "polars":  # the encoder declines: Polars writes the sides from their rows
        def refusing(*args, **kwargs):
            raise UnsupportedColumn("refused")

        monkeypatch.setattr(entry_columns, "encode_file", refusing)
    raws = []
    for i, key in enumerate([5, 21, 5]):  # Odometer (exported), Location (onshore), Odometer
        msg = payload.message_class(vin=f"LSVTRACE0000000{i}")
        msg.created_at.seconds = 1_790_000_000 + 1000 * i
        if key == 21:
            msg.data.add(key=21).value.location_value.latitude = 31.2
        else:
            msg.data.add(key=5).value.double_value = 100.0 + i
        # "runtime": a field the descriptor lacks (number 99) hands the batch to the
        # protobuf runtime's reading instead of the compiled decoder's.
        raws.append(msg.SerializeToString() + (b"\x98\x06\x01" if writer == "runtime" else b""))
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*raws))
    split_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                   message="testfleet.Payload", descriptor_set=DATA / "fleet_test.binpb",
                   catalogue=shipped)
    (part,) = (tmp_path / "e").glob("part-*.parquet")
    table = pq.read_table(part, read_dictionary=["vehicle_token"])
    dictionary = table["vehicle_token"].chunk(0).dictionary.to_pylist()
    hidden = vehicle_token(KEY, "LSVTRACE00000001")
    assert hidden not in dictionary
    assert sorted(dictionary) == sorted(vehicle_token(KEY, f"LSVTRACE0000000{i}") for i in (0, 2))
    assert table.num_rows == 2
    assert "LSVTRACE00000001" in pl.read_parquet(tmp_path / "o" / "part-00000-00000.parquet")[
        "vin"].to_list()
