"""Parquet files encoded straight from Arrow arrays: the writer of key/value rows.

In: one row group's columns as Arrow arrays (or `Sparse` and `Repeated` columns), of the
types the compiled key/value decoder builds (booleans, integers, floats, timestamps, strings
and binaries; dictionary arrays of those; structs of them, one level deep), and the Polars
schema of the frame they make.
Out: the bytes of a Parquet file holding them: one row group, zstd level 1 (but column chunks
whose pages are all under 1 KiB: uncompressed), data pages v1 with RLE definition levels,
min/max/null statistics. Its schema, Arrow schema ("ARROW:schema", with
strings for `pl.Enum` columns) and column orders are those Polars writes for the same frame
schema (`FileTemplate`, taken from a file Polars writes), so part files from either writer
read back alike, with the same types, in Polars, pyarrow and DuckDB.
May fail: `UnsupportedColumn` for any other array type, or a page over 1 GiB (the caller then
writes with Polars).

Why not Polars' or pyarrow's writer: key/value rows are mostly nulls (each entry fills one of
some 16 value columns), and those writers spend 15-20 ns on each null (an all-null Int64
column of 300,000 rows: 6 ms in Polars; pyarrow as much under structs): half the CPU of a
key/value split with Parquet output. Here a run of nulls is one RLE run, and a column that
repeats per message (VIN, token, timestamp) comes as the message values and how many entries
each message has on the side (`Repeated`), written as a dictionary of the message values and
one RLE run of its code per message: nothing is hashed, compared or even written per entry.

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
import io
import struct
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from filter.arrow_arrays import numpy_array
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.fields import SchemaElement
from filter.formats.parquet.layout import (
    VTX_WRITER,
    FooterParts,
    SchemaNode,
    footer_parts,
    layout_in_memory,
    row_group_of,
)
from filter.formats.parquet.metadata import plain_strings, polars_arrow_schema
from filter.jit import kernel

# Parquet enums (parquet.thrift).
_BOOLEAN, _INT32, _INT64, _FLOAT, _DOUBLE, _BYTE_ARRAY = 0, 1, 2, 4, 5, 6
_PLAIN, _RLE, _RLE_DICTIONARY = 0, 3, 8
_DATA_PAGE, _DICTIONARY_PAGE = 0, 2
_UNCOMPRESSED, _ZSTD = 0, 6
_UNSIGNED = frozenset({11, 12, 13, 14})  # converted types UINT_8 .. UINT_64
_VALUE_DTYPE = {_BOOLEAN: np.bool_, _INT32: np.int32, _INT64: np.int64, _FLOAT: np.float32,
                _DOUBLE: np.float64}
_CODEC = pa.Codec("zstd", compression_level=1)
#: The largest page written (page sizes are 32-bit in the footer): a column chunk that would
#: need a larger one (a batch of large binary values) is left to Polars, which splits pages.
MAX_PAGE_BYTES = 1 << 30


class UnsupportedColumn(TypeError):
    """An array type this writer does not encode."""


@dataclass(frozen=True)
class FileTemplate:
    """What every file of one frame schema shares: as Polars writes it, but the writer's
    name (`created_by`: vtx's, as readers work around known writers' bugs by it)."""

    columns: tuple[SchemaNode, ...]  # top-level, in order
    empty: bytes  # the file itself: of no rows (and no row group), as Polars writes it
    footer: FooterParts  # all of the footer but the rows and row groups, encoded


def file_template(schema: pl.Schema) -> FileTemplate:
    """The template of files of `schema` (`pl.Enum` columns declared as strings)."""
    return _template(plain_strings(schema))


@functools.lru_cache(maxsize=16)
def _template(columns: tuple[tuple[str, pl.DataType], ...]) -> FileTemplate:
    schema = pl.Schema(dict(columns))
    buffer = io.BytesIO()
    pl.DataFrame(schema=schema).write_parquet(buffer)
    data = buffer.getvalue()
    layout = layout_in_memory(data, "template")
    top = tuple(layout.columns.values())
    orders = [layout.column_order(leaf) for leaf in range(layout.leaf_count)]
    return FileTemplate(top, data, footer_parts(
        layout.version, top, polars_arrow_schema(schema), VTX_WRITER, orders))


def encode_file(arrays: list[Column], schema: pl.Schema) -> bytes:
    """A Parquet file of one row group holding `arrays`, the columns of `schema` in order."""
    template = file_template(schema)
    rows = len(arrays[0]) if arrays else 0
    if not rows:
        return template.empty
    out = bytearray(b"PAR1")
    chunks: list[_Chunk] = []
    for node, array in zip(template.columns, arrays, strict=True):
        if isinstance(array, pa.ChunkedArray):
            array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
        for element, leaf in _leaves(node, array):
            chunks.append(_write_chunk(out, element, leaf, rows))
    group = row_group_of([c.entry for c in chunks], rows, 0,
                         sum(c.uncompressed for c in chunks),
                         sum(c.compressed for c in chunks), chunks[0].start)
    out += template.footer.footer([group], rows)
    return bytes(out)


# --- leaves -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sparse:
    """A column that is null except at `rows` (ascending), where it holds `values` (an array
    of ``len(rows)``; of a struct column, a struct array): a sparse column is written without
    ever being made `height` rows long."""

    rows: np.ndarray
    values: pa.Array
    height: int

    def __len__(self) -> int:
        return self.height


@dataclass(frozen=True)
class Repeated:
    """A column whose rows come in stretches: `values[k]` (of a dictionary array, the value
    it codes), `counts[k]` times over (0: not at all), in order. What entries take on from
    their message: each message's value is written once, as an RLE run of its entries
    (`rle_runs`), instead of once per entry and then searched for runs."""

    values: pa.Array
    counts: np.ndarray  # int64, one per value
    height: int  # the sum of `counts`

    def __len__(self) -> int:
        return self.height


Column = pa.Array | pa.ChunkedArray | Sparse | Repeated


@dataclass(frozen=True)
class _Leaf:
    """One leaf column of a row group: its levels and its present values."""

    path: tuple[str, ...]
    levels: bytes  # the definition levels, encoded (none when `max_level` is 0)
    max_level: int
    array: pa.Array  # the leaf's values: of all rows, or of a sparse column's rows
    present: np.ndarray | None  # which of `array`'s values are written (None: all)
    counts: np.ndarray | None = None  # a `Repeated` column's: how often each value is


def _leaves(
    node: SchemaNode, column: pa.Array | Sparse | Repeated
) -> list[tuple[thrift.Struct, _Leaf]]:
    """The leaf columns of one top-level column: its own, or its struct's fields'."""
    outer_optional = _optional(node.element)
    if isinstance(column, Repeated):
        return [(node.element, _repeated_leaf(node, column, outer_optional))]
    if isinstance(column, Sparse):
        array, rows, height = column.values, column.rows, column.height
        outer = array_validity(array)
        if outer is not None:
            raise UnsupportedColumn(f"{node.name}: nulls among a sparse column's values")
        if len(rows) < height and not outer_optional:
            raise UnsupportedColumn(f"{node.name}: nulls in a required column")
    else:
        array, rows, height = column, None, len(column)
        outer = array_validity(array)
        if outer is not None and not outer_optional:
            raise UnsupportedColumn(f"{node.name}: nulls in a required column")
    if node.children and not pa.types.is_struct(array.type):
        raise UnsupportedColumn(f"{node.name}: {array.type} for a group")
    found = []
    shared: dict[int, bytes] = {}  # struct fields that are never null alone share levels
    for child in node.children or (node,):
        if child.children:
            raise UnsupportedColumn(f"{node.name}.{child.name}: nested group")
        leaf = array.field(child.name) if node.children else array
        inner = array_validity(leaf) if node.children else None
        inner_optional = _optional(child.element) if node.children else False
        if inner is not None and not inner_optional:
            raise UnsupportedColumn(f"{node.name}.{child.name}: nulls in a required field")
        max_level = int(outer_optional) + int(inner_optional)
        path = (node.name, child.name) if node.children else (node.name,)
        if inner is None and max_level in shared:
            levels = shared[max_level]
        else:
            levels = _levels_of(outer, inner, rows, height, outer_optional, inner_optional)
            if inner is None:
                shared[max_level] = levels
        present = inner if rows is not None else _both(outer, inner)
        found.append((child.element, _Leaf(path, levels, max_level, leaf, present)))
    return found


def _repeated_leaf(node: SchemaNode, column: Repeated, optional: bool) -> _Leaf:
    """The leaf of a `Repeated` column: its levels are runs, one per value (a null's: 0)."""
    if node.children:
        raise UnsupportedColumn(f"{node.name}: repeated values of a group")
    valid = array_validity(column.values)
    if valid is not None and not optional:
        raise UnsupportedColumn(f"{node.name}: nulls in a required column")
    if not optional or not column.height:
        levels = b""
    elif valid is None:
        levels = _rle_run(column.height, 1, 1)
    else:
        levels = rle_runs(valid.view(np.uint8), column.counts, 1).tobytes()
    return _Leaf((node.name,), levels, int(optional), column.values, valid, column.counts)


def _levels_of(
    outer: np.ndarray | None, inner: np.ndarray | None, rows: np.ndarray | None, height: int,
    outer_optional: bool, inner_optional: bool,
) -> bytes:
    """The encoded definition levels of a leaf: +1 where its column (or struct) is valid, if
    that is optional; +1 where the leaf itself is, if it is optional."""
    max_level = int(outer_optional) + int(inner_optional)
    width = max_level.bit_length()
    if not max_level or not height:
        return b""
    if rows is not None:  # sparse: the levels of the held rows, zero elsewhere
        if not len(rows):
            return _rle_run(height, 0, width)
        if max_level == 1 and not inner_optional:  # one bit a row, set at the rows held
            return rle_bits(sparse_bits(rows, height), height).tobytes()
        levels = np.zeros(height, np.uint8)
        held = np.full(len(rows), int(outer_optional), np.uint8)
        if inner_optional:
            held += 1 if inner is None else inner.view(np.uint8)
        levels[rows] = held
        return hybrid(levels, width)
    if outer is None and inner is None:
        return _rle_run(height, max_level, width)
    levels = np.zeros(height, np.uint8)
    if outer_optional:
        levels += 1 if outer is None else outer.view(np.uint8)
    if inner_optional:
        both = _both(outer, inner)
        levels += 1 if both is None else both.view(np.uint8)
    return hybrid(levels, width)


def _both(outer: np.ndarray | None, inner: np.ndarray | None) -> np.ndarray | None:
    """Rows valid in both masks (None: all rows)."""
    if outer is None:
        return inner
    return outer if inner is None else outer & inner


def _optional(element: thrift.Struct) -> bool:
    held = element.get(SchemaElement.REPETITION_TYPE)
    repetition = int(held.value) if held is not None else 0
    if repetition == 2:
        raise UnsupportedColumn("repeated fields")
    return repetition == 1


def array_validity(array: pa.Array) -> np.ndarray | None:
    """Per row of `array`, whether it is valid (None: all are)."""
    if array.null_count == 0:
        return None
    if array.null_count == len(array):
        return np.zeros(len(array), np.bool_)
    return _bits(array, 0)


def _bits(array: pa.Array, buffer: int) -> np.ndarray:
    """Buffer `buffer` of `array` (0: validity; 1: a boolean array's values), a bool per row."""
    bits = np.unpackbits(np.frombuffer(array.buffers()[buffer], np.uint8), bitorder="little")
    return bits[array.offset:array.offset + len(array)].view(np.bool_)


# --- column chunks ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chunk:
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


def _write_chunk(out: bytearray, element: thrift.Struct, leaf: _Leaf, rows: int) -> _Chunk:
    """Append `leaf`'s column chunk to `out`."""
    physical = int(element[SchemaElement.TYPE].value)
    converted = element.get(SchemaElement.CONVERTED_TYPE)
    unsigned = converted is not None and int(converted.value) in _UNSIGNED
    array = leaf.array
    start = len(out)
    dictionary = None
    repeated = leaf.counts is not None and physical != _BOOLEAN  # booleans: no dictionary
    if repeated or pa.types.is_dictionary(array.type):
        counts = None  # codes one per row; a `Repeated` column's: one per stretch of rows
        if repeated:
            array, codes, counts = _repeated_codes(array, leaf.present, leaf.counts)
        else:
            codes = array_values(array.indices)
            if leaf.present is not None:
                codes = codes[leaf.present]
        values, used = _dictionary_values(array.dictionary, physical, codes)
        dictionary = _plain(values, physical)
        width = max(int(len(array.dictionary) - 1).bit_length(), 1)
        runs = (hybrid(codes, width) if counts is None
                else rle_runs(codes, counts, width).tobytes())
        body = bytes([width]) + runs
        encoding = _RLE_DICTIONARY
        written = len(codes) if counts is None else int(counts.sum())
        statistics = _statistics(used, physical, unsigned, rows - written)
    else:
        values = _present_values(array, physical, leaf.present)
        if leaf.counts is not None:  # repeated booleans, row by row (as other writers do)
            held = leaf.counts if leaf.present is None else leaf.counts[leaf.present]
            values = np.repeat(values, held)  # type: ignore[call-overload]
        # Floats PLAIN too: BYTE_STREAM_SPLIT made the part files 9% smaller for the same
        # encoding time, but fastparquet (and parquet-mr before 1.12) cannot read it.
        body = _plain(values, physical)
        encoding = _PLAIN
        statistics = _statistics(values, physical, unsigned, rows - _count(values))
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
    return _Chunk(entry, start, uncompressed, size)


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
    data_offset: int, dictionary_offset: int | None, statistics: _Statistics,
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


def _rle_run(count: int, value: int, width: int) -> bytes:
    """One RLE run of `count` times `value` (the hybrid's header is a ULEB128 varint)."""
    header = bytearray()
    thrift.write_varint(header, count << 1)
    return bytes(header) + value.to_bytes((width + 7) // 8, "little")


# --- values -------------------------------------------------------------------------------


def array_values(array: pa.Array, dtype: type | None = None) -> np.ndarray:
    """The values of a primitive (non-boolean) array, all rows (whatever lies under a null),
    read from its buffer, as `dtype` (integers keep their bits: an unsigned value past the
    signed range wraps, as Parquet stores it); by default as stored."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        stored = np.dtype(np.int64)
    elif pa.types.is_integer(kind):
        signed = "i" if pa.types.is_signed_integer(kind) else "u"
        stored = np.dtype(f"<{signed}{kind.bit_width // 8}")
    elif pa.types.is_floating(kind):
        stored = np.dtype(f"<f{kind.bit_width // 8}")
    else:
        raise UnsupportedColumn(f"{kind}")
    raw = np.frombuffer(array.buffers()[1], stored)
    raw = raw[array.offset:array.offset + len(array)]
    return raw if dtype is None else raw.astype(dtype, copy=False)


def _present_values(array: pa.Array, physical: int, present: np.ndarray | None) -> object:
    """The leaf's values at its present rows, in the form `_plain` takes for `physical`."""
    if physical == _BYTE_ARRAY:
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
                or pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)):
            raise UnsupportedColumn(f"{array.type} as BYTE_ARRAY")
        offsets = np.frombuffer(array.buffers()[1], np.int64 if array.type in (
            pa.large_string(), pa.large_binary()) else np.int32)
        offsets = offsets[array.offset:array.offset + len(array) + 1].astype(np.int64)
        data = array.buffers()[2]
        data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        rows = (np.arange(len(array), dtype=np.int64) if present is None
                else np.flatnonzero(present))
        return _Spans(offsets, data, rows)
    if physical not in _VALUE_DTYPE:
        raise UnsupportedColumn(f"physical type {physical}")
    if physical == _BOOLEAN:
        if not pa.types.is_boolean(array.type):
            raise UnsupportedColumn(f"{array.type} as BOOLEAN")
        values = _bits(array, 1)
    else:
        if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
                or pa.types.is_timestamp(array.type)):
            raise UnsupportedColumn(f"{array.type} as physical type {physical}")
        values = array_values(array, _VALUE_DTYPE[physical])
    return values if present is None else values[present]


