"""One leaf column's column chunk: its pages and page headers, and its footer entry.

In: a leaf column (`leaf_columns.Leaf`), its schema element, and the row group's row count.
Out: the chunk appended to the file being written (`write_chunk`): an optional dictionary page
(PLAIN values), then one data page; zstd level 1 unless every page is under
`MIN_COMPRESSED_PAGE`; and a `Chunk` holding its encoded footer entry (a ColumnChunk, with
min/max/null statistics), where it starts and its sizes.
May fail: `UnsupportedColumn` for a page over `MAX_PAGE_BYTES`, or values the page encoders
refuse.

What is written per leaf column (field ids of parquet.thrift in the code): an optional
dictionary page (PLAIN values), then one data page: the definition levels (RLE/bit-packed
hybrid, with their 4-byte length), then the present values: PLAIN (floats too), or
RLE_DICTIONARY indices; each page compressed whole. Page headers and the footer's column
chunk entries are written directly, as `thrift.encode` would write their structs (thousands
per run: the generic encoder cost 1 ms a file). A dictionary may hold a value twice
(two messages with the same timestamp): Parquet and Arrow allow it, and readers decode
through it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from filter.arrow_arrays import numpy_array
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.array_buffers import UnsupportedColumn, array_values
from filter.formats.parquet.fields import SchemaElement
from filter.formats.parquet.hybrid_encoding import hybrid, rle_runs
from filter.formats.parquet.leaf_columns import Leaf
from filter.formats.parquet.plain_values import (
    BOOLEAN,
    Statistics,
    dictionary_values,
    plain,
    present_values,
    value_count,
    value_statistics,
)

# Parquet enums (parquet.thrift).
_PLAIN, _RLE, _RLE_DICTIONARY = 0, 3, 8
_DATA_PAGE, _DICTIONARY_PAGE = 0, 2
_UNCOMPRESSED, _ZSTD = 0, 6
_UNSIGNED = frozenset({11, 12, 13, 14})  # converted types UINT_8 .. UINT_64
_CODEC = pa.Codec("zstd", compression_level=1)
#: The largest page written (page sizes are 32-bit in the footer): a column chunk that would
#: need a larger one (a batch of large binary values) is left to Polars, which splits pages.
MAX_PAGE_BYTES = 1 << 30


@dataclass(frozen=True)
class Chunk:
    """A column chunk written: its footer entry (a ColumnChunk, encoded), where it starts,
    and its sizes."""

    entry: bytes
    start: int
    uncompressed: int
    compressed: int


#: Column chunks whose pages are all smaller than this are not compressed (the codec is per
#: chunk): zstd would save a few bytes, or add some, for 50 us a page (most of the chunks
#: of a side are columns it holds few values of, or none).
MIN_COMPRESSED_PAGE = 1024


def write_chunk(out: bytearray, element: thrift.Struct, leaf: Leaf, rows: int) -> Chunk:
    """Append `leaf`'s column chunk to `out`."""
    physical = int(element[SchemaElement.TYPE].value)
    converted = element.get(SchemaElement.CONVERTED_TYPE)
    unsigned = converted is not None and int(converted.value) in _UNSIGNED
    array = leaf.array
    start = len(out)
    dictionary = None
    repeated = leaf.counts is not None and physical != BOOLEAN  # booleans: no dictionary
    if repeated or pa.types.is_dictionary(array.type):
        counts = None  # codes one per row; a `Repeated` column's: one per stretch of rows
        if repeated:
            array, codes, counts = _repeated_codes(array, leaf.present, leaf.counts)
        else:
            codes = array_values(array.indices)
            if leaf.present is not None:
                codes = codes[leaf.present]
        values, used = dictionary_values(array.dictionary, physical, codes)
        dictionary = plain(values, physical)
        width = max(int(len(array.dictionary) - 1).bit_length(), 1)
        runs = (hybrid(codes, width) if counts is None
                else rle_runs(codes, counts, width).tobytes())
        body = bytes([width]) + runs
        encoding = _RLE_DICTIONARY
        written = len(codes) if counts is None else int(counts.sum())
        statistics = value_statistics(used, physical, unsigned, rows - written)
    else:
        values = present_values(array, physical, leaf.present)
        if leaf.counts is not None:  # repeated booleans, row by row (as other writers do)
            held = leaf.counts if leaf.present is None else leaf.counts[leaf.present]
            values = np.repeat(values, held)  # type: ignore[call-overload]
        # Floats PLAIN too: BYTE_STREAM_SPLIT made the part files 9% smaller for the same
        # encoding time, but fastparquet (and parquet-mr before 1.12) cannot read it.
        body = plain(values, physical)
        encoding = _PLAIN
        statistics = value_statistics(values, physical, unsigned, rows - value_count(values))
    levels = len(leaf.levels).to_bytes(4, "little") + leaf.levels if leaf.max_level else b""
    body = b"".join((levels, body))  # one copy
    codec = _ZSTD if max(len(body), len(dictionary or b"")) >= MIN_COMPRESSED_PAGE \
        else _UNCOMPRESSED
    uncompressed = 0
    if dictionary is not None:
        uncompressed += _write_page(out, _DICTIONARY_PAGE, dictionary,
                                    len(array.dictionary), _PLAIN, codec)
    data_offset = len(out)
    uncompressed += _write_page(out, _DATA_PAGE, body, rows, encoding, codec)
    size = len(out) - start
    entry = column_chunk(
        start, _chunk_prefix(physical, encoding, leaf.path), codec, rows, uncompressed, size,
        data_offset, start if dictionary is not None else None, statistics)
    return Chunk(entry, start, uncompressed, size)


