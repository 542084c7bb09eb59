"""Vehicle tokens and key handling (filter/pseudonym.py)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner

from filter import KeyFileError, load_key, read_manifest, split, split_frame, vehicle_token
from filter.cli import vtx
from filter.pseudonym import KEY_ENV, check_key, key_id

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
    from filter.protobuf_split import split_protobuf
    from filter.ray_split import split_dataset, split_ray, split_ray_protobuf

    weak = b"x" * 16  # what the CLI let through before
    targets = (tmp_path / "e", tmp_path / "o", "after-sales")
    calls = {
        "split": lambda: split(batch_file, *targets, key=weak),
        "split reencode": lambda: split(batch_file, *targets, key=weak, reencode=True),
        "split_frame": lambda: split_frame(batch, None, "after-sales", key=b""),
        "split_frame lazy": lambda: split_frame(batch.lazy(), None, "after-sales", key=weak),
        "split_protobuf": lambda: split_protobuf(
            batch_file, *targets, key=b"", message="vtx.telemetry.v1.Envelope"
        ),
        # The key is checked before Ray is imported or started: no cluster needed.
        "split_dataset": lambda: split_dataset(None, None, "after-sales", key=weak),  # type: ignore[arg-type]
        "split_ray": lambda: split_ray(batch_file, *targets, key=weak),
        "split_ray_protobuf": lambda: split_ray_protobuf(
            batch_file, *targets, key=weak, message="vtx.telemetry.v1.Envelope"
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
    assert export["keys"]["key_id"] == onshore["keys"]["key_id"] == key_id(KEY)
    assert "vtx key id v1" in export["keys"]["key_id_method"]
    for manifest in (tmp_path / "e" / "_manifest.json", tmp_path / "o" / "_manifest.json"):
        text = manifest.read_text()
        assert KEY.decode() not in text and hashlib.sha256(KEY).hexdigest()[:16] not in text
    other = split(
        batch_file,
        tmp_path / "e2",
        tmp_path / "o2",
        "after-sales",
        key=secrets.token_hex(32).encode(),
    )
    assert other.export_manifest["keys"]["key_id"] != export["keys"]["key_id"]
