"""Hostile inputs, generated: small files that claim or expand to large sizes, and the way to
run vtx on one under a memory limit.

Each `Case` writes its input into a directory and gives the `vtx` arguments that run it; the
tests (`tests/test_hostile_inputs.py`) run every case in a subprocess under an address-space
limit and check the one-line refusal, the exit code, that nothing is published and the peak
memory; `benchmarks/hostile.py` records each case's peak RSS.

The sizes are chosen against `BUDGET`: every input decodes to several times a piece of it;
those whose row groups can be read a slice of rows at a time are split so (`SLICED`), the
others are refused (`CASES`). Each would have taken gigabytes before the budget (measured on
2026-12-07 at 4x these sizes: a 200 MB string peaked at 2.4 GB; a 100 MB dictionary value
used by 1,000 rows was killed at 24 GB).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.fields import FileMetaData, RowGroup

#: The budget the cases run under, and the address space the process may reserve (Polars'
#: and numba's threads reserve some 2 GB of it before they allocate).
BUDGET = "600MiB"
BUDGET_BYTES = 600 << 20
ADDRESS_SPACE = 3 << 30
KEY = "824b886d0de2275fe19f856e9ec5b5a3"
VIN = "LRW3E7EK0PC100001"
NOTES = "Vehicle.Service.Notes"  # a field the shipped catalogue exports for after-sales, scanned


@dataclass(frozen=True)
class Case:
    """One hostile input: how it is made, and what vtx must say of it."""

    name: str
    make: Callable[[Path], list[str]]  # writes the input under a directory; the vtx arguments
    message: str  # a regular expression the one error line matches
    exit_code: int = 1


@dataclass(frozen=True)
class Outcome:
    """What one run under the limit did."""

    exit_code: int
    stderr: str
    peak_rss: int  # bytes


def _timestamps(rows: int) -> pa.Array:
    return pa.array(range(rows), pa.int64()).cast(pa.timestamp("us"))


def _split(directory: Path, source: Path, *extra: str) -> list[str]:
    (directory / "key").write_text(KEY + "\n")
    os.chmod(directory / "key", 0o600)
    return ["split", str(source), "--export", str(directory / "export"), "--onshore",
            str(directory / "onshore"), "--scenario", "after-sales", "--key-file",
            str(directory / "key"), "--memory-budget", BUDGET, "-q", *extra]


def _strings_file(directory: Path, column: str, value: str, rows: int, *,
                  vin_column: pa.Array | None = None, dictionary: bool = False) -> Path:
    """A file of `rows` rows whose `column` holds `value` in every row, zstd-compressed."""
    values = pa.array([value] * rows, pa.large_string())
    table = pa.table({
        "vin": vin_column if vin_column is not None else pa.array([VIN] * rows),
        "timestamp": _timestamps(rows),
        **({} if column == "vin" else {column: values}),
    })
    path = directory / "input.parquet"
    pq.write_table(table, path, compression="zstd", use_dictionary=dictionary,
                   row_group_size=rows)
    return path


def scanned_string_bomb(directory: Path) -> list[str]:
    """A scanned string column: 200,000 strings of 1 KB (200 MB) in a ~0.5 MB file."""
    return _split(directory, _strings_file(directory, NOTES, "a" * 1000, 200_000))


def unclassified_column_bomb(directory: Path) -> list[str]:
    """A column no rule classifies (withheld, copied onshore, decoded by the check)."""
    return _split(directory, _strings_file(directory, "Mystery.Blob", "b" * 1000, 200_000))


def reencoded_bomb(directory: Path) -> list[str]:
    """The unclassified column, with every column decoded by Polars (`--reencode`)."""
    return [*unclassified_column_bomb(directory), "--reencode"]


def vin_column_bomb(directory: Path) -> list[str]:
    """The VIN column, 1 KB a value, every value distinct: the batch's distinct VINs."""
    vins = pa.array([f"{i:017d}" + "v" * 1000 for i in range(200_000)])
    return _split(directory, _strings_file(directory, "vin", "", 200_000, vin_column=vins))


def one_long_string(directory: Path) -> list[str]:
    """One 200 MB string in a scanned column, in a file of a few KB."""
    return _split(directory, _strings_file(directory, NOTES, "c" * (200 << 20), 1))


