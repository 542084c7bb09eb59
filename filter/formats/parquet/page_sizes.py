"""What decoding a column chunk would take, read from its page headers before anything is
decompressed.

In: one column chunk's bytes in memory (`chunk_sizes`), or its byte range in an open file
(`file_chunk_sizes`: only the page headers are read); whether the column holds byte arrays.
Out: `ChunkSizes`: the pages' compressed and uncompressed bytes, the values their data pages
hold, the largest page, the dictionary's values and its longest value; `values_bytes`, the
memory the chunk's values take once decoded, at most.
May fail: `InputError` naming the file and place, for bytes that are not a page where a page
header should start (a reader would fail on them too).

Why page headers: a footer's sizes are claims the readers never check (Polars and pyarrow
decompress what each page header says), so a 338 KB file whose footer says little can hold 8
GB once its pages are decompressed. A header's `uncompressed_page_size` is what a reader
allocates for the page and is held to, and its value count bounds the decoded column:
- a PLAIN page of strings decodes to its bytes plus a view (16 bytes) per value, of
  numbers to 8 bytes a value (or its bytes, where they are wider);
- a dictionary-encoded page to one view per index: Polars reads the values as views of the
  dictionary (a 20 MB value used by 1,000 rows: 105 MB of RSS), but a query that writes the
  column anew or rewrites its strings (the detectors' NFKC text) copies the value into each
  row, so a 100 MB dictionary value used by 1,000 rows becomes 100 GB (measured: killed at
  24 GB). For readers that copy, the dictionary's longest value times the indices bounds it;
- a DELTA_BYTE_ARRAY page shares prefixes between values: each value is at most the page's
  bytes long, so the page is bounded by its values times its size.

The fields read (parquet.thrift ids): PageHeader 1 type, 2 uncompressed_page_size,
3 compressed_page_size; DataPageHeader 1 num_values, 2 encoding; DictionaryPageHeader 1
num_values, 2 encoding; DataPageHeaderV2 1 num_values, 4 encoding, read by
`page_headers.read_header`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from filter.errors import InputError
from filter.formats.parquet.fields import LogicalType, SchemaElement
from filter.formats.parquet.layout import ParquetLayout, SchemaNode
from filter.formats.parquet.page_headers import SHORT, PageHeaderSizes, read_header
from filter.formats.parquet.pages import CODECS
from filter.memory_budget import format_size

#: Bytes a decoded string takes besides its own bytes (Arrow's view of it), and a decoded
#: number at most (Polars holds 8-byte integers, floats and timestamps).
STRING_OVERHEAD = 16
#: The width `leaf_widths` gives byte arrays: their values' sizes are their pages'.
STRING = 0
#: Bytes read at a page header's start in a file; a longer header is read again whole.
_HEADER_PROBE = 512
# Page types and the one encoding whose values share bytes.
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
_DELTA_BYTE_ARRAY = 7
# Physical types, and the converted type of decimals.
_BOOLEAN, _INT32, _FLOAT, _BYTE_ARRAY, _FIXED_LEN_BYTE_ARRAY = 0, 1, 4, 6, 7
_DECIMAL = 5
_PLAIN_ENCODINGS = (0, 2)  # PLAIN, PLAIN_DICTIONARY
_LENGTH = struct.Struct("<I")  # a PLAIN byte array's length
#: The most chunks `_MEASURED` keeps (some 200 bytes each).
_MEASURED_MOST = 16_384


@dataclass(frozen=True)
class ChunkSizes:
    """The sizes a column chunk's page headers give."""

    compressed: int  # the chunk's bytes as stored
    uncompressed: int  # every page's, decompressed
    values: int  # the data pages' values (nulls included)
    largest_page: int  # the largest page, decompressed
    dictionary_values: int = 0
    dictionary_bytes: int = 0  # the dictionary pages', decompressed
    longest_dictionary_value: int = 0  # byte arrays only
    shared_prefix_bound: int = 0  # DELTA_BYTE_ARRAY pages: values times page bytes
    width: int = STRING  # bytes a decoded value takes; `STRING` for byte arrays

    def described(self) -> str:
        """The sizes, for a message: ``431 KiB stored (383 MiB decompressed, 400,000
        values)``."""
        values = f"{self.values:,} value{'s' if self.values != 1 else ''}"
        each = (f", each up to {format_size(self.longest_dictionary_value)} from its dictionary"
                if self.longest_dictionary_value else "")
        return (f"{format_size(self.compressed)} stored ({format_size(self.uncompressed)} "
                f"decompressed, {values}{each})")

    @property
    def values_bytes(self) -> int:
        """The memory the chunk's values take once decoded, at most."""
        if self.width != STRING:  # numbers: a slot each, or their PLAIN bytes
            return max(self.values * self.width, self.uncompressed)
        return (self.uncompressed + self.values * STRING_OVERHEAD
                + self.values * self.longest_dictionary_value + self.shared_prefix_bound)


