"""Compile (input schema, catalogue, scenario) into an `ExportPlan`: one decision per field.

In: a Polars schema (or a pyarrow schema, or a mapping of names to Polars types), a validated
`Catalogue`, a scenario name, and what to do with unclassified fields.
Out: an `ExportPlan`, pure data: for every leaf field (struct leaves by dotted path; lists, maps
and arrays as a whole) its class, destination, rule, basis and reason, plus the key columns.
May fail: `InputError` (no vehicle identifier or timestamp column, a reserved or ambiguous name),
`ScenarioError`, `UnclassifiedFieldsError` under ``on_unknown="fail"``.

The plan is computed once per run; the engine applies it to every batch without re-matching.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from filter.errors import InputError, ScenarioError, UnclassifiedFieldsError
from filter.policy.catalogue import UNCLASSIFIED, Action, Catalogue, action_for
from filter.string_dtypes import is_scannable

Destination = Literal["export", "onshore", "both"]
OnUnknown = Literal["withhold", "fail"]

#: Column the export carries instead of the raw vehicle identifier.
TOKEN_COLUMN = "vehicle_token"
#: Pseudo-class of the record-key columns (vehicle identifier, timestamp, token).
KEY_CLASS = "key"


@dataclass(frozen=True)
class FieldDecision:
    """Where one input field goes, and why."""

    path: str  # dotted path: column name, then struct field names
    column: str  # the top-level column holding it
    inner: tuple[str, ...]  # struct field names below the column (empty for a whole column)
    dtype: str
    data_class: str
    destination: Destination
    rule: str | None
    basis: str
    reason: str
    action: Action | None = None  # applied to the exported value; onshore keeps the original
    scanned: bool = False  # value detectors run on it (an exported string field)

    def as_dict(self) -> dict[str, Any]:
        """The decision as plain JSON-able data (what `vtx explain --format json` prints)."""
        return {
            "field": self.path,
            "class": self.data_class,
            "destination": self.destination,
            "rule": self.rule,
            "basis": self.basis,
            "reason": self.reason,
            "dtype": self.dtype,
            "action": self.action.describe() if self.action else None,
            "detectors": self.scanned,
        }


@dataclass(frozen=True)
class ExportPlan:
    """Every field's decision for one input schema, catalogue and scenario."""

    catalogue_id: str
    catalogue_version: str
    catalogue_sha256: str
    scenario: str
    origin: str | None
    vehicle_id_column: str
    timestamp_column: str
    fields: tuple[FieldDecision, ...]
    schema: pl.Schema

    def decisions_for(self, destination: Destination) -> list[FieldDecision]:
        """The decisions whose field goes to `destination` (key columns go to both)."""
        return [f for f in self.fields if f.destination in (destination, "both")]

    def leaf(self, decision: FieldDecision) -> tuple[pl.Expr, pl.DataType]:
        """The expression and type of one (possibly nested) leaf field."""
        expr, dtype = pl.col(decision.column), self.schema[decision.column]
        for name in decision.inner:
            assert isinstance(dtype, pl.Struct)
            dtype = next(f.dtype for f in dtype.fields if f.name == name)
            expr = expr.struct.field(name)
        return expr, dtype

    def class_counts(self, destination: Destination) -> dict[str, int]:
        """How many leaf fields of each class go to `destination`."""
        return dict(Counter(f.data_class for f in self.decisions_for(destination)))

    @property
    def unclassified(self) -> list[str]:
        """Paths of fields no rule classifies."""
        return [f.path for f in self.fields if f.data_class == UNCLASSIFIED]


