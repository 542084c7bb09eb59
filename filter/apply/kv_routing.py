"""Split key/value telemetry entry by entry: the mechanism for envelope streams.

In: a `LazyFrame` of key/value rows (one row per entry, as `formats.protobuf.message_rows` reads
them: envelope fields, ``message_index``, ``entry_index``, ``key``, ``key_number``, ``member``,
typed ``value_*`` columns, ``unknown_fields``), the catalogue, the scenario, the token lookup,
and the namespace under which the catalogue names the keys (``fleet`` gives ``fleet.Soc``).
Out: `KeyValueQueries`: the export rows, the onshore rows, and a one-row frame of counts.
Nothing is computed until the caller collects them. (A batch the compiled decoder holds as
arrays is split by `kv_decoded_routing.split_decoded`, with the same decisions.)
May fail: `InputError` when the envelope has no vehicle identifier or timestamp field.

Each entry goes to exactly one side. It is exported only when all of these hold:
- its key's path (``<namespace>.<Key>``) is classified into an ordinary class the scenario
  exports (a key number the descriptor does not know has no name, so no rule: withheld);
- when its value is a message (a location, a door set), the path ``<namespace>.<Key>.<member>``
  is exported as well, so a message never rides out under a scalar key's decision;
- no detector hits its string value (a location sent as text by older firmware), and it is
  not and does not hold a VIN of the batch (`detectors.BatchVins`: the VINs read so far);
- it carries no field the descriptor does not know.
Export rows carry ``vehicle_token`` instead of the VIN; onshore rows carry both, with the
withheld entries whole. The export numbers its entries densely: its ``entry_index`` is the
entry's place among the message's exported entries (0, 1, ...), so gaps do not show where
withheld entries sat. Onshore rows keep the input's ``entry_index`` and add
``exported_before`` (how many of the message's entries before this one were exported), so
onshore teams can put envelopes back together: sorted by message, then by ``entry_index`` in
the export and ``exported_before`` onshore (onshore first on a tie), a message's rows are its
entries in input order.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import polars as pl

from filter.apply.columns import COUNT_SEPARATOR, MOVED, apply_action, detector_counts
from filter.apply.detectors import (
    BATCH_VIN,
    BatchVins,
    StringScreen,
    any_hit,
    detector_hits,
    string_screen,
)
from filter.apply.pseudonym import TokenMapping, token_expr
from filter.errors import InputError
from filter.formats.protobuf.message_rows import UNKNOWN_FIELDS
from filter.policy.catalogue import Catalogue, action_for
from filter.policy.plan import TOKEN_COLUMN, decide_path

_ROUTE = "__vtx_export"
_DETECTED = "__vtx_detected"
_SUSPECTS = "__vtx_suspects"
_POSITION = ("message_index", "entry_index")
#: Onshore column: how many of the message's entries before this one went to the export
#: (the export's ``entry_index`` of its next exported entry).
EXPORTED_BEFORE = "exported_before"


#: The entry counts a key/value split tallies (`KeyValueQueries.counts`), each in the manifests'
#: ``entries`` even when no entry was read (an empty input: all 0).
ENTRY_COUNTS = ("entries", "exported", "unknown_keys", "unknown_fields", "detected")


@dataclass(frozen=True)
class KeyValueQueries:
    """The lazy queries of one key/value split."""

    export: pl.LazyFrame
    onshore: pl.LazyFrame
    counts: pl.LazyFrame  # one row: entries, exported, unknown_keys, unknown_fields, detected,
    # and the list of key names seen
    positions: pl.LazyFrame | None  # message_index, entry_index of the exported entries
    # (None from the decoder's arrays: `exported` says the same, flag by flag)
    detections: pl.LazyFrame  # one row: entries moved by detectors, and per detector its hits
    # (named as `filter.apply.columns` names them: "value_string<US>detector")
    exported: np.ndarray | None = None  # per entry, in the order read, whether it is exported
    # (from the decoder's arrays only; the frame engine gives `positions`)
    files: tuple[bytes | None, bytes | None] | None = None  # the (export, onshore) Parquet
    # files, where encoded already (`kv_decoded_routing.split_decoded(encoded=True)`):
    # write them instead of collecting `export` / `onshore`

    def files_only(self) -> KeyValueQueries:
        """These queries once both sides are encoded: the files, counts and detections,
        without the row queries and flags, which hold on to the batch's decoded arrays."""
        assert self.files is not None and None not in self.files
        return dataclasses.replace(self, export=pl.LazyFrame(), onshore=pl.LazyFrame(),
                                   exported=None)


