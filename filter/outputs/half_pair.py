"""A half-published pair: an onshore output whose export half is missing.

A split publishes its pair as two renames, onshore first (`filter.outputs.publish`). A run killed
between them leaves a *half pair*: the onshore target holds a complete onshore output whose
manifest names the export target as its counterpart, and the export target is absent or empty.
A re-run of the same split, without ``--overwrite``, completes it: it writes a whole new pair
and may replace that onshore half, because what it replaces is the same inputs split the same
way. Anything else in a target still needs ``--overwrite``.

In: the two targets, the run's plan and inputs.
Out: `find_half_pair` → a `HalfPair` or None; `HalfPair.refusal(...)` → why this run may not
replace it (an `OutputError` saying what to do), or None; `HalfPair.still_there` for the
publisher's last check, so a half pair that changed while the run was writing is left alone.
May fail: nothing here raises; an onshore target whose manifest cannot be read is not a half
pair (the ordinary "target is not empty" refusal applies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filter.errors import OutputError
from filter.outputs.manifest import FileRecord, manifest_if_any
from filter.outputs.manifest_document import Manifest
from filter.policy.plan import ExportPlan


@dataclass(frozen=True)
class HalfPair:
    """An onshore output (run `run_id`) whose export half, at `export`, was never published."""

    onshore: Path
    export: Path
    run_id: str
    manifest: Manifest

    def refusal(
        self, plan: ExportPlan, input_paths: Sequence[Path],
        inputs: Sequence[FileRecord] | None = None,
    ) -> OutputError | None:
        """Why this run may not replace the half pair, or None when it is the same split.

        Before the run: the same input paths, catalogue (by SHA-256), scenario and origin.
        With `inputs` (just before publishing): also each input's bytes, rows and SHA-256.
        """
        m = self.manifest
        if [i.path for i in m.inputs] != [str(p) for p in input_paths]:
            differs = "its inputs differ from this run's"
        elif m.catalogue.sha256 != plan.catalogue_sha256:
            differs = "it was split with another catalogue"
        elif m.scenario != plan.scenario or m.origin != plan.origin:
            differs = "it was split for another scenario or origin"
        elif inputs is not None and [
            (i.bytes, i.rows, i.sha256) for i in m.inputs
        ] != [(i.bytes, i.rows, i.sha256) for i in inputs]:
            differs = "its inputs have changed since"
        else:
            return None
        return OutputError(
            f"{self.onshore}: holds the onshore half of run {self.run_id}, whose export half "
            f"({self.export}) was never published, and {differs}",
            hint="re-run that split to complete the pair, or use --overwrite to replace it",
        )

    def still_there(self, _target: Path) -> bool:
        """Whether the onshore target still holds this half pair (the publisher's last check,
        just before it replaces the target)."""
        return find_half_pair(self.export, self.onshore) == self


def find_half_pair(export_target: Path, onshore_target: Path) -> HalfPair | None:
    """The half pair these targets hold, or None.

    One when `onshore_target` is a directory (not a link) with a readable onshore manifest
    whose counterpart is `export_target`, and `export_target` is absent or an empty directory.
    """
    if not _empty_or_absent(export_target):
        return None
    manifest = manifest_if_any(onshore_target)
    if manifest is None or manifest.destination != "onshore" or (
            manifest.counterpart.path != str(export_target)):
        return None
    return HalfPair(onshore_target, export_target, manifest.run_id, manifest)


def _empty_or_absent(path: Path) -> bool:
    if path.is_symlink():
        return False
    if not path.exists():
        return True
    return path.is_dir() and not any(path.iterdir())
