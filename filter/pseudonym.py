"""Keyed pseudonyms for vehicle identifiers.

In: a secret key (from `--key-file` or `VTX_KEY_FILE`) and the distinct VINs of a batch.
Out: `vehicle_token` = HMAC-SHA256(key, VIN), hex, first 32 characters; computed once per
*distinct* VIN and mapped back onto rows with a vectorised `replace_strict`, never per row.
May fail: `KeyFileError` when no key is given, the file cannot be read (or is not a regular
file), or the key is weak (`check_key`: every entry point of the library applies it).

The raw VIN never reaches the export: without a key, nothing is split. Each manifest records
the `key_id` of the key its tokens were made with, which tells keys apart and reveals nothing
about them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
from pathlib import Path

import polars as pl

from filter.errors import KeyFileError
from filter.files import read_regular

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
KEY_HINT = "make one with `python -c 'import secrets; print(secrets.token_hex(32))' > vtx.key`"


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
        raise KeyFileError(f"{path}: cannot read key file ({source}): {exc.strerror}") from None
    return check_key(key, source=str(path))


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


def vehicle_token(key: bytes, vin: str) -> str:
    """The token of one VIN: HMAC-SHA256(key, VIN as UTF-8), hex, first 32 characters."""
    return hmac.new(key, vin.encode("utf-8"), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]


def token_mapping(key: bytes, distinct_vins: pl.Series) -> dict[str, str]:
    """Tokens for the distinct non-null values of `distinct_vins` (one HMAC per value)."""
    return {vin: vehicle_token(key, vin) for vin in distinct_vins.drop_nulls().unique()}


def token_expr(column: str, mapping: dict[str, str], name: str) -> pl.Expr:
    """An expression mapping `column` (cast to string) to its token; null stays null.

    The VINs are cast to an `Enum` of the distinct VINs, whose physical codes index the token
    list: a gather, which streams in constant memory (a `replace_strict` of strings buffered
    the whole column). The cast is strict, so a VIN missing from `mapping` fails the run rather
    than leaving a row without its token.
    """
    vins = pl.Enum(list(mapping))
    tokens = pl.Series(name, list(mapping.values()), dtype=pl.String)
    codes = pl.col(column).cast(pl.String).cast(vins).to_physical()
    return pl.lit(tokens).gather(codes).alias(name)


def coded_tokens(vins: pl.Series, mapping: dict[str, str], name: str) -> pl.Series | None:
    """The tokens of `vins`, a `pl.Enum` column, as a `pl.Enum` column with the same codes:
    one lookup per category, none per row, and no token string hashed again for a writer.

    None when that cannot be done (a category without a token in `mapping`, or two with the
    same token): `token_expr` then maps the strings, and fails on a missing one.
    """
    categories = vins.dtype.categories.to_list()  # type: ignore[attr-defined]
    found = [mapping.get(v) for v in categories]
    if None in found or len(set(found)) != len(found):
        return None
    coded = pl.Series(name, found, dtype=pl.String)
    return coded.cast(pl.Enum(coded)).gather(vins.to_physical()).alias(name)
