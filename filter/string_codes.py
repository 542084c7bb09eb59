"""Strings that repeat from row to row, held as codes into their distinct values.

In: a Polars string column (key and member names, VINs, tokens: a few distinct values, each
in many rows).
Out: `as_enum`: the same values as a `pl.Enum` column of those distinct values, which a
Parquet writer takes as its dictionary instead of hashing every string
(`filter.formats.parquet.metadata` has the files read back as plain strings).
May fail: nothing beyond Polars' own errors.
"""

from __future__ import annotations

import polars as pl


def as_enum(strings: pl.Series) -> pl.Series:
    """`strings` as a `pl.Enum` of their own distinct values: the same values, as codes."""
    return strings.cast(pl.Enum(strings.drop_nulls().unique().sort()))
