"""A pair of outputs, export and onshore, from targets to published: the targets checked, both
staged, manifests written (and signed) in staging, then published, onshore first.

In: the two target directories, the run's plan, inputs and part files, and its detector counts.
Out: both targets published with their manifests; the manifests, by destination.
May fail: `OutputError` (targets that overlap or hold an input, a non-empty target, a half
pair of another split, a disk that refuses a write). On any failure, and on interruption,
nothing is published and both stagings are removed.

Every engine publishes through here, so what a published pair holds and the order of its
publishing are the same whatever ran the split.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from filter.errors import OutputError
from filter.outputs.half_pair import find_half_pair
from filter.outputs.manifest import FileRecord, build_manifest, write_manifest
from filter.outputs.manifest_document import FormatSections, Manifest, Side
from filter.outputs.publish import StagedOutput, stage_all
from filter.outputs.signing import sign_manifest
from filter.policy.plan import ExportPlan

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def check_targets(
    export_dir: str | Path, onshore_dir: str | Path, inputs: Iterable[Path]
) -> tuple[Path, Path]:
    """The absolute targets; refused when they overlap each other or hold an input."""
    export_target = Path(export_dir).absolute()
    onshore_target = Path(onshore_dir).absolute()
    e, o = export_target.resolve(), onshore_target.resolve()
    if e == o or e in o.parents or o in e.parents:
        raise OutputError(
            f"export {export_target} and onshore {onshore_target} must be separate directories, "
            "neither inside the other"
        )
    for path in inputs:
        for target in (e, o):
            if target in path.parents:
                raise OutputError(f"{target}: target holds input {path}; choose another target")
    return export_target, onshore_target


@contextmanager
def staged_outputs(
    export_target: Path, onshore_target: Path, run_id: str, *, overwrite: bool,
    plan: ExportPlan, input_paths: Sequence[Path],
) -> Iterator[tuple[StagedOutput, StagedOutput]]:
    """Staging directories for (export, onshore); both are removed if the block fails.

    On any failure, and on interruption, whatever was staged is discarded: nothing publishes.
    Without `overwrite`, a half-published pair of the same split (`filter.outputs.half_pair`: `plan`
    and `input_paths` say what this split is) may be replaced, so a re-run completes it; one of
    another split is refused, saying what to do.
    """
    half = None if overwrite else find_half_pair(export_target, onshore_target)
    if half is not None and (refusal := half.refusal(plan, input_paths)) is not None:
        raise refusal
    onshore, export = stage_all(
        [onshore_target, export_target], run_id, overwrite=overwrite,
        replace_if={onshore_target: half.still_there} if half is not None else None,
    )
    try:
        yield export, onshore
    except BaseException:
        for s in (onshore, export):
            s.discard()
        raise


def publish_outputs(
    export_plan: ExportPlan,
    run_id: str,
    inputs: Sequence[FileRecord],
    stages: tuple[StagedOutput, StagedOutput],
    export_files: Sequence[FileRecord],
    onshore_files: Sequence[FileRecord],
    detections: Mapping[str, int],
    *,
    key_id: str,
    extra: FormatSections | None = None,
    signing_key: Ed25519PrivateKey | None = None,
) -> tuple[Manifest, Manifest]:
    """Write both manifests into the (export, onshore) `stages` and publish them, onshore first.

    The caller has reconciled the rows. `key_id` is the key's (`filter.apply.pseudonym.key_id`).
    `extra`: the sections an input format adds to both manifests (what it records about
    itself). With `signing_key`, each manifest is signed in staging
    (`filter.outputs.signing.sign_manifest`), so an output publishes signed or not at all.
    Returns the (export, onshore) manifests.
    """
    export_stage, onshore_stage = stages
    if onshore_stage.replace_if is not None:  # completing a half pair: still the same inputs?
        half = find_half_pair(export_stage.target, onshore_stage.target)
        if half is not None and (refusal := half.refusal(
                export_plan, [i.path for i in inputs], inputs)) is not None:
            raise refusal
    sides: tuple[tuple[Side, Sequence[FileRecord], StagedOutput, Path], ...] = (
        ("export", export_files, export_stage, onshore_stage.target),
        ("onshore", onshore_files, onshore_stage, export_stage.target),
    )
    manifests = []
    for destination, files, own, other in sides:
        manifest = build_manifest(
            destination=destination, plan=export_plan, run_id=run_id,
            inputs=inputs, files=files, counterpart=other, key_id=key_id, detections=detections,
            extra=extra,
        )
        write_manifest(own.staging, manifest, part_schema(files))
        if signing_key is not None:
            sign_manifest(own.staging, signing_key)
        manifests.append(manifest)
    # Onshore first: an export never stands published without its onshore half.
    onshore_stage.publish()
    export_stage.publish()
    export_manifest, onshore_manifest = manifests
    return export_manifest, onshore_manifest


def part_schema(files: Sequence[FileRecord]) -> pa.Schema | None:
    """The schema of a side's Parquet parts (every part has the same), for its manifest file:
    a reader of the directory then meets one schema in every file. None: no Parquet part."""
    for record in files:
        if record.path.suffix == ".parquet":
            schema = pq.read_schema(record.path)
            return schema.with_metadata({k: v for k, v in (schema.metadata or {}).items()
                                         if k != b"ARROW:schema"})
    return None