#: A file's identity: (device, inode, size, modification time in ns).
FileIdentity = tuple[int, int, int, int]
#: Chunks measured lately, by file and place (and how they were measured): a split measures
#: its VIN and scanned columns twice, for its value tables and for its computed columns, and
#: the longest value of a 26,000-value dictionary takes 3 ms to find. A file changed since
#: has another identity.
_MEASURED: dict[tuple[int, ...], ChunkSizes] = {}


def file_identity(fd: int) -> FileIdentity:
    """The identity of the open file `fd`, for `chunk_sizes`' `origin`."""
    status = os.fstat(fd)
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _remembered(key: tuple[int, ...] | None, measure: Callable[[], ChunkSizes]) -> ChunkSizes:
    """The sizes measured before under `key` (None: not kept), else `measure()`'s, kept."""
    if key is None:
        return measure()
    found = _MEASURED.get(key)
    if found is None:
        found = measure()
        if len(_MEASURED) >= _MEASURED_MOST:
            _MEASURED.clear()
        _MEASURED[key] = found
    return found


def chunk_sizes(chunk: bytes | memoryview, width: int, codec: int, source: str,
                where: str, limit: int, *, copies: bool = True,
                origin: tuple[FileIdentity, int] | None = None) -> ChunkSizes:
    """The sizes of the chunk `chunk` (`where` in `source`, its values `width` bytes each
    decoded: `leaf_widths`), as its page headers give them; of byte arrays (`STRING`), its
    dictionary's longest value too: the dictionary page is decompressed for it when it takes
    at most `limit` bytes, else its longest value is taken to be as long as the page. Not
    read where the reader does not `copies` the values out of the dictionary (see the module
    doc). With its `origin` (the file it was read from, and where), kept for the next
    measure of the same chunk (`file_chunk_sizes` too)."""
    key = None if origin is None else (*origin[0], origin[1], len(chunk), width, codec,
                                       limit, copies)
    return _remembered(key, lambda: _chunk_sizes(chunk, width, codec, source, where, limit,
                                                 copies))


def _chunk_sizes(chunk: bytes | memoryview, width: int, codec: int, source: str,
                 where: str, limit: int, copies: bool) -> ChunkSizes:
    pages = []
    pos, end = 0, len(chunk)
    while pos < end:
        header = read_header(chunk, pos)
        if header.__class__ is not PageHeaderSizes:
            raise _not_a_page(pos, source, where)
        body, kind, uncompressed, compressed, _, _ = header  # type: ignore[misc]
        if kind < 0 or uncompressed < 0 or compressed < 0 or body + compressed > end:
            raise _not_a_page(pos, source, where)
        pages.append(header)
        pos = body + compressed

    def page_bytes(page: PageHeaderSizes) -> bytes | memoryview:
        return chunk[page.body:page.body + page.compressed]

    return _sizes(pages, end, width if copies else -width - 1, codec, limit, page_bytes)


