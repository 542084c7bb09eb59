"""Parquet layouts: the schema tree, chunk ranges, footers of files made of copied chunks, and
the one check of an input's footer (every malformed footer it refuses, through `split`)."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from filter import InputError, split
from filter.cli import vtx
from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.layout import (
    MAGIC,
    footer_bytes,
    read_layout,
    relocated_chunk,
    row_group_entry,
)
from tests.conftest import KEY, MINI_CATALOGUE

FRAME = pl.DataFrame({
    "a": [1, 2, None],
    "s": [{"x": 1.0, "y": {"p": "u", "q": True}}, None, {"x": None, "y": None}],
    "b": ["k", None, "m"],
})


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src.parquet"
    FRAME.write_parquet(path, row_group_size=2)
    return path


def test_the_schema_tree_numbers_leaves_in_file_order(source) -> None:
    layout = read_layout(source)
    assert list(layout.columns) == ["a", "s", "b"]
    assert [c.leaves for c in layout.columns.values()] == [(0,), (1, 2, 3), (4,)]
    pruned = layout.columns["s"].pruned([("y", "q")])
    assert pruned.leaves == (3,)
    assert [e[4].value for e in pruned.elements()] == [b"s", b"y", b"q"]
    assert pruned.element[5].value == 1 and layout.columns["s"].element[5].value == 2
    assert [g.rows for g in layout.row_groups()] == [2, 1]
    assert layout.created_by is not None and layout.created_by.startswith("Polars")


@pytest.mark.parametrize("pages_only", [False, True])
def test_a_file_of_relocated_chunks_reads_back(source, tmp_path, pages_only) -> None:
    """Columns "b" and "s.y.q" of every row group, copied into a file of their own; with
    `pages_only`, with nothing in their footer entries but where their pages are."""
    layout = read_layout(source)
    data = source.read_bytes()
    columns = [layout.columns["b"], layout.columns["s"].pruned([("y", "q")])]
    out = bytearray(MAGIC)
    groups = []
    for group in layout.row_groups():
        chunks = []
        for leaf in (4, 3):
            start, length = group.ranges[leaf]
            chunks.append(relocated_chunk(group.chunks[leaf], start, len(out),
                                          pages_only=pages_only))
            out += data[start:start + length]
        groups.append(row_group_entry(chunks, group.rows, group.index))
    out += footer_bytes(2, columns, groups, 3, {}, "test", [None, None])
    path = tmp_path / "copied.parquet"
    path.write_bytes(bytes(out))
    expected = pl.DataFrame({"b": FRAME["b"], "s": [{"y": {"q": True}}, None, {"y": None}]})
    assert_frame_equal(pl.read_parquet(path), expected)
    meta = pq.read_metadata(path)
    assert meta.num_rows == 3
    stats = [meta.row_group(g).column(c).is_stats_set for g in range(2) for c in range(2)]
    assert stats == [not pages_only] * 4


def test_files_it_cannot_lay_out(tmp_path, source) -> None:
    short = tmp_path / "short.parquet"
    short.write_bytes(b"PAR1")
    with pytest.raises(InputError, match=r"short\.parquet: not a readable Parquet file"):
        read_layout(short)
    encrypted = tmp_path / "encrypted.parquet"
    encrypted.write_bytes(source.read_bytes()[:-4] + b"PARE")
    with pytest.raises(InputError, match=r"encrypted\.parquet: not a plain Parquet file"):
        read_layout(encrypted)
    garbled = tmp_path / "garbled.parquet"
    data = bytearray(source.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    data[-8 - length:-8] = b"\x0f" * length
    garbled.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"garbled\.parquet: not a readable Parquet footer"):
        read_layout(garbled)


def test_a_dictionary_offset_that_points_at_no_dictionary_is_not_moved(source) -> None:
    """Some writers put 0 for "no dictionary page"; moved like an offset, it would point into
    the new file, at whatever is there."""
    group = next(read_layout(source).row_groups())
    chunk = group.chunks[0]
    meta = chunk[3].value
    start, _ = group.ranges[0]
    moved = relocated_chunk(chunk, start, start + 1000)[3].value
    assert moved[9].value == meta[9].value + 1000
    if 11 in meta:
        assert moved[11].value == meta[11].value + 1000
    for nothing in (0, meta[9].value + 5):  # none; after the data page
        faked = {**chunk, 3: thrift.Field(thrift.STRUCT, {**meta, 11: thrift.Field(
            thrift.I64, nothing), 10: thrift.Field(thrift.I64, 0)})}
        moved = relocated_chunk(faked, start, start + 1000)[3].value
        assert 11 not in moved and 10 not in moved
        assert moved[9].value == meta[9].value + 1000


# Malformed footers, through `filter.split` and `vtx split`: each refused at inspection, before
# any data is read, with one line naming the file (and the row group and column).


def _footer_changed(change):
    """A damage that decodes the footer, lets `change` edit it, and encodes it again."""
    def damage(data: bytes) -> bytes:
        length = int.from_bytes(data[-8:-4], "little")
        start = len(data) - 8 - length
        metadata, _ = thrift.decode(data[start:-8])
        change(metadata)
        encoded = thrift.encode(metadata)
        return data[:start] + encoded + len(encoded).to_bytes(4, "little") + MAGIC
    return damage


def _group(metadata, index: int = 0):
    return metadata[4].value.items[index]


def _chunk(metadata, column: int = 0):
    return _group(metadata)[1].value.items[column]


def _meta(metadata, column: int = 0):
    return _chunk(metadata, column)[3].value


def _garble(data: bytes) -> bytes:
    length = int.from_bytes(data[-8:-4], "little")
    return data[:-8 - length] + b"\x0f" * length + data[-8:]


def _overlap(metadata) -> None:
    """The second column's chunk pointed at the first's bytes."""
    first, second = _meta(metadata, 0), _meta(metadata, 1)
    for field_id in (6, 7, 9, 11):
        if field_id in first:
            second[field_id] = first[field_id]
        else:
            second.pop(field_id, None)


def _set(target, field_id: int, wire: int, value):
    def change(metadata) -> None:
        target(metadata)[field_id] = thrift.Field(wire, value)
    return change


def _drop(target, field_id: int):
    def change(metadata) -> None:
        del target(metadata)[field_id]
    return change


def _garble_arrow_schema(metadata) -> None:
    """The Arrow schema the writer stored, not a schema (pyarrow refuses it)."""
    for pair in metadata[5].value.items:
        if pair[1].value == b"ARROW:schema":
            pair[2] = thrift.Field(thrift.BINARY, b"AAAA")


def _rows_twice(data: bytes) -> bytes:
    """The file's row count given again after the row groups: Thrift's readers take the last,
    vtx's decoder would take the first."""
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - length:-8]
    assert footer[-1:] == b"\x00"  # the struct's end
    footer = footer[:-1] + b"\x06\x06\xce\x0f\x00"  # field 3 (I64, long form): 999 rows
    return data[:-8 - length] + footer + len(footer).to_bytes(4, "little") + MAGIC


