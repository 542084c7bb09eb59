"""Apply an `ExportPlan` to data with Polars expressions: the split mechanism.

In: a `LazyFrame` of the planned schema (the readers stream it from files; `split_frame` takes
it from memory), the `ExportPlan`, and the batch's `Lookups` (tokens of its distinct VINs,
detector verdicts of the distinct values of low-cardinality string fields).
Out: `SplitQueries`: the export and onshore `LazyFrame`s, and, when any exported field is a
string, a one-row `LazyFrame` of detector hit counts. Nothing is computed until the caller
collects or sinks them (all three in one `collect_all`, so the input is read once).
May fail: nothing of its own; Polars raises on data that does not fit the planned schema.

Layout of the outputs:
- export: ``vehicle_token``, timestamp, then the exported fields in input order;
- onshore: vehicle identifier, ``vehicle_token``, timestamp, then the withheld fields and,
  under the same names, the exported fields whose values the export changed: where a detector
  hit, the value moves here (and is null in the export); where an action coarsened or rounded
  it, the exact value is kept here. So every input value is in exactly one output, or exact
  here and transformed there.
A struct whose leaves go to both sides is rebuilt on each side with only its own leaves; where
the input struct is null, both rebuilt structs are null, so the two halves reconstruct it.
Both outputs keep every row in input order, so they line up row for row.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import polars as pl

from filter.apply.detectors import BatchVins, any_hit, as_strings, detector_hits, string_screen
from filter.apply.pseudonym import TokenMapping, token_expr
from filter.apply.value_tables import ValueTable, export_dtype, table_hits
from filter.policy.catalogue import Action
from filter.policy.plan import TOKEN_COLUMN, Destination, ExportPlan, FieldDecision

#: Separates the field path from the detector name in the names of hit-count columns.
COUNT_SEPARATOR = "\x1f"
#: The pseudo-detector counting values moved by any detector.
MOVED = "moved"
_HIT_PREFIX = "__vtx_hit_"
_TOKEN = "__vtx_token"


@dataclass(frozen=True)
class Lookups:
    """What the split looks up by distinct value, computed once per batch."""

    tokens: TokenMapping  # VIN -> vehicle token (None: no token)
    tables: dict[str, ValueTable]  # field path -> detector verdicts of its distinct values

    @functools.cached_property
    def vins(self) -> BatchVins:
        """The batch's VINs, for the `BATCH_VIN` detector (made once per batch)."""
        return BatchVins.of(self.tokens)


@dataclass(frozen=True)
class SplitQueries:
    """The lazy queries of one split."""

    export: pl.LazyFrame
    onshore: pl.LazyFrame
    detections: pl.LazyFrame | None  # one row; columns "<path>\x1f<detector>"; None: no scan
    known_counts: dict[str, int]  # counts known without a scan: fields none of whose values hit


