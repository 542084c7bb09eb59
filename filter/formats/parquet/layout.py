"""A Parquet file's layout from its footer, and footers for files assembled from its parts.

In: a Parquet file (path) or an in-memory Parquet file (bytes).
Out: a `ParquetLayout`: the footer decoded schema-free (`thrift_compact`), the schema as
a tree of top-level `SchemaNode`s (struct leaves by field name), and, row group by row group
(`RowGroupLayout`), each leaf column's footer entry and the byte range of its column chunk.
`relocated_chunk` gives a chunk's footer entry for its new place in another file;
`footer_bytes` the footer of a file made of such chunks.
May fail: `InputError` naming the file, row group and column: a footer that does not decode
or lacks a field a reader needs, a row group whose chunks do not match the schema's columns,
a column chunk outside the file, an encrypted file, a column chunk kept in another file. Read
as a walk of every row group, with the overlap of chunks, these are the one check of an
input's footer (`filter.formats.parquet.footer_check`).

Why: a column that goes unchanged to one output can be copied as the encoded bytes it is
(`filter.formats.parquet.splice`), instead of being decoded and encoded again. Parquet allows it: a
column chunk is self-contained (its pages, their headers, its dictionary); only the footer
says where it is. The footer fields read and written here (field ids of parquet.thrift, by
name in `filter.formats.parquet.fields`):

- FileMetaData: 1 version, 2 schema, 3 num_rows, 4 row_groups, 5 key_value_metadata,
  6 created_by, 7 column_orders;
- SchemaElement: 4 name, 5 num_children;
- RowGroup: 1 columns, 2 total_byte_size, 3 num_rows, 5 file_offset, 6 total_compressed_size,
  7 ordinal;
- ColumnChunk: 1 file_path, 2 file_offset, 3 meta_data, 4-7 page index offsets and lengths,
  8-9 encryption;
- ColumnMetaData: 6 total_uncompressed_size, 7 total_compressed_size, 9 data_page_offset,
  10 index_page_offset, 11 dictionary_page_offset, 14-15 bloom filter offset and length.

Every other field is kept as the writer wrote it. Page indexes and bloom filters are dropped:
they are optional, and live outside the column chunks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from filter._version import __version__
from filter.errors import InputError, read_failed
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.fields import (
    ColumnChunk,
    FileMetaData,
    KeyValue,
    RowGroup,
    SchemaElement,
)
from filter.formats.parquet.fields import ColumnMetaData as CMD

MAGIC = b"PAR1"
_ENCRYPTED_MAGIC = b"PARE"  # ends a file whose footer is encrypted
#: The writer a footer vtx writes names, where it does not keep an input writer's name.
VTX_WRITER = f"vtx version {__version__}"
_TAIL = 8  # footer length (4 bytes, little-endian) and the magic
#: ColumnMetaData fields a reader needs to find and decode a chunk's pages: type, encodings,
#: path, codec, value count, sizes, data and dictionary page offsets.
_PAGE_FIELDS = frozenset({
    CMD.TYPE, CMD.ENCODINGS, CMD.PATH_IN_SCHEMA, CMD.CODEC, CMD.NUM_VALUES,
    CMD.TOTAL_UNCOMPRESSED_SIZE, CMD.TOTAL_COMPRESSED_SIZE, CMD.DATA_PAGE_OFFSET,
    CMD.DICTIONARY_PAGE_OFFSET,
})
#: The ColumnMetaData fields a relocated chunk keeps: what locates and describes its pages,
#: the statistics readers prune by, the index page and the encodings' page counts. Anything
#: else (key-value metadata: free text; size statistics, geospatial statistics, fields of
#: Parquet versions after this one) is dropped: bytes a writer put there would otherwise leave
#: with the chunk, classified by no rule.
_KEPT_FIELDS = _PAGE_FIELDS | {CMD.INDEX_PAGE_OFFSET, CMD.STATISTICS, CMD.ENCODING_STATS}
#: The ColumnMetaData fields parquet.thrift requires: readers refuse a footer without them.
_REQUIRED_META = {
    CMD.TYPE: "type", CMD.ENCODINGS: "encodings", CMD.PATH_IN_SCHEMA: "path_in_schema",
    CMD.CODEC: "codec", CMD.NUM_VALUES: "num_values",
    CMD.TOTAL_UNCOMPRESSED_SIZE: "total_uncompressed_size",
    CMD.TOTAL_COMPRESSED_SIZE: "total_compressed_size", CMD.DATA_PAGE_OFFSET: "data_page_offset",
}


@dataclass(frozen=True)
class SchemaNode:
    """One node of the schema tree: its `SchemaElement` and children."""

    element: thrift.Struct
    children: tuple[SchemaNode, ...]
    leaves: tuple[int, ...]  # the leaf columns below it (itself, for a leaf), in file order

    @property
    def name(self) -> str:
        return self.element[SchemaElement.NAME].value.decode()

    def pruned(self, keep: Sequence[tuple[str, ...]]) -> SchemaNode:
        """This node with only the leaves at `keep` (paths of field names below it)."""
        if not self.children or () in keep:
            return self
        children = []
        for child in self.children:
            below = [p[1:] for p in keep if p and p[0] == child.name]
            if below:
                children.append(child.pruned(below))
        element = dict(self.element)
        element[SchemaElement.NUM_CHILDREN] = thrift.Field(thrift.I32, len(children))
        return SchemaNode(element, tuple(children), tuple(i for c in children for i in c.leaves))

    def elements(self) -> list[thrift.Struct]:
        """The node's schema elements, depth first, as the footer lists them."""
        out = [self.element]
        for child in self.children:
            out.extend(child.elements())
        return out


