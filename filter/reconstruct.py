"""Join an export and its onshore counterpart back into the input, onshore only.

In: the export and onshore frames of one part (same rows, same order) and the input's schema
(an `ExportPlan.schema`, or the schema of the original file).
Out: a frame equal to the input: each column from the side that holds it (the onshore value
first where both hold one: an exact value beside a coarsened one, or a value a detector moved);
a struct split between the sides rebuilt from both halves, field order as in the input;
``vehicle_token`` dropped.
May fail: `InputError` when the two frames do not line up (row counts or tokens differ) or a
column of the schema is in neither.

This is how the promise "together they hold the whole input" is checked, and how onshore teams
rejoin what the egress point split. It must never run outside the country: it needs the onshore
half.
"""

from __future__ import annotations

import polars as pl

from filter.errors import InputError
from filter.plan import TOKEN_COLUMN


def reconstruct(
    export: pl.DataFrame, onshore: pl.DataFrame, schema: pl.Schema
) -> pl.DataFrame:
    """The input rows of `schema`, rebuilt from an export part and its onshore part."""
    if export.height != onshore.height:
        raise InputError(f"outputs do not line up: export {export.height} rows, "
                         f"onshore {onshore.height}")
    if not export.get_column(TOKEN_COLUMN).equals(onshore.get_column(TOKEN_COLUMN)):
        raise InputError("outputs do not line up: vehicle tokens differ row by row")
    both = pl.concat(
        [
            export.drop(TOKEN_COLUMN).rename(lambda c: f"e\x00{c}"),
            onshore.drop(TOKEN_COLUMN).rename(lambda c: f"o\x00{c}"),
        ],
        how="horizontal",
    )
    exprs = []
    for name, dtype in schema.items():
        sides = [
            (pl.col(f"{s}\x00{name}"), both.schema[f"{s}\x00{name}"])
            for s in "eo"
            if f"{s}\x00{name}" in both.columns
        ]
        if not sides:
            raise InputError(f"column {name!r} is in neither output")
        if len(sides) == 1:
            exprs.append(_as(sides[0][0], sides[0][1], dtype).alias(name))
        elif not isinstance(dtype, pl.Struct):
            # In both: a key, a value the export transformed (exact onshore), or a value a
            # detector moved (onshore where it hit, export elsewhere): onshore first.
            exprs.append(pl.coalesce(*(_as(e, t, dtype) for e, t in reversed(sides)))
                         .alias(name))
        else:
            exprs.append(_merge_struct(sides, dtype).alias(name))
    return both.select(exprs)


def _as(expr: pl.Expr, dtype: pl.DataType, wanted: pl.DataType) -> pl.Expr:
    """`expr` (of `dtype`) as the input's type: an enum the export holds without the
    categories a detector hit has them back."""
    return expr if dtype == wanted else expr.cast(wanted)


def _merge_struct(halves: list[tuple[pl.Expr, pl.DataType]], dtype: pl.Struct) -> pl.Expr:
    """A struct of `dtype` taking each field from the half that has it (nested halves merged)."""
    fields = []
    for fld in dtype.fields:
        pieces = [
            (expr.struct.field(fld.name), next(f.dtype for f in half.fields if f.name == fld.name))
            for expr, half in halves
            if isinstance(half, pl.Struct) and any(f.name == fld.name for f in half.fields)
        ]
        if len(pieces) > 1 and isinstance(fld.dtype, pl.Struct):
            fields.append(_merge_struct(pieces, fld.dtype).alias(fld.name))
        elif len(pieces) > 1:  # onshore half first, as for whole columns
            fields.append(pl.coalesce([_as(p, t, fld.dtype) for p, t in reversed(pieces)])
                          .alias(fld.name))
        else:
            fields.append(_as(*pieces[0], fld.dtype).alias(fld.name))
    all_null = pl.all_horizontal([expr.is_null() for expr, _ in halves])
    return pl.when(all_null).then(None).otherwise(pl.struct(fields))
