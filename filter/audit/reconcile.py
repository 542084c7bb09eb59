"""Reconciliation of the two sides of one run: run, key, counts, rows, entries and tokens.

In: an export's and an onshore output's `OutputCheck`, both with a usable manifest.
Out: failures: the manifests name different `run_id`s or `keys.key_id`s (the tokens' key), or
different entry, quarantine or detection counts, or inputs' rows; they list different file
names or row counts; a part pair holds different `vehicle_token` columns, row by row.
Key/value outputs: every entry read is on exactly one side, once; in streams, the part pairs
hold as many messages and the entries of both sides add up to the entries read.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from filter.apply.reconstruct import INPUT_INDEX, SIDE, WRITTEN_INDEX, entry_positions
from filter.audit.output_check import Failure, OutputCheck
from filter.audit.part_formats import PART_FORMATS, stream_rows
from filter.errors import first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.memory_budget import MemoryBudget
from filter.outputs.json_fields import JsonValue
from filter.outputs.manifest_document import Manifest
from filter.policy.plan import TOKEN_COLUMN


def reconcile(export: OutputCheck, onshore: OutputCheck) -> list[Failure]:
    """Both sides of one run: run id, file names and rows, and the token column row by row."""
    e, o = export.manifest, onshore.manifest
    assert e is not None and o is not None
    where = f"{export.directory} and {onshore.directory}"
    if e.run_id != o.run_id:
        return [Failure(where, f"different runs: export {e.run_id}, onshore {o.run_id}")]
    e_key, o_key = e.keys.key_id, o.keys.key_id
    if e_key is None or e_key != o_key:  # tokens of two keys never line up
        return [Failure(where, f"different keys: export key_id {e_key}, onshore key_id "
                        f"{o_key}; the tokens were not made with one key")]
    failures = [Failure(where, f"{claim} differ: export {_claim(e, claim)}, onshore "
                        f"{_claim(o, claim)}")
                for claim in ("entries", "quarantined_records", "detections")
                if _claim(e, claim) != _claim(o, claim)]
    e_inputs = [i.rows for i in e.inputs]
    o_inputs = [i.rows for i in o.inputs]
    if e_inputs != o_inputs:
        failures.append(Failure(where, f"inputs: rows differ: export {e_inputs}, onshore "
                                f"{o_inputs}"))
    if e.extra.key_value:
        return failures + _reconcile_entries(export, onshore)
    streams = e.extra.streams
    if e.rows != o.rows:
        failures.append(Failure(where, f"rows do not reconcile: export {e.rows}, onshore "
                                f"{o.rows}"))
    e_rows = {f.name: f.rows for f in e.files}
    o_rows = {f.name: f.rows for f in o.files}
    if list(e_rows) != list(o_rows):
        failures.append(Failure(where, "the manifests list different part files"))
    for name in e_rows.keys() & o_rows.keys():
        if e_rows[name] != o_rows[name]:
            failures.append(Failure(f"{where}: {name}", f"rows do not reconcile: export "
                                    f"{e_rows[name]}, onshore {o_rows[name]}"))
        elif name in export.intact and name in onshore.intact and not streams:
            failures += _same_tokens(export.intact[name], onshore.intact[name],
                                     export.budget)
    return failures


def _reconcile_entries(export: OutputCheck, onshore: OutputCheck) -> list[Failure]:
    """Key/value output: every entry read is on exactly one side, once."""
    e, o = export.manifest, onshore.manifest
    assert e is not None and o is not None
    where = f"{export.directory} and {onshore.directory}"
    failures: list[Failure] = []
    read = e.extra.entries["entries"] if e.extra.entries is not None else None
    if e.extra.streams:
        return _reconcile_stream_entries(export, onshore, read)
    written = e.rows + o.rows
    if read != written:
        failures.append(Failure(where, f"entries do not reconcile: read {read}, written {written}"))
    for name in export.intact.keys() & onshore.intact.keys():
        # The export numbers each message's entries 0..k-1; onshore rows keep their input
        # index and the count of exported entries before them: merged, each entry must fall
        # in its own place, once (`reconstruct.entry_positions`).
        scans = [PART_FORMATS[p.suffix].scan(p, export.budget)
                 for p in (export.intact[name], onshore.intact[name])]
        placed = entry_positions(*scans)
        misplaced = pl.col(WRITTEN_INDEX) != pl.when(pl.col(SIDE) == "onshore").then(
            pl.col(INPUT_INDEX)).otherwise(pl.int_range(pl.len()).over("message_index", SIDE))
        try:
            wrong = placed.select(misplaced.sum()).collect().item()
        except READ_ERRORS as exc:
            failures.append(Failure(f"{where}: {name}", f"entries cannot be read: "
                                    f"{first_line(exc)}"))
            continue
        if wrong:
            failures.append(Failure(f"{where}: {name}", f"{wrong} entr(ies) are out of place "
                                    "(on both sides, or numbered apart from the input)"))
    return failures


def _reconcile_stream_entries(
    export: OutputCheck, onshore: OutputCheck, read: int | None
) -> list[Failure]:
    """Key/value streams: part pairs hold as many messages; the entries add up."""
    e, o = export.manifest, onshore.manifest
    assert e is not None and o is not None
    where = f"{export.directory} and {onshore.directory}"
    failures: list[Failure] = []
    e_rows = {f.name: f.rows for f in e.files}
    o_rows = {f.name: f.rows for f in o.files}
    if e_rows != o_rows:
        failures.append(Failure(where, "the part files do not hold the same messages"))
    written = 0
    for side in (export, onshore):
        for path in side.intact.values():
            try:
                written += stream_rows(path, side.budget).height
            except READ_ERRORS as exc:
                failures.append(Failure(f"{path}", f"entries cannot be read: {first_line(exc)}"))
                return failures
    complete = len(export.intact) == len(e.files) and len(onshore.intact) == len(o.files)
    if complete and read != written:
        failures.append(Failure(where, f"entries do not reconcile: read {read}, written {written}"))
    return failures


def _claim(manifest: Manifest, claim: str) -> JsonValue:
    """A count both sides state, as the manifest writes it (for messages: what each side says)."""
    return manifest.to_json().get(claim)


def _same_tokens(
    export_part: Path, onshore_part: Path, budget: MemoryBudget | None
) -> list[Failure]:
    """The two parts' `vehicle_token` columns, streamed side by side, must be equal."""
    scans = [PART_FORMATS[p.suffix].scan(p, budget).select(pl.col(TOKEN_COLUMN).alias(side))
             for p, side in ((export_part, "e"), (onshore_part, "o"))]
    try:
        differ = (pl.concat(scans, how="horizontal")
                  .select(pl.col("e").ne_missing(pl.col("o")).sum())
                  .collect(engine="streaming").item())
    except READ_ERRORS as exc:  # a missing token column, or a part polars cannot read
        return [Failure(f"{export_part}", f"{TOKEN_COLUMN} cannot be compared with "
                        f"{onshore_part}: {first_line(exc)}")]
    if differ:
        return [Failure(f"{export_part}", f"{differ} row(s) carry a different {TOKEN_COLUMN} "
                        f"than {onshore_part}")]
    return []


__all__ = [
    "reconcile",
]