@dataclass(frozen=True)
class RowGroupLayout:
    """One row group: its rows, and each leaf column's footer entry and byte range."""

    index: int
    rows: int
    chunks: list[thrift.Struct]  # ColumnChunk per leaf, in leaf order
    ranges: list[tuple[int, int]]  # (start, length) per leaf


class ParquetLayout:
    """Where everything is in one Parquet file.

    Row groups are decoded one at a time, in order, as `row_groups()` walks them: a large
    file's footer (200 row groups x 106 columns: 2.9 MB) would take some 130 MB as Python
    objects at once.
    """

    def __init__(self, footer: bytes, footer_start: int, source: str) -> None:
        self.source = source  # the file's name, for messages
        self._footer = footer
        self._footer_start = footer_start
        self.size = footer_start + len(footer) + _TAIL  # the file's, in bytes
        self._trailer: thrift.Struct | None = None
        try:
            head, self.row_group_count, self._first_row_group = thrift.decode_until(footer, 4)
            self.version = _integer(head, FileMetaData.VERSION, thrift.I32)
            self.rows = _integer(head, FileMetaData.NUM_ROWS, thrift.I64)
            self.columns, self.leaf_count = _schema_tree(_items(head, FileMetaData.SCHEMA))
            #: Each leaf column's dotted path in the schema, for messages.
            self.leaf_names = [name for node in self.columns.values()
                               for name in _leaf_names(node)]
        except (ValueError, KeyError, AttributeError, TypeError, IndexError,
                RecursionError) as exc:  # ValueError: also thrift.ThriftError
            raise InputError(f"{source}: not a readable Parquet footer: {_reason(exc)}") from None

    def row_groups(self) -> Iterator[RowGroupLayout]:
        """Every row group, in file order."""
        pos = self._first_row_group
        for index in range(self.row_group_count):
            try:
                group, pos = thrift.decode(self._footer, pos)
                yield self._row_group(index, group)
            except (ValueError, KeyError, AttributeError, TypeError) as exc:
                raise InputError(
                    f"{self.source}: not a readable Parquet footer: row group {index}: "
                    f"{_reason(exc)}"
                ) from None
        if self._trailer is None:
            try:
                trailer = thrift.decode_rest(self._footer, pos, last=4)
                if again := [k for k in trailer if k <= FileMetaData.ROW_GROUPS]:
                    # Thrift's readers take a field's last value, vtx's the first: another
                    # row group list would be read by them and not checked here.
                    raise thrift.ThriftError(f"field {again[0]} is given twice")
                writer = trailer.get(FileMetaData.CREATED_BY)
                if writer is not None and writer.wire != thrift.BINARY:
                    raise thrift.ThriftError(f"field {FileMetaData.CREATED_BY} is not a string")
            except ValueError as exc:  # thrift.ThriftError
                raise InputError(f"{self.source}: not a readable Parquet footer: after the row "
                                 f"groups: {exc}") from None
            self._trailer = trailer

    def column_order(self, leaf: int) -> thrift.Struct | None:
        """The footer's ColumnOrder of `leaf`, if it has column orders."""
        orders = _items(self._trailing(), FileMetaData.COLUMN_ORDERS)
        return orders[leaf] if orders else None

    @property
    def created_by(self) -> str | None:
        field = self._trailing().get(FileMetaData.CREATED_BY)
        return field.value.decode(errors="replace") if field is not None else None

    def _trailing(self) -> thrift.Struct:
        """The footer's fields after the row groups (metadata, writer, column orders)."""
        if self._trailer is None:
            for _ in self.row_groups():
                pass
        assert self._trailer is not None
        return self._trailer

    def _row_group(self, index: int, group: thrift.Struct) -> RowGroupLayout:
        chunks = _items(group, RowGroup.COLUMNS)
        rows = _integer(group, RowGroup.NUM_ROWS, thrift.I64)
        where = f"{self.source}: row group {index} of {self.row_group_count}"
        if len(chunks) != self.leaf_count:
            raise InputError(f"{where} has {len(chunks)} column chunks for {self.leaf_count} "
                             "columns")
        if RowGroup.TOTAL_BYTE_SIZE not in group:
            raise InputError(f"{where}: its footer entry lacks total_byte_size")
        if not rows:  # nothing is copied from it (pyarrow points it at byte 0)
            return RowGroupLayout(index, rows, chunks, [(0, 0)] * len(chunks))
        ranges = []
        for chunk, name in zip(chunks, self.leaf_names, strict=True):
            column = f"{where}, column {name!r}"
            if (held := chunk.get(ColumnChunk.FILE_PATH)) is not None and held.value:
                raise InputError(f"{column}: its data is in another file "
                                 f"({held.value.decode(errors='replace')!r})")
            if ColumnChunk.CRYPTO_METADATA in chunk or (
                    ColumnChunk.ENCRYPTED_COLUMN_METADATA in chunk):
                raise InputError(f"{column}: the column is encrypted")
            if ColumnChunk.META_DATA not in chunk:
                raise InputError(f"{column}: its footer entry has no column metadata")
            meta = chunk[ColumnChunk.META_DATA].value
            if missing := [field for i, field in _REQUIRED_META.items() if i not in meta]:
                raise InputError(f"{column}: its footer entry lacks {', '.join(missing)}")
            if _path(chunk) == "?":
                raise InputError(f"{column}: its path_in_schema is not a list of UTF-8 names")
            dictionary = meta.get(CMD.DICTIONARY_PAGE_OFFSET)
            start = chunk_start(_integer(meta, CMD.DATA_PAGE_OFFSET, thrift.I64),
                                _integer(meta, CMD.DICTIONARY_PAGE_OFFSET, thrift.I64)
                                if dictionary is not None else None)
            length = _integer(meta, CMD.TOTAL_COMPRESSED_SIZE, thrift.I64)
            if start < len(MAGIC) or length < 0 or start + length > self._footer_start:
                raise InputError(
                    f"{column}: bytes {start}-{start + length} lie outside the file's data "
                    f"(bytes {len(MAGIC)}-{self._footer_start} of {self.size}); the file is "
                    "truncated or corrupt")
            ranges.append((start, length))
        return RowGroupLayout(index, rows, chunks, ranges)


