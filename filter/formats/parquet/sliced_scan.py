"""A lazy scan of Parquet files that reads each row group a slice of rows at a time, for row
groups too large to decode whole (`row_slices`).

In: the input files, the schema their scan by Polars gives (the plan's), and for each file its
`RowSlices`.
Out: a `pl.LazyFrame` of the files' rows, in order, as `pl.scan_parquet` gives them, made of
one DataFrame a slice.
May fail: when collected, pyarrow's errors on data it cannot decode, and Polars' on a value
it cannot cast to the schema's type (the caller names the file).

Why pyarrow: Polars decodes a row group whole, whatever slice of it a query asks for; pyarrow
reads a row group page by page, into batches of the rows asked for, from a buffered stream of
`row_slices.READ_BUFFER` bytes a column (not the whole column chunk). The frame is a Polars IO
source: the streaming engine pulls a slice at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from polars.io.plugins import register_io_source

from filter.formats.parquet.row_slices import READ_BUFFER, RowSlices


def sliced_scan(files: Sequence[tuple[Path, RowSlices]], schema: pl.Schema) -> pl.LazyFrame:
    """The rows of `files` (each with how it is sliced), one DataFrame a slice, as
    `schema`'s types."""

    def slices(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
               _batch_size: int | None) -> Iterator[pl.DataFrame]:
        left = n_rows
        for frame in sliced_frames(files, schema, with_columns):
            if predicate is not None:
                frame = frame.filter(predicate)
            if left is not None:
                frame = frame.head(left)
                left -= frame.height
            yield frame
            if left is not None and left <= 0:
                return

    return register_io_source(slices, schema=schema)


def sliced_frames(files: Sequence[tuple[Path, RowSlices]], schema: pl.Schema,
                  columns: Sequence[str] | None = None) -> Iterator[pl.DataFrame]:
    """The slices of `files`, in order, each a DataFrame of `columns` (None: all) as
    `schema`'s types."""
    columns = list(schema) if columns is None else list(columns)
    wanted = {c: schema[c] for c in columns}
    for path, sliced in files:
        # Polars checks no page CRC; pyarrow does, asked to.
        reader = pq.ParquetFile(path, buffer_size=READ_BUFFER, pre_buffer=False,
                                page_checksum_verification=True)
        for group, rows in sliced.rows.items():
            for batch in reader.iter_batches(batch_size=rows, row_groups=[group],
                                             columns=columns, use_threads=False):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                yield frame.cast(wanted)  # as Polars' own scan types them
