"""The Parquet encoder of key/value rows (filter/formats/parquet/encoder.py) against Polars' writer.

Polars' writer is the reference: for any frame, the file `encode_file` makes from its columns
must read back, in Polars, pyarrow and (where installed) DuckDB, exactly as the file Polars
writes for the same frame: the same values, the same types and Arrow schema, the same null
counts and bounds in the statistics. Sparse columns must read back as the dense ones.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import io
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from filter.formats.parquet import column_chunks, entry_columns
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.array_buffers import UnsupportedColumn
from filter.formats.parquet.column_chunks import MIN_COMPRESSED_PAGE, column_chunk, page_header
from filter.formats.parquet.encoder import encode_file
from filter.formats.parquet.hybrid_encoding import hybrid, rle_hybrid, rle_runs
from filter.formats.parquet.leaf_columns import Repeated, Sparse
from filter.formats.parquet.metadata import plain_string_metadata
from filter.formats.protobuf import batches as protobuf_batches
from filter.outputs.parts import PARQUET_OPTIONS

try:
    import duckdb
except ImportError:  # optional: the comparison then leaves DuckDB out
    duckdb = None


def polars_file(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_parquet(out, **PARQUET_OPTIONS, metadata=plain_string_metadata(frame.schema))
    return out.getvalue()


def assert_same_files(mine: bytes, reference: bytes) -> None:
    """Read back alike by every reader, with the same statistics."""
    assert_frame_equal(pl.read_parquet(io.BytesIO(mine)), pl.read_parquet(io.BytesIO(reference)))
    a, b = pq.read_table(io.BytesIO(mine)), pq.read_table(io.BytesIO(reference))
    assert a.schema.equals(b.schema, check_metadata=True)
    assert_frame_equal(pl.from_arrow(a), pl.from_arrow(b))  # NaN-safe, unlike Table.equals
    if duckdb is not None:
        with duckdb.connect() as db:
            got = [db.execute("select * from read_parquet(?)", [p]).fetchall()
                   for p in _temporary(mine, reference)]
        assert _nan_safe(got[0]) == _nan_safe(got[1])
    _assert_same_statistics(pq.read_metadata(io.BytesIO(mine)),
                            pq.read_metadata(io.BytesIO(reference)))


def _temporary(*datas: bytes) -> list[str]:
    """The files DuckDB reads: in a directory of this module's, removed at exit."""
    paths = []
    for data in datas:
        path = _scratch() / f"{len(list(_scratch().iterdir()))}.parquet"
        path.write_bytes(data)
        paths.append(str(path))
    return paths


