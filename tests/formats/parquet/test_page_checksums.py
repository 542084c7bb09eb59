"""Page CRCs of the chunks the split copies as their bytes (issue 23, item 12).

A chunk copied undecoded takes its pages along as they lie: a damaged page that still decodes
(a flipped bit in a PLAIN double, in a dictionary string) would reach an output unnoticed, but
for the CRC its writer put in the page header.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from filter.cli import vtx
from filter.formats.parquet import thrift_compact as thrift
from tests.conftest import KEY

NOTES = "Vehicle.Service.Notes"  # exported in after-sales: a clean dictionary, copied
DISTANCE = "Vehicle.Service.DistanceToService"  # exported, PLAIN doubles, copied
TABLE = pa.table(
    {
        "vin": ["LRW3E7EK0PC100001", "LRW3E7EK0PC100002"] * 4,
        "timestamp": pa.array(
            [datetime(2026, 11, 24, 0, 0, i) for i in range(8)], pa.timestamp("us")
        ),
        NOTES: ["brake pads ok", "tyres"] * 4,
        DISTANCE: [1200.0, 900.5] * 4,
        "Vehicle.Speed": [12.5, 80.0] * 4,
    }
)


def write_with_crcs(
    path: Path, compression: str = "none", version: str = "1.0", table: pa.Table = TABLE
) -> Path:
    pq.write_table(
        table,
        path,
        write_page_checksum=True,
        compression=compression,
        data_page_version=version,
        row_group_size=4,
        use_dictionary=["vin", NOTES],
    )
    return path


def cli_split(source: Path, root: Path, *extra: str) -> Any:
    key_file = root / "vtx.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    return CliRunner().invoke(
        vtx,
        [
            "split",
            str(source),
            "--export",
            str(root / "e"),
            "--onshore",
            str(root / "o"),
            "--scenario",
            "after-sales",
            "--key-file",
            str(key_file),
            "--quiet",
            *extra,
        ],
    )


def flip_last_byte_of_first_page(path: Path, column: str, group: int) -> int:
    """Flip the last byte of the first page of `column`'s chunk in row group `group` (the
    dictionary page, if it has one), leaving the page header and its CRC as they were; the
    chunk's first byte."""
    meta = pq.read_metadata(path).row_group(group)
    names = [meta.column(i).path_in_schema for i in range(meta.num_columns)]
    chunk = meta.column(names.index(column))
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    header, body = thrift.decode(bytes(data), start)
    assert 4 in header  # the page has a CRC
    end = body + header[3].value
    data[end - 1] ^= 0x01  # 's' -> 'r', or a double's top byte: both still decode
    path.write_bytes(bytes(data))
    return start


#: Copied into the export; copied onshore; read to compute the token (never copied).
DAMAGED = [
    (DISTANCE, "data page"),
    (NOTES, "dictionary page"),
    ("Vehicle.Speed", "data page"),
    ("vin", "dictionary page"),
]


@pytest.mark.parametrize("reencode", [False, True], ids=["copied", "reencode"])
@pytest.mark.parametrize(("column", "page"), DAMAGED)
def test_a_page_that_fails_its_checksum_fails_the_run(
    tmp_path: Path, column: str, page: str, reencode: bool
) -> None:
    """On the copy path, and with `--reencode`, where Polars decodes every page (and checks
    no CRC)."""
    source = write_with_crcs(tmp_path / "in.parquet")
    flip_last_byte_of_first_page(source, column, 1)
    pq.read_table(source)  # it still decodes: only the checksum tells
    with pytest.raises(OSError, match="CRC"):
        pq.read_table(source, page_checksum_verification=True)
    result = cli_split(source, tmp_path, *(["--reencode"] if reencode else []))
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"vtx: error: {source}: row group 1, column {column!r}: the {page} at byte 0 of the "
        "chunk does not match its checksum; the file is corrupt"
    ]
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("compression", ["none", "snappy", "zstd"])
def test_an_intact_input_with_checksums_splits_and_keeps_them_valid(
    tmp_path: Path, compression: str, version: str
) -> None:
    source = write_with_crcs(tmp_path / "in.parquet", compression, version)
    result = cli_split(source, tmp_path)
    assert result.exit_code == 0, result.output
    export = tmp_path / "e" / "part-00000.parquet"
    chunks = pq.read_metadata(export).row_group(0)
    names = [chunks.column(i).path_in_schema for i in range(chunks.num_columns)]
    # The copied chunks keep their pages, CRCs included, which still hold.
    data = export.read_bytes()
    for column in (NOTES, DISTANCE):
        chunk = chunks.column(names.index(column))
        header, _ = thrift.decode(data, chunk.dictionary_page_offset or chunk.data_page_offset)
        assert 4 in header, column
    for part in (export, tmp_path / "o" / "part-00000.parquet"):
        table = pq.read_table(part, page_checksum_verification=True)
        assert table.num_rows == TABLE.num_rows
    exported = pq.read_table(export, page_checksum_verification=True)
    assert exported[NOTES].to_pylist() == TABLE[NOTES].to_pylist()
    assert exported[DISTANCE].to_pylist() == TABLE[DISTANCE].to_pylist()


def test_a_column_read_to_be_computed_has_its_checksums_checked(tmp_path: Path) -> None:
    """Notes holding a mobile number are computed anew on both sides, never copied: their
    pages reach the outputs only through Polars' decode, which checks no CRC."""
    notes = pa.array(["brake pads ok", "call 13812345678"] * 4)
    source = write_with_crcs(tmp_path / "in.parquet", table=TABLE.set_column(2, NOTES, notes))
    flip_last_byte_of_first_page(source, NOTES, 1)
    result = cli_split(source, tmp_path)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"vtx: error: {source}: row group 1, column {NOTES!r}: the dictionary page at byte 0 "
        "of the chunk does not match its checksum; the file is corrupt"
    ]
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("compression", ["none", "snappy", "zstd"])
def test_an_intact_input_with_checksums_reencodes(
    tmp_path: Path, compression: str, version: str
) -> None:
    """Every page walked and its CRC checked (no false alarm on any codec or page version);
    the pages Polars writes claim no CRC."""
    source = write_with_crcs(tmp_path / "in.parquet", compression, version)
    result = cli_split(source, tmp_path, "--reencode")
    assert result.exit_code == 0, result.output
    exported = pq.read_table(tmp_path / "e" / "part-00000.parquet", page_checksum_verification=True)
    assert exported[DISTANCE].to_pylist() == TABLE[DISTANCE].to_pylist()
