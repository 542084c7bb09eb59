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
memory budget, which reads every page header of every chunk a split decodes: 3.5 microseconds
a header, where `thrift_compact.decode`, which builds every field, takes 45 (1.3 s for a 5M-row
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


_new = tuple.__new__  # a PageHeaderSizes made without its __new__'s call: half the time
SHORT = "short"  # the bytes end inside the header
MALFORMED = "malformed"  # the bytes are not a page header


def read_header(data: bytes | memoryview, pos: int) -> PageHeaderSizes | str:
    """The page header at `pos` of `data`, or `SHORT` or `MALFORMED`.

    One loop over the header's fields, nested structs (statistics) kept on a stack of their
    last field ids, rather than a call per field: a split reads every page header of every
    chunk it decodes, and calls were half the time (7 microseconds a header, now 3.5)."""
    kind = uncompressed = compressed = values = encoding = -1
    wanted = -1  # the field id of the encoding in the page header's struct being read
    own = False  # is the struct being read the page's own header?
    lasts: list[int] = []  # the enclosing structs' last field ids
    last = 0
    try:
        while True:
            byte = data[pos]
            pos += 1
            if byte == 0:  # a struct's end
                if not lasts:
                    return _new(PageHeaderSizes, (pos, kind, uncompressed, compressed, values,
                                                  encoding))
                last = lasts.pop()
                own = len(lasts) == 1 and wanted >= 0
                continue
            wire = byte & 0x0F
            if byte >> 4:
                last += byte >> 4
            else:  # a field id of its own, zigzag
                raw, pos = _varint(data, pos, len(data))
                last = (raw >> 1) ^ -(raw & 1)
            if _I16 <= wire <= _I64:
                raw = data[pos]
                pos += 1
                if raw >= 0x80:  # a varint of more bytes, read here: a call costs as much
                    raw &= 0x7F
                    shift = 7
                    while True:
                        byte = data[pos]
                        pos += 1
                        raw |= (byte & 0x7F) << shift
                        if byte < 0x80:
                            break
                        shift += 7
                        if shift >= 70:
                            raise _Short
                if not lasts:
                    if last == 1:
                        kind = (raw >> 1) ^ -(raw & 1)
                    elif last == 2:
                        uncompressed = (raw >> 1) ^ -(raw & 1)
                    elif last == 3:
                        compressed = (raw >> 1) ^ -(raw & 1)
                elif own:
                    if last == 1:
                        values = (raw >> 1) ^ -(raw & 1)
                    elif last == wanted:
                        encoding = (raw >> 1) ^ -(raw & 1)
            elif wire == _BINARY:
                size = data[pos]
                pos += 1
                if size >= 0x80:
                    size, pos = _varint(data, pos - 1, len(data))
                pos += size
            elif wire == _STRUCT:
                if len(lasts) >= _MAX_DEPTH - 1:
                    raise _Malformed
                if not lasts:  # a struct of the page header: its own header?
                    wanted = _ENCODING_FIELD.get(last, -1)
                lasts.append(last)
                own = len(lasts) == 1 and wanted >= 0
                last = 0
            elif wire in (_TRUE, _FALSE):
                pass
            elif wire == _BYTE:
                pos += 1
            elif wire == _DOUBLE:
                pos += 8
            else:  # a list or set (no page header field is one), a map, no wire type
                pos = _skip(data, pos, len(data), wire, len(lasts) + 1)
    except (IndexError, _Short):
        return SHORT
    except _Malformed:
        return MALFORMED


class _Short(Exception):
    """The bytes end inside the header."""


class _Malformed(Exception):
    """The bytes are not a page header."""


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
    if not byte & 0x0F:  # no wire type: only a whole zero byte ends a struct
        raise _Malformed
    delta = byte >> 4
    if delta:
        return byte & 0x0F, last + delta, pos
    raw, pos = _varint(data, pos, end)
    return byte & 0x0F, (raw >> 1) ^ -(raw & 1), pos


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