@functools.cache
def _scratch() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="vtx-encoder-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _nan_safe(value: Any) -> Any:
    """`value` with NaN spelled out (NaN != NaN), in lists, tuples and dicts too."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, list | tuple):
        return type(value)(_nan_safe(v) for v in value)
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    return value


def _assert_same_statistics(mine: pq.FileMetaData, reference: pq.FileMetaData) -> None:
    assert mine.num_rows == reference.num_rows
    if reference.num_row_groups == 0:
        return
    assert mine.num_row_groups == 1
    for i in range(mine.num_columns):
        got = mine.row_group(0).column(i)
        want = _merged(reference, i)
        assert got.path_in_schema == want["path"]
        assert got.statistics.null_count == want["nulls"], want["path"]
        if want["bounds"] is not None and got.statistics.has_min_max:
            assert (got.statistics.min, got.statistics.max) == want["bounds"], want["path"]
        elif want["bounds"] is not None:
            pytest.fail(f"{want['path']}: no bounds, Polars writes {want['bounds']}")


def _merged(metadata: pq.FileMetaData, column: int) -> dict[str, Any]:
    """A column's statistics over all of Polars' row groups."""
    nulls, bounds, path = 0, None, None
    for g in range(metadata.num_row_groups):
        chunk = metadata.row_group(g).column(column)
        path = chunk.path_in_schema
        stats = chunk.statistics
        nulls += stats.null_count
        if stats.has_min_max:
            low, high = stats.min, stats.max
            bounds = (low, high) if bounds is None else (min(bounds[0], low),
                                                         max(bounds[1], high))
    return {"path": path, "nulls": nulls, "bounds": bounds}


# --- frames of every type the encoder takes -------------------------------------------------

_UTC = dt.UTC
_COLUMNS: dict[str, tuple[pl.DataType, st.SearchStrategy[Any]]] = {
    "i8": (pl.Int8, st.integers(-128, 127)),
    "i16": (pl.Int16, st.integers(-(2**15), 2**15 - 1)),
    "i32": (pl.Int32, st.integers(-(2**31), 2**31 - 1)),
    "i64": (pl.Int64, st.integers(-(2**63), 2**63 - 1)),
    "u32": (pl.UInt32, st.integers(0, 2**32 - 1)),
    "u64": (pl.UInt64, st.integers(0, 2**64 - 1)),
    "f32": (pl.Float32, st.floats(width=32)),
    "f64": (pl.Float64, st.floats()),
    "flag": (pl.Boolean, st.booleans()),
    "text": (pl.String, st.text(max_size=5)),
    "blob": (pl.Binary, st.binary(max_size=5)),
    "time": (pl.Datetime("us", "UTC"), st.datetimes(
        min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1),
        timezones=st.just(_UTC))),
    "coded": (pl.Enum(["b", "a", "ü", ""]), st.sampled_from(["b", "a", "ü", ""])),
}
_STRUCT = pl.Struct({"x": pl.Boolean, "y": pl.Float32, "z": pl.String, "t": pl.Int32})


@st.composite
def frames(draw: st.DrawFn) -> pl.DataFrame:
    rows = draw(st.integers(1, 40))
    names = draw(st.lists(st.sampled_from(sorted(_COLUMNS)), min_size=1, max_size=6,
                          unique=True))
    columns = {}
    for name in names:
        dtype, values = _COLUMNS[name]
        density = draw(st.sampled_from([0.0, 0.3, 1.0]))
        cells = [draw(values) if draw(st.floats(0, 1)) < density or density == 1.0 else None
                 for _ in range(rows)]
        columns[name] = pl.Series(name, cells, dtype=dtype)
    if draw(st.booleans()):
        cells = []
        for _ in range(rows):
            if draw(st.booleans()):
                cells.append(None)
            else:
                cells.append({"x": draw(st.none() | st.booleans()),
                              "y": draw(st.none() | st.floats(width=32)),
                              "z": draw(st.none() | st.text(max_size=3)),
                              "t": draw(st.integers(-5, 5))})
        columns["member"] = pl.Series("member", cells, dtype=_STRUCT)
    return pl.DataFrame(columns)


def arrow_columns(frame: pl.DataFrame) -> list[pa.Array]:
    return [frame[c].to_arrow() for c in frame.columns]


def sparse_columns(frame: pl.DataFrame) -> list[Any]:
    """Every nullable column as a `Sparse` column of its valid rows."""
    out: list[Any] = []
    for name in frame.columns:
        series = frame[name]
        rows = np.flatnonzero(series.is_not_null().to_numpy())
        out.append(Sparse(rows, series.gather(rows).to_arrow(), frame.height))
    return out


@settings(max_examples=120, deadline=None)
@given(frame=frames())
def test_property_reads_back_as_polars_writes_it(frame: pl.DataFrame) -> None:
    reference = polars_file(frame)
    assert_same_files(encode_file(arrow_columns(frame), frame.schema), reference)
    assert_same_files(encode_file(sparse_columns(frame), frame.schema), reference)


@settings(max_examples=120, deadline=None)
@given(messages=frames(), data=st.data())
def test_property_columns_repeated_per_message_read_back_as_polars_writes_them(
    messages: pl.DataFrame, data: st.DataObject
) -> None:
    # Entries take on their message's values: each message's row, 0 to 3 times over (as
    # many as it has entries on a side), written as runs (`Repeated`).
    counts = np.array(data.draw(st.lists(st.integers(0, 3), min_size=messages.height,
                                         max_size=messages.height)), dtype=np.int64)
    if not counts.sum():
        counts[0] = 1
    rows = messages[np.repeat(np.arange(messages.height), counts)]
    columns = [rows[c].to_arrow() if isinstance(t, pl.Struct)  # no runs of groups
               else Repeated(messages[c].to_arrow(), counts, rows.height)
               for c, t in messages.schema.items()]
    assert_same_files(encode_file(columns, rows.schema), polars_file(rows))


def test_dictionaries_with_repeated_values_and_unused_entries() -> None:
    # A column that repeats per message comes as a dictionary of the message values: some
    # values twice, some never used; the bounds are those of the values used.
    dictionary = pa.array([5, 3, 5, 9, 1], type=pa.int64())
    codes = pa.array([0, 0, 1, None, 2, 1], type=pa.int32())
    column = pa.DictionaryArray.from_arrays(codes, dictionary)
    frame = pl.DataFrame({"n": [5, 5, 3, None, 5, 3]})
    mine = encode_file([column], frame.schema)
    assert_same_files(mine, polars_file(frame))
    stats = pq.read_metadata(io.BytesIO(mine)).row_group(0).column(0).statistics
    assert (stats.min, stats.max, stats.null_count) == (3, 5, 1)


def test_no_rows_is_the_file_polars_writes() -> None:
    frame = pl.DataFrame(schema={"a": pl.Int64, "s": _STRUCT, "c": pl.Enum(["x"])})
    mine = encode_file([frame[c].to_arrow() for c in frame.columns], frame.schema)
    assert_frame_equal(pl.read_parquet(io.BytesIO(mine)),
                       frame.with_columns(pl.col("c").cast(pl.String)))


def test_an_array_type_it_does_not_encode_is_refused(monkeypatch) -> None:
    frame = pl.DataFrame({"l": [[1, 2], [3]]})
    with pytest.raises(UnsupportedColumn):
        encode_file([frame["l"].to_arrow()], frame.schema)
    monkeypatch.setattr(column_chunks, "MAX_PAGE_BYTES", 8)
    frame = pl.DataFrame({"s": ["a long enough string"]})
    with pytest.raises(UnsupportedColumn, match="a page of"):
        encode_file([frame["s"].to_arrow()], frame.schema)


def test_a_side_the_encoder_refuses_is_written_by_polars(monkeypatch, tmp_path) -> None:
    # The split falls back to Polars' writer for that side: the same rows, the same files'
    # contents as read back.
    from filter.engines.run import split_protobuf
    from filter.formats.protobuf.descriptors import load_schema
    from tests.conftest import DATA, KEY
    from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload

    schema = load_schema(DATA / "fleet_test.binpb", "testfleet.Payload")
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(*(make_payload(schema, f"V{i}") for i in range(5))))
    outputs = {}
    for refuse in (False, True):
        if refuse:
            def refusing(*args: Any, **kwargs: Any) -> bytes:
                raise UnsupportedColumn("refused")
            monkeypatch.setattr(entry_columns, "encode_file", refusing)
        out = tmp_path / str(refuse)
        split_protobuf(
            stream, out / "e", out / "o", "after-sales", key=KEY, message="testfleet.Payload",
            descriptor_set=DATA / "fleet_test.binpb")
        outputs[refuse] = [pl.read_parquet(out / side / "*.parquet") for side in ("e", "o")]
    for encoded, written in zip(outputs[False], outputs[True], strict=True):
        assert encoded.height > 0
        assert_frame_equal(encoded, written)


# --- the RLE / bit-packed hybrid ------------------------------------------------------------


def _run_header(data: bytes, pos: int) -> tuple[int, int]:
    """A run's header (a ULEB128 varint) at `pos`, and where the run's data starts."""
    header, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        header |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return header, pos


def decode_hybrid(data: bytes, width: int, count: int) -> list[int]:
    """A reference decoder, after the Parquet format's description of the encoding."""
    out: list[int] = []
    pos = 0
    value_bytes = (width + 7) // 8
    while len(out) < count:
        header, pos = _run_header(data, pos)
        if header & 1:  # bit-packed groups of 8
            groups = header >> 1
            bits = int.from_bytes(data[pos:pos + groups * width], "little")
            pos += groups * width
            out.extend((bits >> (width * k)) & ((1 << width) - 1) for k in range(groups * 8))
        else:
            value = int.from_bytes(data[pos:pos + value_bytes], "little")
            pos += value_bytes
            out.extend([value] * (header >> 1))
    assert pos == len(data)
    return out[:count]


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 24), runs=st.lists(
    st.tuples(st.integers(0, 2**24 - 1), st.integers(1, 40)), min_size=1, max_size=30))
