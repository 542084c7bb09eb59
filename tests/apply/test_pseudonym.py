"""Vehicle tokens and key handling (filter/apply/pseudonym.py)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from filter import (
    KeyFileError,
    load_catalogue,
    load_key,
    read_manifest,
    split,
    split_frame,
    split_protobuf,
    vehicle_token,
    verify_output,
)
from filter.apply.pseudonym import KEY_ENV, check_key, key_id
from filter.cli import vtx
from filter.formats.protobuf.descriptors import ProtoSchema, load_schema
from filter.formats.protobuf.framing import iter_frames
from tests import manifests
from tests.conftest import KEY


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


WEAK_KEYS = {
    "empty": b"",
    "short": b"k3Yq9Zx!v2",
    "one byte repeated": b"a" * 16,
    "few distinct bytes": b"passwordpassword",
    "a run": b"abcdefghijklmnopqrstuvwxyz",
    "a run of hex digits": b"0123456789abcdef" * 2,
    "a block repeated": b"k3Yq9Zx!" * 4,
}


@pytest.mark.parametrize("weak", WEAK_KEYS.values(), ids=WEAK_KEYS.keys())
def test_weak_keys_are_refused(weak: bytes, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="key is too weak") as info:
        check_key(weak)
    assert info.value.exit_code == 2
    path = tmp_path / "weak.key"
    path.write_bytes(weak + b"\n")
    with pytest.raises(KeyFileError, match=r"weak\.key: key is too weak"):
        load_key(path)


def test_a_key_must_be_bytes() -> None:
    with pytest.raises(KeyFileError, match="must be bytes, not str"):
        check_key(KEY.decode())


def test_random_keys_pass() -> None:
    for _ in range(200):
        for key in (
            secrets.token_hex(32).encode(),
            secrets.token_hex(16).encode(),
            secrets.token_bytes(16),
            secrets.token_urlsafe(16).encode(),
        ):
            assert check_key(key) == key


def test_key_id_is_a_keyed_fingerprint() -> None:
    expected = hmac.new(KEY, b"vtx key id v1", hashlib.sha256).hexdigest()[:16]
    assert key_id(KEY) == expected
    assert key_id(KEY) not in hashlib.sha256(KEY).hexdigest()  # not the key's plain digest
    assert key_id(secrets.token_hex(32).encode()) != key_id(KEY)


def test_every_entry_point_refuses_a_weak_key(batch, batch_file: Path, tmp_path: Path) -> None:
    from filter.engines.ray import RayEngine
    from filter.engines.ray_dataset import split_dataset
    from filter.engines.run import split_protobuf

    weak = b"x" * 16  # what the CLI let through before
    targets = (tmp_path / "e", tmp_path / "o", "after-sales")
    calls = {
        "split": lambda: split(batch_file, *targets, key=weak),
        "split reencode": lambda: split(batch_file, *targets, key=weak, reencode=True),
        "split_frame": lambda: split_frame(batch, "after-sales", key=b""),
        "split_frame lazy": lambda: split_frame(batch.lazy(), "after-sales", key=weak),
        "split_protobuf": lambda: split_protobuf(
            batch_file, *targets, key=b"", message="vtx.telemetry.v1.Envelope"
        ),
        # The key is checked before Ray is imported or started: no cluster needed.
        "split_dataset": lambda: split_dataset(None, "after-sales", key=weak),  # type: ignore[arg-type]
        "split on Ray": lambda: split(batch_file, *targets, key=weak, engine=RayEngine()),
        "split_protobuf on Ray": lambda: split_protobuf(
            batch_file, *targets, key=weak, message="vtx.telemetry.v1.Envelope",
            engine=RayEngine(),
        ),
    }
    for name, call in calls.items():
        with pytest.raises(KeyFileError, match="key is too weak") as info:
            call()
        assert info.value.exit_code == 2, name
        assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists(), name
    assert not [p for p in tmp_path.iterdir() if ".vtx-" in p.name]


@pytest.mark.parametrize("protobuf", [False, True], ids=["parquet", "protobuf"])
def test_the_cli_refuses_a_weak_key_file(protobuf: bool, batch_file: Path, tmp_path: Path) -> None:
    weak = tmp_path / "weak.key"
    weak.write_text("x" * 16 + "\n")
    extra = ["--message", "vtx.telemetry.v1.Envelope"] if protobuf else []
    result = CliRunner().invoke(
        vtx,
        [
            "split",
            str(batch_file),
            "--export",
            str(tmp_path / "e"),
            "--onshore",
            str(tmp_path / "o"),
            "--scenario",
            "after-sales",
            "--key-file",
            str(weak),
            *extra,
        ],
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("vtx: error: ") and len(result.stderr.splitlines()) == 1
    assert "key is too weak: only 1 distinct byte value" in result.stderr
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


def test_both_manifests_carry_the_key_id(batch_file: Path, key_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        vtx,
        [
            "split",
            str(batch_file),
            "--export",
            str(tmp_path / "e"),
            "--onshore",
            str(tmp_path / "o"),
            "--scenario",
            "after-sales",
            "--key-file",
            str(key_file),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    export, onshore = read_manifest(tmp_path / "e"), read_manifest(tmp_path / "o")
    assert export.keys.key_id == onshore.keys.key_id == key_id(KEY)
    assert "vtx key id v1" in export.keys.key_id_method
    for side in (tmp_path / "e", tmp_path / "o"):
        text = manifests.manifest_text(side)
        assert KEY.decode() not in text and hashlib.sha256(KEY).hexdigest()[:16] not in text
    other = split(
        batch_file,
        tmp_path / "e2",
        tmp_path / "o2",
        "after-sales",
        key=secrets.token_hex(32).encode(),
    )
    assert other.export_manifest.keys.key_id != export.keys.key_id
# --- normalised VINs and no token for a missing one (issue 23, item 5) -----------------------

# The same VIN as written, in lower case with whitespace around it, and in full-width
# characters (U+FF21 and on, as Chinese input methods type them).
_FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "LSVAU2180N2183294")
_SAME_VEHICLE = ["LSVAU2180N2183294", " lsvau2180n2183294\t", _FULL_WIDTH]
_NO_VIN = ["", "   ", "\u3000"]  # empty, blank, an ideographic space


def test_tokens_of_normalised_vins_and_none_for_blank_ones() -> None:
    from filter.apply.pseudonym import normalised_vin

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
    export, onshore = split_frame(frame, "after-sales", key=KEY, catalogue=load_catalogue())
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

    envelope = load_schema(None, "vtx.telemetry.v1.Envelope")
    record = load_schema(None, "vtx.telemetry.v1.Record")
    vins = [*_SAME_VEHICLE, *_NO_VIN, "", "LSVAU2180N2183295"]  # no null VIN on the wire:
    # a message without the field reads as ""

    def stream(schema: ProtoSchema, name: str) -> Path:
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
                    for f in iter_frames(out / "se" / "part-00000-00000.pb", "delimited")]
        _assert_tokens([m.vin if m.vin else None for m in exported])
        assert all(not m.vin for m in exported[3:7])  # no field at all: "" is the default
        onshore = [schema.message_class.FromString(f.data).vin
                   for f in iter_frames(out / "so" / "part-00000-00000.pb", "delimited")]
        assert onshore == vins
        for side in ("p", "s"):
            report = verify_output(out / f"{side}e", out / f"{side}o")
            assert report.ok, report.failures