@dataclass(frozen=True)
class KeyRoutes:
    """Which key names, and which (key, message member) pairs, the scenario exports."""

    keys: frozenset[str]
    members: frozenset[tuple[str, str]]


def key_routes(
    catalogue: Catalogue, scenario: str, keys: list[str], members: list[str], namespace: str
) -> KeyRoutes:
    """Decide every key name, and every key with each message-typed member, once."""
    exported = frozenset(
        k for k in keys if decide_path(catalogue, scenario, f"{namespace}.{k}").destination
        == "export"
    )
    pairs = frozenset(
        (k, m) for k in exported for m in members
        if decide_path(catalogue, scenario, f"{namespace}.{k}.{m}").destination == "export"
    )
    return KeyRoutes(exported, pairs)


def split_key_values(
    frame: pl.LazyFrame,
    catalogue: Catalogue,
    scenario: str,
    tokens: TokenMapping,
    *,
    namespace: str = "fleet",
) -> KeyValueQueries:
    """The export, onshore and count queries of key/value rows."""
    schema = frame.collect_schema()
    keys = frame.select(pl.col("key").unique()).collect()["key"].drop_nulls().to_list()
    vins = BatchVins.of(tokens, automaton=True)
    route, detected = entry_route(schema, catalogue, scenario, keys, namespace, vins)
    exported = route.cast(pl.Int64)
    # Rows come in entry order within each message (an envelope's own row, -1, first).
    base = frame.with_columns(route.alias(_ROUTE), detected.alias(_DETECTED),
                              (exported.cum_sum() - exported).over("message_index")
                              .alias(EXPORTED_BEFORE))
    export, onshore = side_projections(schema, catalogue, scenario, tokens)
    return KeyValueQueries(
        export=export(base.filter(pl.col(_ROUTE)).with_columns(
            pl.col(EXPORTED_BEFORE).alias("entry_index"))),  # dense: 0..k-1 per message
        onshore=onshore(base.filter(~pl.col(_ROUTE))),
        counts=base.select(_COUNTS),
        positions=base.filter(pl.col(_ROUTE)).select(_POSITION),
        detections=_detections(base, vins),
    )


def _detections(flagged: pl.LazyFrame, vins: BatchVins | None = None) -> pl.LazyFrame:
    """Per detector (the batch's VINs too), how many entries it hit: computed on the entries
    some detector hit."""
    counts = (*_detection_counts(), *_batch_vin_counts(vins))
    return flagged.filter(pl.col(_DETECTED)).select(counts)


@functools.cache
def _string_screen() -> StringScreen:
    """``value_string`` cut to what a detector could hit, its detection text, and whether any
    detector hits it (false where it is null): `detectors.string_screen`, built once, as are
    the expressions below, being the same for every batch."""
    screen = string_screen(pl.col("value_string"), _SUSPECTS)
    return dataclasses.replace(screen, hit=screen.hit.fill_null(False))


@functools.cache
def _detector_flags() -> tuple[pl.Expr, ...]:
    """Per detector, whether it hits ``value_string``, in `_detection_counts`' order."""
    return tuple(h.fill_null(False).alias(d)
                 for d, h in detector_hits(pl.col("value_string"), pl.String).items())


@functools.cache
def _detection_counts() -> tuple[pl.Expr, ...]:
    return (pl.len().alias(f"value_string{COUNT_SEPARATOR}{MOVED}"),
            *detector_counts(pl.col("value_string"), pl.String, "value_string"))


#: The name under which entries whose string value is or holds a VIN of the batch are counted.
_BATCH_VIN_COUNT = f"value_string{COUNT_SEPARATOR}{BATCH_VIN}"


def _batch_vin_counts(vins: BatchVins | None) -> tuple[pl.Expr, ...]:
    """How many entries' string values are or hold a VIN of the batch (none without VINs)."""
    if not vins:
        return ()
    hit = vins.hits(pl.col("value_string")).fill_null(False)
    return (hit.sum().cast(pl.UInt32).alias(_BATCH_VIN_COUNT),)


