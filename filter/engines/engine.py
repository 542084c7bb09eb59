"""What an engine is: the one step of a split engines do their own way, and what passes
through it.

In (`Engine.write_parts`): a `SplitRun`, the request settled (catalogue resolved and pinned,
key checked, batch planned, both targets staged).
Out: `WrittenParts`: the inputs' records, both sides' part files (reconciled) and detector
hit counts, and what the manifests list.
May fail: whatever the engine's writing may; nothing is published until `run` publishes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from filter.engines.parquet_batch import ParquetBatch
from filter.engines.request import SplitRequest
from filter.outputs.manifest import FileRecord
from filter.outputs.manifest_document import FormatSections
from filter.outputs.publish import StagedOutput
from filter.policy.catalogue import Catalogue
from filter.policy.plan import ExportPlan

if TYPE_CHECKING:
    from filter.engines.protobuf_batch import ProtobufBatch


@dataclass(frozen=True)
class SplitRun:
    """What an engine is given to write: the request, settled."""

    request: SplitRequest
    catalogue: Catalogue
    key: bytes  # checked
    batch: ParquetBatch | ProtobufBatch
    stages: tuple[StagedOutput, StagedOutput]  # (export, onshore)

    @property
    def staging(self) -> tuple[Path, Path]:
        """The (export, onshore) staging directories the part files go into."""
        return self.stages[0].staging, self.stages[1].staging


@dataclass(frozen=True)
class WrittenParts:
    """What an engine wrote, reconciled: the records for the manifests."""

    inputs: Sequence[FileRecord]
    export_files: Sequence[FileRecord]
    onshore_files: Sequence[FileRecord]
    detections: Mapping[str, int]
    plan: ExportPlan  # the decisions the manifests list
    extra: FormatSections | None = None  # the manifests' sections of the input format


class Engine(Protocol):
    """Where a split runs: on this machine (`LocalEngine`) or on a Ray cluster
    (`filter.engines.ray.RayEngine`)."""

    def check(self, request: SplitRequest) -> None:
        """Raise (`RequestError`, or the engine's own) if this engine cannot run `request`."""

    def session(self) -> AbstractContextManager[object]:
        """What the engine holds open for a run (a Ray session); entered before staging."""

    def write_parts(self, run: SplitRun) -> WrittenParts:
        """Write every part file of `run` into its stagings and reconcile them."""
