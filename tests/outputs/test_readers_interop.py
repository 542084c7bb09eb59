"""Other Parquet readers read vtx's outputs as pyarrow does (issue 23, item 10).

pyarrow is the reference. Every part file vtx writes (columns copied as the input encoded them,
computed anew on the byte-copy path, `--reencode`, key/value parts from vtx's own encoder,
plain protobuf parts) is read by Polars, DuckDB and fastparquet, for random schemas and data
(the strategies of `tests/test_properties.py`) and for fixed cases; a few by Spark. Each must
give pyarrow's column names and values, and every page CRC a part claims must hold.

What is normalised, and why (nothing else is):
- values become plain Python objects: fastparquet gives pandas/numpy scalars, Spark `Row`s
  (as dicts) and `bytearray`s;
- a timestamp is a naive `datetime` of its UTC time: readers differ in unit and in how they
  attach a zone, and PySpark gives an instant in the process's local zone;
- a float NaN is one sentinel (`NAN`), so that NaN equals NaN and never equals null;
- fastparquet, and only it: a float null and NaN are both None (pandas keeps both as NaN in a
  float64 column; pandas' NA and NaT are None too); it gives a struct as one column per leaf,
  named by its dotted path (a null struct: nulls in every leaf), so pyarrow's values are
  flattened alike; and list columns are compared by name only: it cannot read some of them
  in pyarrow's own files either (`test_fastparquet_cannot_read_some_lists_...`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filter import split
from filter.cli import vtx
from filter.engines.run import split_protobuf
from filter.formats.protobuf.descriptors import load_schema
from tests.conftest import DATA, KEY
from tests.engines.test_protobuf_split import record_stream
from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload
from tests.test_properties import SENSITIVE, build, catalogues, frames, schemas, unique_paths

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

Columns = dict[str, list[Any]]


class _NaN:
    """A float NaN, read by any reader: equal to itself, unlike NaN, and never to None."""

    def __repr__(self) -> str:
        return "NaN"


NAN = _NaN()


def _normal(value: Any) -> Any:
    """A reader's value as a plain Python one (see the module doc)."""
    if value is None or type(value).__name__ == "NAType":  # pandas' NA
        return None
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp, or NaT
        return None if str(value) == "NaT" else _normal(value.to_pydatetime())
    if hasattr(value, "item") and not isinstance(value, bytes | str):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and value != value:
        return NAN
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _columns(names: list[str], rows: list[list[Any]]) -> Columns:
    return {name: [_normal(row[i]) for row in rows] for i, name in enumerate(names)}


def read_pyarrow(path: Path) -> Columns:
    table = pq.read_table(path)
    return {
        name: [_normal(v) for v in table.column(name).to_pylist()] for name in table.column_names
    }


def read_polars(path: Path) -> Columns:
    frame = pl.read_parquet(path)
    return {name: [_normal(v) for v in frame[name].to_list()] for name in frame.columns}


def read_duckdb(path: Path) -> Columns:
    with duckdb.connect() as con:
        result = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
        names = [d[0] for d in result.description]
        return _columns(names, [list(r) for r in result.fetchall()])


def read_fastparquet(path: Path, columns: list[str] | None = None) -> Columns:
    """fastparquet's reading of `path` (of its `columns`, named as it names them; all if
    None): a flattened struct, NaN as null (see the module doc)."""
    import fastparquet

    frame = fastparquet.ParquetFile(str(path)).to_pandas(columns=columns)
    return {name: [_no_nan(_normal(v)) for v in frame[name].tolist()] for name in frame.columns}


def fastparquet_columns(path: Path) -> list[str]:
    """The columns fastparquet says `path` has: a struct's leaves by their dotted paths."""
    import fastparquet

    return list(fastparquet.ParquetFile(str(path)).columns)


def fastparquet_view(path: Path) -> dict[str, list[Any] | None]:
    """pyarrow's reading of `path` as fastparquet gives it (see the module doc): a struct as
    a column per leaf, named by its dotted path (a null struct: nulls in every leaf), NaN as
    null; a list column (or list leaf) as None, for its name only."""
    table = pq.read_table(path)
    view: dict[str, list[Any] | None] = {}

    def walk(name: str, kind: pa.DataType, values: list[Any]) -> None:
        if pa.types.is_struct(kind):
            for field in kind:
                walk(
                    f"{name}.{field.name}",
                    field.type,
                    [None if v is None else v[field.name] for v in values],
                )
        elif pa.types.is_nested(kind):
            view[name] = None
        else:
            view[name] = [_no_nan(_normal(v)) for v in values]

    for field in table.schema:
        walk(field.name, field.type, table.column(field.name).to_pylist())
    return view


def _no_nan(value: Any) -> Any:
    return None if value is NAN else value


READERS: dict[str, Callable[[Path], Columns]] = {"polars": read_polars, "duckdb": read_duckdb}


