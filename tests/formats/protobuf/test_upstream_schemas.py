"""The fleet-telemetry server's own message types split and verify with the shipped catalogue.

Its five stream messages (tests/data/upstream/, written from its protos: see the README there):
the key/value `Payload` and the plain `VehicleAlerts`, `VehicleErrors`, `VehicleConnectivity`
and `VehicleMetrics`, each filled in every field, through `split_protobuf` with both output
formats, `vtx verify`, and `--on-unknown fail` (every field of theirs is classified).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from google.protobuf.internal.encoder import _VarintBytes
from google.protobuf.message import Message

from filter import load_catalogue, split_protobuf, verify_output
from filter.cli import vtx
from filter.formats.protobuf.descriptors import ProtoSchema, load_schema
from filter.formats.protobuf.kv_tables import compile_tables
from tests.conftest import DATA, KEY

UPSTREAM = DATA / "upstream" / "fleet_telemetry.binpb"
PAYLOAD = "telemetry.vehicle_data.Payload"
PLAIN = ["telemetry.vehicle_alerts.VehicleAlerts", "telemetry.vehicle_error.VehicleErrors",
         "telemetry.vehicle_connectivity.VehicleConnectivity",
         "telemetry.vehicle_metrics.VehicleMetrics"]
SCENARIOS = [("manufacturing", None), ("rnd", "test-fleet"), ("after-sales", None),
             ("used-car", None)]


def _stamp(message: Message, name: str, seconds: int) -> None:
    getattr(message, name).seconds = seconds


def _payloads(schema: ProtoSchema) -> list[bytes]:
    """Payloads holding every kind of value member: scalars, texts, enums, and each message
    member (location, doors, time, tyre location)."""
    out = []
    for i in range(3):
        msg = schema.message_class(vin=f"LRW3E7FA{i}MC000001", is_resend=bool(i % 2))
        _stamp(msg, "created_at", 1_790_000_000 + i)
        location = msg.data.add(key=21).value.location_value  # Location
        location.latitude, location.longitude = 31.2304, 121.4737
        msg.data.add(key=8).value.double_value = 80.5  # Soc
        msg.data.add(key=5).value.float_value = 48_211.5  # Odometer
        msg.data.add(key=4).value.int_value = 63  # VehicleSpeed
        msg.data.add(key=10).value.shift_state_value = 5  # Gear: ShiftStateD
        msg.data.add(key=64).value.string_value = "Model Y of Li"  # VehicleName
        msg.data.add(key=68).value.string_value = "2026.44.25.5"  # Version
        msg.data.add(key=58).value.door_value.DriverFront = True  # DoorState
        time = msg.data.add(key=44).value.time_value  # ScheduledChargingStartTime
        time.hour, time.minute = 23, 30
        msg.data.add(key=224).value.tire_location_value.front_left = True  # TpmsHardWarnings
        msg.data.add(key=160).value.bms_state_value = 2  # BMSState
        msg.data.add(key=113).value.car_type_value = 4  # CarType
        msg.data.add(key=259).value.long_value = 12  # SelfDrivingMilesSinceReset
        msg.data.add(key=23).value.invalid = True  # GpsHeading, not available
        out.append(msg.SerializeToString())
    return out


def _plain(schema: ProtoSchema) -> list[bytes]:
    """Each plain message type with every field set."""
    out = []
    for i in range(3):
        msg = schema.message_class(vin=f"LRW3E7FA{i}MC000001")
        _stamp(msg, "created_at", 1_790_000_000 + i)
        name = schema.descriptor.name
        if name == "VehicleAlerts":
            alert = msg.alerts.add(name="BMS_a066_SW_Over_Current", audiences=[1, 2])
            _stamp(alert, "started_at", 1_789_999_000)
            _stamp(alert, "ended_at", 1_789_999_500)
        elif name == "VehicleErrors":
            error = msg.errors.add(name="can_timeout", body="bus 2 silent at home, 13812345678")
            error.tags["network"] = "wifi-Li-home"
            _stamp(error, "created_at", 1_789_999_999)
        elif name == "VehicleConnectivity":
            msg.connection_id, msg.status, msg.network_interface = f"c-{i}", 1 + i % 2, "wifi"
        else:
            metric = msg.metrics.add(name="uptime", value=3_600.0 * i)
            metric.tags["ifname"] = "wlan0"
        out.append(msg.SerializeToString())
    return out


def _stream(path: Path, messages: list[bytes]) -> Path:
    path.write_bytes(b"".join(_VarintBytes(len(m)) + m for m in messages))
    return path


def test_payload_is_read_by_the_compiled_decoder() -> None:
    schema = load_schema(UPSTREAM, PAYLOAD)
    assert schema.key_value is not None and schema.key_value.entries.name == "data"
    assert compile_tables(schema) is not None
    names = {v.name for v in schema.key_value.key.enum_type.values}
    shipped = load_catalogue()
    assert len(names) == 260 and all(shipped.classify(f"fleet.{n}") for n in names)


@pytest.mark.parametrize("message", [PAYLOAD, *PLAIN])
@pytest.mark.parametrize("output_format", ["parquet", "protobuf"])
def test_every_upstream_message_type_splits_and_verifies(tmp_path, message, output_format) -> None:
    schema = load_schema(UPSTREAM, message)
    stream = _stream(tmp_path / "in.bin",
                     _payloads(schema) if schema.key_value is not None else _plain(schema))
    for scenario, origin in SCENARIOS:
        out = tmp_path / scenario
        result = split_protobuf(stream, out / "e", out / "o", scenario, key=KEY, message=message,
                                descriptor_set=UPSTREAM, on_unknown="fail", origin=origin,
                                output_format=output_format)
        assert result.export_manifest.rows == (
            3 if schema.key_value is None or output_format == "protobuf"
            else result.export_manifest.extra.entries["exported"])
        report = verify_output(out / "e", out / "o")
        assert report.ok, (scenario, report.failures)
    if schema.key_value is not None and output_format == "parquet":
        exported = set(pl.read_parquet(tmp_path / "after-sales" / "e" / "*.parquet")["key"])
        assert "Location" not in exported and "VehicleName" not in exported
        assert {"Soc", "Odometer"} <= exported


def test_plain_upstream_fields_go_where_the_catalogue_says(tmp_path: Path) -> None:
    """After-sales: the alerts (fault records) are exported; the errors and metrics (free-form
    tags and text) and the connectivity fields stay onshore."""
    exported: dict[str, list[str]] = {}
    for message in PLAIN:
        schema = load_schema(UPSTREAM, message)
        out = tmp_path / schema.descriptor.name
        split_protobuf(_stream(tmp_path / f"{schema.descriptor.name}.bin", _plain(schema)),
                       out / "e", out / "o", "after-sales", key=KEY, message=message,
                       descriptor_set=UPSTREAM)
        exported[schema.descriptor.name] = pl.read_parquet(out / "e" / "*.parquet").columns
    assert exported == {
        "VehicleAlerts": ["vehicle_token", "createdAt", "alerts"],
        "VehicleErrors": ["vehicle_token", "createdAt"],
        "VehicleConnectivity": ["vehicle_token", "createdAt"],
        "VehicleMetrics": ["vehicle_token", "createdAt"],
    }


def test_cli_splits_and_verifies_an_upstream_plain_message(tmp_path: Path) -> None:
    message = "telemetry.vehicle_error.VehicleErrors"
    stream = _stream(tmp_path / "errors.bin", _plain(load_schema(UPSTREAM, message)))
    key_file = tmp_path / "vtx.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    split = CliRunner().invoke(vtx, [
        "split", str(stream), "--export", str(tmp_path / "e"), "--onshore", str(tmp_path / "o"),
        "--scenario", "after-sales", "--key-file", str(key_file), "--message", message,
        "--descriptor-set", str(UPSTREAM), "--on-unknown", "fail"])
    assert split.exit_code == 0, split.output
    verified = CliRunner().invoke(vtx, ["verify", str(tmp_path / "e"), "--onshore",
                                        str(tmp_path / "o")])
    assert verified.exit_code == 0, verified.output
