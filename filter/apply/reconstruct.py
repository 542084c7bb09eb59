"""Join an export and its onshore counterpart back into the input, onshore only.

In: the export and onshore frames of one part (same rows, same order) and the input's schema
(an `ExportPlan.schema`, or the schema of the original file).
Out: a frame equal to the input: each column from the side that holds it (the onshore value
first where both hold one: an exact value beside a coarsened one, or a value a detector moved);
a struct split between the sides rebuilt from both halves, field order as in the input;
``vehicle_token`` dropped.
May fail: `InputError` when the two frames do not line up (row counts or tokens differ) or a
column of the schema is in neither.

Key/value output (one row per entry) is put back together by `reconstruct_entries`: the
export numbers each message's exported entries densely (``entry_index`` 0..k-1), the onshore
rows keep the input's ``entry_index`` and say how many of the message's entries before them
were exported (``exported_before``); `entry_positions` gives every row its place in the input.

This is how the promise "together they hold the whole input" is checked, and how onshore teams
rejoin what the egress point split. It must never run outside the country: it needs the onshore
half.
"""

from __future__ import annotations

import polars as pl

from filter.errors import InputError
from filter.policy.plan import TOKEN_COLUMN

#: The onshore column of key/value output mapping its entries to the export's
#: (`filter.apply.kv_routing.EXPORTED_BEFORE`).
EXPORTED_BEFORE = "exported_before"
#: `entry_positions`' columns besides ``message_index``: the row's side ("export" or
#: "onshore"), its ``entry_index`` as written, and its place in the input message.
SIDE, WRITTEN_INDEX, INPUT_INDEX = "side", "written_index", "input_index"


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


def entry_positions(export: pl.LazyFrame, onshore: pl.LazyFrame) -> pl.LazyFrame:
    """Every key/value row of one part's two sides with its place in the input message:
    ``message_index``, `SIDE`, `WRITTEN_INDEX` (the side's ``entry_index``) and `INPUT_INDEX`.

    Sorted by message, then by the export's ``entry_index`` and the onshore's
    ``exported_before`` (onshore first on a tie, then by its own ``entry_index``), a message's
    rows are its entries in input order. An envelope's own row (onshore, ``entry_index``
    -1: fields the descriptor does not know) keeps -1. For a whole output, the onshore
    ``entry_index`` equals `INPUT_INDEX` on every row, and the export's run 0..k-1 per message.
    """
    rank = "__vtx_rank"
    sides = [
        export.select("message_index", pl.col("entry_index").alias(rank),
                      pl.lit("export").alias(SIDE), pl.col("entry_index").alias(WRITTEN_INDEX)),
        onshore.select("message_index", pl.col(EXPORTED_BEFORE).alias(rank),
                       pl.lit("onshore").alias(SIDE), pl.col("entry_index").alias(WRITTEN_INDEX)),
    ]
    ordered = pl.concat(sides).sort(
        "message_index", rank, pl.col(SIDE) == "export", WRITTEN_INDEX, maintain_order=True)
    envelope = (pl.col(SIDE) == "onshore") & (pl.col(WRITTEN_INDEX) < 0)
    place = (~envelope).cast(pl.Int64).cum_sum().over("message_index") - 1
    return ordered.select("message_index", SIDE, WRITTEN_INDEX,
                          pl.when(envelope).then(-1).otherwise(place).alias(INPUT_INDEX))


def reconstruct_entries(export: pl.DataFrame, onshore: pl.DataFrame) -> pl.DataFrame:
    """The key/value rows of one part's two sides as one frame, in input order: every entry
    once, ``entry_index`` its place in the input message (`entry_positions`). Columns are
    both sides' (``exported_before`` dropped); a column one side lacks is null in its rows
    (an exported entry's VIN is the onshore rows' of the same ``vehicle_token``)."""
    positions = entry_positions(export.lazy(), onshore.lazy()).collect()
    rows = pl.concat([export.with_columns(pl.lit("export").alias(SIDE)),
                      onshore.drop(EXPORTED_BEFORE).with_columns(pl.lit("onshore").alias(SIDE))],
                     how="diagonal_relaxed")
    placed = rows.join(positions, left_on=["message_index", SIDE, "entry_index"],
                       right_on=["message_index", SIDE, WRITTEN_INDEX], how="left",
                       validate="1:1")
    return (placed.with_columns(pl.col(INPUT_INDEX).alias("entry_index"))
            .drop(INPUT_INDEX, SIDE).sort("message_index", "entry_index"))
