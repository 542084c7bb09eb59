"""Keyed pseudonyms for vehicle identifiers.

In: a secret key (from `--key-file` or `VTX_KEY_FILE`) and the distinct VINs of a batch.
Out: `vehicle_token` = HMAC-SHA256(key, normalised VIN), hex, first 32 characters; computed
once per *distinct* VIN and mapped back onto rows by a gather, never per row.
May fail: `KeyFileError` when no key is given, the file cannot be read, or the key is too short.

The raw VIN never reaches the export: without a key, nothing is split. Shared by every path
(Parquet, protobuf plain and key/value, Ray), so they all tokenise alike:
- the VIN is normalised first (`normalised_vin`: NFKC, surrounding whitespace stripped,
  upper case), so one vehicle written two ways (``lsv...``, `` LSV... ``, full-width
  characters from a Chinese input method) gets one token; the onshore side keeps the raw VIN;
- a VIN that is missing, empty or blank gets no token (null), never HMAC(key, ""): one token
  shared by every message without a VIN would link them all in the export.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from pathlib import Path

import polars as pl

from filter.errors import KeyFileError

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
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({source}): {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"{path}: key is {len(key)} bytes; at least {MIN_KEY_BYTES} are required",
            hint="e.g. `python -c 'import secrets; print(secrets.token_hex(32))' > key`",
        )
    return key


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