def chunk_start(data_page_offset: int, dictionary_page_offset: int | None) -> int:
    """Where a column chunk begins: at its dictionary page, if it has one before its data."""
    if dictionary_page_offset and 0 < dictionary_page_offset < data_page_offset:
        return dictionary_page_offset
    return data_page_offset


def read_layout(path: Path) -> ParquetLayout:
    """The layout of the Parquet file at `path` (only its footer is read)."""
    try:
        return _read_layout(path)
    except OSError as exc:  # the caller may report an OSError as its output's
        raise read_failed(exc, path) from None


def _read_layout(path: Path) -> ParquetLayout:
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        if size < len(MAGIC) + _TAIL:
            raise InputError(f"{path}: not a readable Parquet file: {size} bytes")
        fh.seek(size - _TAIL)
        tail = fh.read(_TAIL)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] == _ENCRYPTED_MAGIC:
            raise InputError(f"{path}: not a plain Parquet file: its footer is encrypted")
        if tail[4:] != MAGIC:
            raise InputError(f"{path}: not a readable Parquet file: it does not end in the "
                             "Parquet magic (truncated, or not Parquet)")
        if length > size - len(MAGIC) - _TAIL:
            raise InputError(f"{path}: not a readable Parquet file: its footer length "
                             f"({length} bytes) exceeds the file ({size} bytes)")
        fh.seek(size - _TAIL - length)
        footer = fh.read(length)
    return ParquetLayout(footer, size - _TAIL - length, str(path))


