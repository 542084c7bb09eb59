"""Keyed pseudonyms for vehicle identifiers.

In: a secret key (from `--key-file` or `VTX_KEY_FILE`) and the distinct VINs of a batch.
Out: `vehicle_token` = HMAC-SHA256(key, normalised VIN), hex, first 32 characters; computed
once per *distinct* VIN and mapped back onto rows by a gather, never per row.
May fail: `KeyFileError` when no key is given, the file cannot be read (or is not a regular
file), or the key is weak (`check_key`: every entry point of the library applies it).

The raw VIN never reaches the export: without a key, nothing is split. Each manifest records
the `key_id` of the key its tokens were made with, which tells keys apart and reveals nothing
about them. Shared by every path (Parquet, protobuf plain and key/value, Ray), so they all
tokenise alike:
- the VIN is normalised first (`normalised_vin`: NFKC, surrounding whitespace stripped,
  upper case), so one vehicle written two ways (``lsv...``, `` LSV... ``, full-width
  characters from a Chinese input method) gets one token; the onshore side keeps the raw VIN;
- a VIN that is missing, empty or blank gets no token (null), never HMAC(key, ""): one token
  shared by every message without a VIN would link them all in the export.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import unicodedata
from pathlib import Path

import polars as pl

from filter.errors import KeyFileError, os_reason
from filter.files import read_regular
from filter.secret_files import warn_if_exposed

KEY_ENV = "VTX_KEY_FILE"
TOKEN_HEX_CHARS = 32
MIN_KEY_BYTES = 16
#: A key needs this many distinct byte values, and this many distinct steps between successive
#: bytes (`check_key`). 16 random bytes, 32 or 64 random hex characters never fall short in
#: practice; 16 random hex characters (64 bits) do about once in 90 draws.
MIN_DISTINCT_BYTES = 8
MIN_DISTINCT_STEPS = 8
#: The message the key id is the HMAC of (`key_id`), and how many hex characters it keeps.
KEY_ID_MESSAGE = b"vtx key id v1"
KEY_ID_HEX_CHARS = 16
KEY_HINT = ("make one, mode 0600, with "
            "`(umask 077; python -c 'import secrets; print(secrets.token_hex(32))' > vtx.key)`")


def load_key(path: str | Path | None = None) -> bytes:
    """Read the pseudonymisation key from `path`, else from the file named by `VTX_KEY_FILE`.

    The key is the file's content with surrounding whitespace removed; it must pass
    `check_key`. A FIFO or a device is refused, not read.
    """
    source = "--key-file"
    if path is None:
        env = os.environ.get(KEY_ENV)
        if not env:
            raise KeyFileError(
                "no pseudonymisation key: vtx will not export vehicle data without one",
                hint=f"pass --key-file FILE or set {KEY_ENV}",
            )
        path, source = env, KEY_ENV
    try:
        key = read_regular(Path(path)).strip()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({source}): {os_reason(exc)}") from None
    checked = check_key(key, source=str(path))
    warn_if_exposed(path, "key")
    return checked


def check_key(key: object, *, source: str = "the key= argument") -> bytes:
    """`key`, if it may make tokens; else `KeyFileError` (`source` names it in the message).

    Refused, as keys an attacker could guess or that a slip produced:
    - anything but `bytes` (a `str` key is a mistake: its encoding is not the key's);
    - fewer than `MIN_KEY_BYTES` (16) bytes;
    - fewer than `MIN_DISTINCT_BYTES` (8) distinct byte values (``aaaa...``, ``abab...``,
      ``passwordpassword``);
    - fewer than `MIN_DISTINCT_STEPS` (8) distinct differences (mod 256) between successive
      bytes (runs: ``abcdefghijklmnop``, ``0123456789abcdef``);
    - a block repeated: byte i equals byte i + p throughout, for a period p of at most half
      the length (``k3Yq9Zx!k3Yq9Zx!``).
    This catches the obvious mistakes, not every weak key: make keys with `secrets`.
    """
    if not isinstance(key, bytes):
        raise KeyFileError(
            f"{source}: the key must be bytes, not {type(key).__name__}",
            hint="read it with filter.load_key",
        )
    problem = _weakness(key)
    if problem is not None:
        raise KeyFileError(f"{source}: key is too weak: {problem}", hint=KEY_HINT)
    return key


def _weakness(key: bytes) -> str | None:
    """What makes `key` weak (`check_key`'s rules), or None."""
    if len(key) < MIN_KEY_BYTES:
        return f"{len(key)} bytes; at least {MIN_KEY_BYTES} are required"
    if (distinct := len(set(key))) < MIN_DISTINCT_BYTES:
        return f"only {distinct} distinct byte value(s); at least {MIN_DISTINCT_BYTES} are required"
    steps = len({(b - a) % 256 for a, b in itertools.pairwise(key)})
    if steps < MIN_DISTINCT_STEPS:
        return (
            f"a run: only {steps} distinct step(s) between successive bytes; at least "
            f"{MIN_DISTINCT_STEPS} are required"
        )
    for period in range(1, len(key) // 2 + 1):
        if key[period:] == key[:-period]:
            return f"a block of {period} bytes repeated"
    return None


def key_id(key: bytes) -> str:
    """The key's id for the manifests: HMAC-SHA256(key, b"vtx key id v1"), hex, first 16
    characters. Equal for equal keys, different (but for a 2^-64 chance) for different ones;
    without the key it cannot be computed, and it tells nothing about the key."""
    return hmac.new(key, KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:KEY_ID_HEX_CHARS]


def normalised_vin(vin: str) -> str:
    """`vin` as it is tokenised: NFKC (full-width letters and digits become ASCII), without
    surrounding whitespace, in upper case (ISO 3779 VINs are upper-case ASCII)."""
    return unicodedata.normalize("NFKC", vin).strip().upper()


def vehicle_token(key: bytes, vin: str) -> str | None:
    """The token of one VIN: HMAC-SHA256(key, normalised VIN as UTF-8), hex, first 32
    characters; None when the VIN is empty or blank."""
    normal = normalised_vin(vin)
    if not normal:
        return None
    return hmac.new(key, normal.encode("utf-8"), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]


#: Raw VIN -> its token, or None for a VIN that gets none (empty or blank).
TokenMapping = dict[str, str | None]


def token_mapping(key: bytes, distinct_vins: pl.Series) -> TokenMapping:
    """Tokens for the distinct non-null values of `distinct_vins` (one HMAC per value)."""
    return {vin: vehicle_token(key, vin) for vin in distinct_vins.drop_nulls().unique()}


def token_expr(column: str, mapping: TokenMapping, name: str) -> pl.Expr:
    """An expression mapping `column` (cast to string) to its token; null stays null, and so
    does a VIN without a token.

    The VINs are cast to an `Enum` of the distinct VINs, whose physical codes index the token
    list: a gather, which streams in constant memory (a `replace_strict` of strings buffered
    the whole column). The cast is strict, so a VIN missing from `mapping` fails the run rather
    than leaving a row without its token.
    """
    vins = pl.Enum(list(mapping))
    tokens = pl.Series(name, list(mapping.values()), dtype=pl.String)
    codes = pl.col(column).cast(pl.String).cast(vins).to_physical()
    return pl.lit(tokens).gather(codes).alias(name)


def coded_tokens(vins: pl.Series, mapping: TokenMapping, name: str) -> pl.Series | None:
    """The tokens of `vins`, a `pl.Enum` column, as a `pl.Enum` column of the distinct
    tokens: one lookup per category, none per row, and no token string hashed again for a
    writer (VINs that normalise alike share a token; a VIN without one gives null).

    None when a category is missing from `mapping`: `token_expr` then maps the strings, and
    fails on it.
    """
    categories = vins.dtype.categories.to_list()  # type: ignore[attr-defined]
    if any(v not in mapping for v in categories):
        return None
    found = [mapping[v] for v in categories]
    distinct = pl.Enum(list(dict.fromkeys(t for t in found if t is not None)))
    coded = pl.Series(name, found, dtype=pl.String).cast(distinct)
    return coded.gather(vins.to_physical()).alias(name)
