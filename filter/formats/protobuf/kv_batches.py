"""Compiled decoding of key/value envelopes: wire bytes straight into column buffers.

In: a `ProtoSchema` whose message is a key/value envelope (`descriptors.ProtoSchema`), and a
stream file (varint-delimited messages, or one message per file).
Out: the same `Batch`es of rows as the plain path (`batches.iter_batches`): one row per
entry, the columns and types of `schema.key_value_schema`, row for row identical.

How: the descriptor is compiled once into small tables (`kv_tables.KeyValueTables`: per field
number, its kind and slot, at each of the four levels envelope / entry / value / value member).
Numba functions (`kv_passes`), generated from nothing but those tables, walk the memory-mapped
bytes: one pass frames the next batch of messages and counts their entries, a second decodes
every entry into flat NumPy arrays (key number, oneof member, integer, float, and byte spans of
strings and member messages), a third decodes each message-typed member's leaves. Columns are
then built from the arrays with NumPy, Arrow buffers and Polars (`kv_entries.DecodedEntries`,
`kv_columns`): nothing touches an entry in Python.

What the compiled path does not decode it hands to the plain path, message by message, so
the result never depends on which path ran:
- a schema it cannot compile (envelope fields other than scalars and `Timestamp`s, members
  whose messages nest): `compile_tables` returns None and the plain path reads everything;
- a message with a field the descriptor does not know, a known field with an unexpected wire
  type, a member message or value sent twice (merge semantics), invalid UTF-8, or bytes that
  do not parse: flagged, re-read with the protobuf runtime (which gives the ``unknown_fields``
  column, or the error naming the place; a bad record goes to ``on_bad`` as before);
- a framing error (a truncated length prefix, a length past the end, an oversized message):
  the messages before it are decoded, then the plain framing reports or quarantines the rest.

May fail: what the plain path may (`InputError` naming file, byte offset and message index).
Memory: a batch of messages at a time; the file itself is memory-mapped, and the pages of
batches read two batches ago are handed back (`MADV_DONTNEED`): pages a process has touched
count in its resident memory, so a 1.5 GB stream read whole peaked at 1.9 GB. A page touched
again after that (a late reader of an old batch) is read back from the page cache, unchanged.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from filter.errors import read_failed
from filter.files import open_regular
from filter.formats.protobuf.descriptors import ProtoSchema
from filter.formats.protobuf.framing import (
    MAX_MESSAGE_BYTES,
    Frame,
    Framing,
    OnBadRecord,
    file_frames,
)
from filter.formats.protobuf.kv_columns import Leaves
from filter.formats.protobuf.kv_entries import DecodedEntries
from filter.formats.protobuf.kv_passes import (
    FRAMED_ALL,
    FRAMING_ERROR,
    TOO_LARGE,
    decode_envelopes,
    decode_leaves,
    frame_piece,
)
from filter.formats.protobuf.kv_tables import WIRE_TYPES, KeyValueTables, MessageTable
from filter.formats.protobuf.message_rows import (
    batched,
    envelope_frame,
    key_value_frame,
    parse_or_report,
)
from filter.formats.protobuf.pieces import Pieces
from filter.formats.protobuf.row_batches import Batch, RawMessages

#: Batches a split may hold at once, from decoding to writing (`filter.engines.protobuf`: one being
#: decoded, one decoded ahead, one being split, one split and held, one waiting for the
#: writer, one being written); the pages of older ones are handed back (a page handed back
#: too soon would be read again from the file: slower, never wrong).
_BATCHES_IN_FLIGHT = 6


def iter_kv_batches(
    schema: ProtoSchema,
    tables: KeyValueTables,
    source: Path,
    framing: Framing,
    *,
    batch_size: int,
    on_bad: OnBadRecord | None,
    pieces: Pieces,
) -> Iterator[Batch]:
    """The key/value rows of the stream file `source`, `batch_size` messages at a time, or
    fewer where their entries and bytes would need more than one of the `pieces` (a message
    that alone would is refused before it is decoded: `Pieces.check_message`)."""
    try:
        with open_regular(source) as fh:  # a regular file only: no FIFO, no device
            size = os.fstat(fh.fileno()).st_size
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except OSError as exc:
        raise read_failed(exc, source) from None
    try:
        buf = np.frombuffer(mapped, dtype=np.uint8) if mapped is not None else np.empty(
            0, dtype=np.uint8)
        yield from _batches(schema, tables, source, framing, buf, batch_size, on_bad,
                            _PageRelease(mapped), pieces)
    finally:
        buf = None
        if mapped is not None:
            # While an error's traceback still holds frames that view the map, it cannot
            # close; it is then unmapped when the last view goes.
            with contextlib.suppress(BufferError):
                mapped.close()


class _PageRelease:
    """Hands the pages of a read-only file mapping back to the kernel, up to a position."""

    def __init__(self, mapped: mmap.mmap | None) -> None:
        self._mapped = mapped
        self._done = 0  # released below this (a multiple of the page size)
        self._usable = mapped is not None and hasattr(mmap, "MADV_DONTNEED")

    def upto(self, position: int) -> None:
        """Release the whole pages below `position` not released yet."""
        end = position - position % mmap.PAGESIZE
        if not self._usable or end <= self._done:
            return
        assert self._mapped is not None
        try:
            self._mapped.madvise(mmap.MADV_DONTNEED, self._done, end - self._done)
        except (OSError, ValueError):  # only memory is at stake: keep the pages
            self._usable = False
            return
        self._done = end


def _batches(
    schema: ProtoSchema,
    tables: KeyValueTables,
    source: Path,
    framing: Framing,
    buf: np.ndarray,
    batch_size: int,
    on_bad: OnBadRecord | None,
    release: _PageRelease,
    pieces: Pieces,
) -> Iterator[Batch]:
    starts = np.empty(batch_size, dtype=np.int64)
    lengths = np.empty(batch_size, dtype=np.int64)
    offsets = np.empty(batch_size, dtype=np.int64)
    counts = np.empty(batch_size, dtype=np.int64)
    bad = np.empty(batch_size, dtype=np.uint8)
    costs = pieces.costs
    pos, index = 0, 0
    batch_starts = [0] * _BATCHES_IN_FLIGHT  # where the last batches began
    while True:
        # The oldest of them is written by now (a split holds at most that many batches
        # between decoding and writing): its pages can go.
        release.upto(batch_starts[0])
        batch_starts = [*batch_starts[1:], pos]
        status, count, next_pos = frame_piece(
            buf, pos, batch_size, framing == "delimited", MAX_MESSAGE_BYTES,
            tables.entries_number, costs, pieces.limit, starts, lengths, offsets, counts, bad,
        )
        if status == TOO_LARGE:  # refused before anything of it is decoded
            entries, length = int(counts[0]), int(lengths[0])
            pieces.check_message(source, index, int(offsets[0]), entries, length,
                                 pieces.need(1, entries, length))
        if count:
            batch = _decode(schema, tables, source, buf, starts[:count], lengths[:count],
                            offsets[:count], index, on_bad, counts[:count].copy(),
                            bad[:count].copy(), pieces)
            if batch is not None:
                yield batch
        index, pos = index + count, next_pos
        if status == FRAMED_ALL:
            return
        if status == FRAMING_ERROR:  # the plain framing reports (or quarantines) the rest
            frames = file_frames(source, framing, on_bad, start=pos, first_index=index)
            yield from batched(schema, frames, batch_size, on_bad, pieces)
            return


def _decode(
    schema: ProtoSchema,
    tables: KeyValueTables,
    source: Path,
    buf: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    offsets: np.ndarray,
    first_index: int,
    on_bad: OnBadRecord | None,
    counts: np.ndarray,
    bad: np.ndarray,
    pieces: Pieces,
) -> Batch | None:
    """One batch of framed messages (their `counts` of entries; `bad`: a message that does
    not frame at the top level): compiled rows, plus the plain path's for flagged ones."""
    n = len(starts)
    base = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    total = int(base[-1])
    slots = len(tables.envelope.fields)
    env_i = np.zeros((n, slots), dtype=np.int64)
    env_f = np.zeros((n, slots), dtype=np.float64)
    env_s = np.zeros((n, slots), dtype=np.int64)
    env_n = np.zeros((n, slots), dtype=np.int64)
    env_seen = np.zeros((n, slots), dtype=np.bool_)
    ent_msg = np.empty(total, dtype=np.int64)
    ent_pos = np.empty(total, dtype=np.int64)
    ent_key = np.empty(total, dtype=np.int32)
    ent_member = np.empty(total, dtype=np.int16)
    # An entry's value is an integer, a float or a span (start, length), as its member's kind
    # says: the integer, the float's bits and the span's start share one array.
    ent_i = np.zeros((total, 1), dtype=np.int64)
    ent_f = ent_i.view(np.float64)
    ent_s = ent_i
    ent_n = np.zeros((total, 1), dtype=np.int64)
    decode_envelopes(
        buf, starts, lengths, n, base, bad,
        tables.entries_number, tables.key_number, tables.value_number,
        tables.envelope.slot_of, tables.envelope.kinds, WIRE_TYPES, env_i, env_f, env_s, env_n,
        env_seen, tables.members.slot_of, tables.members.kinds,
        ent_msg, ent_pos, ent_key, ent_member, ent_i, ent_f, ent_s, ent_n,
    )
    keep = np.repeat(bad == 0, counts)
    leaves = {}
    for j, table in enumerate(tables.member_tables):
        if table is None:
            continue
        rows = np.flatnonzero((ent_member == j) & keep)
        decoded = _decode_leaves(buf, rows, ent_s, ent_n, table)
        failed = rows[~decoded.ok]
        if len(failed):
            bad[ent_msg[failed]] = 1
        leaves[j] = decoded
    if bad.any():
        keep = np.repeat(bad == 0, counts)
    entries = DecodedEntries(
        schema, tables, buf, keep, first_index, ent_msg, ent_pos, ent_key, ent_member,
        ent_i[:, 0], ent_f[:, 0], ent_s[:, 0], ent_n[:, 0], env_i, env_f, env_s, env_n,
        env_seen, leaves,
    )
    flagged = np.flatnonzero(bad)
    messages = n - len(flagged)
    read = bad == 0  # the messages the batch holds: decoded here, or parsed below
    spans = (starts.copy(), lengths.copy())  # the caller reuses its framing arrays

    def raw() -> RawMessages:
        chosen = np.flatnonzero(read)
        return RawMessages(buf, spans[0][chosen], spans[1][chosen], chosen + first_index)

    if not len(flagged):
        return Batch(None, messages, entries, raw) if messages else None
    rows = entries.rows()
    plain_rows, plain_envelopes, parsed = [], [], 0
    for chunk in _plain_chunks(flagged, counts, lengths, pieces, source, first_index, offsets):
        chunk_messages, indexes = [], []
        for m in chunk:
            start = int(starts[m])
            frame = Frame(first_index + m, int(offsets[m]),
                          buf[start : start + int(lengths[m])].tobytes())
            message = parse_or_report(schema, source, frame, on_bad)
            if message is None:
                continue
            chunk_messages.append(message)
            indexes.append(frame.index)
            read[m] = True
        if chunk_messages:  # the runtime's objects held a chunk at a time, rows kept
            plain_rows.append(key_value_frame(schema, chunk_messages, indexes))
            plain_envelopes.append(envelope_frame(schema, chunk_messages))
            parsed += len(chunk_messages)
    messages += parsed
    if parsed:
        rows = pl.concat([rows, *plain_rows]).sort("message_index", "entry_index")
    if messages == 0:
        return None
    envelopes = pl.concat([entries.envelopes().filter(pl.Series(bad == 0)),
                           *(plain_envelopes or [envelope_frame(schema, [])])])
    return Batch(rows, messages, raw=raw, envelopes=envelopes)