@dataclass(frozen=True)
class _Spans:
    """Byte strings: Arrow offsets and data, and which of them (rows, ascending) to take."""

    offsets: np.ndarray
    data: np.ndarray
    rows: np.ndarray


def _count(values: object) -> int:
    return len(values.rows) if isinstance(values, _Spans) else len(values)  # type: ignore[arg-type]


def _dictionary_values(
    dictionary: pa.Array, physical: int, codes: np.ndarray
) -> tuple[object, object]:
    """The dictionary page's values, and the values the codes use (for the statistics)."""
    if dictionary.null_count:
        raise UnsupportedColumn("a dictionary holding nulls")
    values = _present_values(dictionary, physical, None)
    used = marked(codes, len(dictionary))
    if isinstance(values, _Spans):
        return values, _Spans(values.offsets, values.data, np.flatnonzero(used))
    return values, values[used]  # type: ignore[index]


def _plain(values: object, physical: int) -> bytes:
    if isinstance(values, _Spans):
        return plain_byte_arrays(values.offsets, values.data, values.rows).tobytes()
    if physical == _BOOLEAN:
        return np.packbits(values, bitorder="little").tobytes()  # type: ignore[call-overload]
    return np.ascontiguousarray(values).tobytes()  # type: ignore[call-overload]


