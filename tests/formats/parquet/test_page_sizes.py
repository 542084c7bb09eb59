"""The sizes page headers give (`page_sizes`), against pyarrow's own account of the same
files, and on bytes that are not pages."""

from __future__ import annotations

import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filter.errors import InputError
from filter.formats.parquet import page_sizes
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.fields import ColumnChunk, ColumnMetaData, PageHeader
from filter.formats.parquet.layout import layout_in_memory
from filter.formats.parquet.page_sizes import (
    STRING,
    ChunkSizes,
    chunk_sizes,
    file_chunk_sizes,
    file_identity,
    leaf_widths,
)


def _table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    words = [f"note {i} " + "x" * int(rng.integers(0, 40)) for i in range(50)]
    return pa.table({
        "speed": pa.array(rng.normal(size=rows)),
        "count": pa.array(rng.integers(0, 9, rows), pa.int32()),
        "flag": pa.array(rng.integers(0, 2, rows).astype(bool)),
        "note": pa.array([None if i % 7 == 0 else words[i % 50] for i in range(rows)]),
        "tags": pa.array([[words[i % 50]] * (i % 3) for i in range(rows)]),
    })


def _written(table: pa.Table, **options: object) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def _python_pages(chunk: bytes) -> list[thrift.Struct]:
    """Every page header of `chunk`, decoded by vtx's Python Thrift reader."""
    headers, pos = [], 0
    while pos < len(chunk):
        header, body = thrift.decode(chunk, pos)
        headers.append(header)
        pos = body + header[PageHeader.COMPRESSED_PAGE_SIZE].value
    return headers


def _chunks(data: bytes):
    layout = layout_in_memory(data, "t.parquet")
    widths = leaf_widths(layout)
    for group in layout.row_groups():
        for leaf, (start, length) in enumerate(group.ranges):
            codec = group.chunks[leaf][ColumnChunk.META_DATA].value[ColumnMetaData.CODEC].value
            yield layout.leaf_names[leaf], widths[leaf], codec, start, length


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(0, 3000),
    seed=st.integers(0, 10),
    compression=st.sampled_from(["none", "snappy", "zstd", "gzip"]),
    version=st.sampled_from(["1.0", "2.0"]),
    dictionary=st.booleans(),
    checksums=st.booleans(),
    page_size=st.sampled_from([256, 4096, 1 << 20]),
)
def test_the_compiled_walk_agrees_with_the_python_decode_of_every_page_header(
    rows, seed, compression, version, dictionary, checksums, page_size,
) -> None:
    data = _written(_table(rows, seed), compression=compression, data_page_version=version,
                    use_dictionary=dictionary, write_page_checksum=checksums,
                    data_page_size=page_size, row_group_size=1000)
    with_statistics = _written(_table(rows, seed), write_statistics=True, use_dictionary=False,
                               data_page_size=page_size)
    for blob in (data, with_statistics):
        for name, width, codec, start, length in _chunks(blob):
            chunk = blob[start:start + length]
            sizes = chunk_sizes(chunk, width, codec, "t.parquet", name, 1 << 30)
            headers = _python_pages(chunk)
            data_pages = [h for h in headers if h[PageHeader.TYPE].value in (0, 3)]
            holder = {0: PageHeader.DATA_PAGE_HEADER, 3: PageHeader.DATA_PAGE_HEADER_V2}
            assert sizes.compressed == length
            assert sizes.uncompressed == sum(h[PageHeader.UNCOMPRESSED_PAGE_SIZE].value
                                             for h in headers)
            assert sizes.values == sum(h[holder[h[PageHeader.TYPE].value]].value[1].value
                                       for h in data_pages)
            assert sizes.largest_page == max((h[PageHeader.UNCOMPRESSED_PAGE_SIZE].value
                                              for h in headers), default=0)


def test_the_file_walk_reads_the_same_sizes_as_the_walk_in_memory(tmp_path) -> None:
    data = _written(_table(5000, 1), compression="zstd", data_page_size=512,
                    row_group_size=2000, write_statistics=True)
    path = tmp_path / "t.parquet"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        for name, width, codec, start, length in _chunks(data):
            in_memory = chunk_sizes(data[start:start + length], width, codec, "t", name, 1 << 30)
            assert file_chunk_sizes(fd, start, length, width, codec, "t", name,
                                    1 << 30) == in_memory
    finally:
        os.close(fd)


