"""Detect once per distinct value: detector verdicts for low-cardinality string fields.

In: a `LazyFrame` of the batch (all its files) and the `ExportPlan`.
Out: for each exported string (or list-of-string) field that holds an enumeration, a
`ValueTable`: its distinct values, and per detector the codes of the values that hit.
The engine then casts the field to an `Enum` of those values and tests codes, instead of running
every regular expression on every row: telemetry strings are mostly enumerations ("Low",
"Charging"), and this makes detection nearly free. Fields with more distinct values (free text)
are scanned row by row in the stream. The cast is strict, so a value that was not seen here
fails the run instead of slipping past the detectors.
May fail: Polars errors on unreadable input (the caller names the file).

Which fields hold an enumeration is judged on the first `SAMPLE_ROWS` rows (read from the
first row groups only, so it costs milliseconds where a count over the whole batch cost a pass
over its free text): at most `ENUM_SHARE` of them distinct (all of the batch, when it is that
short: at most `DISTINCT_LIMIT`). Their distinct values are then collected over the whole
batch, in the same pass as the VINs; a field found to have more than `DISTINCT_LIMIT` gets no
table and is scanned row by row. The judgement only chooses between two ways of computing the
same verdicts.

Memory: at most `DISTINCT_LIMIT` values per field kept, after one `unique` of each judged
enumeration (a field that looked like one in the sample and is not costs its distinct values
once).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from filter.detectors import detector_hits
from filter.plan import ExportPlan, FieldDecision

#: Fields with more distinct values than this are scanned row by row.
DISTINCT_LIMIT = 50_000
#: Rows from the start of the batch on which a field is judged an enumeration or free text.
SAMPLE_ROWS = 100_000
#: In a full sample, an enumeration has at most this share of its values distinct.
ENUM_SHARE = 0.01
_SAMPLED = "\x00rows"  # the sample's height (no field path can be it)


@dataclass(frozen=True)
class ValueTable:
    """The distinct values of one field and, per detector, the codes of those that hit."""

    values: list[str]
    hit_codes: dict[str, list[int]]

    @property
    def enum(self) -> pl.Enum:
        """The `Enum` whose physical codes index `values`."""
        return pl.Enum(self.values)


def enumeration_fields(frame: pl.LazyFrame, plan: ExportPlan) -> list[FieldDecision]:
    """The scanned fields that hold an enumeration, judged on the first `SAMPLE_ROWS` rows."""
    scanned = [d for d in plan.fields if d.scanned]
    if not scanned:
        return []
    sample = frame.head(SAMPLE_ROWS).select(
        pl.len().alias(_SAMPLED),
        *(_strings(*plan.leaf(d)).n_unique().alias(d.path) for d in scanned),
    ).collect().row(0, named=True)
    rows = sample[_SAMPLED]
    limit = DISTINCT_LIMIT if rows < SAMPLE_ROWS else min(DISTINCT_LIMIT, int(rows * ENUM_SHARE))
    return [d for d in scanned if sample[d.path] <= limit]


def distinct_query(frame: pl.LazyFrame, plan: ExportPlan, decision: FieldDecision) -> pl.LazyFrame:
    """The distinct non-null strings of a field over the whole batch, as column ``value``."""
    return frame.select(_strings(*plan.leaf(decision)).unique().drop_nulls().alias("value"))


def value_table(values: pl.Series) -> ValueTable | None:
    """The detectors' verdicts on a field's distinct `values`; None above `DISTINCT_LIMIT`."""
    if len(values) > DISTINCT_LIMIT:
        return None
    hits = values.to_frame("value").with_row_index("code").select(
        "code", **detector_hits(pl.col("value"), pl.String)
    )
    return ValueTable(
        values=values.to_list(),
        hit_codes={
            name: hits.filter(pl.col(name))["code"].to_list()
            for name in hits.columns if name != "code"
        },
    )


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