def plan(
    schema: pl.Schema | pa.Schema | Mapping[str, Any],
    catalogue: Catalogue,
    scenario: str,
    *,
    on_unknown: OnUnknown = "withhold",
    origin: str | None = None,
) -> ExportPlan:
    """Decide every field of `schema` for `scenario` under `catalogue`.

    Unclassified fields are withheld (reason recorded), or with ``on_unknown="fail"`` raise
    `UnclassifiedFieldsError` listing them all. `origin` ("test-fleet", "customer") is checked
    against the scenario's gate: a scenario that accepts only some origins refuses the others,
    and refuses a batch whose origin is not stated.
    """
    if on_unknown not in ("withhold", "fail"):
        raise ValueError(f"on_unknown must be 'withhold' or 'fail', not {on_unknown!r}")
    pl_schema = as_polars_schema(schema)
    chosen = catalogue.scenario(scenario)
    if chosen.refuses(origin):
        allowed = ", ".join(sorted(chosen.origins or ()))
        stated = f"this batch is {origin!r}" if origin else "give the batch's origin with --origin"
        raise ScenarioError(
            f"scenario {scenario!r} takes only data from {allowed}; {stated}",
            hint=f"catalogue {catalogue.id!r}, scenarios.{scenario}.origins",
        )
    columns = list(pl_schema.names())
    if TOKEN_COLUMN in {c.casefold() for c in columns}:
        raise InputError(
            f"input already has a column named {TOKEN_COLUMN!r}, which vtx writes itself",
            hint="rename it before splitting",
        )
    vin_col = _key_column(catalogue, "vehicle_id", columns)
    ts_col = _key_column(catalogue, "timestamp", columns)

    decisions: list[FieldDecision] = []
    seen_paths: dict[str, str] = {}
    for column, dtype in pl_schema.items():
        if column in (vin_col, ts_col):
            role = "vehicle_id" if column == vin_col else "timestamp"
            decisions.append(_key_decision(catalogue, role, column, dtype, scenario))
            continue
        for inner, leaf_dtype in _leaves(dtype):
            path = ".".join((column, *inner))
            folded = path.casefold()
            if folded in seen_paths:
                raise InputError(
                    f"fields {seen_paths[folded]!r} and {path!r} have the same dotted path; "
                    "vtx cannot classify them apart"
                )
            seen_paths[folded] = path
            decisions.append(
                _decide(catalogue, chosen.classes, scenario, path, column, inner, leaf_dtype)
            )

    result = ExportPlan(
        catalogue_id=catalogue.id,
        catalogue_version=catalogue.version,
        catalogue_sha256=catalogue.sha256,
        scenario=scenario,
        origin=origin,
        vehicle_id_column=vin_col,
        timestamp_column=ts_col,
        fields=tuple(decisions),
        schema=pl_schema,
    )
    if on_unknown == "fail" and result.unclassified:
        raise UnclassifiedFieldsError(result.unclassified, catalogue.id)
    return result


def as_polars_schema(schema: pl.Schema | pa.Schema | Mapping[str, Any]) -> pl.Schema:
    """Normalise a Polars, pyarrow or mapping schema to a Polars schema."""
    if isinstance(schema, pl.Schema):
        return schema
    if isinstance(schema, pa.Schema):
        return pl.from_arrow(schema.empty_table()).schema  # type: ignore[union-attr]
    return pl.Schema(schema)


def _leaves(dtype: pl.DataType) -> Iterator[tuple[tuple[str, ...], pl.DataType]]:
    """Struct leaves by path; any other type (lists, maps, arrays included) is one leaf."""
    if isinstance(dtype, pl.Struct) and dtype.fields:
        for fld in dtype.fields:
            for inner, leaf in _leaves(fld.dtype):
                yield (fld.name, *inner), leaf
    else:
        yield (), dtype


def _key_column(catalogue: Catalogue, role: str, columns: list[str]) -> str:
    key = catalogue.keys[role]
    found = key.find(columns)
    if found is None:
        what = "vehicle identifier" if role == "vehicle_id" else "timestamp"
        raise InputError(
            f"no {what} column: looked for {', '.join(key.aliases)} "
            f"(catalogue {catalogue.id!r}, keys.{role}.aliases)",
            hint="add the column's name to the catalogue's aliases",
        )
    return found