def file_chunk_sizes(fd: int, start: int, length: int, width: int, codec: int,
                     source: str, where: str, limit: int, *, copies: bool = True) -> ChunkSizes:
    """`chunk_sizes` of the chunk at `start`, `length` bytes long, in the open file `fd`,
    reading its page headers only (and its dictionary page, for byte arrays)."""
    key = (*file_identity(fd), start, length, width, codec, limit, copies)
    return _remembered(key, lambda: _file_chunk_sizes(fd, start, length, width, codec, source,
                                                      where, limit, copies))


def _file_chunk_sizes(fd: int, start: int, length: int, width: int, codec: int,
                      source: str, where: str, limit: int, copies: bool) -> ChunkSizes:
    pages = file_chunk_pages(fd, start, length, source, where)

    def page_bytes(page: PageHeaderSizes) -> bytes:
        return os.pread(fd, page.compressed, start + page.body)

    return _sizes(pages, length, width if copies else -width - 1, codec, limit, page_bytes)


def file_chunk_pages(fd: int, start: int, length: int, source: str,
                     where: str) -> list[PageHeaderSizes]:
    """The page headers of the chunk at `start`, `length` bytes long, in the open file `fd`
    (each `body` where its page starts in the chunk), in order; `InputError` (naming `where`
    in `source`) for bytes that are not pages."""
    pages = []
    pos = 0
    while pos < length:
        probe = os.pread(fd, min(_HEADER_PROBE, length - pos), start + pos)
        header = read_header(probe, 0)
        if header == SHORT and len(probe) < length - pos:  # a long header: read it whole
            probe = os.pread(fd, length - pos, start + pos)
            header = read_header(probe, 0)
        if isinstance(header, PageHeaderSizes):  # at its place in the chunk
            header = header._replace(body=pos + header.body)
        _check(header, pos, length, source, where)
        assert isinstance(header, PageHeaderSizes)
        pages.append(header)
        pos = header.body + header.compressed
    return pages


def page_values_bytes(page: PageHeaderSizes, width: int, longest: int) -> int:
    """What the values of the data page `page` take once decoded, at most (as
    `ChunkSizes.values_bytes` counts a chunk's; `longest`: its dictionary's longest value,
    where the reader copies values out of it); 0 for other pages."""
    if page.kind not in (_DATA_PAGE, _DATA_PAGE_V2):
        return 0
    count = max(page.values, 0)
    if width != STRING:
        return max(count * width, page.uncompressed)
    shared = count * page.uncompressed if page.encoding == _DELTA_BYTE_ARRAY else 0
    return page.uncompressed + count * (STRING_OVERHEAD + longest) + shared


def _check(header: PageHeaderSizes | str, at: int, end: int, source: str, where: str) -> None:
    """Raise `InputError` unless `header` (at `at`) is a whole page header of a page that
    ends by `end`."""
    if not isinstance(header, PageHeaderSizes) or min(header.compressed, header.uncompressed,
                                                      header.kind) < 0 \
            or header.body + header.compressed > end:
        raise _not_a_page(at, source, where)


def _not_a_page(at: int, source: str, where: str) -> InputError:
    return InputError(f"{source}: {where}: the bytes at byte {at} of the column chunk are not a "
                      "page; the file is corrupt")


def _sizes(pages: list[PageHeaderSizes], compressed: int, width: int, codec: int, limit: int,
           page_bytes: Callable[[PageHeaderSizes], bytes | memoryview]) -> ChunkSizes:
    """The sizes of `pages`; a `width` below 0 (``-width - 1``) for values kept shared with
    their dictionary."""
    copies = width >= 0
    width = width if copies else -width - 1
    uncompressed = values = largest = dictionary_values = dictionary_bytes = shared = 0
    dictionary = None
    for page in pages:
        _, kind, size, _, count, encoding = page
        uncompressed += size
        if size > largest:
            largest = size
        if count < 0:
            count = 0
        if kind in (_DATA_PAGE, _DATA_PAGE_V2):
            values += count
            if encoding == _DELTA_BYTE_ARRAY:
                shared += count * size
        elif kind == _DICTIONARY_PAGE:
            dictionary_values += count
            dictionary_bytes += size
            dictionary = dictionary or page
    longest = 0
    if copies and width == STRING and dictionary is not None:
        longest = dictionary.uncompressed
        if longest <= limit:
            longest = _longest_value(page_bytes(dictionary), dictionary, codec)
    return ChunkSizes(compressed, uncompressed, values, largest, dictionary_values,
                      dictionary_bytes, longest, shared, width)