COLUMN = r"row group 0 of 3, column '[^']+'"
MALFORMED = {
    "tiny": (lambda data: MAGIC, r"not a readable Parquet file: 4 bytes"),
    "encrypted footer": (lambda data: data[:-4] + b"PARE",
                         r"not a plain Parquet file: its footer is encrypted"),
    "cut short": (lambda data: data[:-100],
                  r"not a readable Parquet file: it does not end in the Parquet magic"),
    "footer too long": (lambda data: data[:-8] + len(data).to_bytes(4, "little") + MAGIC,
                        r"not a readable Parquet file: its footer length \(\d+ bytes\) "
                        r"exceeds the file \(\d+ bytes\)"),
    "garbled": (_garble, r"not a readable Parquet footer: "),
    "no row count": (_footer_changed(_drop(lambda m: m, 3)),
                     r"not a readable Parquet footer: a required field \(id 3\) is missing"),
    "an offset of another type": (_footer_changed(lambda m: setattr(_meta(m)[9], "wire",
                                                                     thrift.I32)),
                                  r"not a readable Parquet footer: row group 0: field 9 has "
                                  r"wire type 5, not 6"),
    "Arrow schema garbled": (_footer_changed(_garble_arrow_schema),
                             r"not a readable Parquet footer: "),
    "a field twice": (_rows_twice, r"not a readable Parquet footer: after the row groups: "
                      r"field 3 is given twice"),
    "chunk missing": (_footer_changed(lambda m: _group(m)[1].value.items.pop()),
                      r"row group 0 of 3 has \d+ column chunks for \d+ columns"),
    "no row group size": (_footer_changed(_drop(_group, 2)),
                          r"row group 0 of 3: its footer entry lacks total_byte_size"),
    "no column metadata": (_footer_changed(_drop(_chunk, 3)),
                           r"row group 0 of 3, column 'vin': its footer entry has no column "
                           r"metadata"),
    "no codec": (_footer_changed(_drop(_meta, 4)), COLUMN + ": its footer entry lacks codec"),
    "path not UTF-8": (_footer_changed(_set(_meta, 3, thrift.LIST,
                                            thrift.ThriftList(thrift.BINARY, [b"\xff"]))),
                       r"row group 0 of 3, column 'vin': its path_in_schema is not a list of "
                       r"UTF-8 names"),
    "in another file": (_footer_changed(_set(_chunk, 1, thrift.BINARY, b"x.bin")),
                        COLUMN + r": its data is in another file \('x\.bin'\)"),
    "encrypted column": (_footer_changed(_set(_chunk, 8, thrift.STRUCT, {})),
                         COLUMN + ": the column is encrypted"),
    "past the end": (_footer_changed(_set(_meta, 7, thrift.I64, 1 << 40)),
                     COLUMN + r": bytes \d+-\d+ lie outside the file's data \(bytes 4-\d+ of "
                     r"\d+\); the file is truncated or corrupt"),
    "negative size": (_footer_changed(_set(_meta, 7, thrift.I64, -1)),
                      COLUMN + r": bytes \d+-\d+ lie outside the file's data"),
    "in the magic": (_footer_changed(lambda m: (_set(_meta, 9, thrift.I64, 2)(m),
                                                _meta(m).pop(11, None))),
                     COLUMN + r": bytes 2-\d+ lie outside the file's data"),
    "overlap": (_footer_changed(_overlap), r"row group 0 of 3, column '[^']+' overlaps row "
                r"group 0, column '[^']+'; the file is corrupt"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_footer_is_refused_before_anything_is_read(
    case, batch_file, key_file, tmp_path
) -> None:
    damage, message = MALFORMED[case]
    batch_file.write_bytes(damage(batch_file.read_bytes()))
    out = tmp_path / "out"
    for reencode in (False, True):
        with pytest.raises(InputError, match=r"batch\.parquet: " + message):
            split(batch_file, out / "e", out / "o", "rnd", key=KEY, catalogue=MINI_CATALOGUE,
                  reencode=reencode)
    result = CliRunner().invoke(vtx, [
        "split", str(batch_file), "--export", str(out / "e"), "--onshore", str(out / "o"),
        "--scenario", "rnd", "--catalogue", str(MINI_CATALOGUE), "--key-file", str(key_file)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(
        f"vtx: error: {re.escape(str(batch_file))}: {message}", lines[0]), result.stderr
    assert not out.exists()
