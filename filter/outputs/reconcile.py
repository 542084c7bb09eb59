"""The count that must hold before anything publishes: every input row (or entry) is in the
outputs exactly once.

In: what the inputs held (rows, messages or entries) and the part files written for them.
Out: nothing; an `OutputError` that says which count failed, and that nothing was published.

One check for every engine and format: each pair of part files (the same name on both sides)
holds the same rows, one per input row, and together the pairs hold the inputs' rows. Key/value
envelopes written as rows are counted by entry instead: each entry is in exactly one side.
"""

from __future__ import annotations

from collections.abc import Sequence

from filter.errors import OutputError
from filter.outputs.manifest import FileRecord


def reconcile_pairs(
    expected: int, export_files: Sequence[FileRecord], onshore_files: Sequence[FileRecord],
    *, unit: str = "rows",
) -> None:
    """Each (export, onshore) pair of part files holds the same rows, and all of them
    `expected` (the inputs' rows, or messages: `unit`)."""
    for export, onshore in zip(export_files, onshore_files, strict=True):
        if export.rows != onshore.rows:
            raise OutputError(f"{export.path.name}: rows do not reconcile: export "
                              f"{export.rows}, onshore {onshore.rows}; nothing was published")
    written = sum(f.rows for f in export_files)
    if written != expected:
        raise OutputError(f"{unit} do not reconcile: inputs {expected}, outputs {written}; "
                          "nothing was published")


def reconcile_entries(
    read: int, exported: int, export_files: Sequence[FileRecord],
    onshore_files: Sequence[FileRecord],
) -> None:
    """Key/value rows: the entries `read` are the rows of both sides together, and the
    export holds the `exported` ones."""
    written = sum(f.rows for f in export_files) + sum(f.rows for f in onshore_files)
    if written != read or sum(f.rows for f in export_files) != exported:
        raise OutputError(f"entries do not reconcile: read {read}, written {written}; "
                          "nothing was published")
