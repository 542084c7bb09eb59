"""Parquet layouts: the schema tree, chunk ranges, and footers of files made of copied chunks."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from filter import InputError
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.layout import (
    MAGIC,
    footer_bytes,
    read_layout,
    relocated_chunk,
    row_group_entry,
)

FRAME = pl.DataFrame({
    "a": [1, 2, None],
    "s": [{"x": 1.0, "y": {"p": "u", "q": True}}, None, {"x": None, "y": None}],
    "b": ["k", None, "m"],
})


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src.parquet"
    FRAME.write_parquet(path, row_group_size=2)
    return path


def test_the_schema_tree_numbers_leaves_in_file_order(source) -> None:
    layout = read_layout(source)
    assert list(layout.columns) == ["a", "s", "b"]
    assert [c.leaves for c in layout.columns.values()] == [(0,), (1, 2, 3), (4,)]
    pruned = layout.columns["s"].pruned([("y", "q")])
    assert pruned.leaves == (3,)
    assert [e[4].value for e in pruned.elements()] == [b"s", b"y", b"q"]
    assert pruned.element[5].value == 1 and layout.columns["s"].element[5].value == 2
    assert [g.rows for g in layout.row_groups()] == [2, 1]
    assert layout.created_by is not None and layout.created_by.startswith("Polars")


@pytest.mark.parametrize("pages_only", [False, True])
def test_a_file_of_relocated_chunks_reads_back(source, tmp_path, pages_only) -> None:
    """Columns "b" and "s.y.q" of every row group, copied into a file of their own; with
    `pages_only`, with nothing in their footer entries but where their pages are."""
    layout = read_layout(source)
    data = source.read_bytes()
    columns = [layout.columns["b"], layout.columns["s"].pruned([("y", "q")])]
    out = bytearray(MAGIC)
    groups = []
    for group in layout.row_groups():
        chunks = []
        for leaf in (4, 3):
            start, length = group.ranges[leaf]
            chunks.append(relocated_chunk(group.chunks[leaf], start, len(out),
                                          pages_only=pages_only))
            out += data[start:start + length]
        groups.append(row_group_entry(chunks, group.rows, group.index))
    out += footer_bytes(2, columns, groups, 3, {}, "test", [None, None])
    path = tmp_path / "copied.parquet"
    path.write_bytes(bytes(out))
    expected = pl.DataFrame({"b": FRAME["b"], "s": [{"y": {"q": True}}, None, {"y": None}]})
    assert_frame_equal(pl.read_parquet(path), expected)
    meta = pq.read_metadata(path)
    assert meta.num_rows == 3
    stats = [meta.row_group(g).column(c).is_stats_set for g in range(2) for c in range(2)]
    assert stats == [not pages_only] * 4


def test_files_it_cannot_lay_out(tmp_path, source) -> None:
    short = tmp_path / "short.parquet"
    short.write_bytes(b"PAR1")
    with pytest.raises(InputError, match=r"short\.parquet: not a readable Parquet file"):
        read_layout(short)
    encrypted = tmp_path / "encrypted.parquet"
    encrypted.write_bytes(source.read_bytes()[:-4] + b"PARE")
    with pytest.raises(InputError, match=r"encrypted\.parquet: not a plain Parquet file"):
        read_layout(encrypted)
    garbled = tmp_path / "garbled.parquet"
    data = bytearray(source.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    data[-8 - length:-8] = b"\x0f" * length
    garbled.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"garbled\.parquet: not a readable Parquet footer"):
        read_layout(garbled)


def test_a_dictionary_offset_that_points_at_no_dictionary_is_not_moved(source) -> None:
    """Some writers put 0 for "no dictionary page"; moved like an offset, it would point into
    the new file, at whatever is there."""
    group = next(read_layout(source).row_groups())
    chunk = group.chunks[0]
    meta = chunk[3].value
    start, _ = group.ranges[0]
    moved = relocated_chunk(chunk, start, start + 1000)[3].value
    assert moved[9].value == meta[9].value + 1000
    if 11 in meta:
        assert moved[11].value == meta[11].value + 1000
    for nothing in (0, meta[9].value + 5):  # none; after the data page
        faked = {**chunk, 3: thrift.Field(thrift.STRUCT, {**meta, 11: thrift.Field(
            thrift.I64, nothing), 10: thrift.Field(thrift.I64, 0)})}
        moved = relocated_chunk(faked, start, start + 1000)[3].value
        assert 11 not in moved and 10 not in moved
        assert moved[9].value == meta[9].value + 1000