#: A chunk's statistics: its null count, and the min and max of its values, encoded as
#: PLAIN values are (None when it has none).
_Statistics = tuple[int, bytes | None, bytes | None]


def _statistics(values: object, physical: int, unsigned: bool, nulls: int) -> _Statistics:
    """Null count, and min and max of the present values (none when there are none)."""
    low = high = None
    if isinstance(values, _Spans):
        if len(values.rows):
            first, last = span_min_max(values.offsets, values.data, values.rows)
            low, high = (values.data[values.offsets[r]:values.offsets[r + 1]].tobytes()
                         for r in (first, last))
    elif len(values):  # type: ignore[arg-type]
        array = np.asarray(values)
        if physical == _BOOLEAN:
            low, high = bytes([int(array.min())]), bytes([int(array.max())])
        elif physical in (_FLOAT, _DOUBLE):
            finite = array[~np.isnan(array)]
            if len(finite):
                lo, hi = finite.min(), finite.max()
                lo = -0.0 if lo == 0 else lo  # a zero may be either sign: bound both
                hi = 0.0 if hi == 0 else hi
                code = "<f" if physical == _FLOAT else "<d"
                low, high = struct.pack(code, lo), struct.pack(code, hi)
        else:
            ordered = array.view(np.uint32 if physical == _INT32 else np.uint64) if unsigned \
                else array
            low, high = ordered.min().tobytes(), ordered.max().tobytes()
    return nulls, low, high


