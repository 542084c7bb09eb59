"""How the verifier reads each kind of part file: its row count, its schema and a lazy scan.

In: a part file of a published output (for a protobuf stream, with its manifest beside it).
Out: `PART_FORMATS`, by file suffix: Parquet, and delimited protobuf streams
(`--output-format protobuf`), which are decoded into the rows the same split writes to Parquet
(the export's vehicle identifier field holds the token): `stream_rows`, with the message type
`stream_reader` takes from the manifest (whether a manifest's parts are streams:
`FormatSections.streams`).
May fail: what reading a part raises (`formats.parquet.inputs.READ_ERRORS`); the checks that
read parts report it as a failure. `MemoryBudgetExceeded` from `PartFormat.fits` (a part
that reading would take past the run's memory budget): the verifier stops on it (exit 1).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from filter.formats.parquet.decode_budget import DecodeCost, check_decoding
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf.descriptors import SHIPPED_SOURCE, ProtoSchema, load_schema
from filter.formats.protobuf.framing import iter_frames
from filter.formats.protobuf.message_rows import UNKNOWN_FIELDS, key_value_schema, polars_schema
from filter.formats.protobuf.pieces import Pieces
from filter.memory_budget import MemoryBudget, format_size
from filter.outputs.manifest import read_manifest
from filter.policy.plan import TOKEN_COLUMN


@dataclass(frozen=True)
class PartFormat:
    """How the verifier reads one kind of part file: its row count, schema and a lazy scan,
    each within a memory budget (None: the default); and `fits`, which refuses a part that
    reading would take past the budget (`MemoryBudgetExceeded`), before it is decoded (its
    last argument: whether the detectors will scan the part's strings, as an export's)."""

    rows: Callable[[Path, MemoryBudget | None], int]
    schema: Callable[[Path, MemoryBudget | None], pl.Schema]
    scan: Callable[[Path, MemoryBudget | None], pl.LazyFrame]
    fits: Callable[[Path, MemoryBudget | None, bool], None]


def _stream_messages(path: Path, _budget: MemoryBudget | None = None) -> int:
    """How many messages a delimited protobuf part holds (the manifest's rows)."""
    return sum(1 for _ in iter_frames(path, "delimited"))


@functools.lru_cache(maxsize=8)
def stream_reader(directory: Path) -> tuple[ProtoSchema, bool]:
    """The message type a directory's protobuf parts hold (from its manifest), and whether it
    is an export (whose vehicle identifier field holds the token)."""
    manifest = read_manifest(directory)
    source = manifest.extra.input_format
    if source is None:
        raise ValueError(f"{directory}: its manifest names no message type (no input_format)")
    descriptor = source.descriptor_set
    schema = load_schema(None if descriptor == SHIPPED_SOURCE else descriptor, source.message,
                         kv_field=None)
    return schema, manifest.destination == "export"


def stream_fits(path: Path, budget: MemoryBudget | None = None, _scanned: bool = False) -> None:
    """Refuse (`MemoryBudgetExceeded`) a protobuf part whose rows, held whole as
    `stream_rows` holds them, would need more than a piece of `budget`: measured from its
    framing and its entries counted on the wire, before anything is decoded. A part a split
    wrote is one batch, so one piece of that split's budget."""
    schema, _ = stream_reader(path.parent.absolute())
    pieces = Pieces.of(budget)
    layout = schema.key_value
    messages = entries = wire = 0
    for frame in iter_frames(path, "delimited"):
        if layout is not None and frame.data:
            from filter.formats.protobuf.wire import count_top_level  # numba: key/value only

            entries += count_top_level(np.frombuffer(frame.data, dtype=np.uint8),
                                       layout.entries.number)[0]
        messages += 1
        wire += len(frame.data)
    held = f" and {entries:,} entries" if entries else ""
    pieces.budget.check(pieces.need(messages, entries, wire), str(path),
                        f"{messages:,} messages", f"the part, {format_size(wire)}{held},")


def stream_rows(path: Path, budget: MemoryBudget | None = None) -> pl.DataFrame:
    """A protobuf part decoded into the rows vtx writes to Parquet for the same input; in an
    export, the vehicle identifier field is named for what it holds: the token. Each batch
    within a piece of `budget` (None: the default; `stream_fits` checks the whole)."""
    schema, export = stream_reader(path.parent.absolute())
    batches = [b.rows for b in protobuf_batches.iter_batches(schema, path, "delimited",
                                                             budget=budget)]
    rows = pl.concat(batches) if batches else (
        key_value_schema(schema) if schema.key_value else polars_schema(schema)
    ).to_frame()
    if export:
        vin = read_manifest(path.parent).keys.vehicle_id
        # A message whose VIN gets no token has no field: "" on the wire, null in Parquet.
        rows = rows.rename({vin: TOKEN_COLUMN}).with_columns(
            pl.col(TOKEN_COLUMN).replace("", None))
        if rows[UNKNOWN_FIELDS].null_count() == rows.height:  # none on the wire: no column
            rows = rows.drop(UNKNOWN_FIELDS)
    return rows


def _parquet_fits(path: Path, budget: MemoryBudget | None, scanned: bool) -> None:
    """Refuse a Parquet part whose row groups, measured from their page headers as a reader
    holds them (`check_decoding`; with what the detectors hold besides where its strings are
    `scanned`), would not fit in a piece of `budget`."""
    check_decoding([path], MemoryBudget.of(budget), None, DecodeCost(scan_strings=scanned))


PART_FORMATS: dict[str, PartFormat] = {
    ".parquet": PartFormat(
        rows=lambda p, _budget: pq.read_metadata(p).num_rows,
        # glob=False: a part is that file, even under a directory with `[` in its name.
        schema=lambda p, _budget: pl.scan_parquet(p, glob=False).collect_schema(),
        scan=lambda p, _budget: pl.scan_parquet(p, glob=False),
        fits=lambda p, budget, scanned: _parquet_fits(p, budget, scanned),
    ),
    # Delimited streams of the input's type (`--output-format protobuf`): rows are messages;
    # the content is checked on the rows they decode to, with the type the manifest names.
    ".pb": PartFormat(
        rows=_stream_messages,
        schema=lambda p, budget: stream_rows(p, budget).schema,
        scan=lambda p, budget: stream_rows(p, budget).lazy(),
        fits=stream_fits,
    ),
}


__all__ = [
    "PART_FORMATS",
    "PartFormat",
    "stream_fits",
    "stream_reader",
    "stream_rows",
]
