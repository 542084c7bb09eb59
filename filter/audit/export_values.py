"""Values of an export: no string hits a value detector or holds a raw VIN of its onshore side.

In: an export's `OutputCheck` and its parts' schemas; the distinct raw VINs of the onshore
side's intact parts (`onshore_vins`), when that side is given.
Out: failures per part and column: string values (string and list-of-string leaves other than
the keys) that hit a value detector (`filter.apply.detectors`); export strings (the token
included) that are or hold a VIN of the onshore VIN column.
Parts are streamed; only the distinct VINs of the onshore side are held in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from filter.apply.detectors import as_strings, detector_hits
from filter.audit.output_check import Failure, OutputCheck, leaves
from filter.audit.part_formats import PART_FORMATS
from filter.errors import first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.policy.plan import TOKEN_COLUMN
from filter.string_dtypes import is_scannable

#: VINs at least this long are also looked for inside export strings, not only as whole values.
_MIN_EMBEDDED_VIN = 10
_SEP = "\x1f"


def onshore_vins(onshore: OutputCheck) -> list[str] | None:
    """The distinct raw VINs of the onshore side's intact parts (None when none can be read)."""
    if onshore.manifest is None or onshore.manifest.destination != "onshore":
        return None
    vin = onshore.manifest.keys.vehicle_id
    values: set[str] = set()
    for name, path in onshore.intact.items():
        try:
            found = (PART_FORMATS[path.suffix].scan(path, onshore.budget)
                     .select(pl.col(vin).cast(pl.String).drop_nulls().unique())
                     .filter(pl.col(vin).str.strip_chars() != "")  # a blank VIN names no one
                     .collect(engine="streaming"))
        except READ_ERRORS as exc:  # a missing VIN column, or a part polars cannot read
            onshore.fail(onshore.directory / name,
                         f"VIN column {vin!r} cannot be read: {first_line(exc)}")
            continue
        values.update(found.to_series())
    return sorted(values)


def check_values(
    export: OutputCheck, schemas: Mapping[str, pl.Schema], vins: Sequence[str] | None
) -> list[Failure]:
    """Detector hits and onshore VINs in the export's string values, per part and column."""
    manifest = export.manifest
    assert manifest is not None
    keys = {TOKEN_COLUMN, manifest.keys.timestamp}
    failures: list[Failure] = []
    for name, schema in schemas.items():
        path = export.intact[name]
        counts: list[pl.Expr] = []
        for column, dtype in schema.items():
            for leaf_path, expr, leaf in leaves(column, dtype):
                if not is_scannable(leaf):
                    continue
                if column not in keys:
                    counts += [hit.sum().alias(f"{leaf_path}{_SEP}detector {detector!r}")
                               for detector, hit in detector_hits(expr, leaf).items()]
                if vins:
                    counts.append(_vin_hits(expr, leaf, vins).sum()
                                  .alias(f"{leaf_path}{_SEP}a raw VIN of the onshore output"))
        if not counts:
            continue
        try:
            row = (PART_FORMATS[path.suffix].scan(path, export.budget).select(counts)
                   .collect(engine="streaming").row(0, named=True))
        except READ_ERRORS as exc:  # polars errors on content that hashes right but will not read
            failures.append(Failure(str(path), f"values cannot be read: {first_line(exc)}"))
            continue
        for label, count in row.items():
            if count:
                column, what = label.split(_SEP)
                failures.append(Failure(f"{path}: column {column!r}",
                                        f"{count} value(s) hit {what}"))
    return failures


def _vin_hits(expr: pl.Expr, dtype: pl.DataType, vins: Sequence[str]) -> pl.Expr:
    """True where a string (or any element of a list of strings) is or holds an onshore VIN."""
    long = [v for v in vins if len(v) >= _MIN_EMBEDDED_VIN]

    def hit(value: pl.Expr) -> pl.Expr:
        found = value.is_in(list(vins))
        return found | value.str.contains_any(long) if long else found

    strings, many = as_strings(expr, dtype)  # categoricals, enums, nested lists too
    if not many:
        return hit(strings)
    return strings.list.eval(hit(pl.element())).list.any()


__all__ = [
    "check_values",
    "onshore_vins",
]
