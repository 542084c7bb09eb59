"""Parquet input: find the files of a batch, check them, and stream them lazily.

In: paths, directories and glob patterns as a user types them (a path that exists is a path,
whatever its name holds; vtx expands patterns itself and hands every reader literal paths).
Out: `ParquetInput`s (path, bytes, rows, row groups, Polars schema), read from the footer only,
and `scan(input)`, a `LazyFrame` that Polars streams in batches.
May fail: `InputError` naming the file and, where it can be found, the row group: a missing
file, a pattern matching nothing, a file that is not Parquet, a truncated or corrupt file, a
schema that differs from the batch's first file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow.parquet as pq

from filter.errors import InputError, first_line, read_failed
from filter.files import argument_paths, check_named, entry_kind, found_link, found_special
from filter.formats.parquet.footer_check import checked_layout

#: What reading a damaged file can raise: library errors, and pyo3's `PanicException` (a
#: `BaseException`, raised when Polars' native code panics on data it did not expect).
READ_ERRORS: tuple[type[BaseException], ...] = (Exception, pl.exceptions.PanicException)


@dataclass(frozen=True)
class ParquetInput:
    """One Parquet file of the batch, described from its footer."""

    path: Path
    bytes: int
    rows: int
    row_groups: int
    schema: pl.Schema
    largest_row_group: int = 0  # rows in its largest row group
    created_by: str | None = None  # the writer, as its footer names it


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named by `inputs`: files as given, directories searched for ``*.parquet``, globs.

    An argument that exists as a path is that path, even with glob characters in its name;
    one that does not is a glob pattern, expanded once here (`filter.files.argument_paths`),
    its matching files then read as literal paths. Hidden files and names starting with ``_``
    (manifests, markers) are skipped inside directories. vtx follows no symbolic link it finds
    itself: a link a directory walk would read (a ``*.parquet`` link, a link to a directory)
    or a pattern matches is refused, as is a FIFO, device or socket where a file would be
    read. Order: as given, each directory's and glob's matches sorted; duplicates once.
    """
    found: list[Path] = []
    for item in inputs:
        paths, matched = argument_paths(item)
        if matched:  # its files (directories it matches are left out, as always)
            kinds = {match: entry_kind(match) for match in paths}
            for match, kind in kinds.items():
                if kind == "special":
                    raise found_special(match, f"matched by pattern {str(item)!r}")
            files = [match for match, kind in kinds.items() if kind == "file"]
            if not files:
                raise InputError(f"{item}: pattern matches no files")
            found.extend(files)
            continue
        path = paths[0]
        if check_named(path) == "directory":
            matches = parquet_files(path)
            if not matches:
                raise InputError(f"{path}: directory holds no .parquet files")
            found.extend(matches)
        else:
            found.append(path)
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def parquet_files(directory: Path) -> list[Path]:
    """The ``*.parquet`` files below `directory`, sorted, links not followed.

    Names starting with ``.`` or ``_`` are skipped, directories with everything in them. A
    ``*.parquet`` entry that is a symbolic link or not a regular file, and a link to a
    directory, are refused (`InputError`): vtx never reads through a link it found itself.
    """
    found: list[Path] = []
    pending = [directory]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            raise read_failed(exc, current, "directory") from None
        for entry in entries:
            if entry.name[0] in "._":
                continue
            path = Path(entry.path)
            parquet = entry.name.endswith(".parquet")
            if entry.is_symlink():
                if parquet or path.is_dir():
                    raise found_link(path, f"inside input directory {directory}")
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append(path)
            elif parquet and not entry.is_file(follow_symlinks=False):
                raise found_special(path, f"inside input directory {directory}")
            elif parquet:
                found.append(path)
    return sorted(found)


def inspect_parquet(path: Path) -> ParquetInput:
    """Read `path`'s footer: size, rows, row groups and schema, the footer checked
    (`filter.formats.parquet.footer_check`) before any data is read."""
    layout, group_rows = checked_layout(path)
    try:
        schema = pl.scan_parquet(path, glob=False).collect_schema()
    except READ_ERRORS as exc:  # polars raises ComputeError and others for unsupported schemas
        raise InputError(f"{path}: schema cannot be read: {first_line(exc)}") from None
    return ParquetInput(path, layout.size, layout.rows, layout.row_group_count, schema,
                        max(group_rows, default=0), layout.created_by)


def inspect_batch(paths: Sequence[Path]) -> list[ParquetInput]:
    """Inspect every file; all must share the first file's schema (names, order, types)."""
    inputs = [inspect_parquet(p) for p in paths]
    first = inputs[0]
    for other in inputs[1:]:
        if other.schema != first.schema:
            raise InputError(
                f"{other.path}: schema differs from {first.path}: {_schema_diff(first, other)}",
                hint="split files of different schemas in separate runs",
            )
    return inputs


def open_for_reading(path: Path) -> BinaryIO:
    """The file at `path`, open for reading; an `InputError` naming it if it cannot be (the
    caller reports an `OSError` as the output's)."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise read_failed(exc, path) from None


def scan(source: ParquetInput) -> pl.LazyFrame:
    """A lazy, streaming scan of one input file (that file: its name is not a pattern)."""
    return pl.scan_parquet(source.path, glob=False)


#: Rows `locate_corruption` reads at a time.
_LOCATE_ROWS = 4096


def locate_corruption(source: ParquetInput) -> InputError | None:
    """An `InputError` naming the first unreadable row group of `source`, if one is unreadable.

    None when every row group reads: the failure was not in the input. Each is read a few
    thousand rows at a time, page by page (a buffered stream): a row group too large for the
    memory budget is looked through within it as it was split (`sliced_scan`).
    """
    try:
        reader = pq.ParquetFile(source.path, buffer_size=1 << 20, pre_buffer=False,
                                page_checksum_verification=True)
        for index in range(reader.num_row_groups):
            try:
                for _ in reader.iter_batches(batch_size=_LOCATE_ROWS, row_groups=[index],
                                             use_threads=False):
                    pass
            except READ_ERRORS as exc:  # the first failing row group is the place to name
                return InputError(
                    f"{source.path}: row group {index} of {reader.num_row_groups} is corrupt: "
                    f"{first_line(exc)}"
                )
    except READ_ERRORS as exc:  # the file went bad beyond the footer read earlier
        return InputError(f"{source.path}: cannot read: {first_line(exc)}")
    return None


def _schema_diff(a: ParquetInput, b: ParquetInput) -> str:
    names_a, names_b = list(a.schema.names()), list(b.schema.names())
    missing = [n for n in names_a if n not in b.schema]
    extra = [n for n in names_b if n not in a.schema]
    if missing:
        return f"missing column(s) {', '.join(missing[:5])}"
    if extra:
        return f"extra column(s) {', '.join(extra[:5])}"
    for name in names_a:
        if a.schema[name] != b.schema[name]:
            return f"column {name!r} is {b.schema[name]}, not {a.schema[name]}"
    return "columns are in a different order"

