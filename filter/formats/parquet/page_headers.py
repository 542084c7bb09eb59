"""The few fields of a Parquet page header that say how large its page is, read without
decoding the rest.

In: bytes (or a memoryview of them) and the offset of a page header in them.
Out: `PageHeaderSizes` (type, uncompressed and compressed size, values, encoding, where the
page's bytes start), or `SHORT` where the bytes end inside the header, or `MALFORMED` where
they are not one.
May fail: nothing; what does not parse is `MALFORMED`.

The fields (parquet.thrift ids): PageHeader 1 type, 2 uncompressed_page_size,
3 compressed_page_size; in DataPageHeader (5) and DictionaryPageHeader (7): 1 num_values,
2 encoding; in DataPageHeaderV2 (8): 1 num_values, 4 encoding. Everything else (statistics,
CRC, fields newer than vtx) is skipped by its compact-protocol wire type. A walk made for the
memory budget, which reads every page header of every chunk a split decodes: 5 microseconds a
header, where `thrift_compact.decode`, which builds every field, takes 45 (1.3 s for a 5M-row
file's 29,000 pages), and without loading numba, which a Parquet split does not otherwise.
"""

from __future__ import annotations

from typing import NamedTuple

#: Nesting a page header may have (statistics in a page's header in the page header: 3).
_MAX_DEPTH = 32
# Compact protocol wire types.
_STOP = 0  # a struct's end
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
# The page header fields that hold a page's own header, and where its encoding is in each.
_ENCODING_FIELD = {5: 2, 7: 2, 8: 4}


class PageHeaderSizes(NamedTuple):
    """What a page header says of its page's size."""

    body: int  # where the page's bytes start (the header's end)
    kind: int  # PageType: 0 data, 2 dictionary, 3 data v2 (-1: absent)
    uncompressed: int  # -1: absent
    compressed: int  # -1: absent
    values: int  # num_values of its page header (-1: absent)
    encoding: int  # the values' encoding (-1: absent)


SHORT = "short"  # the bytes end inside the header
MALFORMED = "malformed"  # the bytes are not a page header


def read_header(data: bytes | memoryview, pos: int) -> PageHeaderSizes | str:
    """The page header at `pos` of `data`, or `SHORT` or `MALFORMED`."""
    try:
        return _read_header(data, pos, len(data))
    except _Short:
        return SHORT
    except _Malformed:
        return MALFORMED


class _Short(Exception):
    """The bytes end inside the header."""


class _Malformed(Exception):
    """The bytes are not a page header."""


def _read_header(data: bytes | memoryview, pos: int, end: int) -> PageHeaderSizes:
    kind = uncompressed = compressed = values = encoding = -1
    last = 0
    while True:
        wire, last, pos = _next_field(data, pos, end, last)
        if wire == _STOP:
            return PageHeaderSizes(pos, kind, uncompressed, compressed, values, encoding)
        if wire in (_I16, _I32, _I64) and last in (1, 2, 3):
            number, pos = _zigzag(data, pos, end)
            if last == 1:
                kind = number
            elif last == 2:
                uncompressed = number
            else:
                compressed = number
        elif wire == _STRUCT and last in _ENCODING_FIELD:  # the page's own header
            wanted, inner = _ENCODING_FIELD[last], 0
            while True:
                inner_wire, inner, pos = _next_field(data, pos, end, inner)
                if inner_wire == _STOP:
                    break
                if inner_wire in (_I16, _I32, _I64) and inner in (1, wanted):
                    number, pos = _zigzag(data, pos, end)
                    if inner == 1:
                        values = number
                    else:
                        encoding = number
                else:
                    pos = _skip(data, pos, end, inner_wire, 2)
        else:
            pos = _skip(data, pos, end, wire, 1)


def _next_field(data: bytes | memoryview, pos: int, end: int,
                last: int) -> tuple[int, int, int]:
    """The field header at `pos` of a struct whose last field was `last`: (wire type, field
    id, position after it); the wire type `_STOP` at the struct's end."""
    if pos >= end:
        raise _Short
    byte = data[pos]
    pos += 1
    if byte == 0:
        return _STOP, last, pos
    delta = byte >> 4
    if delta:
        return byte & 0x0F, last + delta, pos
    raw, pos = _varint(data, pos, end)
    return byte & 0x0F, (raw >> 1) ^ -(raw & 1), pos


def _zigzag(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    if pos < end and data[pos] < 0x80:  # most are one byte
        raw = data[pos]
        return (raw >> 1) ^ -(raw & 1), pos + 1
    raw, pos = _varint(data, pos, end)
    return (raw >> 1) ^ -(raw & 1), pos


def _skip(data: bytes | memoryview, pos: int, end: int, wire: int, depth: int) -> int:
    """The position after a value of `wire` type at `pos` (booleans of a field: none)."""
    if wire in (_TRUE, _FALSE):
        return pos
    if wire in (_I16, _I32, _I64):
        if pos < end and data[pos] < 0x80:
            return pos + 1
        return _varint(data, pos, end)[1]
    if wire == _BINARY:
        if pos < end and data[pos] < 0x80:
            return pos + 1 + data[pos]
        size, pos = _varint(data, pos, end)
        return pos + size
    if wire == _BYTE:
        return pos + 1
    if wire == _DOUBLE:
        return pos + 8
    if depth >= _MAX_DEPTH:
        raise _Malformed
    if wire == _STRUCT:
        return _skip_struct(data, pos, end, depth)
    if wire in (_LIST, _SET):
        if pos >= end:
            raise _Short
        head = data[pos]
        pos += 1
        count, element = head >> 4, head & 0x0F
        if count == 15:
            count, pos = _varint(data, pos, end)
        if count > end - pos and element not in (_TRUE, _FALSE):  # each takes a byte at least
            raise _Short
        for _ in range(count):
            pos = pos + 1 if element in (_TRUE, _FALSE) else _skip(data, pos, end, element,
                                                                   depth + 1)
            if pos > end:
                raise _Short
        return pos
    raise _Malformed  # a map, or no wire type: no page header holds one


def _skip_struct(data: bytes | memoryview, pos: int, end: int, depth: int) -> int:
    """The position after the struct whose fields start at `pos`."""
    last = 0
    while True:
        wire, last, pos = _next_field(data, pos, end, last)
        if wire == _STOP:
            return pos
        pos = _skip(data, pos, end, wire, depth + 1)


def _varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """A varint at `pos`: (value, next position); `_Short` where the bytes end first or it
    runs past 10 bytes."""
    value = shift = 0
    while pos < end and shift < 70:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise _Short
