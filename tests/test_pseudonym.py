"""Vehicle tokens and key handling (filter/pseudonym.py)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from filter import (
    KeyFileError,
    load_catalogue,
    load_key,
    split,
    split_frame,
    split_protobuf,
    vehicle_token,
    verify_output,
)
from filter.pseudonym import KEY_ENV
from filter.readers import protobuf as pb

from .conftest import KEY


def test_token_is_truncated_hmac_sha256() -> None:
    vin = "LSVAU2180N2183294"
    expected = hmac.new(KEY, vin.encode(), hashlib.sha256).hexdigest()[:32]
    assert vehicle_token(KEY, vin) == expected
    assert len(expected) == 32


def test_key_from_file_is_stripped(key_file: Path) -> None:
    assert load_key(key_file) == KEY


def test_key_from_environment(key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, str(key_file))
    assert load_key() == KEY


def test_no_key_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(KeyFileError, match="no pseudonymisation key") as info:
        load_key()
    assert info.value.exit_code == 2


def test_short_key_refuses(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("abc\n")
    with pytest.raises(KeyFileError, match="3 bytes; at least 16"):
        load_key(short)


def test_unreadable_key(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_key(tmp_path / "absent.key")


# --- normalised VINs and no token for a missing one (issue 23, item 5) -----------------------

# The same VIN as written, in lower case with whitespace around it, and in full-width
# characters (U+FF21 and on, as Chinese input methods type them).
_FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "LSVAU2180N2183294")
_SAME_VEHICLE = ["LSVAU2180N2183294", " lsvau2180n2183294\t", _FULL_WIDTH]
_NO_VIN = ["", "   ", "\u3000"]  # empty, blank, an ideographic space


def test_tokens_of_normalised_vins_and_none_for_blank_ones() -> None:
    from filter.pseudonym import normalised_vin

    tokens = {vehicle_token(KEY, v) for v in _SAME_VEHICLE}
    assert tokens == {vehicle_token(KEY, "LSVAU2180N2183294")} and None not in tokens
    assert normalised_vin(_SAME_VEHICLE[2]) == "LSVAU2180N2183294"
    assert [vehicle_token(KEY, v) for v in _NO_VIN] == [None] * 3
    assert vehicle_token(KEY, "LSVAU2180N2183295") != vehicle_token(KEY, _SAME_VEHICLE[0])


def _vin_frame() -> pl.DataFrame:
    vins = [*_SAME_VEHICLE, *_NO_VIN, None, "LSVAU2180N2183295"]
    return pl.DataFrame({
        "vin": vins,
        "timestamp": [datetime(2026, 11, 1, tzinfo=UTC)] * len(vins),
        "Vehicle.TraveledDistance": list(range(len(vins))),
    })


def _assert_tokens(tokens: list[str | None]) -> None:
    """Tokens of `_vin_frame`'s rows: one for the vehicle written three ways, none (null, not
    HMAC of "") without a VIN, another for the other vehicle."""
    assert len(set(tokens[:3])) == 1 and tokens[0] == vehicle_token(KEY, "LSVAU2180N2183294")
    assert tokens[3:7] == [None] * 4
    assert tokens[7] not in (None, tokens[0])


def test_parquet_paths_normalise_and_give_no_token_without_a_vin(tmp_path: Path) -> None:
    frame = _vin_frame()
    export, onshore = split_frame(frame, load_catalogue(), "after-sales", key=KEY)
    _assert_tokens(export["vehicle_token"].to_list())
    assert onshore["vin"].to_list() == frame["vin"].to_list()  # the raw VIN, unchanged
    source = tmp_path / "in.parquet"
    frame.write_parquet(source)
    for reencode in (False, True):
        out = tmp_path / str(reencode)
        split([source], out / "e", out / "o", "after-sales", key=KEY, reencode=reencode)
        _assert_tokens(pl.read_parquet(out / "e" / "*.parquet")["vehicle_token"].to_list())
        onshore = pl.read_parquet(out / "o" / "*.parquet")
        assert onshore["vin"].to_list() == frame["vin"].to_list()
        report = verify_output(out / "e", out / "o")
        assert report.ok, report.failures


def test_protobuf_paths_normalise_and_give_no_token_without_a_vin(tmp_path: Path) -> None:
    from google.protobuf.internal.encoder import _VarintBytes

    envelope = pb.load_schema(None, "vtx.telemetry.v1.Envelope")
    record = pb.load_schema(None, "vtx.telemetry.v1.Record")
    vins = [*_SAME_VEHICLE, *_NO_VIN, "", "LSVAU2180N2183295"]  # no null VIN on the wire:
    # a message without the field reads as ""

    def stream(schema: pb.ProtoSchema, name: str) -> Path:
        messages = []
        for vin in vins:
            msg = schema.message_class(vin=vin)
            if schema.key_value is not None:
                msg.created_at.seconds = 1_790_000_000
                msg.data.add(key=5).value.double_value = 1.0  # Odometer: exported
                msg.data.add(key=64).value.string_value = "car"  # VehicleName: withheld
            else:
                msg.timestamp.seconds = 1_790_000_000
                msg.vehicle.traveled_distance = 3
            messages.append(msg.SerializeToString())
        path = tmp_path / name
        path.write_bytes(b"".join(_VarintBytes(len(m)) + m for m in messages))
        return path

    for schema in (envelope, record):
        source = stream(schema, f"{schema.name}.bin")
        out = tmp_path / schema.name
        split_protobuf(source, out / "pe", out / "po", "after-sales", key=KEY,
                       message=schema.name)
        _assert_tokens(pl.read_parquet(out / "pe" / "*.parquet")["vehicle_token"].to_list())
        assert pl.read_parquet(out / "po" / "*.parquet")["vin"].to_list() == vins
        split_protobuf(source, out / "se", out / "so", "after-sales", key=KEY,
                       message=schema.name, output_format="protobuf")
        exported = [schema.message_class.FromString(f.data)
                    for f in pb.iter_frames(out / "se" / "part-00000-00000.pb", "delimited")]
        _assert_tokens([m.vin if m.vin else None for m in exported])
        assert all(not m.vin for m in exported[3:7])  # no field at all: "" is the default
        onshore = [schema.message_class.FromString(f.data).vin
                   for f in pb.iter_frames(out / "so" / "part-00000-00000.pb", "delimited")]
        assert onshore == vins
        for side in ("p", "s"):
            report = verify_output(out / f"{side}e", out / f"{side}o")
            assert report.ok, report.failures
