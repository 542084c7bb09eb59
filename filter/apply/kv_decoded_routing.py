"""Split a key/value batch the compiled decoder holds as arrays, entry by entry.

In: the decoded entries of a batch (`formats.protobuf.row_batches.DecodedRows`, as the compiled
decoder gives them), the catalogue, the scenario, the token lookup (the VIN of every message of
the batch), and the namespace under which the catalogue names the keys.
Out: `split_decoded`: the same `KeyValueQueries` as `kv_routing.split_key_values` gives for the
rows of the batch, with the same decisions (`kv_routing.entry_route`), taken on numbers (key
numbers, oneof member positions, the string values for the detectors); each side's rows built
from the arrays for its own entries only, or encoded straight into a Parquet file.
May fail: `InputError` when the envelope has no vehicle identifier or timestamp field.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from filter.apply.detectors import BatchVins
from filter.apply.kv_routing import (
    EXPORTED_BEFORE,
    KeyValueQueries,
    Projection,
    StringVerdicts,
    batch_vin_flags,
    envelope_keys,
    key_routes,
    side_projections,
)
from filter.apply.pseudonym import TokenMapping, coded_tokens, token_expr
from filter.formats.protobuf.row_batches import DecodedRows
from filter.policy.catalogue import Catalogue
from filter.policy.plan import TOKEN_COLUMN
from filter.string_codes import as_enum

if TYPE_CHECKING:
    from filter.formats.protobuf.kv_entries import DecodedEntries


def split_decoded(
    entries: DecodedRows,
    catalogue: Catalogue,
    scenario: str,
    tokens: TokenMapping,
    *,
    namespace: str = "fleet",
    build_rows: bool = True,
    verdicts: StringVerdicts | None = None,
    coded: bool = False,
    encoded: bool = False,
) -> KeyValueQueries:
    """The queries of `kv_routing.split_key_values` for entries the compiled decoder holds
    as arrays.

    `tokens` must hold the VIN of every message of the batch, entries or not (as
    `Batch.distinct` gives them): each message's token is looked up once, for its entries; a
    string value that is or holds one of them stays onshore (`BATCH_VIN`). `verdicts`
    remembers the detectors' verdicts on string values from batch to batch (one per run;
    without, each batch tests its own values).

    With `build_rows` each side's rows are built now (the export's on the caller's thread,
    the onshore's at the same time on a second one); without, only when its query is
    collected (a caller that needs only the positions never pays for them).
    With `coded` (and `build_rows`) the strings that repeat (key and member names, VIN,
    token) are `pl.Enum` columns (`DecodedEntries.rows`), for a Parquet writer told they are
    strings (`filter.formats.parquet.metadata`).
    With `encoded` each side is encoded now, as a Parquet file (`KeyValueQueries.files`,
    `filter.formats.parquet.entry_columns.encoded_file`), instead of built as rows; a side
    whose types the encoder does not write is built as rows (`build_rows`), and its file is
    None.

    The same decisions as `kv_routing.entry_route`, taken on numbers: key numbers, oneof member
    positions, and the string values for the detectors. Each side's rows are then built from
    the arrays for its own entries only, so no wide frame is filtered.
    """
    from filter.apply import decoded_routes  # numba: for decoded batches only

    names = entries.key_names
    numbers, member = entries.routing()
    keys = _KeyRows.of(numbers)
    known = [n for n in keys.present if n in names]
    members = entries.member_names
    schema = entries.row_schema
    message_members = [m for m in members if isinstance(schema.get(f"value_{m}"), pl.Struct)]
    routes = key_routes(catalogue, scenario, [names[n] for n in known], message_members,
                        namespace)
    # One table decides every entry: a row per key number present, a column per oneof member
    # (column 0: no member); true where the key is exported and so is its member.
    table = np.zeros((keys.height, len(members) + 1), dtype=np.bool_)
    for n in known:
        if names[n] in routes.keys:
            table[keys.row_of[n]] = [True] + [
                m not in message_members or (names[n], m) in routes.members for m in members]
    # Detectors run on the entries holding a string only.
    where, strings = entries.strings()
    verdicts = verdicts or StringVerdicts()
    vins = BatchVins.of(tokens, automaton=True)
    # The VINs looked for once (an automaton of them is built per query): for the verdicts
    # and for their count.
    vin_hit = batch_vin_flags(strings, vins) if vins else np.zeros(len(strings), np.bool_)
    hit = verdicts.hits(strings) | vin_hit
    detected = np.zeros(len(numbers), np.bool_)
    detected[where] = hit
    chosen = decoded_routes.chosen_entries(keys.rows, keys.low, member, table, detected)
    before = decoded_routes.chosen_before(entries.positions(), chosen)
    # Per side, the entry columns that depend on the routing: onshore, how many entries before
    # each were exported; the export numbers its entries densely, by the same count.
    export_entries = {"entry_index": before, EXPORTED_BEFORE: before}
    onshore_entries = {EXPORTED_BEFORE: before}
    vin, _ = envelope_keys(schema, catalogue)
    schema = pl.Schema({**schema, TOKEN_COLUMN: pl.String, EXPORTED_BEFORE: pl.Int64})
    export, onshore = side_projections(schema, catalogue, scenario, tokens)

    @functools.cache
    def messages() -> pl.DataFrame:
        """What each entry takes on from its message: the envelope's fields and the token,
        looked up once per message, not per entry; for both sides, so coded once (a
        message's strings repeat in each of its entries)."""
        envelopes = entries.envelopes()
        if not (coded and build_rows):
            return envelopes.hstack(envelopes.select(token_expr(vin, tokens, TOKEN_COLUMN)))
        found = envelopes.with_columns(
            as_enum(envelopes[c]) for c, t in envelopes.schema.items() if t == pl.String)
        token = (coded_tokens(found[vin], tokens, TOKEN_COLUMN)
                 if isinstance(found.schema[vin], pl.Enum) else None)
        if token is None:
            token = as_enum(envelopes.select(token_expr(vin, tokens, TOKEN_COLUMN)).to_series())
        return found.hstack([token])

    def plain_messages() -> pl.DataFrame:
        """`messages()` with its coded strings as strings again: for rows built for a query
        (of the `schema` it declares), not for a writer."""
        found = messages()
        return found.cast({c: pl.String for c, t in found.schema.items()
                           if isinstance(t, pl.Enum)})

    seen = sorted([names[n] for n in known] + [str(n) for n in keys.present if n not in names])
    counts = pl.DataFrame({
        "entries": [len(numbers)], "exported": [int(chosen.sum())],
        "unknown_keys": [sum(c for n, c in zip(keys.present, keys.counts, strict=True)
                             if n not in names)],
        "unknown_fields": [0],
        "detected": [int(hit.sum())], "keys": [seen],
    }, schema={**dict.fromkeys(("entries", "exported", "unknown_keys", "unknown_fields",
                                "detected"), pl.UInt32), "keys": pl.List(pl.String)})

    def side(select: np.ndarray, project: Projection, computed: dict[str, np.ndarray]
             ) -> tuple[pl.LazyFrame, bytes | None]:
        deferred = project(pl.defer(
            lambda: entries.rows(select, plain_messages(), entry_columns=computed),
            schema=schema))  # its rows only if asked for
        if encoded:
            file = _encoded_side(entries, select, messages(), schema, project, computed)
            if file is not None:
                return deferred, file
        if build_rows:
            rows = entries.rows(select, messages(), coded=coded, entry_columns=computed)
            return project(_own_categories(rows).lazy()), None
        return deferred, None

    if build_rows or encoded:  # both sides at once: much of their NumPy work overlaps
        messages()  # made here, once, before the two threads ask for it
        onshore_built = _side_builder().submit(side, ~chosen, onshore, onshore_entries)
        export_rows, export_file = side(chosen, export, export_entries)
        onshore_rows, onshore_file = onshore_built.result()
    else:
        (export_rows, export_file), (onshore_rows, onshore_file) = (
            side(chosen, export, export_entries), side(~chosen, onshore, onshore_entries))
    return KeyValueQueries(
        export=export_rows,
        onshore=onshore_rows,
        counts=counts.lazy(),
        positions=None,
        detections=verdicts.detections(strings.filter(pl.Series(hit)),
                                       int(vin_hit.sum()) if vins else None).lazy(),
        exported=chosen,
        files=(export_file, onshore_file) if encoded else None,
    )


def _encoded_side(
    entries: DecodedEntries, select: np.ndarray, messages: pl.DataFrame, schema: pl.Schema,
    project: Projection, computed: dict[str, np.ndarray],
) -> bytes | None:
    """One side's Parquet file, or None if the encoder does not write its types.

    The side's projection runs on the message rows (the entry columns stand in as nulls):
    it makes the columns entries take on from their message (the token, a coarsened
    timestamp) once per message, and names the side's columns, in order, with their types.
    A projection that only chooses columns is read, not run (a Polars query costs 2 ms a
    side and batch, whatever it does).
    """
    from filter.formats.parquet.entry_columns import encoded_file  # numba: decoded batches only

    if project.chooses_only():  # as the projection would make them, without a query
        names = [column.meta.output_name() for column in project.columns]
        known = messages.schema
        side = pl.Schema({n: known[n] if n in known else schema[n] for n in names})
        return encoded_file(entries, select, messages.select(n for n in names if n in known),
                            side, entry_columns=computed)
    stand_ins = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items()
                 if name not in messages.columns]
    projected = project(messages.lazy().with_columns(stand_ins)).collect()
    per_message = projected.select(c for c in projected.columns if c in messages.columns)
    return encoded_file(entries, select, per_message, projected.schema, entry_columns=computed)


