"""Coded string columns that read back as strings (filter/formats/parquet/metadata.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from polars.testing import assert_frame_equal

from filter.formats.parquet.metadata import ARROW_SCHEMA_KEY, plain_string_metadata

PLAIN = pl.DataFrame({
    "key": ["Soc", "Gear", None, "Soc"],
    "vin": ["LSV1", "LSV1", "LSV2", None],
    "value": [1.5, None, 3.0, 4.0],
    "where": [{"lat": 31.2}, None, {"lat": 30.0}, {"lat": None}],
})


def test_coded_columns_read_back_as_the_plain_frame(tmp_path: Path) -> None:
    coded = PLAIN.with_columns(
        pl.col("key").cast(pl.Enum(["Gear", "Soc"])), pl.col("vin").cast(pl.Categorical))
    path = tmp_path / "coded.parquet"
    coded.lazy().sink_parquet(path, metadata=plain_string_metadata(coded.schema))
    assert_frame_equal(pl.read_parquet(path), PLAIN)
    arrow = pq.read_schema(path)
    assert arrow.field("key").type == arrow.field("vin").type == pa.large_string()
    # Stored as Parquet stores any repeated strings: a dictionary, then codes.
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
    assert chunk.has_dictionary_page and chunk.path_in_schema == "key"


def test_a_plain_schema_gets_the_schema_polars_writes_itself(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    PLAIN.write_parquet(path)
    own = pq.read_metadata(path).metadata[ARROW_SCHEMA_KEY.encode()].decode()
    assert plain_string_metadata(PLAIN.schema) == {ARROW_SCHEMA_KEY: own}
