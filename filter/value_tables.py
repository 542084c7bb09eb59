"""Detect once per distinct value: detector verdicts for low-cardinality string fields.

In: a `LazyFrame` of the batch (all its files) and the `ExportPlan`.
Out: for each exported string (or list-of-string) field with at most `DISTINCT_LIMIT` distinct
values, a `ValueTable`: its distinct values, and per detector the codes of the values that hit.
The engine then casts the field to an `Enum` of those values and tests codes, instead of running
every regular expression on every row: telemetry strings are mostly enumerations ("Low",
"Charging"), and this makes detection nearly free. Fields with more distinct values (free text)
are scanned row by row in the stream. The cast is strict, so a value that was not seen here
fails the run instead of slipping past the detectors.
May fail: Polars errors on unreadable input (the caller names the file).

Memory: one approximate distinct count per field, then at most `DISTINCT_LIMIT` values each.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from filter.detectors import detector_hits
from filter.plan import ExportPlan

#: Fields with more distinct values than this are scanned row by row.
DISTINCT_LIMIT = 50_000


@dataclass(frozen=True)
class ValueTable:
    """The distinct values of one field and, per detector, the codes of those that hit."""

    values: list[str]
    hit_codes: dict[str, list[int]]

    @property
    def enum(self) -> pl.Enum:
        """The `Enum` whose physical codes index `values`."""
        return pl.Enum(self.values)


def estimate_query(frame: pl.LazyFrame, plan: ExportPlan) -> pl.LazyFrame | None:
    """A one-row query of the approximate distinct count of each scanned field (None: none)."""
    scanned = [d for d in plan.fields if d.scanned]
    if not scanned:
        return None
    return frame.select(_strings(*plan.leaf(d)).approx_n_unique().alias(d.path) for d in scanned)


def value_tables(
    frame: pl.LazyFrame, plan: ExportPlan, estimates: dict[str, int]
) -> dict[str, ValueTable]:
    """Value tables for the scanned fields whose `estimates` (from `estimate_query`) are small."""
    few = [d for d in plan.fields if d.scanned and estimates[d.path] <= DISTINCT_LIMIT]
    if not few:
        return {}
    distinct = pl.collect_all(
        [frame.select(_strings(*plan.leaf(d)).unique().drop_nulls().alias("value")) for d in few]
    )
    tables = {}
    for decision, values in zip(few, distinct, strict=True):
        hits = values.with_row_index("code").select(
            "code", **detector_hits(pl.col("value"), pl.String)
        )
        tables[decision.path] = ValueTable(
            values=values["value"].to_list(),
            hit_codes={
                name: hits.filter(pl.col(name))["code"].to_list()
                for name in hits.columns if name != "code"
            },
        )
    return tables


def table_hits(value: pl.Expr, dtype: pl.DataType, table: ValueTable) -> dict[str, pl.Expr]:
    """Per detector, a boolean per row computed from `table` instead of the patterns."""
    if dtype == pl.String:
        codes = value.cast(table.enum).to_physical()
        return {name: codes.is_in(hit) for name, hit in table.hit_codes.items()}
    as_codes = value.cast(pl.List(table.enum)).list.eval(pl.element().to_physical())
    return {
        name: pl.when(value.is_null()).then(None).otherwise(
            as_codes.list.eval(pl.element().is_in(hit)).list.any()
        )
        for name, hit in table.hit_codes.items()
    }


def _strings(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """The field's string values: the column itself, or a list's elements."""
    return value if dtype == pl.String else value.explode()