def assert_read_alike(
    part: Path, readers: tuple[str, ...] = ("polars", "duckdb", "fastparquet")
) -> None:
    """Every reader named gives `part`'s columns and values as pyarrow does, and its pages'
    CRCs, where it claims any, hold."""
    expected = read_pyarrow(part)
    pq.read_table(part, page_checksum_verification=True)
    for reader in readers:
        if reader == "fastparquet":
            view = fastparquet_view(part)
            assert sorted(fastparquet_columns(part)) == sorted(view), part
            compared = [name for name, values in view.items() if values is not None]
            assert read_fastparquet(part, compared) == {n: view[n] for n in compared}, part
            continue
        got = READERS[reader](part)
        assert list(got) == list(expected), (part, reader)
        assert got == expected, (part, reader)


def test_fastparquet_cannot_read_some_lists_of_pyarrows_files_either(tmp_path: Path) -> None:
    """Why `fastparquet_view` leaves list columns out: fastparquet (2026.9) reads a list of
    PLAIN-encoded strings as all nulls, and cannot find a list column whose name has a dot
    (a VSS path), whoever wrote the file. When this fails, it reads them: compare lists too."""
    path = tmp_path / "lists.parquet"
    table = pa.table({"l": [["a"], None, ["b", "c"]], "Vehicle.Dtcs": [[1], None, []]})
    pq.write_table(table, path, use_dictionary=False)
    assert pq.read_table(path).equals(table)
    assert read_fastparquet(path, ["l"]) == {"l": [None, None, None]}
    with pytest.raises(KeyError):
        read_fastparquet(path, ["Vehicle.Dtcs"])


# --- outputs of fixed inputs: the byte-copy path, --reencode, protobuf ----------------------


def _split(root: Path, reencode: bool) -> list[Path]:
    """`vtx split` of `INPUT` (the shipped catalogue, after-sales); every published part."""
    source = root / "in.parquet"
    if not source.exists():
        pq.write_table(INPUT, source, row_group_size=5)
    key_file = root / "vtx.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
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
    parts = sorted((root / label).rglob("part-*.parquet"))
    assert len(parts) == 2
    return parts


def _key_value_parts(root: Path) -> list[Path]:
    """The parts of a key/value stream (vtx's own encoder writes them)."""
    payload = load_schema(DATA / "fleet_test.binpb", "testfleet.Payload")
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
    return [root / "kv" / side / "part-00000-00000.parquet" for side in "eo"]