def _longest_value(stored: bytes | memoryview, page: PageHeaderSizes, codec: int) -> int:
    """The longest of the PLAIN byte arrays of a dictionary page (`stored`: its bytes as
    stored). A page vtx cannot read (another encoding, an unknown codec, values that do not
    fill it) counts as one value as long as the page."""
    name = CODECS.get(codec, "?")
    if page.encoding not in _PLAIN_ENCODINGS or name == "?":
        return page.uncompressed
    plain: bytes | memoryview = stored
    if name is not None:
        try:
            plain = pa.decompress(stored, decompressed_size=page.uncompressed, codec=name,
                                  asbytes=True)
        except (pa.ArrowException, ValueError, OSError):
            return page.uncompressed
    longest = _longest_plain(plain, max(page.values, 0))
    return page.uncompressed if longest < 0 else longest


def _longest_plain(plain: bytes | memoryview, count: int) -> int:
    """The longest of `count` PLAIN byte arrays (a 4-byte little-endian length, then the
    bytes) at the start of `plain`; -1 where they do not fit in it. One step per distinct
    value (70 nanoseconds), but values all of one length are seen as such at once."""
    pos = longest = 0
    end = len(plain)
    if 4 * count > end:  # a count no page this long holds: not walked
        return -1
    if count > 16:  # values of one length (VINs, codes): every length read at once
        (first,) = _LENGTH.unpack_from(plain, 0)
        stride = 4 + first
        if stride * count <= end and bool((np.ndarray(
                (count,), "<u4", plain, 0, (stride,)) == first).all()):
            return first
    read = _LENGTH.unpack_from  # no slice made a value: twice as fast as int.from_bytes
    try:
        for _ in range(count):
            (length,) = read(plain, pos)
            pos += 4 + length
            if length > longest:
                longest = length
    except struct.error:  # a length past the page's end
        return -1
    return longest if pos <= end else -1


def leaf_widths(layout: ParquetLayout) -> dict[int, int]:
    """The bytes a decoded value of each leaf column takes, by leaf: `STRING` for byte arrays
    (their size is their pages'), else as Polars holds its type, at most: a boolean 1, a
    32-bit number 4 (8 with a logical type: times are 64-bit in Polars), a decimal 16, a
    fixed-length byte array its length and a view, others 8."""
    widths: dict[int, int] = {}

    def walk(node: SchemaNode) -> None:
        for child in node.children:
            walk(child)
        if node.children:
            return
        element = node.element
        field = element.get(SchemaElement.TYPE)
        physical = field.value if field is not None else None
        converted = element.get(SchemaElement.CONVERTED_TYPE)
        logical = element.get(SchemaElement.LOGICAL_TYPE)
        decimal = (converted is not None and converted.value == _DECIMAL) or (
            logical is not None and isinstance(logical.value, dict)
            and LogicalType.DECIMAL in logical.value)
        if decimal:  # Polars holds every decimal in 16 bytes
            width = 16
        elif physical == _BYTE_ARRAY:
            width = STRING
        elif physical == _FIXED_LEN_BYTE_ARRAY:
            length = element.get(SchemaElement.TYPE_LENGTH)
            width = STRING_OVERHEAD + (length.value if length is not None else 0)
        elif physical == _INT32:
            width = 4 if converted is None and logical is None else 8
        else:
            width = {_BOOLEAN: 1, _FLOAT: 4}.get(physical, 8)  # type: ignore[arg-type]
        widths.update(dict.fromkeys(node.leaves, width))

    for node in layout.columns.values():
        walk(node)
    return widths
