"""Policy of a plain protobuf export: every field its scenario does not export is unset.

In: an export's `OutputCheck` whose parts are plain protobuf streams, their decoded schemas,
the catalogue and the manifest's scenario.
Out: a failure for each field set in some message (holding anything but its default; an enum
not sent reads as its default value's name) though the catalogue withholds it.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl
from google.protobuf.descriptor import Descriptor

from filter.audit.output_check import Failure, OutputCheck, leaves
from filter.audit.part_formats import PART_FORMATS, stream_reader
from filter.errors import first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.formats.protobuf.message_rows import MAX_DEPTH, UNKNOWN_FIELDS
from filter.policy.catalogue import Catalogue
from filter.policy.plan import TOKEN_COLUMN, decide_path


def check_plain_stream(
    export: OutputCheck, schemas: Mapping[str, pl.Schema], cat: Catalogue, scenario: str,
    timestamp: str,
) -> list[Failure]:
    """Plain protobuf export: every leaf the scenario does not export is unset everywhere."""
    failures: list[Failure] = []
    defaults = _enum_defaults(stream_reader(export.directory.absolute())[0].descriptor)
    for name, schema in schemas.items():
        part = export.directory / name
        sent: list[pl.Expr] = []
        for column, dtype in schema.items():
            if column in (TOKEN_COLUMN, timestamp):
                continue
            for path, expr, leaf in leaves(column, dtype):
                if column == UNKNOWN_FIELDS or decide_path(cat, scenario, path).destination \
                        != "export":
                    held = _is_set(expr, leaf)
                    if path in defaults:  # an enum not sent reads as its default's name
                        held = held & (expr != defaults[path])
                    sent.append(held.sum().alias(path))
        if not sent:
            continue
        try:
            row = PART_FORMATS[part.suffix].scan(
                part, export.budget).select(sent).collect().row(0, named=True)
        except READ_ERRORS as exc:
            failures.append(Failure(f"{part}", f"messages cannot be read: {first_line(exc)}"))
            continue
        failures += [Failure(f"{part}: field {path!r}", f"set in {count} message(s) but not "
                             "allowed in the export") for path, count in row.items() if count]
    return failures


def _enum_defaults(descriptor: Descriptor, prefix: str = "", depth: int = 0) -> dict[str, str]:
    """The name of the default value of every single enum leaf of a message type, by the
    dotted path of JSON names its decoded column has (messages walked, lists not)."""
    found: dict[str, str] = {}
    for member in descriptor.fields:
        path = f"{prefix}{member.json_name}"
        if member.is_repeated:
            continue
        if member.enum_type is not None:
            value = member.enum_type.values_by_number.get(member.default_value)
            if value is not None:
                found[path] = value.name
        elif member.message_type is not None and depth < MAX_DEPTH:
            found.update(_enum_defaults(member.message_type, f"{path}.", depth + 1))
    return found


def _is_set(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """True where a decoded protobuf leaf holds something other than its default."""
    if isinstance(dtype, pl.List):
        return expr.list.len().fill_null(0) > 0
    if dtype in (pl.String, pl.Binary):
        return expr.is_not_null() & (expr.cast(pl.Binary).bin.size() > 0)
    if dtype == pl.Boolean:
        return expr.fill_null(False)
    if dtype.is_numeric():
        return expr.fill_null(0) != 0
    return expr.is_not_null()


__all__ = [
    "check_plain_stream",
]