def _plain_chunks(
    flagged: np.ndarray, counts: np.ndarray, lengths: np.ndarray, pieces: Pieces,
    source: Path, first_index: int, offsets: np.ndarray,
) -> Iterator[list[int]]:
    """The messages handed to the protobuf runtime, in runs that each fit in one piece
    through it (`Pieces.plain_need`); a message that alone does not is refused."""
    chunk: list[int] = []
    need = 0
    for m in flagged.tolist():
        entries, length = int(counts[m]), int(lengths[m])
        more = pieces.plain_need(1, entries, length)
        pieces.check_message(source, first_index + m, int(offsets[m]), entries, length, more)
        if chunk and need + more > pieces.limit:
            yield chunk
            chunk, need = [], 0
        chunk.append(m)
        need += more
    if chunk:
        yield chunk


def _decode_leaves(
    buf: np.ndarray, rows: np.ndarray, ent_s: np.ndarray, ent_n: np.ndarray, table: MessageTable
) -> Leaves:
    k, slots = len(rows), max(len(table.fields), 1)
    decoded = Leaves(
        rows, np.ones(k, dtype=np.bool_), np.zeros((k, slots), dtype=np.int64),
        np.zeros((k, slots), dtype=np.float64), np.zeros((k, slots), dtype=np.int64),
        np.zeros((k, slots), dtype=np.int64), np.zeros((k, slots), dtype=np.bool_),
    )
    if k:
        decode_leaves(buf, rows, ent_s, ent_n, table.slot_of, table.kinds, WIRE_TYPES,
                      decoded.ints, decoded.floats, decoded.starts, decoded.lengths,
                      decoded.seen, decoded.ok)
    return decoded