def test_property_hybrid_round_trips(width: int, runs: list[tuple[int, int]]) -> None:
    values = [v % (1 << width) for v, n in runs for _ in range(n)]
    for dtype in (np.uint8, np.int32, np.uint64):
        if width > np.iinfo(dtype).bits:
            continue
        encoded = rle_hybrid(np.array(values, dtype=dtype), width).tobytes()
        assert decode_hybrid(encoded, width, len(values)) == values
        assert decode_hybrid(hybrid(np.array(values, dtype=dtype), width), width,
                             len(values)) == values


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 24), runs=st.lists(
    st.tuples(st.integers(0, 2**24 - 1), st.integers(0, 2**31 - 1)), max_size=30))
def test_property_runs_round_trip(width: int, runs: list[tuple[int, int]]) -> None:
    # Values repeated so many times each (0: not at all): one RLE run per stretch.
    values = np.array([v % (1 << width) for v, _ in runs], dtype=np.int32)
    counts = np.array([n for _, n in runs], dtype=np.int64)
    encoded = rle_runs(values, counts, width).tobytes()
    stretches = [(v, n) for v, n in zip(values.tolist(), counts.tolist(), strict=True) if n]
    merged: list[list[int]] = []
    for v, n in stretches:
        if merged and merged[-1][0] == v:
            merged[-1][1] += n
        else:
            merged.append([v, n])
    assert decode_runs(encoded, width) == [tuple(m) for m in merged]