class StringVerdicts:
    """Whether any detector hits a string value, remembered across the batches of a run.

    Telemetry strings repeat (a batch of 70,000 held 90 distinct values, nearly all seen in
    the batch before), and a detector call costs milliseconds however few values it tests; so
    each distinct value is tested once per run. At most `limit` values are remembered; a batch
    of mostly distinct values (free text) is tested value by value, remembering none.
    Threads splitting two batches at once may share it (`prefetch.mapped_ahead`): a verdict
    depends on the value alone, so a race at worst tests a value twice.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._hit: dict[str, bool] = {}
        self._found: dict[str, tuple[bool, ...]] = {}  # hit strings -> per detector, a hit?
        self._limit = limit

    def hits(self, strings: pl.Series) -> np.ndarray:
        """Per string (none null), whether any detector hits it. Whether it is or holds one
        of the batch's VINs is `batch_vin_flags`, not remembered: the next batch has others."""
        distinct = strings.unique()
        if 2 * len(distinct) > len(strings):
            return _hit_of(strings).to_numpy()
        values = distinct.to_list()
        new = [v for v in values if v not in self._hit]
        found: dict[str, bool] = {}
        if new:
            found = dict(zip(new, _hit_of(pl.Series(new, dtype=pl.String)).to_list(),
                             strict=True))
            if len(self._hit) + len(found) <= self._limit:
                self._hit.update(found)
        hitting = [v for v in values if found.get(v) or self._hit.get(v, False)]
        return strings.is_in(hitting).to_numpy()

    def detections(self, hit: pl.Series, batch_vin_hits: int | None = None) -> pl.DataFrame:
        """The one-row frame of detector counts (as `_detections` makes it) over `hit`, the
        strings some detector (or a VIN of the batch) hit: each distinct string's detectors
        found once per run. `batch_vin_hits`: how many of them hold a VIN of the batch
        (`batch_vin_flags`, counted by the caller, which has them: looking for the VINs
        again would build their automaton again); None: no VINs were looked for."""
        counted = hit.value_counts(name="times")
        values = counted.to_series(0).to_list()
        new = [v for v in values if v not in self._found]
        fresh: dict[str, tuple[bool, ...]] = {}
        if new:
            found = pl.DataFrame({"value_string": new}, schema={"value_string": pl.String})
            fresh = dict(zip(new, found.select(_detector_flags()).rows(), strict=True))
            if len(self._found) + len(fresh) <= self._limit:
                self._found.update(fresh)
        names = [e.meta.output_name() for e in _detection_counts()]
        totals = [0] * (len(names) - 1)
        for value, times in zip(values, counted["times"].to_list(), strict=True):
            flags = fresh[value] if value in fresh else self._found[value]
            for i, flag in enumerate(flags):
                totals[i] += times if flag else 0
        found = pl.DataFrame([pl.Series(n, [c], dtype=pl.UInt32)
                              for n, c in zip(names, [len(hit), *totals], strict=True)])
        if batch_vin_hits is None:
            return found
        return found.with_columns(
            pl.lit(batch_vin_hits, dtype=pl.UInt32).alias(_BATCH_VIN_COUNT))


def batch_vin_flags(strings: pl.Series, vins: BatchVins) -> np.ndarray:
    """Per string, whether it is or holds one of `vins`: tested once per distinct string."""
    distinct = strings.unique()
    flagged = distinct.filter(pl.select(vins.hits(pl.lit(distinct)).fill_null(False)).to_series())
    return strings.is_in(flagged.to_list()).to_numpy()


def _hit_of(strings: pl.Series) -> pl.Series:
    screen = _string_screen()
    return (strings.to_frame("value_string").with_columns(screen.cut).with_columns(screen.text)
            .select(screen.hit).to_series())


