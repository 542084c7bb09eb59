"""The field ids of the parquet.thrift structs vtx reads and writes, by name.

In: nothing. Out: one namespace of integer constants per struct (``ColumnMetaData.DATA_PAGE_OFFSET``
is 9), so footer and page-header code reads ``meta[ColumnMetaData.DATA_PAGE_OFFSET]`` rather than
``meta[9]``. Plain ints: `filter.formats.parquet.thrift_compact` keys its structs by field id.
May fail: nothing.

Only the fields vtx touches are named; every other field of a footer is kept as the writer
wrote it. The numbers are the Parquet format's (parquet.thrift), which never renumbers a field.
"""

from __future__ import annotations


class FileMetaData:
    VERSION = 1
    SCHEMA = 2
    NUM_ROWS = 3
    ROW_GROUPS = 4
    KEY_VALUE_METADATA = 5
    CREATED_BY = 6
    COLUMN_ORDERS = 7


class SchemaElement:
    TYPE = 1
    TYPE_LENGTH = 2
    REPETITION_TYPE = 3
    NAME = 4
    NUM_CHILDREN = 5
    CONVERTED_TYPE = 6
    LOGICAL_TYPE = 10


class LogicalType:  # a union: one field set
    DECIMAL = 5


class KeyValue:
    KEY = 1
    VALUE = 2


class RowGroup:
    COLUMNS = 1
    TOTAL_BYTE_SIZE = 2
    NUM_ROWS = 3
    FILE_OFFSET = 5
    TOTAL_COMPRESSED_SIZE = 6
    ORDINAL = 7


class ColumnChunk:
    FILE_PATH = 1
    FILE_OFFSET = 2
    META_DATA = 3
    CRYPTO_METADATA = 8
    ENCRYPTED_COLUMN_METADATA = 9


class ColumnMetaData:
    TYPE = 1
    ENCODINGS = 2
    PATH_IN_SCHEMA = 3
    CODEC = 4
    NUM_VALUES = 5
    TOTAL_UNCOMPRESSED_SIZE = 6
    TOTAL_COMPRESSED_SIZE = 7
    KEY_VALUE_METADATA = 8
    DATA_PAGE_OFFSET = 9
    INDEX_PAGE_OFFSET = 10
    DICTIONARY_PAGE_OFFSET = 11
    STATISTICS = 12
    ENCODING_STATS = 13
    BLOOM_FILTER_OFFSET = 14
    BLOOM_FILTER_LENGTH = 15


class PageHeader:
    TYPE = 1
    UNCOMPRESSED_PAGE_SIZE = 2
    COMPRESSED_PAGE_SIZE = 3
    CRC = 4
    DATA_PAGE_HEADER = 5
    DICTIONARY_PAGE_HEADER = 7
    DATA_PAGE_HEADER_V2 = 8


class DictionaryPageHeader:
    NUM_VALUES = 1
    ENCODING = 2
