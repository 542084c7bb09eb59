"""Split key/value telemetry entry by entry: the mechanism for envelope streams.

In: a `LazyFrame` of key/value rows (one row per entry, as `filter.readers.protobuf` reads
them: envelope fields, ``message_index``, ``entry_index``, ``key``, ``key_number``, ``member``,
typed ``value_*`` columns, ``unknown_fields``), the catalogue, the scenario, the token lookup,
and the namespace under which the catalogue names the keys (``fleet`` gives ``fleet.Soc``).
Out: `KeyValueQueries`: the export rows, the onshore rows, and a one-row frame of counts.
Nothing is computed until the caller collects them.
May fail: `InputError` when the envelope has no vehicle identifier or timestamp field.

Each entry goes to exactly one side. It is exported only when all of these hold:
- its key's path (``<namespace>.<Key>``) is classified into an ordinary class the scenario
  exports (a key number the descriptor does not know has no name, so no rule: withheld);
- when its value is a message (a location, a door set), the path ``<namespace>.<Key>.<member>``
  is exported as well, so a message never rides out under a scalar key's decision;
- no detector hits its string value (a location sent as text by older firmware);
- it carries no field the descriptor does not know.
Export rows carry ``vehicle_token`` instead of the VIN; onshore rows carry both, with the
withheld entries whole. ``message_index`` and ``entry_index`` on both sides let onshore teams
put envelopes back together.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from filter.catalogue import Catalogue
from filter.detectors import detector_hits
from filter.errors import InputError
from filter.plan import TOKEN_COLUMN, decide_path
from filter.pseudonym import token_expr
from filter.readers.protobuf import UNKNOWN_FIELDS

_ROUTE = "__vtx_export"
_POSITION = ("message_index", "entry_index")


@dataclass(frozen=True)
class KeyValueQueries:
    """The lazy queries of one key/value split."""

    export: pl.LazyFrame
    onshore: pl.LazyFrame
    counts: pl.LazyFrame  # one row: entries, exported, unknown_keys, unknown_fields, detected


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
    tokens: dict[str, str],
    *,
    namespace: str = "fleet",
) -> KeyValueQueries:
    """The export, onshore and count queries of key/value rows."""
    schema = frame.collect_schema()
    columns = list(schema.names())
    vin = catalogue.keys["vehicle_id"].find(columns)
    created = catalogue.keys["timestamp"].find(columns)
    if vin is None or created is None:
        raise InputError("key/value envelope has no vehicle identifier or timestamp field "
                         f"(looked for {', '.join(catalogue.keys['vehicle_id'].aliases)} and "
                         f"{', '.join(catalogue.keys['timestamp'].aliases)})")
    message_members = [c.removeprefix("value_") for c, t in schema.items()
                       if c.startswith("value_") and isinstance(t, pl.Struct)]
    keys = frame.select(pl.col("key").unique()).collect()["key"].drop_nulls().to_list()
    routes = key_routes(catalogue, scenario, keys, message_members, namespace)

    member_ok = pl.col("member").is_null() | ~pl.col("member").is_in(message_members)
    for key, member in routes.members:
        member_ok = member_ok | ((pl.col("key") == key) & (pl.col("member") == member))
    hits = detector_hits(pl.col("value_string"), pl.String)
    detected = pl.any_horizontal(h.fill_null(False) for h in hits.values())
    route = (
        pl.col("key").is_in(list(routes.keys))
        & member_ok
        & ~detected
        & pl.col(UNKNOWN_FIELDS).is_null()
    ).alias(_ROUTE)
    base = frame.with_columns(route, detected.alias("__vtx_detected"))

    token = token_expr(vin, tokens, TOKEN_COLUMN)
    values = [c for c in columns if c.startswith("value_")]
    export_columns = [token, pl.col(created), *map(pl.col, _POSITION), pl.col("key"),
                      pl.col("member"), *map(pl.col, values)]
    onshore_columns = [pl.col(vin), token, pl.col(created), *map(pl.col, _POSITION)]
    onshore_columns += [pl.col(c) for c in columns
                        if c not in (vin, created, *_POSITION)]
    known = pl.col("key") != pl.col("key_number").cast(pl.String)
    return KeyValueQueries(
        export=base.filter(pl.col(_ROUTE)).select(export_columns),
        onshore=base.filter(~pl.col(_ROUTE)).select(onshore_columns),
        counts=base.select(
            pl.len().alias("entries"),
            pl.col(_ROUTE).sum().alias("exported"),
            (~known).sum().alias("unknown_keys"),
            pl.col(UNKNOWN_FIELDS).is_not_null().sum().alias("unknown_fields"),
            pl.col("__vtx_detected").sum().alias("detected"),
        ),
    )
