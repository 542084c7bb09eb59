"""Keyed pseudonyms for vehicle identifiers.

In: a secret key (from `--key-file` or `VTX_KEY_FILE`) and the distinct VINs of a batch.
Out: `vehicle_token` = HMAC-SHA256(key, VIN), hex, first 32 characters; computed once per
*distinct* VIN and mapped back onto rows with a vectorised `replace_strict`, never per row.
May fail: `KeyFileError` when no key is given, the file cannot be read, or the key is too short.

The raw VIN never reaches the export: without a key, nothing is split.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import polars as pl

from filter.errors import KeyFileError
from filter.files import read_regular

KEY_ENV = "VTX_KEY_FILE"
TOKEN_HEX_CHARS = 32
MIN_KEY_BYTES = 16


def load_key(path: str | Path | None = None) -> bytes:
    """Read the pseudonymisation key from `path`, else from the file named by `VTX_KEY_FILE`.

    The key is the file's content with surrounding whitespace removed; at least 16 bytes.
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
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"{path}: key is {len(key)} bytes; at least {MIN_KEY_BYTES} are required",
            hint="e.g. `python -c 'import secrets; print(secrets.token_hex(32))' > key`",
        )
    return key


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