def entry_route(
    schema: pl.Schema, catalogue: Catalogue, scenario: str, keys: list[str], namespace: str,
    vins: BatchVins | None = None,
) -> tuple[pl.Expr, pl.Expr]:
    """Whether each entry is exported, and whether a detector (or with `vins`, a VIN of the
    batch) hit its string value.

    `keys` are the key names present (each is decided once, with its message members).
    """
    message_members = [c.removeprefix("value_") for c, t in schema.items()
                       if c.startswith("value_") and isinstance(t, pl.Struct)]
    routes = key_routes(catalogue, scenario, keys, message_members, namespace)
    # One membership test over "key<NUL>member", not a comparison per exported pair.
    pairs = [f"{key}\0{member}" for key, member in routes.members]
    member_ok = pl.col("member").is_null() | ~pl.col("member").is_in(message_members)
    if pairs:
        member_ok = member_ok | pl.concat_str(
            [pl.col("key"), pl.lit("\0"), pl.col("member")]).is_in(pairs)
    detected = any_hit(pl.col("value_string"), pl.String, vins).fill_null(False)
    route = (
        pl.col("key").is_in(list(routes.keys))
        & (pl.col("key") != pl.col("key_number").cast(pl.String))  # a number the enum lacks
        & member_ok
        & ~detected
        & pl.col(UNKNOWN_FIELDS).is_null()
    ).fill_null(False)  # no key (an envelope's unknown fields): onshore
    return route, detected


@dataclass(frozen=True, eq=False)
class Projection:
    """One side's columns, given its rows: the expressions it selects, in order."""

    columns: tuple[pl.Expr, ...]

    def __call__(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        return rows.select(self.columns)

    def chooses_only(self) -> bool:
        """Whether each column is an input column as it is (no token looked up, no
        timestamp coarsened)."""
        return all(column.meta.is_column() for column in self.columns)


def envelope_keys(schema: pl.Schema, catalogue: Catalogue) -> tuple[str, str]:
    """The envelope's vehicle identifier and timestamp columns, as the catalogue names them."""
    columns = list(schema.names())
    vin = catalogue.keys["vehicle_id"].find(columns)
    created = catalogue.keys["timestamp"].find(columns)
    if vin is None or created is None:
        raise InputError("key/value envelope has no vehicle identifier or timestamp field "
                         f"(looked for {', '.join(catalogue.keys['vehicle_id'].aliases)} and "
                         f"{', '.join(catalogue.keys['timestamp'].aliases)})")
    return vin, created


def side_projections(
    schema: pl.Schema, catalogue: Catalogue, scenario: str, tokens: TokenMapping
) -> tuple[Projection, Projection]:
    """The columns of each side, given its rows: the export's (the token, no VIN; the
    timestamp coarsened where the catalogue says so for `scenario`) and the onshore's (VIN,
    token, every column, exact).

    Rows that already carry ``vehicle_token`` keep it; otherwise it is looked up in `tokens`.
    """
    columns = [c for c in schema.names() if c != TOKEN_COLUMN]
    vin, created = envelope_keys(schema, catalogue)
    token = (pl.col(TOKEN_COLUMN) if TOKEN_COLUMN in schema
             else token_expr(vin, tokens, TOKEN_COLUMN))
    values = [c for c in columns if c.startswith("value_")]
    action = action_for(catalogue.keys["timestamp"].actions, scenario)
    exported_time = pl.col(created)
    if action is not None:  # as the column engine exports a key column under an action
        exported_time = apply_action(exported_time, schema[created], action)
    export_columns = [token, exported_time, *map(pl.col, _POSITION), pl.col("key"),
                      pl.col("member"), *map(pl.col, values)]
    onshore_columns = [pl.col(vin), token, pl.col(created), *map(pl.col, _POSITION),
                       pl.col(EXPORTED_BEFORE)]
    onshore_columns += [pl.col(c) for c in columns
                        if c not in (vin, created, *_POSITION, EXPORTED_BEFORE)]
    return Projection(tuple(export_columns)), Projection(tuple(onshore_columns))


_COUNTS = (
    pl.len().alias("entries"),
    pl.col(_ROUTE).sum().alias("exported"),
    (pl.col("key") == pl.col("key_number").cast(pl.String)).sum().alias("unknown_keys"),
    pl.col(UNKNOWN_FIELDS).is_not_null().sum().alias("unknown_fields"),
    pl.col(_DETECTED).sum().alias("detected"),
    pl.col("key").unique().sort().implode().alias("keys"),
)