def dictionary_bomb(directory: Path) -> list[str]:
    """A dictionary of one 1 MB value that all 10,000 rows use: 10 GB once the split writes
    the column anew (the value is copied into each row; reading it alone keeps views)."""
    rows = 10_000
    notes = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()),
                                           pa.array(["d" * (1 << 20)], pa.large_string()))
    table = pa.table({"vin": [VIN] * rows, "timestamp": _timestamps(rows), NOTES: notes})
    path = directory / "input.parquet"
    pq.write_table(table, path, compression="zstd")
    return _split(directory, path)


def claimed_rows(directory: Path) -> list[str]:
    """A row group whose footer claims 3x10^9 rows (its pages hold 10)."""
    path = _strings_file(directory, NOTES, "ok", 10)
    data = path.read_bytes()
    footer_length = int.from_bytes(data[-8:-4], "little")
    footer_start = len(data) - 8 - footer_length
    footer, _ = thrift.decode(data[footer_start:-8], 0)
    footer[FileMetaData.NUM_ROWS] = thrift.Field(thrift.I64, 3 * 10**9)
    for group in footer[FileMetaData.ROW_GROUPS].value.items:
        group[RowGroup.NUM_ROWS] = thrift.Field(thrift.I64, 3 * 10**9)
    encoded = thrift.encode(footer)
    path.write_bytes(data[:footer_start] + encoded + len(encoded).to_bytes(4, "little")
                     + b"PAR1")
    return _split(directory, path)


def verified_export_bomb(directory: Path) -> list[str]:
    """`vtx verify` of an export whose part holds 200 MB of scanned strings: split under a
    large budget first (legitimately), verified under the small one."""
    argv = scanned_string_bomb(directory)
    argv[argv.index("--memory-budget") + 1] = "8GiB"
    done = subprocess.run([sys.executable, "-m", "filter", *argv], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    return ["verify", str(directory / "export"), "--memory-budget", BUDGET]


_REFUSED = r"needs about [\d.]+ [GM]iB of memory, more than a piece of the memory budget"

CASES = [
    Case("VIN column, 200,000 distinct 1 KB values", vin_column_bomb,
         rf"input\.parquet: column 'vin' and 0 enumeration field\(s\): keeping their distinct "
         rf"values {_REFUSED}"),
    Case("one 200 MB string", one_long_string,
         rf"input\.parquet: row group 0, column '{NOTES}': decoding its row group 1 row at a "
         rf"time .*{_REFUSED}"),
    Case("dictionary value of 1 MB in 10,000 rows", dictionary_bomb,
         rf"input\.parquet: row group 0, column '{NOTES}': .*row at a time.*{_REFUSED}"),
    Case("row group claiming 3x10^9 rows", claimed_rows,
         r"input\.parquet: row group 0 claims 3,000,000,000 rows, but its column 'vin' holds "
         r"10 values; the file is corrupt"),
    Case("verify: export part of 200 MB of scanned strings", verified_export_bomb,
         rf"export/part-00000\.parquet: row group 0, column '{NOTES}': .*{_REFUSED}"),
]

#: Row groups too large for a piece that split a slice of rows at a time, within the budget.
SLICED = [
    ("scanned string column, 200 MB", scanned_string_bomb),
    ("unclassified column, 200 MB", unclassified_column_bomb),
    ("unclassified column, 200 MB, --reencode", reencoded_bomb),
]


def run_limited(argv: list[str], address_space: int = ADDRESS_SPACE) -> Outcome:
    """`vtx argv` in a subprocess whose address space is limited to `address_space`; its
    exit code, its stderr and its peak resident memory.

    Linux counts in a child's peak (`ru_maxrss`) the pages of the process it was forked from,
    up to its exec: measured from this process, a run would count this one's memory. So a
    small measuring process starts it, and reports its exit code and peak on stdout.
    """
    measurer = (
        "import os, resource, subprocess, sys\n"
        "limit = int(sys.argv[1])\n"
        "def cap(): resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "child = subprocess.Popen([sys.executable, '-m', 'filter', *sys.argv[2:]],"
        " stdout=subprocess.DEVNULL, preexec_fn=cap)\n"
        "_, status, usage = os.wait4(child.pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", measurer, str(address_space), *argv],
                          capture_output=True, text=True, check=True)
    code, peak = done.stdout.split()
    return Outcome(int(code), done.stderr, int(peak))
