"""Vehicle tokens and key handling (filter/pseudonym.py)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from filter import KeyFileError, load_key, vehicle_token
from filter.pseudonym import KEY_ENV

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