def hybrid(values: np.ndarray, width: int) -> bytes:
    """The RLE/bit-packed hybrid encoding of `values` (integers, each < 2**width).

    One-bit values (most definition levels) are packed first, eight to a byte, and the
    kernel then reads whole bytes (`rle_bits`): a tenth of the time of `rle_hybrid`, which
    reads them one at a time. Values that change at most every other row (the codes of key
    and member names, entry indexes) have no runs worth looking for: they are bit-packed
    whole (`bit_packed`), in a third of the time.
    """
    if width == 1:
        return rle_bits(np.packbits(values, bitorder="little"), len(values)).tobytes()
    if len(values) > 16 and 2 * np.count_nonzero(values[1:] != values[:-1]) > len(values):
        return bit_packed(values, width).tobytes()
    return rle_hybrid(values, width).tobytes()


# --- compiled kernels ---------------------------------------------------------------------


#: A run of this many equal bytes (8 one-bit values each) or more becomes an RLE run in
#: `rle_bits`: a shorter one costs less as bit-packed bytes than the run and a new header.
_RUN_BYTES = 4


@kernel()
def rle_bits(packed, count):  # pragma: no cover - compiled
    """The RLE/bit-packed hybrid encoding of `count` one-bit values, given packed eight to a
    byte, least significant bit first (`np.packbits(values, bitorder="little")`).

    A byte is a bit-packed group of 8 as it stands. Runs of `_RUN_BYTES` or more bytes of
    all zeros or all ones become RLE runs; the last byte, which may be part padding, is
    always bit-packed.
    """
    size = len(packed)
    full = count // 8  # bytes holding 8 values each
    # Worst case: a 1-byte literal (5-byte header) between two shortest runs (6 bytes each).
    out = np.empty(size * 4 + 16, np.uint8)
    o = 0
    literal = 0  # start of the bytes waiting to be bit-packed
    i = 0
    while i < full:
        byte = packed[i]
        if byte != 0 and byte != 0xFF:
            i += 1
            continue
        j = i + 1
        while j < full and packed[j] == byte:
            j += 1
        if j - i >= _RUN_BYTES:
            if i > literal:
                o = _varint(out, o, ((i - literal) << 1) | 1)
                out[o:o + i - literal] = packed[literal:i]
                o += i - literal
            o = _varint(out, o, ((j - i) * 8) << 1)
            out[o] = 1 if byte else 0
            o += 1
            literal = j
        i = j
    if size > literal:
        o = _varint(out, o, ((size - literal) << 1) | 1)
        out[o:o + size - literal] = packed[literal:size]
        o += size - literal
    return out[:o]