def _plain_parts(root: Path) -> list[Path]:
    """The parts of a stream of plain `Record`s (nested messages, a repeated string)."""
    stream = record_stream(root / "records.bin")
    split_protobuf(
        stream,
        root / "plain" / "e",
        root / "plain" / "o",
        "after-sales",
        key=KEY,
        message="vtx.telemetry.v1.Record",
    )
    return [root / "plain" / side / "part-00000-00000.parquet" for side in "eo"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("interop")
    made = {label: _split(root, label == "reencode") for label in ("copied", "reencode")}
    return {**made, "key-value": _key_value_parts(root), "plain": _plain_parts(root)}


@pytest.mark.parametrize("reader", ["polars", "duckdb", "fastparquet"])
@pytest.mark.parametrize("path_kind", ["copied", "reencode", "key-value", "plain"])
def test_every_reader_reads_the_parts_as_pyarrow_does(
    parts: dict[str, list[Path]], path_kind: str, reader: str
) -> None:
    for part in parts[path_kind]:
        assert_read_alike(part, (reader,))


@pytest.mark.parametrize("path_kind", ["copied", "reencode", "key-value", "plain"])
def test_every_reader_reads_a_published_directory_as_it_is(
    parts: dict[str, list[Path]], path_kind: str
) -> None:
    """A pipeline points its reader at the output directory, no glob: the manifest file adds
    no row and no column, whatever the reader (Spark and Ray: below and in test_ray_split)."""
    import duckdb
    import pyarrow.dataset as ds

    for part in parts[path_kind]:
        directory = part.parent
        listed = sorted(directory.glob("part-*.parquet"))
        expected = pl.concat([pl.read_parquet(p) for p in listed])
        assert pl.scan_parquet(directory).collect().equals(expected), directory
        assert pl.read_parquet(directory).equals(expected), directory
        table = ds.dataset(directory, format="parquet").to_table()
        assert (table.num_rows, table.column_names) == (expected.height, expected.columns)
        relation = duckdb.sql(f"select * from read_parquet('{directory}')")
        assert relation.columns == expected.columns
        assert duckdb.sql(f"select count(*) from read_parquet('{directory}')").fetchall() == [
            (expected.height,)]


def test_the_parts_hold_what_the_split_promises(parts: dict[str, list[Path]]) -> None:
    """The reference itself: the phone number onshore only, the VIN onshore only, and the
    footer's column paths naming the schema's columns."""
    for path_kind in ("copied", "reencode"):
        export, onshore = parts[path_kind]
        exported, kept = read_pyarrow(export), read_pyarrow(onshore)
        assert "vin" not in exported and kept["vin"] == INPUT["vin"].to_pylist(), path_kind
        assert f"call {PHONE}" not in exported[NOTES]
        assert kept[NOTES].count(f"call {PHONE}") == 3
    for part in [p for kind in parts.values() for p in kind]:
        meta = pq.read_metadata(part)
        schema_paths = [meta.schema.column(i).path for i in range(meta.num_columns)]
        for group in range(meta.num_row_groups):
            paths = [
                meta.row_group(group).column(i).path_in_schema for i in range(meta.num_columns)
            ]
            assert paths == schema_paths, part


# --- outputs of random inputs ----------------------------------------------------------------


def _planted(frame: pl.DataFrame, picks: st.DataObject) -> pl.DataFrame:
    """`frame` with values the detectors hit in some rows of its top-level plain strings: a
    column they move value by value is computed anew, on both sides."""
    for name, dtype in frame.schema.items():
        if dtype != pl.String or name == "vin" or not frame.height:
            continue
        chosen = picks.draw(
            st.lists(
                st.sampled_from([None, *SENSITIVE]), min_size=frame.height, max_size=frame.height
            )
        )
        values = [p or v for p, v in zip(chosen, frame[name].to_list(), strict=True)]
        frame = frame.with_columns(pl.Series(name, values, dtype=dtype))
    return frame


def node_paths(schema: pl.Schema) -> list[tuple[str, tuple[str, ...]]]:
    """Every column's dotted path and, inside structs, every field's (struct fields too), each
    with the paths of the structs it is in."""
    found: list[tuple[str, tuple[str, ...]]] = []

    def walk(name: str, dtype: pl.DataType, above: tuple[str, ...]) -> None:
        found.append((name.casefold(), above))
        if isinstance(dtype, pl.Struct):
            for field in dtype.fields:
                walk(f"{name}.{field.name}", field.dtype, (*above, name.casefold()))

    for name, dtype in schema.items():
        walk(name, dtype, ())
    return found


def fastparquet_unambiguous(schema: pl.Schema) -> bool:
    """No dotted path is read two ways: fastparquet names struct fields by their dotted paths
    and takes a dot in a name as a step into a struct, so a column ``a.b`` beside a struct
    ``a`` with a field ``b``, or beside a column ``a``, is misread or fails to read, whoever
    wrote the file."""
    nodes = node_paths(schema)
    paths = [path for path, _ in nodes]
    if len(paths) != len(set(paths)):
        return False
    known = set(paths)
    for path, above in nodes:
        steps = path.split(".")
        prefixes = {".".join(steps[:i]) for i in range(1, len(steps))}
        if (prefixes & known) - set(above):
            return False
    return True


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # a fixed set of cases: CI must not pass or fail by chance
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(schema=schemas().filter(unique_paths).filter(fastparquet_unambiguous),
       data=catalogues(), rows=st.data())
def test_every_reader_reads_random_outputs_as_pyarrow_does(schema, data, rows) -> None:
    """The schemas, catalogues and data of `tests/test_properties.py`, written by Polars or
    by pyarrow (every string dictionary-encoded), split by copying chunks and by
    `--reencode`: every part file reads alike."""
    catalogue = build(data)
    frame = _planted(rows.draw(frames(schema)), rows)
    writer = rows.draw(st.sampled_from(["polars", "pyarrow"]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "in.parquet"
        if writer == "polars":
            frame.write_parquet(source)
        else:
            pq.write_table(frame.to_arrow(), source, row_group_size=3)
        for reencode in (False, True):
            out = root / str(reencode)
            split(
                source, out / "e", out / "o", "s", key=KEY, catalogue=catalogue, reencode=reencode
            )
            for part in sorted(out.rglob("part-*.parquet")):
                assert_read_alike(part)


# --- Spark -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local Spark session for the module: offline, one core, no UI."""
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


def test_spark_reads_the_parts_as_pyarrow_does(spark: Any, parts: dict[str, list[Path]]) -> None:
    """Byte-copy parts (a dictionary VIN and notes computed anew onshore), `--reencode`
    parts, key/value parts and plain protobuf parts."""
    for part in [p for kind in parts.values() for p in kind]:
        expected = read_pyarrow(part)
        frame = spark.read.parquet(str(part))
        # PySpark gives an instant (TIMESTAMP, isAdjustedToUTC=true) as a naive local time
        zoned = [type(f.dataType).__name__ == "TimestampType" for f in frame.schema.fields]
        rows = [[_spark(v, z) for v, z in zip(r, zoned, strict=True)] for r in frame.collect()]
        assert frame.columns == list(expected), part
        assert _columns(frame.columns, rows) == expected, part


def test_spark_reads_a_published_directory_as_it_is(
    spark: Any, parts: dict[str, list[Path]]
) -> None:
    for part in [p for kind in parts.values() for p in kind]:
        directory = part.parent
        rows = sum(pq.read_metadata(p).num_rows for p in directory.glob("part-*.parquet"))
        frame = spark.read.parquet(str(directory))
        assert frame.columns == pq.read_schema(part).names, directory
        assert frame.count() == rows, directory


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
