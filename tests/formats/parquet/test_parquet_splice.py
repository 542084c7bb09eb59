"""The column-chunk split against the Polars split it stands in for.

`split` copies the columns a side holds unchanged as the input encoded them; `split(...,
reencode=True)` streams every column through Polars. Read back by Polars and by pyarrow, the two
must give the same frames, the same Arrow schemas and the same detector counts, for any schema,
catalogue, data and way of writing the input.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

from filter import InputError, OutputError, read_manifest, split, split_frame
from filter.apply.reconstruct import reconstruct
from filter.audit.verify import verify_output
from filter.cli import vtx
from filter.engines import parquet_splice
from filter.formats.parquet import chunks as parquet_chunks
from filter.formats.parquet import splice
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.inputs import inspect_parquet
from filter.formats.parquet.layout import read_layout
from filter.formats.parquet.splice import splice_refusal
from tests.conftest import KEY, MINI_CATALOGUE
from tests.test_properties import SENSITIVE, build, catalogues, frames, schemas, unique_paths

WRITERS = st.fixed_dictionaries({
    "library": st.sampled_from(["polars", "pyarrow"]),
    "compression": st.sampled_from(["zstd", "snappy", "uncompressed", "gzip", "lz4"]),
    "row_group_size": st.integers(1, 7),
    "page_index": st.booleans(),
    "dictionary": st.booleans(),
    "data_page_version": st.sampled_from(["1.0", "2.0"]),
    "data_page_size": st.sampled_from([None, 64]),  # 64 bytes: many pages a chunk
    "byte_stream_split": st.booleans(),
    "store_schema": st.booleans(),  # no ARROW:schema: types from the Parquet schema alone
})


def _coded_list(dtype: pl.DataType, in_list: bool = False) -> bool:
    """Whether `dtype` holds, at any depth, a list of categorical or enum strings."""
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return in_list
    if isinstance(dtype, pl.List):
        return _coded_list(dtype.inner, True)
    if isinstance(dtype, pl.Struct):
        return any(_coded_list(f.dtype, in_list) for f in dtype.fields)
    return False


def write_input(frame: pl.DataFrame, path: Path, writer: dict[str, Any]) -> None:
    if writer["library"] == "polars":
        frame.write_parquet(path, compression=writer["compression"],
                            row_group_size=writer["row_group_size"])
        return
    compression = {"uncompressed": "none"}.get(writer["compression"], writer["compression"])
    # pyarrow 26 cannot read back its own pages of lists of dictionaries cut this small either
    coded_lists = any(_coded_list(t) for t in frame.schema.values())
    pq.write_table(frame.to_arrow(), path, compression=compression,
                   row_group_size=writer["row_group_size"], write_page_index=writer["page_index"],
                   use_dictionary=writer["dictionary"],
                   data_page_version=writer["data_page_version"],
                   # pyarrow 26 cannot read back its own v2 pages of lists cut this small
                   data_page_size=writer["data_page_size"]
                   if writer["data_page_version"] == "1.0" and not coded_lists else None,
                   use_byte_stream_split=[c for c, t in frame.schema.items() if t == pl.Float64]
                   if writer["byte_stream_split"] else False,
                   store_schema=writer["store_schema"])


def split_both_ways(source: Path, root: Path, catalogue, scenario: str = "s") -> dict[str, Any]:
    """Split `source` by copying chunks and by Polars; returns what each published."""
    out = {}
    for label, reencode in (("copied", False), ("polars", True)):
        export, onshore = root / label / "export", root / label / "onshore"
        split(source, export, onshore, scenario, key=KEY, catalogue=catalogue, reencode=reencode)
        out[label] = (export, onshore)
    return out


def assert_same_outputs(published: dict[str, Any]) -> None:
    for side in (0, 1):
        copied = published["copied"][side] / "part-00000.parquet"
        polars = published["polars"][side] / "part-00000.parquet"
        assert_frame_equal(pl.read_parquet(copied), pl.read_parquet(polars))
        copied_arrow, polars_arrow = pq.read_table(copied), pq.read_table(polars)
        assert copied_arrow.schema == polars_arrow.schema
        assert_frame_equal(pl.from_arrow(copied_arrow), pl.from_arrow(polars_arrow))
        manifests = [read_manifest(published[k][side]) for k in ("copied", "polars")]
        for key in ("rows", "columns", "detections", "class_counts"):
            assert getattr(manifests[0], key) == getattr(manifests[1], key), key


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.filter_too_much])
@given(schema=schemas().filter(unique_paths), data=catalogues(), rows=st.data(), writer=WRITERS)
def test_copied_chunks_read_back_as_the_polars_split(schema, data, rows, writer) -> None:
    catalogue = build(data)
    frame = rows.draw(frames(schema))
    for name, dtype in schema.items():  # something for the detectors to move, now and then
        if dtype == pl.String and name != "vin" and frame.height and rows.draw(st.booleans()):
            first = pl.int_range(pl.len()) == 0
            frame = frame.with_columns(
                pl.when(first).then(pl.lit(SENSITIVE[0])).otherwise(pl.col(name)).alias(name))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_input(frame, root / "in.parquet", writer)
        published = split_both_ways(root / "in.parquet", root, catalogue)
        assert_same_outputs(published)
        groups = [pq.read_metadata(root / "in.parquet").row_group(i).num_rows
                  for i in range(pq.read_metadata(root / "in.parquet").num_row_groups)]
        for side in published["copied"]:
            meta = pq.read_metadata(side / "part-00000.parquet")
            assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [
                n for n in groups if n]


FLEET = pl.DataFrame({
    "vin": ["WVWZZZ1JZXW000001", "WVWZZZ1JZXW000002", None, "WVWZZZ1JZXW000001"] * 5,
    "timestamp": pl.datetime_range(pl.datetime(2026, 1, 1), pl.datetime(2026, 1, 1, 0, 0, 19),
                                   "1s", eager=True),
    "Vehicle.Speed": [12.5, None, 80.0, 3.25] * 5,
    "Vehicle.CurrentLocation.Latitude": [31.2, 31.3, None, 31.4] * 5,
    "Vehicle.Service.DistanceToService": [1200.0, 1100.5, None, 900.0] * 5,
    "Vehicle": [{"TraveledDistance": 1.5, "Diagnostics": {"DTCCount": 1}}, None,
                {"TraveledDistance": None, "Diagnostics": None},
                {"TraveledDistance": 2.0, "Diagnostics": {"DTCCount": None}}] * 5,
    "Vehicle.Service.Notes": ["brake pads ok", None, "call 13812345678", "tyres"] * 5,
    "Vehicle.Powertrain.TractionBattery.StateOfHealth": pl.Series([98, 97, None, 96] * 5,
                                                                  dtype=pl.UInt8),
    "Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature": [[21.0, 22.5], None, [], [20.0]] * 5,
})


SOH = "Vehicle.Powertrain.TractionBattery.StateOfHealth"  # exported in after-sales, unchanged


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "fleet.parquet"
    path.parent.mkdir()
    pq.write_table(FLEET.to_arrow(), path, row_group_size=6, compression="snappy",
                   write_page_index=True)
    return path


def test_a_fleet_batch_splits_as_polars_splits_it(fleet_file, tmp_path) -> None:
    published = split_both_ways(fleet_file, tmp_path, MINI_CATALOGUE, "after-sales")
    assert_same_outputs(published)
    export = pl.read_parquet(published["copied"][0] / "part-00000.parquet")
    assert "vin" not in export.columns
    assert export["Vehicle.Service.Notes"].null_count() == 10  # 5 nulls, 5 phone numbers moved


def test_copied_columns_keep_their_encoding_and_the_page_index_is_dropped(
    fleet_file, tmp_path
) -> None:
    published = split_both_ways(fleet_file, tmp_path, MINI_CATALOGUE, "after-sales")
    meta = pq.read_metadata(published["copied"][0] / "part-00000.parquet")
    chunks = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
              for i in range(meta.num_columns)}
    assert chunks[SOH].compression == "SNAPPY"  # copied as it was
    assert chunks["vehicle_token"].compression == "ZSTD"  # computed, encoded by Polars
    assert chunks["Vehicle.Service.Notes"].compression == "ZSTD"  # a detector changed it
    assert not any(c.has_offset_index or c.has_column_index for c in chunks.values())
    layout = read_layout(published["copied"][0] / "part-00000.parquet")
    assert list(layout.columns) == list(pq.read_schema(
        published["polars"][0] / "part-00000.parquet").names)


def test_a_struct_split_between_the_sides_keeps_its_leaves_apart(fleet_file, tmp_path) -> None:
    published = split_both_ways(fleet_file, tmp_path, MINI_CATALOGUE, "after-sales")
    export = pl.read_parquet(published["copied"][0] / "part-00000.parquet")
    onshore = pl.read_parquet(published["copied"][1] / "part-00000.parquet")
    assert export.schema["Vehicle"] == pl.Struct({"Diagnostics": pl.Struct({"DTCCount": pl.Int64})})
    assert onshore.schema["Vehicle"] == pl.Struct({"TraveledDistance": pl.Float64})
    assert export["Vehicle"].null_count() == onshore["Vehicle"].null_count() == 5
    assert export["Vehicle"].struct.field("Diagnostics").null_count() == 10
    meta = pq.read_metadata(published["copied"][0] / "part-00000.parquet")
    assert "Vehicle.Diagnostics.DTCCount" in [meta.schema.column(i).path
                                             for i in range(meta.num_columns)]


def test_types_a_chunk_cannot_carry_alone_are_encoded_again(tmp_path) -> None:
    frame = FLEET.select("vin", "timestamp", "Vehicle.Speed").with_columns(
        pl.col("vin").cast(pl.Categorical).alias("Vehicle.Body.Lights.LightSwitch"),
        pl.col("Vehicle.Speed").cast(pl.Decimal(10, 2)).alias("Vehicle.Service.DistanceToService"),
    )
    source = tmp_path / "typed.parquet"
    pq.write_table(frame.to_arrow(), source, row_group_size=8,
                   use_deprecated_int96_timestamps=True)
    assert_same_outputs(split_both_ways(source, tmp_path, MINI_CATALOGUE, "after-sales"))


def test_empty_row_groups_and_an_empty_file(tmp_path) -> None:
    source = tmp_path / "gaps.parquet"
    table = FLEET.to_arrow()
    with pq.ParquetWriter(source, table.schema) as writer:
        writer.write_table(table.slice(0, 3))
        writer.write_table(table.slice(0, 0))
        writer.write_table(table.slice(3, 5))
    assert_same_outputs(split_both_ways(source, tmp_path / "a", MINI_CATALOGUE, "after-sales"))
    empty = tmp_path / "empty.parquet"
    pq.write_table(table.slice(0, 0), empty)
    published = split_both_ways(empty, tmp_path / "b", MINI_CATALOGUE, "after-sales")
    assert_same_outputs(published)
    assert read_manifest(published["copied"][0]).rows == 0


def cli_split(source: Path, tmp_path: Path) -> Any:
    """`vtx split` of `source` into ``tmp_path/e`` and ``tmp_path/o`` (after-sales, the mini
    catalogue), run through the CLI."""
    key_file = tmp_path / "vtx.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    return CliRunner().invoke(vtx, [
        "split", str(source), "--export", str(tmp_path / "e"), "--onshore",
        str(tmp_path / "o"), "--scenario", "after-sales", "--catalogue", str(MINI_CATALOGUE),
        "--key-file", str(key_file), "--quiet"])


def _rewrite_footer(path: Path, change) -> None:
    data = path.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    footer_start = len(data) - 8 - length
    metadata, _ = thrift.decode(data[footer_start:-8])
    change(metadata)
    encoded = thrift.encode(metadata)
    path.write_bytes(data[:footer_start] + encoded + len(encoded).to_bytes(4, "little") + b"PAR1")


def test_a_footer_whose_chunks_overlap_is_refused(fleet_file, tmp_path) -> None:
    """An ordinary column's chunk pointed at a withheld column's bytes would put the withheld
    values in the export under the ordinary name, copied or decoded: refused either way."""
    names = pq.read_schema(fleet_file).names
    service = names.index("Vehicle.Service.DistanceToService")  # exported, both doubles
    latitude = names.index("Vehicle.CurrentLocation.Latitude")

    def point_service_at_latitude(metadata) -> None:
        chunks = metadata[4].value.items[0][1].value.items
        meta, withheld = chunks[service][3].value, chunks[latitude][3].value
        for field_id in (6, 7, 9, 11):  # sizes and offsets: the pages are the latitude's
            meta[field_id] = withheld[field_id]

    _rewrite_footer(fleet_file, point_service_at_latitude)
    decoded = pl.read_parquet(fleet_file)["Vehicle.Service.DistanceToService"]
    assert decoded.head(6).to_list() == FLEET["Vehicle.CurrentLocation.Latitude"].head(6).to_list()
    for reencode in (False, True):
        with pytest.raises(InputError, match=r"fleet\.parquet: row group 0 of 4, column "
                           r"'Vehicle.Service.DistanceToService' overlaps"):
            split(fleet_file, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                  catalogue=MINI_CATALOGUE, reencode=reencode)
        assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()
    result = cli_split(fleet_file, tmp_path)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"vtx: error: {fleet_file}: row group 0 of 4, column "
        "'Vehicle.Service.DistanceToService' overlaps row group 0, column "
        "'Vehicle.CurrentLocation.Latitude'; the file is corrupt"]
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("pass_bytes", [parquet_splice.CHECK_PASS_BYTES, 1])
def test_a_damaged_page_in_a_copied_column_fails_the_run(
    fleet_file, tmp_path, monkeypatch, pass_bytes
) -> None:
    """Also when the background check reads each column in a pass of its own."""
    monkeypatch.setattr(parquet_splice, "CHECK_PASS_BYTES", pass_bytes)
    meta = pq.read_metadata(fleet_file)
    names = [meta.row_group(1).column(i).path_in_schema for i in range(meta.num_columns)]
    chunk = meta.row_group(1).column(names.index(SOH))  # copied, never computed
    data = bytearray(fleet_file.read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start + 2: start + chunk.total_compressed_size] = b"\xff" * (
        chunk.total_compressed_size - 2)
    fleet_file.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"fleet\.parquet"):
        split(fleet_file, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
              catalogue=MINI_CATALOGUE)
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


@given(sizes=st.lists(st.integers(0, 50), max_size=12), budget=st.integers(1, 60))
def test_check_passes_cut_columns_in_order_within_the_budget(sizes, budget) -> None:
    columns = [(f"c{i}", n) for i, n in enumerate(sizes)]
    passes = parquet_chunks.check_passes(columns, budget)
    assert [name for p in passes for name in p] == [name for name, _ in columns]
    size = dict(columns)
    for cut in passes:
        assert cut, "no pass is empty"
        assert len(cut) == 1 or sum(size[c] for c in cut) <= budget
    for before, after in itertools.pairwise(passes):  # each pass as full as it can be
        assert sum(size[c] for c in before) + size[after[0]] > budget


@pytest.mark.parametrize("pass_bytes", [1, parquet_splice.CHECK_PASS_BYTES])
def test_the_check_decodes_every_value_the_copy_does_not_read_once(
    fleet_file, tmp_path, monkeypatch, pass_bytes
) -> None:
    """Between them, the background check's files hold every value of every column the
    computed columns do not read, each once, in order; with a piece per column too. Their
    footers hold no statistics, from which a reader could answer without decoding."""
    made: list[bytes] = []
    make_file = parquet_chunks.ChunkFiles.file

    def recording(self, groups, columns):
        data = make_file(self, groups, columns)
        if threading.current_thread().name == "vtx-decode":
            made.append(data)
        return data

    monkeypatch.setattr(parquet_splice, "CHECK_PASS_BYTES", pass_bytes)
    monkeypatch.setattr(parquet_chunks.ChunkFiles, "file", recording)
    split(fleet_file, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    pieces = [pl.read_parquet(data) for data in made]
    checked: dict[str, list[pl.Series]] = {}
    for piece in pieces:
        for name in piece.columns:
            checked.setdefault(name, []).append(piece[name])
    assert SOH in checked and "vin" not in checked  # the token reads the VINs
    assert set(checked) | {"vin", "Vehicle.Service.Notes"} == set(FLEET.columns)
    for name, parts in checked.items():
        assert_series_equal(pl.concat(parts), FLEET[name])
    metas = [pq.read_metadata(pa.BufferReader(data)) for data in made]
    for meta in metas:
        assert not any(meta.row_group(g).column(c).is_stats_set
                       for g in range(meta.num_row_groups) for c in range(meta.num_columns))
    if pass_bytes == 1:  # a column and the fewest row groups a piece has
        assert all(piece.width == 1 for piece in pieces)
        assert {m.num_row_groups for m in metas} == {parquet_splice.CHECK_GROUPS}
    else:  # the whole file is a few kB: one piece
        assert [m.num_row_groups for m in metas] == [4]


def test_a_chunk_kept_in_another_file_is_refused(fleet_file, tmp_path) -> None:
    def elsewhere(metadata) -> None:
        metadata[4].value.items[0][1].value.items[0][1] = thrift.Field(thrift.BINARY, b"x.bin")

    _rewrite_footer(fleet_file, elsewhere)
    with pytest.raises(InputError, match=r"in another file"):
        split(fleet_file, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
              catalogue=MINI_CATALOGUE)
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


def test_bytes_a_writer_hid_in_a_copied_chunks_metadata_stay_behind(fleet_file, tmp_path) -> None:
    """A chunk's ColumnMetaData may carry key-value metadata (free text) and fields of later
    Parquet versions: a copied chunk's entry keeps none of them, in either output."""
    secret = b"31.2304,121.4737 LSV00000000000001"

    def hide(metadata) -> None:
        for group in metadata[4].value.items:
            for chunk in group[1].value.items:
                meta = chunk[3].value
                meta[8] = thrift.Field(thrift.LIST, thrift.ThriftList(thrift.STRUCT, [
                    {1: thrift.Field(thrift.BINARY, b"note"),
                     2: thrift.Field(thrift.BINARY, secret)}]))
                meta[99] = thrift.Field(thrift.BINARY, secret)  # a field no version has yet

    _rewrite_footer(fleet_file, hide)
    assert secret in fleet_file.read_bytes() and pl.read_parquet(fleet_file).height == 20
    split(fleet_file, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    for side in ("e", "o"):
        for part in (tmp_path / side).glob("*.parquet"):
            assert secret not in part.read_bytes(), part
    assert pl.read_parquet(tmp_path / "e").height == 20


def test_a_copied_string_chunks_statistics_do_not_carry_a_withheld_value(tmp_path) -> None:
    """The footer's min and max of a copied string chunk are bytes the writer chose: a phone
    number planted there (no row holds it) does not reach the export."""
    frame = FLEET.select("vin", "timestamp").with_columns(
        pl.Series("Vehicle.Service.Notes", ["brake pads ok", "tyres"] * 10))
    source = tmp_path / "in" / "notes.parquet"
    source.parent.mkdir()
    pq.write_table(frame.to_arrow(), source, row_group_size=10)
    secret = b"call 13812345678"
    column = pq.read_schema(source).names.index("Vehicle.Service.Notes")

    def plant(metadata) -> None:
        for group in metadata[4].value.items:
            meta = group[1].value.items[column][3].value
            meta[12] = thrift.Field(thrift.STRUCT, {  # Statistics: max_value, min_value
                5: thrift.Field(thrift.BINARY, secret), 6: thrift.Field(thrift.BINARY, b"a")})

    _rewrite_footer(source, plant)
    split(source, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    export = tmp_path / "e" / "part-00000.parquet"
    assert secret not in export.read_bytes()
    assert pl.read_parquet(export)["Vehicle.Service.Notes"].to_list() == frame[
        "Vehicle.Service.Notes"].to_list()  # copied, not moved: no row holds the number
    assert pq.read_metadata(export).row_group(0).column(column).compression == "SNAPPY"


def test_arrow_extension_metadata_is_not_carried_into_outputs(tmp_path) -> None:
    """The outputs' Arrow schema is Polars' for the output columns, not the input's."""
    table = FLEET.select("vin", "timestamp", SOH).to_arrow()
    table = table.replace_schema_metadata({b"owner": b"fleet-team"})
    source = tmp_path / "meta.parquet"
    pq.write_table(table, source)
    published = split_both_ways(source, tmp_path, MINI_CATALOGUE, "after-sales")
    assert_same_outputs(published)
    schema = pq.read_schema(published["copied"][0] / "part-00000.parquet")
    assert b"owner" not in (schema.metadata or {})
    assert pa.types.is_uint8(schema.field(SOH).type)


def _codecs(part: Path) -> set[str]:
    meta = pq.read_metadata(part)
    return {meta.row_group(g).column(c).compression
            for g in range(meta.num_row_groups) for c in range(meta.num_columns)}


def test_inputs_better_split_by_polars_are(fleet_file, tmp_path, monkeypatch) -> None:
    """Row groups too large to compute whole, and chunk sizes an old writer got wrong, go
    through Polars: every column zstd, none copied as Snappy."""
    assert splice_refusal(inspect_parquet(fleet_file)) is None
    monkeypatch.setattr(splice, "MAX_ROW_GROUP_ROWS", 5)
    assert splice_refusal(inspect_parquet(fleet_file)) == "row groups of up to 6 rows"
    split(fleet_file, tmp_path / "a" / "e", tmp_path / "a" / "o", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    assert _codecs(tmp_path / "a" / "e" / "part-00000.parquet") == {"ZSTD"}
    monkeypatch.undo()

    def old_writer(metadata) -> None:
        metadata[6] = thrift.Field(thrift.BINARY, b"parquet-mr version 1.2.8 (build abc)")

    _rewrite_footer(fleet_file, old_writer)
    assert splice_refusal(inspect_parquet(fleet_file)) == (
        "written by parquet-mr version 1.2.8 (build abc)")
    split(fleet_file, tmp_path / "b" / "e", tmp_path / "b" / "o", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    assert _codecs(tmp_path / "b" / "e" / "part-00000.parquet") == {"ZSTD"}


def test_an_action_computes_the_exported_value_and_copies_the_exact_one(
    fleet_file, tmp_path
) -> None:
    """used-car exports timestamps truncated to the day: computed on the export, copied
    onshore."""
    published = split_both_ways(fleet_file, tmp_path, None, "used-car")
    assert_same_outputs(published)
    export = pl.read_parquet(published["copied"][0] / "part-00000.parquet")
    onshore = pl.read_parquet(published["copied"][1] / "part-00000.parquet")
    assert export["timestamp"].dt.hour().max() == 0
    assert onshore["timestamp"].equals(FLEET["timestamp"])
    meta = pq.read_metadata(published["copied"][1] / "part-00000.parquet").row_group(0)
    codecs = {meta.column(i).path_in_schema: meta.column(i).compression
              for i in range(meta.num_columns)}
    assert codecs["timestamp"] == "SNAPPY" and codecs["vehicle_token"] == "ZSTD"


def test_a_categorical_inside_a_struct_is_encoded_again(tmp_path) -> None:
    frame = FLEET.select("vin", "timestamp").with_columns(pl.struct(
        pl.col("vin").cast(pl.Categorical).alias("Mode"), pl.lit(1.5).alias("Level"),
    ).alias("Vehicle.Service.State"))
    source = tmp_path / "nested.parquet"
    frame.write_parquet(source)
    assert_same_outputs(split_both_ways(source, tmp_path, MINI_CATALOGUE, "after-sales"))


def test_a_failed_run_stops_the_check_after_its_piece(fleet_file, tmp_path, monkeypatch) -> None:
    """When the run fails, the background check stops after the piece it is decoding (if
    any) rather than decoding on in the caller's process."""
    started, failed = threading.Event(), threading.Event()
    checks: list[threading.Thread] = []
    pieces: list[int] = []
    decode_leaves = parquet_splice._decode_leaves
    make_file = parquet_chunks.ChunkFiles.file

    def checking(*args):
        checks.append(threading.current_thread())
        started.set()
        decode_leaves(*args)

    def recording(self, groups, columns):
        if threading.current_thread() in checks:
            failed.wait(timeout=60)  # a piece under way when the run fails
            pieces.append(len(groups))
        return make_file(self, groups, columns)

    def failing(self, group, input_fd, helper):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(parquet_splice, "CHECK_PASS_BYTES", 1)  # 16 pieces: 8 columns x 2
    monkeypatch.setattr(parquet_splice, "_decode_leaves", checking)
    monkeypatch.setattr(parquet_chunks.ChunkFiles, "file", recording)
    monkeypatch.setattr(splice.PartAssembler, "add_row_group", failing)
    with pytest.raises(OutputError, match="No space left on device"):
        split(fleet_file, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
              catalogue=MINI_CATALOGUE)
    failed.set()
    assert started.wait(timeout=60)
    [check] = checks
    check.join(timeout=60)
    assert not check.is_alive()
    assert len(pieces) <= 1


def test_an_input_the_system_fails_to_read_is_named_as_the_input(
    fleet_file, tmp_path, monkeypatch
) -> None:
    """A read error on the input (EIO) is the input's error, naming it: not a failure to write
    the outputs, which an `OSError` elsewhere in a split is."""
    def failing(fd, buffers, offset):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "preadv", failing)
    with pytest.raises(InputError, match=r"fleet\.parquet: cannot read byte \d+: Input/output"):
        split(fleet_file, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
              catalogue=MINI_CATALOGUE)
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()
    result = cli_split(fleet_file, tmp_path)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"vtx: error: {fleet_file}: cannot read byte "), line
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


# --- strings however they are encoded (issue 23, item 1) -----------------------------------

NOTES = "Vehicle.Service.Notes"
PLANTED = "call owner 13812345678"
TWO_ROWS = {"vin": ["LRW3E7EK0PC100001"] * 2,
            "timestamp": [datetime(2026, 11, 24), datetime(2026, 11, 24, 0, 0, 1)]}


def _pandas_category(path: Path) -> None:
    import pandas as pd

    pd.DataFrame({**TWO_ROWS, NOTES: pd.Categorical(["ok", PLANTED])}).to_parquet(
        path, compression=None)


def _polars(dtype: pl.DataType) -> Any:
    def write(path: Path) -> None:
        pl.DataFrame({**TWO_ROWS, NOTES: pl.Series(["ok", PLANTED], dtype=dtype)}).write_parquet(
            path, compression="uncompressed")
    return write


def _pyarrow(notes: pa.Array, **options: Any) -> Any:
    def write(path: Path) -> None:
        table = pa.table({"vin": TWO_ROWS["vin"],
                          "timestamp": pa.array(TWO_ROWS["timestamp"], pa.timestamp("us")),
                          NOTES: notes})
        pq.write_table(table, path, compression="none", **options)
    return write


#: Ways of storing one exported string field whose second value holds a mobile number.
ENCODINGS = {
    "pandas category": _pandas_category,
    "polars categorical": _polars(pl.Categorical),
    "polars enum": _polars(pl.Enum(["ok", PLANTED])),
    "pyarrow dictionary_encode": _pyarrow(pa.array(["ok", PLANTED]).dictionary_encode()),
    "pyarrow large_string": _pyarrow(pa.array(["ok", PLANTED], pa.large_string())),
    "pyarrow string_view": _pyarrow(pa.array(["ok", PLANTED], pa.string_view())),
    "list<dictionary<string>>": _pyarrow(pa.array(
        [["ok"], ["fine", PLANTED]], pa.list_(pa.dictionary(pa.int32(), pa.string())))),
    "list<struct<text: dictionary<string>>>": _pyarrow(pa.array(
        [[{"text": "ok"}], [{"text": PLANTED}]],
        pa.list_(pa.struct([("text", pa.dictionary(pa.int32(), pa.string()))])))),
    "list<list<string>>": _pyarrow(pa.array([[["ok"]], [["a"], [PLANTED]]])),
    "fixed-size list<string>": _pyarrow(pa.array([["ok"], [PLANTED]], pa.list_(pa.string(), 1))),
}


def _split_cli(source: Path, tmp_path: Path, *extra: str) -> Any:
    """`vtx split` of `source`, as issue 23 ran it: the shipped catalogue, after-sales."""
    key_file = tmp_path / "K"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    return CliRunner().invoke(vtx, [
        "split", str(source), "--export", str(tmp_path / "e"), "--onshore", str(tmp_path / "o"),
        "--scenario", "after-sales", "--key-file", str(key_file), "--quiet", *extra])


def _assert_nowhere_in_export(export_dir: Path, planted: str) -> None:
    """Not in any byte of any file of the export: values, dictionaries, footers, manifest."""
    files = [f for f in export_dir.rglob("*") if f.is_file()]
    assert files
    for f in files:
        assert planted.encode() not in f.read_bytes(), f.name


@pytest.mark.parametrize("reencode", [False, True], ids=["copied", "reencode"])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_a_hit_moves_onshore_however_the_strings_are_encoded(
    tmp_path: Path, encoding: str, reencode: bool
) -> None:
    source = tmp_path / "in.parquet"
    ENCODINGS[encoding](source)
    assert PLANTED.encode() in source.read_bytes()  # written plain: the test can see it
    explained = CliRunner().invoke(vtx, ["explain", str(source), "--scenario", "after-sales",
                                         "--format", "json"])
    assert explained.exit_code == 0, explained.output
    [notes] = [f for f in json.loads(explained.output) if f["field"] == NOTES]
    assert notes["detectors"] is True and notes["destination"] == "export"

    result = _split_cli(source, tmp_path, *(["--reencode"] if reencode else []))
    assert result.exit_code == 0, result.output
    _assert_nowhere_in_export(tmp_path / "e", "13812345678")
    export = pl.read_parquet(tmp_path / "e" / "part-00000.parquet")
    onshore = pl.read_parquet(tmp_path / "o" / "part-00000.parquet")
    assert export[NOTES][1] is None and export[NOTES][0] is not None
    assert onshore[NOTES][0] is None and PLANTED in str(onshore[NOTES][1])
    [found] = read_manifest(tmp_path / "e").detections
    assert found.field == NOTES and found.moved_values == 1
    assert found.hits["mobile_number"] == 1
    stored = pl.read_parquet(source)
    assert_frame_equal(reconstruct(export, onshore, stored.schema), stored)
    verified = verify_output(tmp_path / "e", tmp_path / "o")
    assert verified.ok, verified.failures


@pytest.mark.parametrize("store_schema", [True, False])
def test_an_unused_dictionary_value_that_hits_is_not_copied_into_the_export(
    tmp_path: Path, store_schema: bool
) -> None:
    """pyarrow writes an Arrow dictionary as it is: a value no row uses is in the chunk's
    dictionary page, where no read of the column finds it. Without the Arrow schema Polars reads
    the column as plain strings, with a value table of the rows' values only: the chunk must
    still not be copied as it is."""
    notes = pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array(["ok", PLANTED]))
    source = tmp_path / "in.parquet"
    _pyarrow(notes, store_schema=store_schema)(source)
    assert PLANTED.encode() in source.read_bytes()
    result = _split_cli(source, tmp_path)
    assert result.exit_code == 0, result.output
    _assert_nowhere_in_export(tmp_path / "e", "13812345678")
    assert pl.read_parquet(tmp_path / "e" / "part-00000.parquet")[NOTES].to_list() == ["ok"] * 2
    # An unused dictionary value is no row's value: nothing to move, nothing counted.
    assert read_manifest(tmp_path / "e").detections[0].moved_values == 0


def test_a_clean_dictionary_is_still_copied_as_it_is(tmp_path: Path) -> None:
    """The check costs no copy where no dictionary value hits: the chunk keeps its bytes."""
    notes = pa.DictionaryArray.from_arrays(pa.array([0, 1], pa.int32()), pa.array(["ok", "fine"]))
    source = tmp_path / "in.parquet"
    _pyarrow(notes, store_schema=False)(source)
    assert _split_cli(source, tmp_path).exit_code == 0
    layout = read_layout(tmp_path / "e" / "part-00000.parquet")
    assert layout.created_by == read_layout(source).created_by  # the input's writer: copied


def test_an_enum_exports_without_the_categories_a_detector_hits(tmp_path: Path) -> None:
    """An enum's type names all its categories, used or not, wherever it goes (Polars writes
    them all as the column's dictionary): one a detector hits leaves the export's type."""
    frame = pl.DataFrame({**TWO_ROWS, NOTES: pl.Series(
        ["ok", "ok"], dtype=pl.Enum(["ok", "fine", PLANTED, "a@b.cn"]))})
    export, onshore = split_frame(frame, "after-sales", key=KEY)
    assert export.schema[NOTES] == pl.Enum(["ok", "fine"])
    assert export[NOTES].to_list() == ["ok", "ok"]
    assert_frame_equal(reconstruct(export, onshore, frame.schema), frame)
    source = tmp_path / "in.parquet"
    frame.write_parquet(source, compression="uncompressed")
    for extra in ((), ("--reencode",)):
        root = tmp_path / ("reencode" if extra else "copied")
        root.mkdir()
        result = _split_cli(source, root, *extra)
        assert result.exit_code == 0, result.output
        _assert_nowhere_in_export(root / "e", "13812345678")
        _assert_nowhere_in_export(root / "e", "a@b.cn")
        assert pl.read_parquet_schema(root / "e" / "part-00000.parquet")[NOTES] == pl.Enum(
            ["ok", "fine"])


def test_a_chunk_the_footer_places_two_ways_is_refused(tmp_path: Path, monkeypatch) -> None:
    """The dictionary check finds chunks by pyarrow's reading of the footer, the copy by
    vtx's: where they disagree (a malformed footer), the copy stops, publishing nothing.
    Here pyarrow is made to place the notes' chunk where another column's clean one is."""
    dirty = pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array(["ok", PLANTED]))
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({
        "vin": TWO_ROWS["vin"], "timestamp": pa.array(TWO_ROWS["timestamp"], pa.timestamp("us")),
        NOTES: dirty, "Vehicle.Service.Tasks": pa.array(["ok", "ok"]).dictionary_encode(),
    }), source, compression="none", store_schema=False)
    real = pq.read_metadata

    class Misplaced:  # pyarrow's footer, with the notes (leaf 2) where the tasks (3) are
        def __init__(self, footer: Any) -> None:
            self.footer, self.num_rows = footer, footer.num_rows

        def column(self, leaf: int) -> Any:
            return self.footer.column(3 if leaf == 2 else leaf)

    def read_metadata(where: Any) -> Any:
        found = real(where)
        footer = type("Footer", (), {"num_row_groups": found.num_row_groups,
                                     "row_group": lambda self, i: Misplaced(found.row_group(i))})
        return footer()

    monkeypatch.setattr(parquet_splice, "pq", SimpleNamespace(read_metadata=read_metadata))
    with pytest.raises(InputError, match="two places for one column chunk"):
        split(source, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY)
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()