def layout_in_memory(data: bytes, name: str) -> ParquetLayout:
    """The layout of the Parquet file held in `data`."""
    length = int.from_bytes(data[-_TAIL:-4], "little")
    end = len(data) - _TAIL
    return ParquetLayout(data[end - length:end], end - length, name)


def relocated_chunk(
    chunk: thrift.Struct, start: int, new_start: int, *, pages_only: bool = False
) -> thrift.Struct:
    """`chunk`'s footer entry once its bytes, at `start` in its file, are at `new_start`.

    Page indexes and bloom filters, which lie outside the chunk, are dropped, and every field
    but `_KEPT_FIELDS` (key-value metadata among them). With
    `pages_only`, so is all a reader could answer from without decoding the pages (statistics,
    encoding statistics, size statistics, key-value metadata): the entry of a chunk copied to
    be decoded.
    """
    shift = new_start - start
    kept = _PAGE_FIELDS if pages_only else _KEPT_FIELDS
    meta = {k: v for k, v in chunk[ColumnChunk.META_DATA].value.items() if k in kept}
    dictionary = meta.get(CMD.DICTIONARY_PAGE_OFFSET)
    if dictionary is not None and chunk_start(
            meta[CMD.DATA_PAGE_OFFSET].value, dictionary.value) != dictionary.value:
        # Not a dictionary page before the data (some writers put 0 for none): readers ignore
        # it, and shifted it would point into the file.
        del meta[CMD.DICTIONARY_PAGE_OFFSET]
    index = meta.get(CMD.INDEX_PAGE_OFFSET)
    if index is not None and index.value <= 0:  # no index page, likewise
        del meta[CMD.INDEX_PAGE_OFFSET]
    for field_id in (CMD.DATA_PAGE_OFFSET, CMD.INDEX_PAGE_OFFSET, CMD.DICTIONARY_PAGE_OFFSET):
        if field_id in meta:
            meta[field_id] = thrift.Field(thrift.I64, meta[field_id].value + shift)
    return {ColumnChunk.FILE_OFFSET: thrift.Field(thrift.I64, new_start),
            ColumnChunk.META_DATA: thrift.Field(thrift.STRUCT, meta)}


def row_group_entry(chunks: Sequence[thrift.Struct], rows: int, ordinal: int) -> thrift.Struct:
    """A RowGroup entry for `chunks` (relocated, in leaf order) holding `rows` rows."""
    metas = [c[ColumnChunk.META_DATA].value for c in chunks]
    return row_group_of(chunks, rows, ordinal,
                        sum(m[CMD.TOTAL_UNCOMPRESSED_SIZE].value for m in metas),
                        sum(m[CMD.TOTAL_COMPRESSED_SIZE].value for m in metas),
                        chunks[0][ColumnChunk.FILE_OFFSET].value if chunks else None)


