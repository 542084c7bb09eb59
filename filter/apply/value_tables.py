"""Detect once per distinct value: detector verdicts for low-cardinality string fields.

In: a `LazyFrame` of the batch (all its files), the `ExportPlan` and the batch's VINs.
Out: for each exported field holding strings (strings, categoricals, enums, lists of them...)
that holds an enumeration, a `ValueTable`: its distinct values (and for an enum type, every
category of the type), and per detector (the batch's own VINs, `BATCH_VIN`, one of them) the
codes of the values that hit.
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

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from filter.apply.detectors import BatchVins, as_strings, detector_hits
from filter.policy.plan import ExportPlan, FieldDecision

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

    def hit_values(self) -> set[str]:
        """The values some detector hits."""
        return {self.values[code] for codes in self.hit_codes.values() for code in codes}


def enumeration_fields(frame: pl.LazyFrame, plan: ExportPlan) -> list[FieldDecision]:
    """The scanned fields that hold an enumeration, judged on the first `SAMPLE_ROWS` rows."""
    scanned = [d for d in plan.fields if d.scanned]
    if not scanned:
        return []
    sample = frame.head(SAMPLE_ROWS).select(
        pl.len().alias(_SAMPLED),
        *(field_strings(*plan.leaf(d)).n_unique().alias(d.path) for d in scanned),
    ).collect().row(0, named=True)
    rows = sample[_SAMPLED]
    limit = DISTINCT_LIMIT if rows < SAMPLE_ROWS else min(DISTINCT_LIMIT, int(rows * ENUM_SHARE))
    return [d for d in scanned if sample[d.path] <= limit]


def distinct_query(frame: pl.LazyFrame, plan: ExportPlan, decision: FieldDecision) -> pl.LazyFrame:
    """The distinct non-null strings of a field over the whole batch, as column ``value``."""
    return frame.select(field_strings(*plan.leaf(decision)).unique().drop_nulls().alias("value"))


def value_table(
    values: pl.Series, vins: BatchVins | None = None, *, categories: Sequence[str] = ()
) -> ValueTable | None:
    """The detectors' verdicts on a field's distinct `values` (and with `vins`, whether each
    is or holds a VIN of the batch); None above `DISTINCT_LIMIT`.

    `categories`: the categories of the field's enum types (`enum_categories`), which the type
    carries wherever the field goes, used or not: judged with the values.
    """
    seen = set(values.to_list())
    extra = [c for c in dict.fromkeys(categories) if c not in seen]
    if extra:
        values = pl.concat([values.cast(pl.String), pl.Series(extra, dtype=pl.String)])
    if len(values) > DISTINCT_LIMIT:
        return None
    hits = values.to_frame("value").with_row_index("code").select(
        "code", **detector_hits(pl.col("value"), pl.String, vins)
    )
    return ValueTable(
        values=values.to_list(),
        hit_codes={
            name: hits.filter(pl.col(name))["code"].to_list()
            for name in hits.columns if name != "code"
        },
    )


def enum_categories(dtype: pl.DataType) -> list[str]:
    """Every category of the enum types in `dtype` (at any depth), in order, once each."""
    if isinstance(dtype, pl.Enum):
        return dtype.categories.to_list()
    if isinstance(dtype, pl.List | pl.Array):
        return enum_categories(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return list(dict.fromkeys(c for f in dtype.fields for c in enum_categories(f.dtype)))
    return []


def export_dtype(
    dtype: pl.DataType, table: ValueTable | None, *, nested: bool = False
) -> pl.DataType:
    """The type a scanned field of `dtype` is exported as: its enum types without the
    categories a detector hits (`table`), or, with no table to tell, as strings; categoricals
    inside lists, arrays and structs as strings; else `dtype`.

    An enum type carries its categories into every file and frame it is part of (Polars writes
    them all as the column's dictionary): one a detector hits must not reach the export, even
    where no exported row holds it. A categorical inside a list keeps the dictionary of the
    values it was read with after its hit values are nulled (found by the leak corpus: the
    export frame of a `list<dictionary<string>>` column held every planted text in its
    dictionary), so it is exported as plain strings.
    """
    if nested and isinstance(dtype, pl.Categorical) and not isinstance(dtype, pl.Enum):
        return pl.String
    if isinstance(dtype, pl.Enum):
        if table is None:
            return pl.String
        hit = table.hit_values()
        return pl.Enum([c for c in dtype.categories.to_list() if c not in hit]) if hit else dtype
    if isinstance(dtype, pl.List):
        return pl.List(export_dtype(dtype.inner, table, nested=True))
    if isinstance(dtype, pl.Array):
        return pl.Array(export_dtype(dtype.inner, table, nested=True), dtype.shape)
    if isinstance(dtype, pl.Struct):
        return pl.Struct(
            {f.name: export_dtype(f.dtype, table, nested=True) for f in dtype.fields}
        )
    return dtype


def table_hits(value: pl.Expr, dtype: pl.DataType, table: ValueTable) -> dict[str, pl.Expr]:
    """Per detector, a boolean per row computed from `table` instead of the patterns."""
    strings, many = as_strings(value, dtype)
    if not many:
        codes = strings.cast(table.enum).to_physical()
        return {name: codes.is_in(hit) for name, hit in table.hit_codes.items()}
    as_codes = strings.cast(pl.List(table.enum)).list.eval(pl.element().to_physical())
    return {
        name: pl.when(value.is_null()).then(None).otherwise(
            as_codes.list.eval(pl.element().is_in(hit)).list.any()
        )
        for name, hit in table.hit_codes.items()
    }


def field_strings(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """The field's string values, one per row of the result: the column itself, or every
    string a list (array, struct in a list) holds."""
    strings, many = as_strings(value, dtype)
    return strings.explode() if many else strings
