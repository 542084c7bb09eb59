"""What a split looks up by distinct value, read once per batch: the token of each VIN, and
detector verdicts for the distinct values of exported strings that hold enumerations.

In: the batch as a `LazyFrame` (a Parquet scan, or one batch in memory), its `ExportPlan`, the
token key.
Out: `Lookups` (`filter.apply.columns`): tokens by VIN, value tables by field path.
May fail: Polars' errors reading the frame, for the caller to translate (it knows the files).

One pass over the VIN column and the enumeration fields (`filter.apply.value_tables`), in runs
of `LOOKUP_RUN_ROWS` rows where the frame is a scan whose slices read only their own rows.
"""

from __future__ import annotations

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
from filter.policy.plan import ExportPlan

#: Rows of a Parquet batch one query of `batch_lookups` reads. Polars' streaming `unique`
#: holds memory in proportion to the rows it has read (pola-rs/polars#25607): alone, the
#: distinct VINs of 10M rows peaked at 216 MB of RSS, of 50M rows at 375 MB. Runs of this
#: many rows hold what one run holds, however long the batch.
LOOKUP_RUN_ROWS = 5_000_000


def batch_lookups(
    frame: pl.LazyFrame, export_plan: ExportPlan, key: bytes, *, rows: int | None = None
) -> Lookups:
    """What the split looks up by distinct value: one pass over the VIN column and the
    string fields that hold enumerations (`filter.apply.value_tables`).

    `rows`: the frame's height, given when a slice of the frame reads only its own rows (a
    Parquet scan); the pass then reads `LOOKUP_RUN_ROWS` rows at a time. None: one query.
    """
    enumerations = enumeration_fields(frame, export_plan)
    vins = pl.col(export_plan.vehicle_id_column).cast(pl.String).unique()
    runs = ([frame] if rows is None or rows <= LOOKUP_RUN_ROWS else
            [frame.slice(offset, LOOKUP_RUN_ROWS) for offset in range(0, rows, LOOKUP_RUN_ROWS)])
    distinct_vins: pl.Series | None = None
    distinct: dict[str, pl.Series] = {}  # by path: what the runs so far found
    for run in runs:
        # A field already past the limit gets no table: it is not read again.
        fields = [d for d in enumerations
                  if len(distinct.get(d.path, ())) <= value_tables.DISTINCT_LIMIT]
        queries = [run.select(vins), *(distinct_query(run, export_plan, d) for d in fields)]
        # A slice's queries one by one: `collect_all` would cache the slice they share, whole.
        found, *values = (pl.collect_all(queries) if len(runs) == 1 else
                          [query.collect(engine="streaming") for query in queries])
        distinct_vins = _union(distinct_vins, found.to_series())
        for decision, frame_values in zip(fields, values, strict=True):
            distinct[decision.path] = _union(distinct.get(decision.path),
                                             frame_values.to_series())
    assert distinct_vins is not None
    # The batch's own VINs are looked for in its strings too (the `batch_vin` detector).
    batch_vins = BatchVins.of(distinct_vins.to_list())
    dtypes = {d.path: export_plan.leaf(d)[1] for d in enumerations}
    tables = {
        path: table for path, values in distinct.items()
        if (table := value_table(values, batch_vins,
                                 categories=enum_categories(dtypes[path]))) is not None
    }
    return Lookups(tokens=token_mapping(key, distinct_vins), tables=tables)


def _union(seen: pl.Series | None, found: pl.Series) -> pl.Series:
    """The distinct values of `seen` and `found` together."""
    return found if seen is None else pl.concat([seen, found]).unique()
