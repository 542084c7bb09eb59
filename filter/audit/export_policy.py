"""Policy of an export: every column it holds is one its catalogue and scenario export.

In: an export's `OutputCheck`, its parts' schemas, and the catalogue it was split with.
Out: failures: the catalogue's SHA-256 is not the manifest's; the scenario is not in the
catalogue or refuses the manifest's origin; a leaf column that is neither a key column (the
vehicle token, the manifest's timestamp) nor classified by the catalogue into an ordinary class
the scenario exports (`policy.plan.decide_path`); a binary column; the raw vehicle identifier;
the parts' columns are not the manifest's. Key/value outputs: every exported entry's key (and
message member) is exported. Plain protobuf streams: `audit.stream_policy`.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from filter.audit.output_check import Failure, OutputCheck, leaves
from filter.audit.part_formats import PART_FORMATS
from filter.audit.stream_policy import check_plain_stream
from filter.errors import first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.formats.protobuf.message_rows import UNKNOWN_FIELDS
from filter.outputs.manifest import MANIFEST_NAME
from filter.policy.catalogue import Catalogue
from filter.policy.plan import TOKEN_COLUMN, decide_path


def check_policy(
    export: OutputCheck, schemas: Mapping[str, pl.Schema], cat: Catalogue
) -> list[Failure]:
    """Every export column allowed by the manifest's catalogue and scenario."""
    manifest = export.manifest
    assert manifest is not None
    where = str(export.directory / MANIFEST_NAME)
    failures: list[Failure] = []
    recorded = manifest.catalogue.sha256
    if recorded != cat.sha256:
        return [Failure(where, f"catalogue sha256 is {recorded}, but {cat.source} is "
                        f"{cat.sha256}: give the catalogue the output was split with "
                        "(--catalogue); columns not checked")]
    scenario = manifest.scenario
    if scenario not in cat.scenarios:
        return [Failure(where, f"scenario {scenario!r} is not in catalogue {cat.id!r}")]
    if cat.scenario(scenario).refuses(manifest.origin):
        failures.append(Failure(where, f"scenario {scenario!r} refuses origin "
                                f"{manifest.origin!r}"))
    timestamp, vin = manifest.keys.timestamp, manifest.keys.vehicle_id
    if (namespace := manifest.extra.kv_namespace) is not None:
        return failures + _check_entries(export, schemas, cat, scenario, namespace, vin)
    if manifest.extra.streams:
        return failures + check_plain_stream(export, schemas, cat, scenario, timestamp)
    listed = {c.name for c in manifest.columns}
    checked: dict[str, list[Failure]] = {}  # by the schema's text: parts share one schema
    for name, schema in schemas.items():
        part = export.directory / name
        known = repr(schema)
        if known not in checked:
            checked[known] = _check_columns(schema, cat, scenario, timestamp, vin, listed)
        failures += [Failure(f"{part}: column {f.where}", f.message) for f in checked[known]]
    return failures


def _check_columns(
    schema: pl.Schema, cat: Catalogue, scenario: str, timestamp: str, vin: str, listed: set[str]
) -> list[Failure]:
    """Problems of one export schema, as (column path, message) failures."""
    failures: list[Failure] = []
    paths: set[str] = set()
    for column, dtype in schema.items():
        if column == vin:
            failures.append(Failure(repr(column), "the raw vehicle identifier is in the export"))
            continue
        if column in (TOKEN_COLUMN, timestamp):
            paths.add(column)
            continue
        for path, _expr, leaf in leaves(column, dtype):
            paths.add(path)
            if leaf == pl.Binary:
                failures.append(Failure(repr(path), "binary data is never exported"))
                continue
            decision = decide_path(cat, scenario, path)
            if decision.destination != "export":
                failures.append(Failure(repr(path), f"not allowed: {decision.reason}"))
    for missing in (TOKEN_COLUMN, timestamp):
        if missing not in schema:
            failures.append(Failure(repr(missing), "key column missing"))
    for path in sorted(paths - listed):
        failures.append(Failure(repr(path), "in the part but not in the manifest's columns"))
    for path in sorted(listed - paths):
        failures.append(Failure(repr(path), "in the manifest's columns but not in the part"))
    return failures


def _check_entries(
    export: OutputCheck,
    schemas: Mapping[str, pl.Schema],
    cat: Catalogue,
    scenario: str,
    namespace: str,
    vin: str,
) -> list[Failure]:
    """Key/value output: every exported entry's key (and message member) is exported."""
    failures: list[Failure] = []
    for name, schema in schemas.items():
        part = export.directory / name
        for forbidden in (vin, UNKNOWN_FIELDS):
            if forbidden in schema:
                failures.append(Failure(f"{part}: column {forbidden!r}", "never exported"))
        members = [c for c, t in schema.items() if c.startswith("value_") and
                   isinstance(t, pl.Struct)]
        query = PART_FORMATS[part.suffix].scan(part, export.budget).select(
            "key", *(pl.col(m).is_not_null().alias(m) for m in members)
        ).unique()
        try:
            seen = query.collect(engine="streaming")
        except READ_ERRORS as exc:
            failures.append(Failure(f"{part}", f"entries cannot be read: {first_line(exc)}"))
            continue
        for row in seen.iter_rows(named=True):
            paths = [f"{namespace}.{row['key']}"] + [
                f"{namespace}.{row['key']}.{m.removeprefix('value_')}" for m in members if row[m]
            ]
            for path in paths:
                decision = decide_path(cat, scenario, path)
                if decision.destination != "export":
                    failures.append(Failure(f"{part}: entries of {path!r}",
                                            f"not allowed: {decision.reason}"))
    return failures


__all__ = [
    "check_policy",
]
