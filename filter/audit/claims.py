"""What a manifest claims about its counts, checked against each other and against its parts.

In: an `OutputCheck` whose manifest is usable.
Out: failures added to it. `check_claims`: the inputs' rows add up to the manifest's rows
(key/value entries in Parquet parts: the entries' counts give each side's rows), its
`class_counts` count its columns, its quarantine count is its quarantined records'.
`check_onshore_columns`: a plain Parquet onshore output's leaf columns are the manifest's
columns, and each scanned field holds as many values as its `detections` say were moved.
"""

from __future__ import annotations

from collections import Counter

from filter.audit.output_check import OutputCheck, leaves, part_schemas
from filter.audit.part_formats import PART_FORMATS
from filter.errors import first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.outputs.manifest import MANIFEST_NAME


def check_claims(side: OutputCheck) -> None:
    """What a manifest states about its counts, against each other and its own files: the
    inputs' rows add up to its rows (key/value entries in Parquet parts: the entries' counts
    give each side's rows), its `class_counts` count its columns, its quarantine count is its
    quarantined records'. (That each count is one is the parser's: `Manifest.from_json`.)"""
    manifest = side.manifest
    assert manifest is not None
    where = side.directory / MANIFEST_NAME
    counted = dict(Counter(c.data_class for c in manifest.columns))
    if dict(manifest.class_counts) != counted:
        side.fail(where, f"class_counts {dict(manifest.class_counts)} are not the classes of "
                  f"its columns {counted}")
    entries = manifest.extra.entries
    if entries is not None:
        for name, count in entries.items():
            if count > entries["entries"]:
                side.fail(where, f"entries: {name} {count} is more than the entries read "
                          f"({entries['entries']})")
    rows = manifest.rows
    if manifest.extra.key_value and not manifest.extra.streams:
        # A row per entry: the side's share of the entries read.
        if entries is not None:
            export = manifest.destination == "export"
            share = entries["exported"] if export else entries["entries"] - entries["exported"]
            if rows != share:
                side.fail(where, f"rows {rows} are not the entries "
                          f"{'exported' if export else 'kept onshore'} ({share}) its entries give")
        else:
            side.fail(where, "entries: missing (a key/value output counts its entries)")
    elif (read := sum(i.rows for i in manifest.inputs)) != rows:
        side.fail(where, f"inputs: their rows add up to {read}, not the manifest's rows {rows}")
    count = manifest.extra.quarantined_records
    listed = manifest.extra.quarantined
    if listed is not None and count != len(listed):
        side.fail(where, f"quarantined_records {count} is not the {len(listed)} quarantined "
                  "record(s) listed")


def check_onshore_columns(onshore: OutputCheck) -> None:
    """Plain Parquet onshore parts: their leaf columns are the manifest's columns (and the
    scanned fields a detector moved values of), and each scanned field holds as many values as
    the manifest's `detections` say were moved."""
    manifest = onshore.manifest
    assert manifest is not None
    if manifest.destination != "onshore" or manifest.extra.streams or manifest.extra.key_value:
        return  # entries and whole messages: their columns are the layout's, not the fields'
    moved = {d.field: d.moved_values for d in manifest.detections}
    listed = {c.name for c in manifest.columns}
    held: dict[str, int] = dict.fromkeys(moved, 0)
    for name, schema in part_schemas(onshore).items():
        part = onshore.intact[name]
        paths = {path: expr for column, dtype in schema.items()
                 for path, expr, _leaf in leaves(column, dtype)}
        for path in sorted(paths.keys() - listed - moved.keys()):
            onshore.fail(f"{part}: column {path!r}", "in the part but not in the manifest's "
                         "columns")
        for path in sorted(listed - paths.keys()):
            onshore.fail(f"{part}: column {path!r}", "in the manifest's columns but not in the "
                         "part")
        present = [paths[p].count().alias(p) for p in moved if p in paths]
        if present:
            try:
                counts = (PART_FORMATS[part.suffix].scan(part, onshore.budget).select(present)
                          .collect(engine="streaming").row(0, named=True))
            except READ_ERRORS as exc:
                onshore.fail(part, f"values cannot be read: {first_line(exc)}")
                return
            for path, count in counts.items():
                held[path] += count
    if len(onshore.intact) != len(manifest.files):
        return  # a part not read: the counts cannot add up
    for path, count in held.items():
        if count != moved[path]:
            onshore.fail(onshore.directory / MANIFEST_NAME, f"detections: field {path!r} "
                         f"moved_values {moved[path]}, but the parts hold {count} value(s) of it")


__all__ = [
    "check_claims",
    "check_onshore_columns",
]