@functools.cache
def _side_builder() -> ThreadPoolExecutor:
    """The thread that builds the onshore side's rows while the caller builds the export's.
    In a split the caller is the read-ahead thread, which sets the pace (1M messages, Parquet
    output: 3-5% faster). Made on first use: importing vtx starts no thread."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="vtx-side")


@dataclass(frozen=True)
class _KeyRows:
    """The distinct key numbers of a batch, and each entry's row among them."""

    present: list[int]  # ascending
    counts: list[int]  # entries per key number present
    row_of: dict[int, int]  # key number -> its row
    rows: np.ndarray  # per entry, its key number (its row is that minus `low`) or its row
    low: int  # what `rows` hold minus its row: the least number when counted by range, else 0
    height: int  # rows in all (some unused when numbers are counted by range)

    @classmethod
    def of(cls, numbers: np.ndarray) -> _KeyRows:
        if len(numbers) == 0:
            return cls([], [], {}, np.zeros(0, dtype=np.intp), 0, 0)
        from filter.apply import decoded_routes  # numba: for decoded batches only

        low, high, tally = decoded_routes.range_tally(numbers)
        if high - low < 1 << 16:  # as usual: counted by range, a row per number in it
            present = (np.flatnonzero(tally) + low).tolist()
            return cls(present, [int(tally[n - low]) for n in present],
                       {n: n - low for n in present}, numbers, low, high - low + 1)
        distinct, rows, tally = np.unique(numbers, return_inverse=True, return_counts=True)
        present = distinct.tolist()
        return cls(present, tally.tolist(), {n: i for i, n in enumerate(present)}, rows, 0,
                   len(present))


def _own_categories(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` with each `pl.Enum` column's categories cut to the values the side holds: the
    coded columns share the batch's categories (every message's token and VIN), which a
    Parquet writer would write whole as the column's dictionary, those of messages with no
    entry on this side included."""
    coded = [c for c, t in rows.schema.items() if isinstance(t, pl.Enum)]
    if not coded:
        return rows
    return rows.with_columns(as_enum(rows[c].cast(pl.String)) for c in coded)

