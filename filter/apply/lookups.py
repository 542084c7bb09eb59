"""What a split looks up by distinct value, read once per batch: the token of each VIN, and
detector verdicts for the distinct values of exported strings that hold enumerations.

In: the batch as a `LazyFrame` (a Parquet scan, or one batch in memory), its `ExportPlan`, the
token key.
Out: `Lookups` (`filter.apply.columns`): tokens by VIN, value tables by field path.
May fail: Polars' errors reading the frame, for the caller to translate (it knows the files).

One pass over the VIN column and the enumeration fields (`filter.apply.value_tables`), in runs
of `LOOKUP_RUN_ROWS` rows where the frame is a scan whose slices read only their own rows. The
pieces are gathered by `DistinctValues`, which the Ray engine feeds block by block: both
engines judge the same fields to be enumerations and build the same tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import polars as pl

from filter.apply import value_tables
from filter.apply.columns import Lookups
from filter.apply.detectors import BatchVins
from filter.apply.pseudonym import token_mapping
from filter.apply.value_tables import (
    distinct_query,
    enum_categories,
    enumeration_fields,
    value_table,
)
from filter.policy.plan import ExportPlan, FieldDecision

#: Rows of a Parquet batch one query of `batch_lookups` reads. Polars' streaming `unique`
#: holds memory in proportion to the rows it has read (pola-rs/polars#25607): alone, the
#: distinct VINs of 10M rows peaked at 216 MB of RSS, of 50M rows at 375 MB. Runs of this
#: many rows hold what one run holds, however long the batch.
LOOKUP_RUN_ROWS = 5_000_000


@dataclass
class DistinctValues:
    """The distinct VINs of a batch and the distinct values of its enumeration fields,
    gathered piece by piece (runs of rows here, Ray blocks on a cluster), then turned into
    `Lookups` once: the one way every engine builds them.

    A field whose distinct values pass `value_tables.DISTINCT_LIMIT` is dropped (it is
    scanned row by row) and no longer read.
    """

    fields: list[FieldDecision]  # the enumeration fields (`value_tables.enumeration_fields`)
    vins: pl.Series | None = None
    values: dict[str, pl.Series] = field(default_factory=dict)  # by path
    over: set[str] = field(default_factory=set)  # paths past the limit

    def open_fields(self) -> list[FieldDecision]:
        """The fields still within the limit: those the next piece must read."""
        return [d for d in self.fields if d.path not in self.over]

    def add(
        self, vins: pl.Series | None, found: Mapping[str, pl.Series | None] | None = None
    ) -> None:
        """One piece's distinct VINs (None: it reports none) and, by path, its distinct values
        of open fields (None: the piece alone has more than the limit)."""
        if vins is not None:
            self.vins = _union(self.vins, vins)
        found = found or {}
        for path, values in found.items():
            if path in self.over:
                continue
            merged = None if values is None else _union(self.values.get(path), values)
            if merged is None or len(merged) > value_tables.DISTINCT_LIMIT:
                self.over.add(path)
                self.values.pop(path, None)
            else:
                self.values[path] = merged

    @property
    def held(self) -> int:
        """The bytes the values gathered so far take."""
        return sum(s.estimated_size() for s in [self.vins, *self.values.values()]
                   if s is not None)

    def lookups(self, export_plan: ExportPlan, key: bytes) -> Lookups:
        """The tokens of the VINs, and a value table per field within the limit."""
        vins = self.vins if self.vins is not None else pl.Series("vin", [], pl.String)
        # The batch's own VINs are looked for in its strings too (the `batch_vin` detector).
        batch_vins = BatchVins.of(vins.to_list())
        dtypes = {d.path: export_plan.leaf(d)[1] for d in self.fields}
        tables = {
            path: table for path, values in self.values.items()
            if (table := value_table(values, batch_vins,
                                     categories=enum_categories(dtypes[path]))) is not None
        }
        return Lookups(tokens=token_mapping(key, vins), tables=tables)


def batch_lookups(
    frame: pl.LazyFrame, export_plan: ExportPlan, key: bytes, *, rows: int | None = None,
    fields: list[FieldDecision] | None = None,
) -> Lookups:
    """What the split looks up by distinct value: one pass over the VIN column and the
    string fields that hold enumerations (`filter.apply.value_tables`).

    `rows`: the frame's height, given when a slice of the frame reads only its own rows (a
    Parquet scan); the pass then reads `LOOKUP_RUN_ROWS` rows at a time. None: one query.
    `fields`: the enumeration fields, where the caller has judged them already
    (`value_tables.enumeration_fields`).
    """
    if fields is None:
        fields = enumeration_fields(frame, export_plan)
    distinct = DistinctValues(fields)
    vins = pl.col(export_plan.vehicle_id_column).cast(pl.String).unique()
    runs = ([frame] if rows is None or rows <= LOOKUP_RUN_ROWS else
            [frame.slice(offset, LOOKUP_RUN_ROWS) for offset in range(0, rows, LOOKUP_RUN_ROWS)])
    for run in runs:
        fields = distinct.open_fields()
        queries = [run.select(vins), *(distinct_query(run, export_plan, d) for d in fields)]
        # A slice's queries one by one: `collect_all` would cache the slice they share, whole.
        found, *values = (pl.collect_all(queries) if len(runs) == 1 else
                          [query.collect(engine="streaming") for query in queries])
        distinct.add(found.to_series(), {d.path: v.to_series()
                                         for d, v in zip(fields, values, strict=True)})
    return distinct.lookups(export_plan, key)


def piece_lookups(
    pieces: Iterable[pl.DataFrame], export_plan: ExportPlan, key: bytes,
    fields: list[FieldDecision], check_held: Callable[[int], None],
) -> Lookups:
    """`batch_lookups` over a batch given a piece of rows at a time (each holding the VIN
    column and those of `fields`, the enumeration fields): each piece's distinct values are
    added to those before, and `check_held` is given the bytes they take after each piece
    (it raises to stop: a piece adds at most its own size)."""
    distinct = DistinctValues(fields)
    vins = pl.col(export_plan.vehicle_id_column).cast(pl.String).unique()
    for piece in pieces:
        lazy = piece.lazy()
        open_fields = distinct.open_fields()
        found, *values = pl.collect_all(
            [lazy.select(vins), *(distinct_query(lazy, export_plan, d) for d in open_fields)])
        distinct.add(found.to_series(), {d.path: v.to_series()
                                         for d, v in zip(open_fields, values, strict=True)})
        check_held(distinct.held)
    return distinct.lookups(export_plan, key)


def _union(seen: pl.Series | None, found: pl.Series) -> pl.Series:
    """The distinct values of `seen` and `found` together."""
    return found if seen is None else pl.concat([seen, found]).unique()
