"""Apply an `ExportPlan` to data with Polars expressions: the split mechanism.

In: an `ExportPlan` and a mapping of distinct VINs to tokens.
Out: two lists of column expressions, one per output, that work on a `LazyFrame` of the planned
schema (the readers stream it from files; `split_frame` takes it from memory). Both outputs keep
every row in input order, so they line up row for row; both carry the token and the timestamp.
May fail: nothing of its own; Polars raises on data that does not fit the planned schema.

Layout of the outputs:
- export: ``vehicle_token``, timestamp, then the exported fields in input order;
- onshore: vehicle identifier, ``vehicle_token``, timestamp, then the withheld fields.
A struct whose leaves go to both sides is rebuilt on each side with only its own leaves; where
the input struct is null, both rebuilt structs are null, so the two halves reconstruct it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from filter.plan import TOKEN_COLUMN, Destination, ExportPlan, FieldDecision
from filter.pseudonym import token_expr


@dataclass(frozen=True)
class SplitExpressions:
    """The column expressions of both outputs."""

    export: list[pl.Expr]
    onshore: list[pl.Expr]


def split_expressions(plan: ExportPlan, tokens: dict[str, str]) -> SplitExpressions:
    """Column expressions that produce the export and onshore outputs of `plan`."""
    token = token_expr(plan.vehicle_id_column, tokens, TOKEN_COLUMN)
    ts = pl.col(plan.timestamp_column)
    keys = {plan.vehicle_id_column, plan.timestamp_column}
    by_column: dict[str, list[FieldDecision]] = {}
    for decision in plan.fields:
        if decision.column not in keys:
            by_column.setdefault(decision.column, []).append(decision)

    export: list[pl.Expr] = [token, ts]
    onshore: list[pl.Expr] = [pl.col(plan.vehicle_id_column), token, ts]
    for column, decisions in by_column.items():
        for side, exprs in (("export", export), ("onshore", onshore)):
            expr = _column_for(column, plan.schema[column], decisions, side)
            if expr is not None:
                exprs.append(expr)
    return SplitExpressions(export=export, onshore=onshore)


def split_lazy(
    frame: pl.LazyFrame, plan: ExportPlan, tokens: dict[str, str]
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The export and onshore `LazyFrame`s of `frame` (nothing is computed yet)."""
    exprs = split_expressions(plan, tokens)
    return frame.select(exprs.export), frame.select(exprs.onshore)


def _column_for(
    column: str, dtype: pl.DataType, decisions: list[FieldDecision], side: Destination
) -> pl.Expr | None:
    """The expression for `column` on `side`: whole, pruned to its leaves there, or None."""
    kept = {d.inner for d in decisions if d.destination == side}
    if not kept:
        return None
    if len(kept) == len(decisions):
        return pl.col(column)
    return _pruned_struct(pl.col(column), dtype, (), kept).alias(column)


def _pruned_struct(
    expr: pl.Expr, dtype: pl.DataType, prefix: tuple[str, ...], kept: set[tuple[str, ...]]
) -> pl.Expr:
    """Rebuild struct `expr` with only the leaves in `kept` (paths relative to the column)."""
    assert isinstance(dtype, pl.Struct)
    fields: list[pl.Expr] = []
    for fld in dtype.fields:
        path = (*prefix, fld.name)
        below = {k for k in kept if k[: len(path)] == path}
        if not below:
            continue
        child = expr.struct.field(fld.name)
        if path not in below:  # only some leaves of this nested struct stay here
            child = _pruned_struct(child, fld.dtype, path, kept)
        fields.append(child.alias(fld.name))
    return pl.when(expr.is_null()).then(None).otherwise(pl.struct(fields))
