"""The values of a column chunk's dictionary pages, read from the chunk's own bytes.

In: the bytes of one column chunk, as a footer places them, and its compression codec.
Out: every value its dictionary pages hold (PLAIN byte arrays), or None when the chunk is not
one this module can read page by page: a page type or codec it does not know, a dictionary
encoding other than PLAIN, a page that does not end where its header says, bytes after the
last page.
May fail: nothing; whatever cannot be read is None, for the caller to treat as unknown.

Why: a Parquet dictionary may hold values no row uses (pyarrow writes an Arrow dictionary as
it is, unused entries and all). Reading the column never returns them, so the detectors never
see them, yet a chunk copied as its bytes takes them along: `filter.formats.parquet.splice` copies a
string chunk into the export only when every value of its dictionaries passes the detectors,
and encodes the column anew otherwise. The fields read (ids of parquet.thrift):

- PageHeader: 1 type, 2 uncompressed_page_size, 3 compressed_page_size, 4 crc,
  5 data_page_header, 7 dictionary_page_header, 8 data_page_header_v2;
- DataPageHeader: 5 statistics; DataPageHeaderV2: 8 statistics; Statistics: 1 max, 2 min,
  5 max_value, 6 min_value (with `statistics`: values a page header carries);
- DictionaryPageHeader: 1 num_values, 2 encoding.

`bad_checksum` checks, for a chunk copied as its bytes, the CRC-32 a writer may have put in
each page header: a copy takes the pages along undecoded, so a damaged page that still decodes
(a flipped bit in a PLAIN double) would otherwise reach an output unnoticed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pyarrow as pa

from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.fields import DictionaryPageHeader, PageHeader

# PageType values.
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
# parquet.thrift: DataPageHeader.statistics, DataPageHeaderV2.statistics, and the Statistics
# fields that hold values (max, min, max_value, min_value).
_DATA_PAGE_STATISTICS, _DATA_PAGE_V2_STATISTICS = 5, 8
_STATISTICS_VALUES = (1, 2, 5, 6)
# Encodings a dictionary page may use for its values: PLAIN, and PLAIN_DICTIONARY (the name
# Parquet 1.0 gave the same thing).
_PLAIN_ENCODINGS = frozenset({0, 2})
#: Codecs (CompressionCodec values) by the names pyarrow decompresses them under. LZO and the
#: Hadoop-framed LZ4 (3, 5) are not here: their chunks are encoded anew.
CODECS = {0: None, 1: "snappy", 2: "gzip", 4: "brotli", 6: "zstd", 7: "lz4_raw"}


def dictionary_values(
    chunk: bytes | memoryview, codec: int, *, statistics: bool = False
) -> list[bytes] | None:
    """Every value of the dictionary pages of `chunk` (none without a dictionary), or None
    when the chunk cannot be read page by page (see the module doc).

    With `statistics`, also every min and max its data page headers hold (the Statistics of
    DataPageHeader and DataPageHeaderV2: max, min, max_value, min_value), in the same walk: a
    writer may put any bytes there, and a chunk copied as its bytes takes them along, so they
    are judged as its dictionary values are."""
    if codec not in CODECS:
        return None
    values: list[bytes] = []
    try:
        for _at, kind, header, page in _pages(chunk):
            if kind == _DICTIONARY_PAGE:
                found = _dictionary_page(header, page, codec)
                if found is None:
                    return None
                values += found
            elif kind not in (_DATA_PAGE, _DATA_PAGE_V2):
                return None  # an index page, or a type newer than vtx: unknown bytes
            elif statistics:
                values += _page_statistics(kind, header)
    except (_UnreadablePage, AttributeError, TypeError):  # the last two: a malformed header
        return None
    return values


def _page_statistics(kind: int, header: thrift.Struct) -> list[bytes]:
    """The min and max values one data page header holds."""
    holder, field_id = ((PageHeader.DATA_PAGE_HEADER, _DATA_PAGE_STATISTICS) if kind == _DATA_PAGE
                        else (PageHeader.DATA_PAGE_HEADER_V2, _DATA_PAGE_V2_STATISTICS))
    page_header = header.get(holder)
    held = None if page_header is None else page_header.value.get(field_id)
    if held is None:
        return []
    return [bytes(value.value) for key in _STATISTICS_VALUES
            if (value := held.value.get(key)) is not None]


def bad_checksum(chunk: bytes | memoryview) -> str | None:
    """The first page of `chunk` whose header's CRC (zlib's CRC-32 of the page's compressed
    bytes, a signed i32) does not match its bytes, described ("the data page at byte 60 of
    the chunk");
    None when every page with a CRC matches. Pages without one are not checked, and the walk
    stops, passing, at bytes that are not a page: the decode check reports damaged headers.
    One CRC a page, over its bytes as they lie: no decompression.
    """
    try:
        for at, kind, header, page in _pages(chunk):
            crc = header.get(PageHeader.CRC)
            if crc is not None and zlib.crc32(page) != crc.value & 0xFFFFFFFF:
                what = {
                    _DICTIONARY_PAGE: "dictionary page",
                    _DATA_PAGE: "data page",
                    _DATA_PAGE_V2: "data page",
                }.get(kind, "page")
                return f"the {what} at byte {at} of the chunk"
    except _UnreadablePage:
        pass
    return None


class _UnreadablePage(Exception):
    """Bytes that are not a whole page where a page header should start."""


def _pages(chunk: bytes | memoryview) -> Iterator[tuple[int, int, thrift.Struct, memoryview]]:
    """The pages of `chunk` in order, each as (byte offset of its header, page type, header,
    the page's stored bytes); raises `_UnreadablePage` at bytes that are not a page (a header
    that does not decode or lacks a type or size, a page running past the chunk's end)."""
    data = memoryview(chunk).cast("B")
    pos = 0
    while pos < len(data):
        try:
            header, body = thrift.decode(data, pos)
            kind = header[PageHeader.TYPE].value
            size = header[PageHeader.COMPRESSED_PAGE_SIZE].value
        except (thrift.ThriftError, KeyError):
            raise _UnreadablePage from None
        end = body + size
        if size < 0 or end > len(data):
            raise _UnreadablePage
        yield pos, kind, header, data[body:end]
        pos = end


def may_have_checksums(chunk_start: bytes | memoryview) -> bool:
    """Whether the first page of a chunk (`chunk_start`: its first bytes) has a CRC in its
    header; True too when those bytes hold no whole header, for the caller to walk the chunk
    (`bad_checksum`) rather than guess."""
    try:
        header, _ = thrift.decode(memoryview(chunk_start).cast("B"), 0)
    except thrift.ThriftError:
        return True
    return PageHeader.CRC in header


def _dictionary_page(header: thrift.Struct, page: memoryview, codec: int) -> list[bytes] | None:
    """The PLAIN byte-array values of one dictionary page, or None."""
    try:
        dictionary = header[PageHeader.DICTIONARY_PAGE_HEADER].value
        count = dictionary[DictionaryPageHeader.NUM_VALUES].value
        encoding = dictionary[DictionaryPageHeader.ENCODING].value
        size = header[PageHeader.UNCOMPRESSED_PAGE_SIZE].value
    except (KeyError, AttributeError, TypeError):
        return None
    if encoding not in _PLAIN_ENCODINGS or count < 0:
        return None
    name = CODECS[codec]
    if name is None:
        plain = bytes(page)
    else:
        try:
            plain = pa.decompress(page, decompressed_size=size, codec=name, asbytes=True)
        except (pa.ArrowException, ValueError, OSError):
            return None
    return _plain_byte_arrays(plain, count)


def _plain_byte_arrays(plain: bytes, count: int) -> list[bytes] | None:
    """`count` PLAIN byte arrays (a 4-byte little-endian length, then the bytes), filling
    `plain` exactly; None otherwise. A loop per dictionary entry: per distinct value."""
    values = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(plain):
            return None
        length = int.from_bytes(plain[pos : pos + 4], "little")
        pos += 4
        if pos + length > len(plain):
            return None
        values.append(plain[pos : pos + length])
        pos += length
    return values if pos == len(plain) else None