def decode_runs(data: bytes, width: int) -> list[tuple[int, int]]:
    """The (value, count) of each run of an encoding made of RLE runs only."""
    runs, pos = [], 0
    while pos < len(data):
        header, pos = _run_header(data, pos)
        assert not header & 1, "a bit-packed run"
        runs.append((int.from_bytes(data[pos:pos + (width + 7) // 8], "little"), header >> 1))
        pos += (width + 7) // 8
    return runs


@settings(max_examples=200, deadline=None)
@given(width=st.integers(2, 24), values=st.lists(st.integers(0, 2**24 - 1), max_size=200))
def test_property_values_without_runs_round_trip(width: int, values: list[int]) -> None:
    # Codes that change at nearly every row are bit-packed whole, without looking for runs.
    values = [v % (1 << width) for v in values]
    encoded = hybrid(np.array(values, dtype=np.int32), width)
    assert decode_hybrid(encoded, width, len(values)) == values


@settings(max_examples=300, deadline=None)
@given(runs=st.lists(st.tuples(st.booleans(), st.integers(1, 100)), min_size=0, max_size=40),
       kind=st.sampled_from([np.bool_, np.uint8, np.int32]))
def test_property_one_bit_values_round_trip(runs: list[tuple[bool, int]], kind: type) -> None:
    # Definition levels of optional columns: long runs of nulls or values between mixed
    # stretches, packed a byte at a time (`rle_bits`), the last byte part padding.
    values = [int(bit) for bit, n in runs for _ in range(n)]
    encoded = hybrid(np.array(values, dtype=kind), 1)
    assert decode_hybrid(encoded, 1, len(values)) == values
    if len(values) >= 64 and len(set(values)) == 1:  # one long run: an RLE run, not bytes
        assert len(encoded) < 8


# --- key/value rows of every scalar type ----------------------------------------------------


def test_key_value_rows_of_every_type_encode_as_polars_writes_them(tmp_path) -> None:
    from filter import load_catalogue
    from filter.apply.kv_decoded_routing import split_decoded
    from filter.apply.pseudonym import token_mapping
    from tests.conftest import KEY
    from tests.formats.protobuf.test_kv_decoder import (
        FieldProto,
        delimited,
        scalar_schema,
        scalar_values,
    )

    schema = scalar_schema(tmp_path, extra_envelope=FieldProto(  # the time, as the key names it
        name="ts", number=9, type=FieldProto.TYPE_INT64, label=FieldProto.LABEL_OPTIONAL,
        json_name="ts"))
    messages = []
    for sign in (1, -1):
        msg = schema.message_class(vin=f"V{sign}", seconds=sign * 5, fixed=7, count=sign * 3,
                                   ts=sign * 10)
        leaf = msg.data.add(key=2).value.all
        for name, value in scalar_values(sign).items():
            msg.data.add(key=1).value.__setattr__(f"m_{name}", value)
            setattr(leaf, name, value)
        msg.data.add(key=2).value.all.SetInParent()  # a member message with no leaf set
        msg.data.add(key=0)  # an entry with no value
        messages.append(msg.SerializeToString())
    messages.append(schema.message_class().SerializeToString())  # no vin, no entries
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(*messages))
    (batch,) = protobuf_batches.iter_batches(schema, path, "delimited")
    assert batch.entries is not None
    tokens = token_mapping(KEY, batch.distinct("vin"))
    catalogue = load_catalogue()
    rows = split_decoded(batch.entries, catalogue, "after-sales", tokens, coded=True)
    encoded = split_decoded(batch.entries, catalogue, "after-sales", tokens, coded=True,
                            encoded=True)
    assert encoded.files is not None
    for file, side in zip(encoded.files, (rows.export, rows.onshore), strict=True):
        assert file is not None
        want = side.collect()
        assert_same_files(file, polars_file(want))
    onshore = pl.read_parquet(io.BytesIO(encoded.files[1]))
    assert onshore.height == 2 * (len(scalar_values(1)) + 3)
    # proto2: a leaf never set is null, in a member message that is there
    assert onshore["value_all"].drop_nulls().struct.field("s32").to_list() == [
        -(2**31), None, -(2**31), None]


# --- page headers -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from([0, 2]), size=st.integers(0, 2**31 - 1),
       compressed=st.integers(0, 2**31 - 1), count=st.integers(0, 2**31 - 1),
       encoding=st.sampled_from([0, 3, 8, 9]))
def test_property_page_headers_are_what_thrift_encodes(
    kind: int, size: int, compressed: int, count: int, encoding: int
) -> None:
    i32 = thrift.I32
    header: thrift.Struct = {1: thrift.Field(i32, kind), 2: thrift.Field(i32, size),
                             3: thrift.Field(i32, compressed)}
    if kind == 0:
        header[5] = thrift.Field(thrift.STRUCT, {
            1: thrift.Field(i32, count), 2: thrift.Field(i32, encoding),
            3: thrift.Field(i32, 3), 4: thrift.Field(i32, 3)})
    else:
        header[7] = thrift.Field(thrift.STRUCT, {
            1: thrift.Field(i32, count), 2: thrift.Field(i32, 0)})
    encoded = page_header(kind, size, compressed, count, encoding)
    assert encoded == thrift.encode(header)
    assert thrift.decode(encoded) == (header, len(encoded))


i64 = st.integers(0, 2**62)


@settings(max_examples=200, deadline=None)
@given(start=i64, values=i64, uncompressed=i64, compressed=i64, data_offset=i64,
       dictionary_offset=st.none() | i64, nulls=i64, codec=st.sampled_from([0, 6]),
       bounds=st.none() | st.tuples(st.binary(max_size=40), st.binary(max_size=40)),
       path=st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=3),
       encodings=st.lists(st.sampled_from([0, 3, 8, 9]), min_size=1, max_size=3))
def test_property_column_chunks_are_what_thrift_encodes(
    start: int, values: int, uncompressed: int, compressed: int, data_offset: int,
    dictionary_offset: int | None, nulls: int, codec: int,
    bounds: tuple[bytes, bytes] | None, path: list[str], encodings: list[int],
) -> None:
    def i64_field(v: int) -> thrift.Field:
        return thrift.Field(thrift.I64, v)

    statistics: thrift.Struct = {3: i64_field(nulls)}
    if bounds is not None:
        statistics[5] = thrift.Field(thrift.BINARY, bounds[1])
        statistics[6] = thrift.Field(thrift.BINARY, bounds[0])
    prefix_fields: thrift.Struct = {
        1: thrift.Field(thrift.I32, 2),
        2: thrift.Field(thrift.LIST, thrift.ThriftList(thrift.I32, encodings)),
        3: thrift.Field(thrift.LIST, thrift.ThriftList(
            thrift.BINARY, [p.encode() for p in path])),
    }
    meta: thrift.Struct = {**prefix_fields, 4: thrift.Field(thrift.I32, codec),
                           5: i64_field(values), 6: i64_field(uncompressed),
                           7: i64_field(compressed), 9: i64_field(data_offset),
                           12: thrift.Field(thrift.STRUCT, statistics)}
    if dictionary_offset is not None:
        meta[11] = i64_field(dictionary_offset)
    chunk = {2: i64_field(start), 3: thrift.Field(thrift.STRUCT, meta)}
    prefix = thrift.encode(prefix_fields)[:-1]
    encoded = column_chunk(start, prefix, codec, values, uncompressed, compressed,
                           data_offset, dictionary_offset,
                           (nulls, *(bounds if bounds is not None else (None, None))))
    assert encoded == thrift.encode(chunk)


def test_only_chunks_with_a_page_worth_compressing_are_compressed() -> None:
    rows = 50_000
    schema = pl.Schema({"dense": pl.Int64, "sparse": pl.Int64, "empty": pl.Int64})
    data = encode_file([pa.array(np.arange(rows, dtype=np.int64)),
                        Sparse(np.array([7, 70]), pa.array([1, 2], pa.int64()), rows),
                        Sparse(np.zeros(0, np.int64), pa.array([], pa.int64()), rows)], schema)
    group = pq.read_metadata(io.BytesIO(data)).row_group(0)
    codecs = [group.column(i).compression for i in range(3)]
    assert codecs == ["ZSTD", "UNCOMPRESSED", "UNCOMPRESSED"]
    assert group.column(1).total_uncompressed_size < MIN_COMPRESSED_PAGE
    back = pl.read_parquet(io.BytesIO(data))
    assert back["dense"].to_list() == list(range(rows))
    assert back["sparse"].drop_nulls().to_list() == [1, 2] and back["empty"].null_count() == rows