def _key_decision(
    catalogue: Catalogue, role: str, column: str, dtype: pl.DataType, scenario: str
) -> FieldDecision:
    action = None
    if role == "vehicle_id":
        destination: Destination = "onshore"
        reason = f"vehicle identifier: stays onshore; the export carries {TOKEN_COLUMN} instead"
    else:
        destination = "both"
        reason = "record timestamp: kept in both outputs so they line up"
        action = action_for(catalogue.keys[role].actions, scenario)
        if action is not None:
            if not _applies(action, dtype):
                raise InputError(
                    f"timestamp column {column!r} is {dtype}: the catalogue's "
                    f"{action.describe()} under {scenario!r} needs a date or datetime"
                )
            reason += f"; the export's is coarsened ({action.describe()}), onshore keeps it exact"
    return FieldDecision(
        path=column,
        column=column,
        inner=(),
        dtype=str(dtype),
        data_class=KEY_CLASS,
        destination=destination,
        rule=f"keys.{role}",
        basis=catalogue.keys[role].basis,
        reason=reason,
        action=action,
    )


def decide_path(catalogue: Catalogue, scenario: str, path: str) -> FieldDecision:
    """The decision for a dotted `path` of unknown type (as `vtx catalogue diff` compares them).

    Type-dependent outcomes (binary data, an action that does not fit) are not considered.
    """
    chosen = catalogue.scenario(scenario)
    return _decide(catalogue, chosen.classes, scenario, path, path, (), None)


def _decide(
    catalogue: Catalogue,
    allowed: frozenset[str],
    scenario: str,
    path: str,
    column: str,
    inner: tuple[str, ...],
    dtype: pl.DataType | None,
) -> FieldDecision:
    match = catalogue.classify(path)
    if match is None:
        return FieldDecision(
            path, column, inner, str(dtype or "-"), UNCLASSIFIED, "onshore", None, "",
            "unclassified: no catalogue rule matches this field, so it is withheld",
        )
    rule = match.rule
    cls = rule.data_class
    action = None
    if catalogue.kind_of(cls) == "withheld":
        destination: Destination = "onshore"
        reason = f"withheld class {cls!r} (pattern {match.pattern.text!r})"
    elif cls not in allowed:
        destination = "onshore"
        reason = f"not in scenario: ordinary class {cls!r} is not exported under {scenario!r}"
    elif dtype is not None and _holds(dtype, (pl.Binary, pl.Object)):
        destination = "onshore"
        reason = f"binary data is never exported (media and blobs), whatever its class {cls!r}"
    else:
        destination = "export"
        reason = f"ordinary class {cls!r} allowed in scenario {scenario!r}"
        action = action_for(rule.actions, scenario)
        if action is not None and dtype is not None and not _applies(action, dtype):
            destination, action = "onshore", None
            reason = (f"the catalogue's action for rule {rule.id!r} cannot apply to {dtype}, "
                      "so the field is withheld")
        elif action is not None:
            reason += f"; exported value {action.describe()}, onshore keeps it exact"
    return FieldDecision(
        path, column, inner, str(dtype or "-"), cls, destination, rule.id, rule.basis, reason,
        action=action,
        scanned=destination == "export" and dtype is not None and is_scannable(dtype),
    )


def _holds(dtype: pl.DataType, kinds: tuple[type[pl.DataType], ...]) -> bool:
    """Whether `dtype` is, or holds at any depth (list, array, struct), a type of `kinds`."""
    if dtype.base_type() in kinds:
        return True
    if isinstance(dtype, pl.List | pl.Array):
        return _holds(dtype.inner, kinds)
    if isinstance(dtype, pl.Struct):
        return any(_holds(f.dtype, kinds) for f in dtype.fields)
    return False


def _applies(action: Action, dtype: pl.DataType) -> bool:
    if action.kind == "coarsen":
        return dtype.is_temporal() and dtype != pl.Time and not isinstance(dtype, pl.Duration)
    return dtype.is_numeric()
