"""Row groups too large for a piece of the memory budget: how many rows a slice holds
(`row_slices`), and the scan that reads them so (`sliced_scan`), on real files."""

from __future__ import annotations

import random

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filter.errors import InputError
from filter.formats.parquet.decode_budget import DecodeCost
from filter.formats.parquet.row_slices import RowSlices, row_slices
from filter.formats.parquet.sliced_scan import sliced_frames, sliced_scan
from filter.memory_budget import MemoryBudget, MemoryBudgetExceeded
from tests.hostile_corpus import claimed_rows

BUDGET = MemoryBudget.of("600MiB")  # a piece: 72 MiB


def _notes_file(path, rows: int, width: int, **options: object):
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "note": pa.array([f"{i:08d}" + "n" * width for i in range(rows)])})
    pq.write_table(table, path, compression="zstd", use_dictionary=False, **options)
    return path


def test_a_row_group_that_fits_is_one_slice(tmp_path) -> None:
    path = _notes_file(tmp_path / "t.parquet", 10_000, 10, row_group_size=4_000)
    assert row_slices(path, BUDGET, None, DecodeCost()).rows == {0: 4_000, 1: 4_000, 2: 2_000}


def test_a_large_row_group_is_read_in_slices_of_a_power_of_two_rows(tmp_path) -> None:
    path = _notes_file(tmp_path / "t.parquet", 100_000, 1_000, row_group_size=100_000)
    [rows] = row_slices(path, BUDGET, None, DecodeCost()).rows.values()
    assert rows < 100_000 and rows & (rows - 1) == 0
    # 16 times a slice's 1 KB strings (and the pages it touches) within a piece.
    assert rows * 1_000 * 16 < BUDGET.piece_limit
    frames = list(sliced_frames([(path, RowSlices({0: rows}))],
                                pl.read_parquet_schema(path)))
    assert max(f.height for f in frames) == rows
    assert sum(f.height for f in frames) == 100_000


def test_only_the_columns_read_are_counted(tmp_path) -> None:
    path = _notes_file(tmp_path / "t.parquet", 100_000, 1_000, row_group_size=100_000)
    assert row_slices(path, BUDGET, {"id"}, DecodeCost()).rows == {0: 100_000}


def test_a_nested_column_is_counted_whole_in_every_slice(tmp_path) -> None:
    rows = 40_000
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "tags": pa.array([["t" * 1_000] * 2] * rows)})  # 80 MB of lists
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, compression="zstd", use_dictionary=False,
                   row_group_size=rows)
    with pytest.raises(MemoryBudgetExceeded, match=r"row group 0, column 'tags\.list\.element'"
                       r": decoding its row group 1 row at a time"):
        row_slices(path, BUDGET, None, DecodeCost())


def test_a_value_longer_than_a_piece_is_refused(tmp_path) -> None:
    path = _notes_file(tmp_path / "t.parquet", 1, 100 << 20)
    with pytest.raises(MemoryBudgetExceeded, match=r"t\.parquet: row group 0, column 'note'"):
        row_slices(path, BUDGET, None, DecodeCost())


def test_a_row_group_claiming_more_rows_than_its_pages_hold_is_corrupt(tmp_path) -> None:
    claimed_rows(tmp_path)
    with pytest.raises(InputError, match=r"row group 0 claims 3,000,000,000 rows, but its "
                                         r"column 'vin' holds 10 values"):
        row_slices(tmp_path / "input.parquet", BUDGET, None, DecodeCost())


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(0, 3_000), group=st.integers(1, 1_200), slice_rows=st.integers(1, 700),
       seed=st.integers(0, 10**6), dictionary=st.booleans())
def test_a_sliced_scan_reads_what_a_scan_reads(tmp_path, rows, group, slice_rows, seed,
                                               dictionary) -> None:
    # Every row once, in order, with its types, whatever the slices.
    rng = random.Random(seed)
    table = pa.table({
        "vin": pa.array([f"LRW3E7EK0PC{rng.randrange(50):06d}" for _ in range(rows)]),
        "ts": pa.array(range(rows), pa.int64()).cast(pa.timestamp("us")),
        "speed": pa.array([None if rng.random() < 0.1 else rng.random() for _ in range(rows)]),
        "note": pa.array([rng.choice(["ok", None, "call 13812345678"]) for _ in range(rows)]),
        "tags": pa.array([["a"] * rng.randrange(3) for _ in range(rows)]),
    })
    path = tmp_path / f"t-{seed}.parquet"
    pq.write_table(table, path, row_group_size=group, use_dictionary=dictionary,
                   data_page_size=512)
    expected = pl.read_parquet(path)
    groups = {i: slice_rows for i in range(pq.ParquetFile(path).num_row_groups)
              if pq.ParquetFile(path).metadata.row_group(i).num_rows}
    scanned = sliced_scan([(path, RowSlices(groups))], expected.schema)
    assert scanned.collect().equals(expected)
    assert scanned.select("note", "vin").head(7).collect().equals(
        expected.select("note", "vin").head(7))
