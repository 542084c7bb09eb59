"""Check a published output against its manifest, its catalogue and its counterpart.

In: an export directory, optionally its onshore counterpart, and a catalogue (object, path, or
None for the shipped one).
Out: a `VerifyReport` whose `failures` list every problem found, each naming the directory or
file, and the column and detector where one applies; never a data value. Checks:

- **Integrity**, each directory: the manifest parses as a vtx manifest (every key one vtx
  writes, every value of its type) and has a known `schema_version`; every
  file it lists exists with the listed SHA-256 and, from the Parquet footer, the listed row
  count; no file in the directory besides its manifest (`_manifest.parquet`) is unlisted
  (an onshore ``quarantine/`` holds exactly the bad records its manifest lists, with their
  SHA-256).
- **Policy**, the export: the catalogue's SHA-256 equals the manifest's; the scenario exists and
  accepts the manifest's origin; every leaf column of every part is a key column (the
  vehicle token, the manifest's timestamp) or is classified by the catalogue into an ordinary
  class the scenario exports (`policy.plan.decide_path`); no binary column; the parts' columns
  are the manifest's.
- **Values**, the export: no string value (string and list-of-string leaves other than the
  keys) hits a value detector (`filter.apply.detectors`); with the onshore side given, no export
  string (the token included) holds a VIN of the onshore VIN column.
- **Signature**, each directory (`outputs.signing.check_signature`): a signature must be
  exactly what vtx writes; with a public key, each manifest must carry a valid signature by
  that key; with `require_signature`, each must carry one.
- **Pairing**, an onshore output alone: whether its export half stands where the manifest's
  `counterpart` says, as an output of the same run; if not, `VerifyReport.missing_half` says
  so (a *half pair*, left by a run killed between its two renames, or an export moved away
  since). Not a failure: the onshore output itself may be whole.
- **Reconciliation**, with the onshore side: both manifests name the same `run_id` and the
  same `keys.key_id` (the tokens' key), list the same file names with equal row counts, and
  every part pair holds the same `vehicle_token` column, row by row.

Parts are streamed (Polars' streaming engine, one query per part); only the distinct VINs of
the onshore side are held in memory. A part whose hash does not match its manifest is reported
and not read further (its content cannot be trusted, and may not even parse).
May fail: `CatalogueError` for a catalogue that cannot be loaded, `InputError` for an export or
onshore path that is not a directory. Everything wrong *inside* an output is a failure in the
report, not an exception.

Part formats are looked up by file suffix in `PART_FORMATS`: Parquet, and delimited protobuf
streams (`--output-format protobuf`), which are decoded into the rows the same split writes to
Parquet (the export's vehicle identifier field holds the token). For streams, each side holds
one message per input message: the part pairs must hold as many messages, and the entries of
both sides add up to the entries read; in plain streams every field the catalogue withholds
must be unset in the export.

The checks are one module each: `audit.integrity` (integrity), `audit.claims` (each manifest's
counts, and the onshore parts' columns), `audit.export_policy` and `audit.stream_policy`
(policy), `audit.export_values` (values), `audit.reconcile` (reconciliation);
`audit.output_check` holds what they share, `audit.part_formats` how each kind of part is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filter.audit.claims import check_claims, check_onshore_columns
from filter.audit.export_policy import check_policy
from filter.audit.export_values import check_values, onshore_vins
from filter.audit.integrity import check_directory
from filter.audit.output_check import Failure, OutputCheck, part_schemas
from filter.audit.reconcile import reconcile
from filter.memory_budget import MemoryBudget
from filter.outputs.manifest import MANIFEST_NAME, manifest_if_any
from filter.outputs.manifest_document import Manifest
from filter.outputs.signing import check_signature
from filter.outputs.signing_keys import load_public_key
from filter.policy.catalogue import Catalogue
from filter.policy.pin import resolve_catalogue

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@dataclass(frozen=True)
class VerifyReport:
    """What `verify_output` checked and found."""

    export_dir: Path | None  # None when an onshore output was checked alone
    onshore_dir: Path | None
    run_id: str | None
    files: int  # part files checked, both sides
    rows: int  # rows of the export (of the onshore output checked alone), as its footers give
    failures: tuple[Failure, ...]
    # An onshore output checked alone whose export half is not where its manifest says: why.
    missing_half: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures

    def summary(self) -> str:
        """One line: what was checked and the verdict."""
        sides = " and ".join(str(d) for d in (self.export_dir, self.onshore_dir) if d)
        verdict = "ok" if self.ok else f"{len(self.failures)} failure(s)"
        return (f"{sides}: {verdict}: run {self.run_id or '?'}, {self.files} file(s), "
                f"{self.rows:,} rows")


def verify_output(
    output_dir: str | Path,
    onshore_dir: str | Path | None = None,
    catalogue: Catalogue | str | Path | None = None,
    *,
    public_key: Ed25519PublicKey | str | Path | None = None,
    require_signature: bool = False,
    memory_budget: MemoryBudget | int | str | None = None,
) -> VerifyReport:
    """Check a published export and its onshore counterpart, or either side alone; see the
    module doc.

    `output_dir`: the export, or, without `onshore_dir`, either side (the side its manifest's
    `destination` names). An onshore output alone gets the integrity checks and its own
    claims; the policy and value checks are the export's, the reconciliation needs both.
    `public_key` (a key or its PEM file): each side's manifest must be signed by it.
    `require_signature`: each side must be signed (by any key, when no `public_key` is given).
    `memory_budget` (as `SplitRequest.memory_budget`; None: the environment's or the
    machine's): what reading the parts may use; a part that would need more raises
    `MemoryBudgetExceeded` before it is decoded.
    """
    budget = MemoryBudget.of(memory_budget)
    cat = resolve_catalogue(catalogue)
    if isinstance(public_key, str | Path):
        public_key = load_public_key(public_key)
    first = check_directory(output_dir, "export" if onshore_dir is not None else None, budget)
    export: OutputCheck | None = first
    onshore: OutputCheck | None = None
    if onshore_dir is not None:
        onshore = check_directory(onshore_dir, "onshore", budget)
    elif first.manifest is not None and first.manifest.destination == "onshore":
        export, onshore = None, first
    sides = [s for s in (export, onshore) if s is not None]
    for side in sides:
        if side.manifest is not None:
            side.failures += [Failure(str(side.directory), problem) for problem in
                              check_signature(side.directory, public_key,
                                              required=require_signature)]
    for side in sides:
        if side.manifest is not None:
            check_claims(side)
    found: list[Failure] = []
    if export is not None and export.manifest is not None and (
            export.manifest.destination == "export"):
        schemas = part_schemas(export)
        found += check_policy(export, schemas, cat)
        vins = onshore_vins(onshore) if onshore is not None else None
        found += check_values(export, schemas, vins)
    elif onshore is not None:  # alone: its VIN column must be there and readable
        onshore_vins(onshore)
    if onshore is not None and onshore.manifest is not None:
        check_onshore_columns(onshore)
    if export is not None and onshore is not None and export.manifest is not None and (
            onshore.manifest is not None):
        found += reconcile(export, onshore)
    failures = [f for side in sides for f in side.failures] + found
    missing_half = None
    if export is None and onshore is not None and onshore.manifest is not None:
        missing_half = _missing_export_half(onshore.manifest)
    return VerifyReport(
        export_dir=export.directory if export else None,
        onshore_dir=onshore.directory if onshore else None,
        run_id=first.manifest.run_id if first.manifest is not None else None,
        files=sum(len(side.rows) for side in sides),
        rows=sum(first.rows.values()),
        failures=tuple(failures),
        missing_half=missing_half,
    )


def _missing_export_half(onshore: Manifest) -> str | None:
    """Why the export half of this onshore manifest's run is not where it says, or None."""
    path = Path(onshore.counterpart.path)
    export = manifest_if_any(path)
    if export is None:
        if (path / MANIFEST_NAME).exists():
            return f"export half missing: {path / MANIFEST_NAME} cannot be read"
        state = "absent" if not path.exists() else "holds no published output"
        return (f"export half missing: {path} {state} (a half-published pair: re-run the "
                "same split to complete it)")
    if export.destination != "export" or export.run_id != onshore.run_id:
        return (f"export half missing: {path} holds run {export.run_id}, not "
                f"{onshore.run_id} (replaced since; this onshore output no longer has "
                "its export half)")
    return None


__all__ = [
    "VerifyReport",
    "verify_output",
]