def split_lazy(frame: pl.LazyFrame, plan: ExportPlan, lookups: Lookups) -> SplitQueries:
    """The queries that split `frame` by `plan`.

    Scanned fields with a value table are tested by code; the others row by row. A value
    that is or holds a VIN of the batch (`lookups.vins`) moves as a detector hit does.
    """
    tables = lookups.tables
    vins = lookups.vins
    base = frame
    hit_of: dict[str, pl.Expr] = {}  # field path -> "any detector hit" column
    counts: list[pl.Expr] = []
    known_counts: dict[str, int] = {}
    hit_columns: list[pl.Expr] = []
    any_columns: list[pl.Expr] = []
    suspects: list[pl.Expr] = []  # free-text strings, cut to what a detector could hit
    texts: list[pl.Expr] = []  # what the detectors read of them (`detection_text`)
    free_text: list[tuple[str, str, pl.Expr, pl.DataType]] = []  # scanned row by row
    for index, decision in enumerate(d for d in plan.fields if d.scanned):
        value, dtype = plan.leaf(decision)
        table = tables.get(decision.path)
        if not moves_values(decision, tables):
            # None of the field's distinct values hits: nothing to move, nothing to test.
            assert table is not None
            for detector in (*table.hit_codes, MOVED):
                known_counts[f"{decision.path}{COUNT_SEPARATOR}{detector}"] = 0
            continue
        any_name = f"{_HIT_PREFIX}{index}"
        counts.append(pl.col(any_name).sum().alias(f"{decision.path}{COUNT_SEPARATOR}{MOVED}"))
        hit_of[decision.path] = pl.col(any_name)
        if table is None:
            # Free text: one combined pass per row, on the values some detector could hit
            # (strings: the others cut to "" first); which detectors hit is counted
            # afterwards, on the few rows that hit.
            strings, many = as_strings(value, dtype)
            if not many:
                screen = string_screen(strings, f"{any_name}_suspects", vins)
                suspects.append(screen.cut)
                texts.append(screen.text)
                hit = screen.hit
            else:
                hit = any_hit(value, dtype, vins)
            any_columns.append(hit.fill_null(False).alias(any_name))
            free_text.append((any_name, decision.path, value, dtype))
            continue
        names = []
        for detector, hit in table_hits(value, dtype, table).items():
            name = f"{_HIT_PREFIX}{index}_{detector}"
            hit_columns.append(hit.fill_null(False).alias(name))
            counts.append(pl.col(name).sum().alias(f"{decision.path}{COUNT_SEPARATOR}{detector}"))
            names.append(name)
        any_columns.append(pl.any_horizontal(names).alias(any_name))
    # The token is computed once, in the frame both sides select from (a token per side cost
    # a second cast and gather per row).
    base = frame.with_columns(token_expr(plan.vehicle_id_column, lookups.tokens, _TOKEN), *suspects)
    if texts:
        base = base.with_columns(texts)
    if hit_columns or any_columns:
        base = base.with_columns(hit_columns).with_columns(any_columns)
    detections = [base.select(counts)] if counts else []
    detections += [
        base.filter(pl.col(any_name)).select(detector_counts(value, dtype, path, vins))
        for any_name, path, value, dtype in free_text
    ]

    token = pl.col(_TOKEN).alias(TOKEN_COLUMN)
    export: list[pl.Expr] = [token]
    onshore: list[pl.Expr] = [pl.col(plan.vehicle_id_column), token]
    by_column: dict[str, list[FieldDecision]] = {}
    for decision in plan.fields:
        if decision.column != plan.vehicle_id_column:
            by_column.setdefault(decision.column, []).append(decision)
    # The timestamp leads the data columns on both sides.
    ordered = sorted(by_column, key=lambda c: c != plan.timestamp_column)  # stable
    for column in ordered:
        for side, exprs in (("export", export), ("onshore", onshore)):
            values = {
                d.inner: v
                for d in by_column[column]
                if (v := _side_value(plan, d, side, hit_of.get(d.path), tables)) is not None
            }
            if values:
                exprs.append(_assemble(column, plan.schema[column], by_column[column], values))
    return SplitQueries(
        export=base.select(export),
        onshore=base.select(onshore),
        detections=pl.concat(detections, how="horizontal") if detections else None,
        known_counts=known_counts,
    )


def moves_values(decision: FieldDecision, tables: dict[str, ValueTable]) -> bool:
    """Whether detectors may move some of a field's values out of the export: a scanned field,
    unless its value table shows that none of its distinct values hits."""
    if not decision.scanned:
        return False
    table = tables.get(decision.path)
    return table is None or any(table.hit_codes.values())


def unchanged_columns(
    plan: ExportPlan, lookups: Lookups, side: Destination
) -> dict[str, tuple[tuple[str, ...], ...]]:
    """The columns `side` holds exactly as the input has them, each with the leaves it holds
    (paths below the column; ``()`` for a column that is its own leaf).

    Such a column may be copied from the input as it is encoded: no action, no detector can
    change it. A struct whose leaves go to both sides is listed on each with its own leaves.
    The vehicle token, a computed column, is never listed.
    """
    unchanged: dict[str, list[tuple[str, ...]]] = {}
    changed: set[str] = set()
    for decision in plan.fields:
        if decision.column == plan.vehicle_id_column and side == "export":
            continue
        hit = pl.lit(True) if moves_values(decision, lookups.tables) else None
        value = _side_value(plan, decision, side, hit, lookups.tables)
        if value is None:
            continue
        if value.plain:
            unchanged.setdefault(decision.column, []).append(decision.inner)
        else:
            changed.add(decision.column)
    return {c: tuple(inner) for c, inner in unchanged.items() if c not in changed}


