"""Other Parquet readers read vtx's outputs as pyarrow does (issue 23, item 10).

pyarrow is the reference; Polars, DuckDB, fastparquet and Spark must give the same column names
and values for every part file, whether its columns were copied as the input encoded them or
encoded anew. What is normalised, and only that: values become Python objects (fastparquet
gives pandas/numpy ones), a missing value is None (fastparquet gives NaN or NaT for floats and
timestamps), and a timestamp is a naive `datetime` (readers differ in unit and time zone
wrapping, and PySpark gives an instant in the local zone: the instants compared are the
same, as naive UTC times).
"""

from __future__ import annotations

import math
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from filter.cli import vtx
from filter.protobuf_split import split_protobuf
from filter.readers import protobuf as pb

from .conftest import DATA, KEY
from .test_readers_protobuf import delimited, make_payload

NOTES = "Vehicle.Service.Notes"  # an exported after-sales string: the detectors judge it
PHONE = "13812345678"
#: The VIN and the notes are dictionary-encoded (pyarrow's default); the phone number moves
#: the notes column onshore value by value, so both sides compute it anew on the copy path.
INPUT = pa.table(
    {
        "vin": ["LRW3E7EK0PC100001", "LRW3E7EK0PC100002", None, "LRW3E7EK0PC100001"] * 3,
        "timestamp": pa.array(
            [datetime(2026, 11, 24, 0, 0, i) for i in range(12)], pa.timestamp("us")
        ),
        NOTES: ["brake pads ok", f"call {PHONE}", None, "tyres"] * 3,
        "Vehicle.Speed": [12.5, None, 80.0, 3.25] * 3,
    }
)


def _normal(value: Any) -> Any:
    """A reader's value as a plain Python one (see the module doc)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp, or NaT
        return None if str(value) == "NaT" else value.to_pydatetime().replace(tzinfo=None)
    if hasattr(value, "item") and not isinstance(value, bytes | str):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return value


def _columns(names: list[str], rows: list[list[Any]]) -> dict[str, list[Any]]:
    return {name: [_normal(row[i]) for row in rows] for i, name in enumerate(names)}


def read_pyarrow(path: Path) -> dict[str, list[Any]]:
    table = pq.read_table(path)
    return {
        name: [_normal(v) for v in table.column(name).to_pylist()] for name in table.column_names
    }


def read_polars(path: Path) -> dict[str, list[Any]]:
    frame = pl.read_parquet(path)
    return {name: [_normal(v) for v in frame[name].to_list()] for name in frame.columns}


def read_duckdb(path: Path) -> dict[str, list[Any]]:
    with duckdb.connect() as con:
        result = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
        names = [d[0] for d in result.description]
        return _columns(names, [list(r) for r in result.fetchall()])


def read_fastparquet(path: Path) -> dict[str, list[Any]]:
    import fastparquet

    frame = fastparquet.ParquetFile(str(path)).to_pandas()
    return {name: [_normal(v) for v in frame[name].tolist()] for name in frame.columns}


READERS = {"polars": read_polars, "duckdb": read_duckdb, "fastparquet": read_fastparquet}


def _split(root: Path, reencode: bool) -> list[Path]:
    """`vtx split` of `INPUT` (the shipped catalogue, after-sales); every published part."""
    source = root / "in.parquet"
    if not source.exists():
        pq.write_table(INPUT, source, row_group_size=5)
    key_file = root / "vtx.key"
    key_file.write_bytes(KEY)
    label = "reencode" if reencode else "copied"
    result = CliRunner().invoke(
        vtx,
        [
            "split",
            str(source),
            "--export",
            str(root / label / "e"),
            "--onshore",
            str(root / label / "o"),
            "--scenario",
            "after-sales",
            "--key-file",
            str(key_file),
            "--quiet",
            *(["--reencode"] if reencode else []),
        ],
    )
    assert result.exit_code == 0, result.output
    parts = sorted((root / label).rglob("*.parquet"))
    assert len(parts) == 2
    return parts


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("interop")
    return {label: _split(root, label == "reencode") for label in ("copied", "reencode")}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("path_kind", ["copied", "reencode"])
def test_every_reader_reads_the_parts_as_pyarrow_does(
    parts: dict[str, list[Path]], path_kind: str, reader: str
) -> None:
    for part in parts[path_kind]:
        expected = read_pyarrow(part)
        assert list(READERS[reader](part)) == list(expected), part
        assert READERS[reader](part) == expected, part


def test_the_parts_hold_what_the_split_promises(parts: dict[str, list[Path]]) -> None:
    """The reference itself: the phone number onshore only, the VIN onshore only, and the
    footer's column paths naming the schema's columns."""
    for path_kind, (export, onshore) in parts.items():
        exported, kept = read_pyarrow(export), read_pyarrow(onshore)
        assert "vin" not in exported and kept["vin"] == INPUT["vin"].to_pylist(), path_kind
        assert f"call {PHONE}" not in exported[NOTES]
        assert kept[NOTES].count(f"call {PHONE}") == 3
        for part in (export, onshore):
            meta = pq.read_metadata(part)
            schema_paths = [meta.schema.column(i).path for i in range(meta.num_columns)]
            for group in range(meta.num_row_groups):
                paths = [
                    meta.row_group(group).column(i).path_in_schema for i in range(meta.num_columns)
                ]
                assert paths == schema_paths, part


# --- Spark -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark() -> Any:
    if shutil.which("java") is None:
        pytest.skip("no java on PATH: Spark cannot start")
    pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark is not installed")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("vtx-interop")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "512m")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        # Naive timestamps (isAdjustedToUTC=false) as TIMESTAMP_NTZ, which PySpark returns as
        # they are, not shifted to the Python process's local zone.
        .config("spark.sql.parquet.inferTimestampNTZ.enabled", "true")
        .getOrCreate()
    )
    yield session
    session.stop()


def _key_value_part(root: Path) -> Path:
    payload = pb.load_schema(DATA / "fleet_test.binpb", "testfleet.Payload")
    stream = root / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), make_payload(payload, "LSV2")))
    split_protobuf(
        stream,
        root / "kv" / "e",
        root / "kv" / "o",
        "after-sales",
        key=KEY,
        message="testfleet.Payload",
        descriptor_set=DATA / "fleet_test.binpb",
    )
    return root / "kv" / "o" / "part-00000-00000.parquet"


def test_spark_reads_the_parts_as_pyarrow_does(
    spark: Any, parts: dict[str, list[Path]], tmp_path: Path
) -> None:
    files = [*parts["copied"], *parts["reencode"], _key_value_part(tmp_path)]
    for part in files:
        expected = read_pyarrow(part)
        frame = spark.read.parquet(str(part))
        # PySpark gives an instant (TIMESTAMP, isAdjustedToUTC=true) as a naive local time
        zoned = [type(f.dataType).__name__ == "TimestampType" for f in frame.schema.fields]
        rows = [[_spark(v, z) for v, z in zip(r, zoned, strict=True)] for r in frame.collect()]
        assert frame.columns == list(expected), part
        assert _columns(frame.columns, rows) == expected, part


def _spark(value: Any, zoned: bool = False) -> Any:
    """A Spark Row value as pyarrow's to_pylist gives it: nested rows as dicts, bytes from
    bytearray, an instant (`zoned`, given in the local zone) as its UTC time."""
    if zoned and isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if hasattr(value, "asDict"):
        return {k: _spark(v) for k, v in value.asDict().items()}
    if isinstance(value, list):
        return [_spark(v) for v in value]
    if isinstance(value, bytearray):
        return bytes(value)
    return _normal(value)
