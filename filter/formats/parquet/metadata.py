"""Parquet part files whose dictionary-coded string columns read back as plain strings.

In: string columns that repeat from row to row (key names, VINs, tokens), coded with
`filter.string_codes.as_enum`; then the schema of the frame about to be written.
Out: the key/value metadata to write with it (`sink_parquet(metadata=...)`): the Arrow schema
of the same columns with `pl.String` in place of each `pl.Enum`.
May fail: nothing beyond Polars' own errors.

Why: a Parquet writer stores repeated strings as a dictionary and codes anyway. Given codes,
Polars writes them as they are; given strings, it hashes every one to find them again (a
batch's VIN, token, key and member columns: 56 ms of CPU as strings, 22 ms as codes). In the
file such a column is the same BYTE_ARRAY/String column either way. Only the Arrow schema that
Polars stores beside the data (the "ARROW:schema" key, from which Arrow readers restore types)
would say "categorical"; this one says "string", so that every reader gets the strings the
output promises, with the same types in every part file, however each batch was coded.
"""

from __future__ import annotations

import functools
import io

import polars as pl
import pyarrow.parquet as pq

ARROW_SCHEMA_KEY = "ARROW:schema"


def plain_string_metadata(schema: pl.Schema) -> dict[str, str]:
    """The metadata that declares `schema`'s `pl.Enum` and `pl.Categorical` columns as strings."""
    return {ARROW_SCHEMA_KEY: _arrow_schema(plain_strings(schema))}


def plain_strings(schema: pl.Schema) -> tuple[tuple[str, pl.DataType], ...]:
    """`schema`'s columns and types, with `pl.String` for each `pl.Enum` and `pl.Categorical`."""
    return tuple((name, pl.String if isinstance(dtype, pl.Enum | pl.Categorical) else dtype)
                 for name, dtype in schema.items())


def polars_arrow_schema(schema: pl.Schema) -> dict[str, str]:
    """The metadata Polars writes for a frame of `schema`: its Arrow schema, from which Arrow
    readers restore the types the Parquet columns alone do not say."""
    return {ARROW_SCHEMA_KEY: _arrow_schema(tuple(schema.items()))}


@functools.lru_cache(maxsize=64)
def _arrow_schema(columns: tuple[tuple[str, pl.DataType], ...]) -> str:
    """The "ARROW:schema" value Polars writes for an empty frame of `columns`."""
    buffer = io.BytesIO()
    pl.DataFrame(schema=dict(columns)).write_parquet(buffer)
    metadata = pq.read_metadata(io.BytesIO(buffer.getvalue())).metadata
    return metadata[ARROW_SCHEMA_KEY.encode()].decode()
