"""The batches of rows of one protobuf input, by the fastest path that reads it.

In: a schema (`schema.ProtoSchema`), one input (a stream file or a topic dump
directory) and its framing. Out: `Batch`es of rows: from the compiled key/value decoder
(`filter.formats.protobuf.kv_batches`) for key/value stream files, else from the runtime's parse
(`filter.formats.protobuf.message_rows`); both give the same rows.
May fail: `InputError`, as the two readers raise it; `MemoryBudgetExceeded` for a message
that alone would need more than a piece of the run's memory budget.

Its own module so that the runtime reader and the compiled decoder do not import each other:
the decoder builds on the reader's types, and this module chooses between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from filter.formats.protobuf.descriptors import ProtoSchema
from filter.formats.protobuf.framing import (
    Framing,
    OnBadRecord,
    dump_files,
    dump_frames,
    file_frames,
)
from filter.formats.protobuf.message_rows import batched
from filter.formats.protobuf.pieces import Pieces
from filter.formats.protobuf.row_batches import Batch
from filter.memory_budget import MemoryBudget

#: "auto": the compiled decoder where it applies (key/value stream files), else the runtime.
Decoder = Literal["auto", "plain"]


def iter_batches(
    schema: ProtoSchema,
    source: Path,
    framing: Framing,
    *,
    batch_size: int = 10_000,
    on_bad: OnBadRecord | None = None,
    decoder: Decoder = "auto",
    budget: MemoryBudget | None = None,
) -> Iterator[Batch]:
    """Rows of `source` in batches of at most `batch_size` messages: plain or key/value rows.

    Batches are also cut by bytes and entries, so that each fits in a piece of `budget`
    (None: the default budget), as measured before the messages are decoded
    (`formats.protobuf.pieces`); a message that alone would not fit is refused with
    `MemoryBudgetExceeded`.

    `source` is a file (`framing` "delimited" or "single") or a directory of single-message
    files. Without `on_bad` the first bad record raises `InputError`; with it, bad records are
    handed to `on_bad` and skipped. Key/value stream files are read by the compiled decoder
    (`filter.formats.protobuf.kv_batches`) unless `decoder` is "plain"; both give the same rows.
    """
    pieces = Pieces.of(budget)
    if decoder == "auto" and schema.key_value is not None and not source.is_dir():
        from filter.formats.protobuf import kv_batches, kv_tables  # numba: only when needed

        tables = kv_tables.compile_tables(schema)
        if tables is not None:
            yield from kv_batches.iter_kv_batches(
                schema, tables, source, framing, batch_size=batch_size, on_bad=on_bad,
                pieces=pieces,
            )
            return
    frames = (
        dump_frames(dump_files(source), 0, on_bad) if source.is_dir()
        else file_frames(source, framing, on_bad)
    )
    yield from batched(schema, frames, batch_size, on_bad, pieces)