def _repeated_codes(
    array: pa.Array, valid: np.ndarray | None, counts: np.ndarray
) -> tuple[pa.DictionaryArray, np.ndarray, np.ndarray]:
    """A `Repeated` column's values as a dictionary array (a plain array: its valid values,
    in order, are the dictionary), and the codes and counts of the values held: valid, and
    counted at least once."""
    if pa.types.is_dictionary(array.type):
        codes = array_values(array.indices, np.int32)
    else:
        dictionary = array if valid is None else array.filter(numpy_array(valid))
        codes = (np.arange(len(array), dtype=np.int32) if valid is None
                 else np.cumsum(valid, dtype=np.int32) - 1)
        array = pa.DictionaryArray.from_arrays(numpy_array(codes, valid), dictionary,
                                               safe=False)
    held = counts > 0 if valid is None else (counts > 0) & valid
    return array, codes[held], counts[held]


def _write_page(
    out: bytearray, kind: int, body: bytes, count: int, encoding: int, codec: int
) -> int:
    """Append a page to `out`, compressed with `codec`; the uncompressed size of header and
    page."""
    if len(body) > MAX_PAGE_BYTES:
        raise UnsupportedColumn(f"a page of {len(body)} bytes")
    stored = _CODEC.compress(body, asbytes=True) if codec == _ZSTD else body
    encoded = page_header(kind, len(body), len(stored), count, encoding)
    out += encoded
    out += stored
    return len(encoded) + len(body)


def page_header(kind: int, size: int, compressed: int, count: int, encoding: int) -> bytes:
    """The encoded PageHeader of a data page (`kind` 0) or dictionary page (2) of `count`
    values, `size` bytes long, `compressed` once compressed: the bytes `thrift.encode` makes
    of that struct, written directly (a header per page, thousands per run)."""
    out = bytearray()
    for value in (kind, size, compressed):  # fields 1-3: type, sizes
        out.append(0x10 | thrift.I32)  # the next field id, an i32
        thrift.write_zigzag(out, value)
    if kind == _DATA_PAGE:  # field 5: DataPageHeader (values, encoding, level encodings)
        out.append(0x20 | thrift.STRUCT)
        fields = (count, encoding, _RLE, _RLE)
    else:  # field 7: DictionaryPageHeader (values, encoding)
        out.append(0x40 | thrift.STRUCT)
        fields = (count, _PLAIN)
    for value in fields:
        out.append(0x10 | thrift.I32)
        thrift.write_zigzag(out, value)
    out += bytes([thrift.STOP, thrift.STOP])  # ends the inner struct, then the header
    return bytes(out)


@functools.lru_cache(maxsize=4096)
def _chunk_prefix(physical: int, encoding: int, path: tuple[str, ...]) -> bytes:
    """Fields 1-3 of a ColumnMetaData (type, encodings, path), encoded: the same for a
    column in every file."""
    encodings = [encoding, _RLE] if encoding != _RLE_DICTIONARY else [_PLAIN, _RLE, encoding]
    encoded = thrift.encode({
        1: thrift.Field(thrift.I32, physical),
        2: thrift.Field(thrift.LIST, thrift.ThriftList(thrift.I32, encodings)),
        3: thrift.Field(thrift.LIST, thrift.ThriftList(
            thrift.BINARY, [p.encode() for p in path])),
    })
    return encoded[:-1]  # without the struct's end


def column_chunk(
    start: int, prefix: bytes, codec: int, values: int, uncompressed: int, compressed: int,
    data_offset: int, dictionary_offset: int | None, statistics: Statistics,
) -> bytes:
    """The encoded ColumnChunk footer entry of a chunk at `start`: its ColumnMetaData is
    `prefix` (`_chunk_prefix`), the codec, sizes and offsets, and `statistics`. The bytes
    `thrift.encode` makes of that struct, written directly (a chunk per column and file)."""
    out = bytearray([0x20 | thrift.I64])  # field 2: file_offset
    thrift.write_zigzag(out, start)
    out.append(0x10 | thrift.STRUCT)  # field 3: meta_data
    out += prefix
    out.append(0x10 | thrift.I32)  # field 4: codec
    thrift.write_zigzag(out, codec)
    for value in (values, uncompressed, compressed):  # fields 5-7
        out.append(0x10 | thrift.I64)
        thrift.write_zigzag(out, value)
    out.append(0x20 | thrift.I64)  # field 9: data_page_offset
    thrift.write_zigzag(out, data_offset)
    if dictionary_offset is not None:
        out.append(0x20 | thrift.I64)  # field 11: dictionary_page_offset
        thrift.write_zigzag(out, dictionary_offset)
        out.append(0x10 | thrift.STRUCT)  # field 12: statistics
    else:
        out.append(0x30 | thrift.STRUCT)
    nulls, low, high = statistics
    out.append(0x30 | thrift.I64)  # field 3: null_count
    thrift.write_zigzag(out, nulls)
    if low is not None and high is not None:
        out.append(0x20 | thrift.BINARY)  # field 5: max_value
        thrift.write_varint(out, len(high))
        out += high
        out.append(0x10 | thrift.BINARY)  # field 6: min_value
        thrift.write_varint(out, len(low))
        out += low
    out += bytes([thrift.STOP, thrift.STOP, thrift.STOP])  # statistics, meta_data, chunk
    return bytes(out)