def row_group_of(
    chunks: Sequence[thrift.Struct | bytes], rows: int, ordinal: int, uncompressed: int,
    compressed: int, file_offset: int | None,
) -> thrift.Struct:
    """A RowGroup entry of `chunks` (ColumnChunk entries, or their encodings, in leaf order)
    holding `rows` rows, with the chunks' total sizes and the first one's offset."""
    entry: thrift.Struct = {
        RowGroup.COLUMNS: thrift.Field(thrift.LIST, thrift.ThriftList(thrift.STRUCT,
                                                                     list(chunks))),
        RowGroup.TOTAL_BYTE_SIZE: thrift.Field(thrift.I64, uncompressed),
        RowGroup.NUM_ROWS: thrift.Field(thrift.I64, rows),
        RowGroup.TOTAL_COMPRESSED_SIZE: thrift.Field(thrift.I64, compressed),
        RowGroup.ORDINAL: thrift.Field(thrift.I16, ordinal),
    }
    if file_offset is not None:
        entry[RowGroup.FILE_OFFSET] = thrift.Field(thrift.I64, file_offset)
    return entry


def footer_bytes(
    version: int,
    columns: Sequence[SchemaNode],
    row_groups: Sequence[thrift.Struct | bytes],
    rows: int,
    key_value: dict[str, str],
    created_by: str,
    column_orders: Sequence[thrift.Struct | None],
) -> bytes:
    """The encoded FileMetaData of a file of `columns` (top-level, in order) and `row_groups`
    (RowGroup entries, or their encodings), followed by its length and the magic: what ends
    the file."""
    return footer_parts(version, columns, key_value, created_by, column_orders).footer(
        row_groups, rows)


@dataclass(frozen=True)
class FooterParts:
    """What the footers of files of one schema share, encoded once (`footer_parts`): all but
    the row count and the row groups. A writer of many files keeps it (the schema's
    elements, metadata and column orders cost 1 ms a file to encode)."""

    version: int
    elements: tuple[bytes, ...]  # the SchemaElements, each encoded
    key_value: tuple[bytes, ...]  # the KeyValue pairs, each encoded
    created_by: bytes
    column_orders: tuple[bytes, ...] | None  # each encoded; None: not written

    def footer(self, row_groups: Sequence[thrift.Struct | bytes], rows: int) -> bytes:
        """The footer of a file of `rows` rows in `row_groups` (`footer_bytes`)."""
        metadata: thrift.Struct = {
            FileMetaData.VERSION: thrift.Field(thrift.I32, self.version),
            FileMetaData.SCHEMA: thrift.Field(
                thrift.LIST, thrift.ThriftList(thrift.STRUCT, list(self.elements))),
            FileMetaData.NUM_ROWS: thrift.Field(thrift.I64, rows),
            FileMetaData.ROW_GROUPS: thrift.Field(
                thrift.LIST, thrift.ThriftList(thrift.STRUCT, list(row_groups))),
            FileMetaData.CREATED_BY: thrift.Field(thrift.BINARY, self.created_by),
        }
        if self.key_value:
            metadata[FileMetaData.KEY_VALUE_METADATA] = thrift.Field(thrift.LIST, thrift.ThriftList(
                thrift.STRUCT, list(self.key_value)))
        if self.column_orders is not None:
            metadata[FileMetaData.COLUMN_ORDERS] = thrift.Field(thrift.LIST, thrift.ThriftList(
                thrift.STRUCT, list(self.column_orders)))
        encoded = thrift.encode(metadata)
        return encoded + len(encoded).to_bytes(4, "little") + MAGIC