@kernel()
def sparse_bits(rows, height):  # pragma: no cover - compiled
    """`height` one-bit values, set at `rows` and clear elsewhere, packed eight to a byte as
    `rle_bits` takes them."""
    packed = np.zeros((height + 7) // 8, np.uint8)
    for r in rows:
        packed[r >> 3] |= np.uint8(1 << (r & 7))
    return packed


@kernel()
def rle_hybrid(values, width):  # pragma: no cover - compiled
    """Parquet's RLE/bit-packed hybrid encoding of `values` (integers, each < 2**width).

    Runs of 8 or more equal values become RLE runs; what lies between them is bit-packed in
    groups of 8, the last group padded with zeros.
    """
    n = len(values)
    value_bytes = (width + 7) // 8
    out = np.empty(n * value_bytes + (n // 8 + 2) * (width + 10) + 16, np.uint8)
    o = 0
    pending = 0  # values from `pending_start` waiting to be bit-packed
    pending_start = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and values[j] == values[i]:
            j += 1
        run = j - i
        if run >= 8:
            # The bit-packed values before the run must fill whole groups of 8: the run
            # lends them what they lack.
            lend = (8 - pending % 8) % 8
            if pending:
                o = _bit_pack(values, pending_start, pending + lend, width, out, o)
            rest = run - lend
            if rest > 0:
                o = _varint(out, o, rest << 1)
                for b in range(value_bytes):
                    out[o] = (values[i] >> (8 * b)) & 0xFF
                    o += 1
            pending = 0
            i = j
            pending_start = i
        else:
            if pending == 0:
                pending_start = i
            pending += run
            i = j
    if pending:
        o = _bit_pack(values, pending_start, pending, width, out, o)
    return out[:o]


@kernel()
def rle_runs(values, counts, width):  # pragma: no cover - compiled
    """The RLE/bit-packed hybrid encoding of `values[k]` repeated `counts[k]` times: RLE runs
    only, one per stretch of equal values (counts of 0 are skipped). From two repeats on a
    run is no larger than bit-packing them, and it costs a step per value, not per row."""
    value_bytes = (width + 7) // 8
    out = np.empty(len(values) * (10 + value_bytes) + 16, np.uint8)
    o = 0
    run = 0
    current = 0
    for k in range(len(values)):
        count = counts[k]
        if count == 0:
            continue
        if run and values[k] == current:
            run += count
            continue
        if run:
            o = _rle(out, o, run, current, value_bytes)
        current = values[k]
        run = count
    if run:
        o = _rle(out, o, run, current, value_bytes)
    return out[:o]


@kernel(inline="always")
def _rle(out, o, count, value, value_bytes):  # pragma: no cover - compiled
    o = _varint(out, o, count << 1)
    for b in range(value_bytes):
        out[o] = (value >> (8 * b)) & 0xFF
        o += 1
    return o


@kernel()
def bit_packed(values, width):  # pragma: no cover - compiled
    """`values` as one bit-packed run of the hybrid encoding (the last group padded)."""
    n = len(values)
    out = np.empty((n + 7) // 8 * width + 16, np.uint8)
    return out[:_bit_pack(values, 0, n, width, out, 0)]


@kernel(inline="always")
def _varint(out, o, n):  # pragma: no cover - compiled
    while n > 0x7F:
        out[o] = (n & 0x7F) | 0x80
        o += 1
        n >>= 7
    out[o] = n
    return o + 1


@kernel(inline="always")
def _bit_pack(values, start, count, width, out, o):  # pragma: no cover - compiled
    groups = (count + 7) // 8
    o = _varint(out, o, (groups << 1) | 1)
    end = start + count
    if width <= 8:  # a group of 8 values fits one 64-bit word: `width` bytes of it
        for g in range(groups):
            first = start + 8 * g
            word = np.uint64(0)
            for k in range(min(8, end - first)):
                word |= np.uint64(values[first + k]) << np.uint64(k * width)
            for b in range(width):
                out[o] = (word >> np.uint64(8 * b)) & np.uint64(0xFF)
                o += 1
        return o
    window = np.uint64(0)  # wider values: through a 64-bit window, a byte at a time
    bits = 0
    for k in range(groups * 8):
        value = np.uint64(values[start + k]) if start + k < end else np.uint64(0)
        window |= value << np.uint64(bits)
        bits += width
        while bits >= 8:
            out[o] = window & np.uint64(0xFF)
            o += 1
            window >>= np.uint64(8)
            bits -= 8
    if bits > 0:
        out[o] = window & np.uint64(0xFF)
        o += 1
    return o


@kernel()
def plain_byte_arrays(offsets, data, rows):  # pragma: no cover - compiled
    """PLAIN BYTE_ARRAY values: per row taken, a 4-byte length, then the bytes."""
    total = 0
    for r in rows:
        total += 4 + offsets[r + 1] - offsets[r]
    out = np.empty(total, np.uint8)
    o = 0
    for r in rows:
        start, end = offsets[r], offsets[r + 1]
        size = end - start
        out[o] = size & 0xFF
        out[o + 1] = (size >> 8) & 0xFF
        out[o + 2] = (size >> 16) & 0xFF
        out[o + 3] = (size >> 24) & 0xFF
        o += 4
        out[o:o + size] = data[start:end]
        o += size
    return out


@kernel()
def span_min_max(offsets, data, rows):  # pragma: no cover - compiled
    """The rows holding the least and the greatest byte string (unsigned bytewise order)."""
    low = rows[0]
    high = rows[0]
    for r in rows[1:]:
        if _less(offsets, data, r, low):
            low = r
        if _less(offsets, data, high, r):
            high = r
    return low, high


@kernel(inline="always")
def _less(offsets, data, a, b):  # pragma: no cover - compiled
    a0, a1, b0, b1 = offsets[a], offsets[a + 1], offsets[b], offsets[b + 1]
    n = min(a1 - a0, b1 - b0)
    for k in range(n):
        x, y = data[a0 + k], data[b0 + k]
        if x != y:
            return x < y
    return (a1 - a0) < (b1 - b0)


@kernel()
def marked(codes, size):  # pragma: no cover - compiled
    """Which of `size` dictionary entries the codes use."""
    used = np.zeros(size, np.bool_)
    for c in codes:
        used[c] = True
    return used
