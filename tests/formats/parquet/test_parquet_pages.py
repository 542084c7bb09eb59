"""Dictionary values read from column chunks' own bytes (filter/formats/parquet/pages.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.layout import read_layout
from filter.formats.parquet.pages import dictionary_values

UNUSED = "call owner 13812345678"


def chunk_of(path: Path, leaf: int = 0, group: int = 0) -> tuple[bytes, int]:
    """The bytes of one column chunk of `path`, and its codec."""
    layout = read_layout(path)
    found = list(layout.row_groups())[group]
    start, length = found.ranges[leaf]
    with path.open("rb") as fh:
        fh.seek(start)
        data = fh.read(length)
    return data, found.chunks[leaf][3].value[4].value


def write(path: Path, array: pa.Array, **options) -> Path:
    pq.write_table(pa.table({"s": array}), path, **options)
    return path


@pytest.mark.parametrize("compression", ["none", "snappy", "gzip", "brotli", "zstd", "lz4"])
@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_every_dictionary_value_is_read_used_or_not(
    tmp_path: Path, compression: str, version: str
) -> None:
    # An Arrow dictionary is written as it is: its unused value is in the dictionary page.
    array = pa.DictionaryArray.from_arrays(
        pa.array([0, 0, 2], pa.int32()), pa.array(["ok", UNUSED, "fine"])
    )
    path = write(
        tmp_path / "d.parquet",
        array,
        compression=compression,
        data_page_version=version,
        store_schema=False,
    )
    assert dictionary_values(*chunk_of(path)) == [b"ok", UNUSED.encode(), b"fine"]


def test_a_chunk_without_a_dictionary_has_no_values(tmp_path: Path) -> None:
    path = write(tmp_path / "p.parquet", pa.array(["a", "b"]), use_dictionary=False)
    assert dictionary_values(*chunk_of(path)) == []


def test_a_chunk_of_many_pages_is_walked_to_its_end(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.parquet",
        pa.array([f"v{i % 50}" for i in range(5000)]),
        data_page_size=64,
        compression="zstd",
    )
    assert sorted(dictionary_values(*chunk_of(path))) == sorted(f"v{i}".encode() for i in range(50))


def test_what_cannot_be_read_page_by_page_is_none(tmp_path: Path) -> None:
    array = pa.array(["ok", "fine"]).dictionary_encode()
    path = write(tmp_path / "d.parquet", array, compression="none")
    data, codec = chunk_of(path)
    assert dictionary_values(data, 3) is None  # LZO
    assert dictionary_values(data, 5) is None  # Hadoop-framed LZ4
    assert dictionary_values(data[:-1], codec) is None  # cut inside its last page
    assert dictionary_values(data + b"\x00", codec) is None  # a byte after its last page
    header, body = thrift.decode(data, 0)
    header[1] = thrift.Field(thrift.I32, 1)  # an index page: bytes readers skip
    assert dictionary_values(thrift.encode(header) + data[body:], codec) is None
    header[1] = thrift.Field(thrift.I32, 2)
    dictionary = header[7].value
    dictionary[2] = thrift.Field(thrift.I32, 8)  # RLE_DICTIONARY: not a dictionary's values
    assert dictionary_values(thrift.encode(header) + data[body:], codec) is None
    dictionary[2] = thrift.Field(thrift.I32, 0)
    dictionary[1] = thrift.Field(thrift.I32, 3)  # more values than the page holds
    assert dictionary_values(thrift.encode(header) + data[body:], codec) is None


def test_page_statistics_are_read_from_every_data_page_header(tmp_path) -> None:
    # pyarrow writes each page's min and max; a crafted header may hold anything there.
    path = write(tmp_path / "s.parquet", pa.array(["b", "a", "c"]), use_dictionary=False,
                 compression="none")
    data, codec = chunk_of(path)
    assert sorted(set(dictionary_values(data, codec, statistics=True))) == [b"a", b"c"]
    assert dictionary_values(data, codec) == []  # no dictionary; statistics only when asked
    header, body = thrift.decode(data, 0)
    header[5].value[5] = thrift.Field(thrift.STRUCT, {  # DataPageHeader.statistics
        5: thrift.Field(thrift.BINARY, b"31.2304,121.4737"),
        6: thrift.Field(thrift.BINARY, b"a")})
    crafted = thrift.encode(header) + data[body:]
    assert b"31.2304,121.4737" in dictionary_values(crafted, codec, statistics=True)
    v2 = write(tmp_path / "v2.parquet", pa.array(["x", "y"]), data_page_version="2.0",
               use_dictionary=False)
    assert b"y" in dictionary_values(*chunk_of(v2), statistics=True)
    assert dictionary_values(data[:-1], codec, statistics=True) is None  # cut in its last page