def footer_parts(
    version: int,
    columns: Sequence[SchemaNode],
    key_value: dict[str, str],
    created_by: str,
    column_orders: Sequence[thrift.Struct | None],
) -> FooterParts:
    """The parts of the footers of files of `columns` (top-level, in order) that do not
    depend on their rows, encoded."""
    root: thrift.Struct = {
        SchemaElement.NAME: thrift.Field(thrift.BINARY, b"schema"),
        SchemaElement.NUM_CHILDREN: thrift.Field(thrift.I32, len(columns)),
    }
    elements = [root] + [e for c in columns for e in c.elements()]
    pairs = [{KeyValue.KEY: thrift.Field(thrift.BINARY, k.encode()),
              KeyValue.VALUE: thrift.Field(thrift.BINARY, v.encode())}
             for k, v in key_value.items()]
    orders = (tuple(thrift.encode(o) for o in column_orders if o is not None)
              if column_orders and all(o is not None for o in column_orders) else None)
    return FooterParts(version, tuple(thrift.encode(e) for e in elements),
                       tuple(thrift.encode(p) for p in pairs), created_by.encode(), orders)


def _items(struct: thrift.Struct, field_id: int) -> list[thrift.Struct]:
    field = struct.get(field_id)
    return field.value.items if field is not None else []


def _schema_tree(elements: list[thrift.Struct]) -> tuple[dict[str, SchemaNode], int]:
    """Top-level nodes by name, and the number of leaves, from the depth-first element list."""
    leaf_count = 0
    position = 1

    def node() -> SchemaNode:
        nonlocal leaf_count, position
        element = elements[position]
        position += 1
        count = element.get(SchemaElement.NUM_CHILDREN)
        children = tuple(node() for _ in range(
            _integer(element, SchemaElement.NUM_CHILDREN, thrift.I32) if count is not None else 0))
        if children:
            return SchemaNode(element, children, tuple(i for c in children for i in c.leaves))
        leaf_count += 1
        return SchemaNode(element, (), (leaf_count - 1,))

    top = [node() for _ in range(_integer(elements[0], SchemaElement.NUM_CHILDREN, thrift.I32))]
    if position != len(elements):
        raise thrift.ThriftError(f"schema lists {len(elements)} elements, its tree {position}")
    return {n.name: n for n in top}, leaf_count


def _integer(struct: thrift.Struct, field_id: int, wire: int) -> int:
    """The integer field `field_id` of `struct`, of the wire type parquet.thrift gives it
    (KeyError if it has none).

    Another wire type is refused: Thrift's generated readers (pyarrow's, Polars') skip a field
    of the wrong type as unknown, so they and vtx would read different footers.
    """
    field = struct[field_id]
    if field.wire != wire:
        raise thrift.ThriftError(f"field {field_id} has wire type {field.wire}, not {wire}")
    return int(field.value)


def _reason(exc: BaseException) -> str:
    """What a footer decode's `exc` says, in words (a missing field is a KeyError of its id)."""
    if isinstance(exc, KeyError):
        return f"a required field (id {exc.args[0]}) is missing"
    if isinstance(exc, RecursionError):
        return "its schema is nested too deep"
    return str(exc)


def _leaf_names(node: SchemaNode) -> list[str]:
    """The dotted paths of the leaves below `node` (itself, for a leaf), in file order."""
    if not node.children:
        return [node.name]
    return [f"{node.name}.{name}" for child in node.children for name in _leaf_names(child)]


def _path(chunk: thrift.Struct) -> str:
    """The dotted path_in_schema of `chunk`; "?" where it has none that decodes."""
    try:
        meta = chunk[ColumnChunk.META_DATA].value
        return ".".join(p.decode() for p in meta[CMD.PATH_IN_SCHEMA].value.items)
    except (KeyError, AttributeError, TypeError, UnicodeDecodeError):
        return "?"


__all__ = [
    "MAGIC", "VTX_WRITER", "FooterParts", "ParquetLayout", "RowGroupLayout", "SchemaNode",
    "chunk_start", "footer_bytes", "footer_parts", "layout_in_memory",
    "read_layout", "relocated_chunk", "row_group_entry", "row_group_of",
]