def test_the_longest_dictionary_value_is_read_from_the_dictionary_page() -> None:
    values = pa.array(["a", "b" * 5000, "c" * 70] * 100).dictionary_encode()
    data = _written(pa.table({"note": values}), compression="snappy")
    [(name, width, codec, start, length)] = list(_chunks(data))
    sizes = chunk_sizes(data[start:start + length], width, codec, "t", name, 1 << 30)
    assert width == STRING
    assert (sizes.dictionary_values, sizes.longest_dictionary_value) == (3, 5000)
    # Each of the 300 rows may hold the longest value once decoded.
    assert sizes.values_bytes >= 300 * 5000
    # A dictionary page over the limit is not decompressed: its longest value is its size.
    unread = chunk_sizes(data[start:start + length], width, codec, "t", name, 100)
    assert unread.longest_dictionary_value == sizes.dictionary_bytes


@pytest.mark.parametrize("odd", [None, 0, 99, 199])
def test_the_longest_of_values_of_one_length_but_one_is_found(odd) -> None:
    # Dictionaries of values all of one length are read at once; one value of another
    # length anywhere among them (first, in the middle, last) is not missed.
    values = [f"LRW3E7EK0PC{i:06d}" for i in range(200)]
    if odd is not None:
        values[odd] = values[odd] + "x" * 30
    data = _written(pa.table({"vin": pa.array(values).dictionary_encode()}),
                    compression="zstd")
    [(name, width, codec, start, length)] = list(_chunks(data))
    sizes = chunk_sizes(data[start:start + length], width, codec, "t", name, 1 << 30)
    assert sizes.longest_dictionary_value == (17 if odd is None else 47)


def test_numbers_take_their_width_and_strings_their_bytes() -> None:
    table = pa.table({
        "b": pa.array([True] * 1000), "i": pa.array(range(1000), pa.int32()),
        "d": pa.array([0.5] * 1000), "t": pa.array(range(1000), pa.timestamp("ms")),
        "day": pa.array(range(1000), pa.date32()),
        "dec": pa.array([1] * 1000, pa.decimal128(9, 2)),
    })
    data = _written(table, use_dictionary=False, compression="none")
    widths = {name: width for name, width, *_ in _chunks(data)}
    assert widths == {"b": 1, "i": 4, "d": 8, "t": 8, "day": 8, "dec": 16}
    for name, width, codec, start, length in _chunks(data):
        sizes = chunk_sizes(data[start:start + length], width, codec, "t", name, 1 << 30)
        assert sizes.values_bytes >= 1000 * width


@pytest.mark.parametrize("damage", ["garbage", "truncated", "negative size"])
def test_bytes_that_are_not_pages_are_an_input_error_naming_the_place(damage) -> None:
    data = _written(_table(100, 0), compression="none")
    _name, width, codec, start, length = next(iter(_chunks(data)))
    chunk = bytearray(data[start:start + length])
    if damage == "garbage":
        chunk[:8] = b"\xff" * 8
    elif damage == "truncated":
        chunk = chunk[: len(chunk) - 3]
    else:
        header = thrift.decode(bytes(chunk), 0)[0]
        header[PageHeader.COMPRESSED_PAGE_SIZE] = thrift.Field(thrift.I32, -5)
        chunk = bytearray(thrift.encode(header)) + chunk[thrift.decode(bytes(chunk), 0)[1]:]
    with pytest.raises(InputError, match=r"^t\.parquet: row group 0, column 'speed': .*not a page"):
        chunk_sizes(bytes(chunk), width, codec, "t.parquet", "row group 0, column 'speed'",
                    1 << 30)


def test_a_chunk_measured_again_is_remembered_until_its_file_changes(tmp_path,
                                                                      monkeypatch) -> None:
    data = _written(_table(2000, 1), compression="zstd", data_page_size=512)
    path = tmp_path / "t.parquet"
    path.write_bytes(data)
    name, width, codec, start, length = next(c for c in _chunks(data) if c[1] == STRING)
    walks = []
    walk = page_sizes._file_chunk_sizes
    monkeypatch.setattr(page_sizes, "_file_chunk_sizes",
                        lambda *args: walks.append(args) or walk(*args))

    def measured() -> ChunkSizes:
        fd = os.open(path, os.O_RDONLY)
        try:
            return file_chunk_sizes(fd, start, length, width, codec, "t", name, 1 << 30)
        finally:
            os.close(fd)

    first = measured()
    fd = os.open(path, os.O_RDONLY)
    try:  # the same chunk, read into memory from the same file: not walked again
        assert chunk_sizes(data[start:start + length], width, codec, "t", name, 1 << 30,
                           origin=(file_identity(fd), start)) == first
    finally:
        os.close(fd)
    assert measured() == first
    assert len(walks) == 1
    os.utime(path, ns=(0, 0))  # changed since (as a rewrite would change it): walked anew
    assert measured() == first
    assert len(walks) == 2