@dataclass(frozen=True)
class _Value:
    expr: pl.Expr
    plain: bool  # the leaf as it is in the input, so a whole column can be passed through


def _side_value(
    plan: ExportPlan, decision: FieldDecision, side: Destination, hit: pl.Expr | None,
    tables: dict[str, ValueTable],
) -> _Value | None:
    """What `side` holds of one leaf, or None when the leaf is not there."""
    leaf, dtype = plan.leaf(decision)
    goes_here = decision.destination in (side, "both")
    if side == "export":
        if not goes_here:
            return None
        value = apply_action(leaf, dtype, decision.action) if decision.action else leaf
        if hit is not None:
            value = pl.when(hit).then(None).otherwise(value)
        # An enum's categories a detector hits leave its type (hit values are null by now).
        exported = export_dtype(dtype, tables.get(decision.path)) if decision.scanned else dtype
        if exported != dtype:
            value = value.cast(exported)
        return _Value(value, plain=decision.action is None and hit is None and exported == dtype)
    if goes_here or decision.action is not None:  # the exact value of a transformed export
        return _Value(leaf, plain=True)
    if hit is not None:  # the values the detectors moved out of the export
        return _Value(pl.when(hit).then(leaf).otherwise(None), plain=False)
    return None


def detector_counts(
    value: pl.Expr, dtype: pl.DataType, path: str, vins: BatchVins | None = None
) -> list[pl.Expr]:
    """Per detector (and `BATCH_VIN` with `vins`), how many rows it hits in the field at
    `path`, named as the manifests count them ("<path><US><detector>"); select them on the rows
    some detector hit."""
    return [
        h.fill_null(False).sum().cast(pl.UInt32).alias(f"{path}{COUNT_SEPARATOR}{d}")
        for d, h in detector_hits(value, dtype, vins).items()
    ]


def apply_action(value: pl.Expr, dtype: pl.DataType, action: Action) -> pl.Expr:
    """The exported form of a value under `action` (the plan checked it fits the type)."""
    if action.kind == "coarsen":
        return value.dt.truncate(action.every or "1h")
    digits = action.digits or 0
    if dtype.is_float():
        if digits >= 0:
            return value.round(digits)
        scale = 10.0 ** (-digits)
        return ((value / scale).round(0) * scale).cast(dtype)
    if digits >= 0:
        return value  # integers have no decimals to round
    scale = 10 ** (-digits)
    return ((value / scale).round(0) * scale).cast(dtype)


def _assemble(
    column: str,
    dtype: pl.DataType,
    decisions: list[FieldDecision],
    values: dict[tuple[str, ...], _Value],
) -> pl.Expr:
    """One output column from the leaf values a side holds."""
    if () in values:  # not a struct: the column is its only leaf
        return values[()].expr.alias(column)
    if len(values) == len(decisions) and all(v.plain for v in values.values()):
        return pl.col(column)
    return _struct_of(pl.col(column), dtype, (), values).alias(column)


def _struct_of(
    expr: pl.Expr, dtype: pl.DataType, prefix: tuple[str, ...],
    values: dict[tuple[str, ...], _Value],
) -> pl.Expr:
    """Rebuild struct `expr` from the leaf values below `prefix`, keeping its null rows null."""
    assert isinstance(dtype, pl.Struct)
    fields: list[pl.Expr] = []
    for fld in dtype.fields:
        path = (*prefix, fld.name)
        if path in values:
            fields.append(values[path].expr.alias(fld.name))
        elif any(p[: len(path)] == path for p in values):
            child = _struct_of(expr.struct.field(fld.name), fld.dtype, path, values)
            fields.append(child.alias(fld.name))
    return pl.when(expr.is_null()).then(None).otherwise(pl.struct(fields))
