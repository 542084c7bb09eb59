"""What a split is asked to do (`SplitRequest`), whatever runs it, and what it did (`SplitResult`).

In: the inputs, the two targets, the scenario and origin, the catalogue (with an optional pin),
the token key, the input format and its options, the output format, and the run's options.
Out: a frozen request every engine takes as it is (`filter.engines.run.run`); after the run, a
`SplitResult` with both manifests.
May fail: `RequestError` where the request asks for what cannot be done together (protobuf
output from Parquet input; `reencode` of protobuf input).

The CLI builds one from its options; pipelines build one, or call the helpers that do
(`filter.split`, `filter.split_protobuf`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from filter.errors import RequestError
from filter.memory_budget import MemoryBudget
from filter.outputs.manifest_document import Manifest
from filter.policy.catalogue import Catalogue
from filter.policy.plan import ExportPlan, OnUnknown

if TYPE_CHECKING:
    from filter.formats.protobuf.framing import Framing
    from filter.outputs.signing import SigningKey

#: Called as the run goes on with (files or tasks done, in all, rows done, rows in all: 0
#: where not known ahead).
ProgressCallback = Callable[[int, int, int, int], None]
OnBadRecord = Literal["fail", "quarantine"]
OutputFormat = Literal["parquet", "protobuf"]


@dataclass(frozen=True)
class ProtobufInput:
    """Protobuf input: the message type and how its files are read."""

    message: str  # full name, e.g. vtx.telemetry.v1.Envelope
    descriptor_set: Path | None = None  # None: vtx's shipped schemas
    framing: Framing = "delimited"  # or "single": one message per file
    kv_field: str | None = None  # a key/value envelope's entries field (None: detected)
    namespace: str = "fleet"  # the catalogue namespace of key/value keys
    on_bad_record: OnBadRecord = "fail"  # or "quarantine": kept raw, onshore


@dataclass(frozen=True)
class SplitRequest:
    """One split: a batch in, a published export and onshore pair out."""

    inputs: tuple[str | Path, ...]  # files, directories, globs
    export_dir: Path
    onshore_dir: Path
    scenario: str
    key: bytes = field(repr=False)  # the vehicle token key (`filter.load_key`)
    catalogue: Catalogue | str | Path | None = None  # None: the shipped one
    catalogue_sha256: str | None = None  # refuse any other catalogue
    origin: str | None = None  # where the batch comes from
    protobuf: ProtobufInput | None = None  # None: Parquet input
    output_format: OutputFormat = "parquet"
    on_unknown: OnUnknown = "withhold"
    overwrite: bool = False
    reencode: bool = False  # Parquet input: every column decoded and encoded anew
    signing_key: SigningKey | None = field(default=None, repr=False)  # None: unsigned
    progress: ProgressCallback | None = field(default=None, compare=False, repr=False)
    #: The memory the run may use: bytes, a size ("4GiB"), or None for VTX_MEMORY_BUDGET or
    #: else the machine's default (`filter.memory_budget`); a `MemoryBudget` once made.
    memory_budget: MemoryBudget | int | str | None = None

    def __post_init__(self) -> None:
        try:
            budget = MemoryBudget.of(self.memory_budget)
        except ValueError as exc:
            raise RequestError(f"memory budget: {exc}") from None
        object.__setattr__(self, "memory_budget", budget)  # frozen: set once, here
        if self.output_format not in ("parquet", "protobuf"):
            raise RequestError(f"unknown output format {self.output_format!r}")
        if self.output_format == "protobuf" and self.protobuf is None:
            raise RequestError("protobuf output needs protobuf input")
        if self.reencode and self.protobuf is not None:
            raise RequestError("reencode applies to Parquet input only")

    @property
    def budget(self) -> MemoryBudget:
        """The run's memory budget."""
        assert isinstance(self.memory_budget, MemoryBudget)
        return self.memory_budget

    @classmethod
    def of(
        cls, inputs: str | Path | Sequence[str | Path], export_dir: str | Path,
        onshore_dir: str | Path, scenario: str, **options: Any,
    ) -> SplitRequest:
        """A request from the helpers' arguments: one input or several, paths as strings."""
        listed = (inputs,) if isinstance(inputs, str | Path) else tuple(inputs)
        return cls(listed, Path(export_dir), Path(onshore_dir), scenario, **options)


@dataclass(frozen=True)
class SplitResult:
    """What a split published."""

    export_dir: Path
    onshore_dir: Path
    export_manifest: Manifest
    onshore_manifest: Manifest
    plan: ExportPlan
    seconds: float

    @classmethod
    def published(
        cls,
        targets: tuple[Path, Path],
        manifests: tuple[Manifest, Manifest],
        plan: ExportPlan,
        started: float,
    ) -> SplitResult:
        """The result of a run that published (export, onshore) `targets` with their
        (export, onshore) `manifests`;
        `started` is its `time.perf_counter()` at the start."""
        return cls(
            export_dir=targets[0],
            onshore_dir=targets[1],
            export_manifest=manifests[0],
            onshore_manifest=manifests[1],
            plan=plan,
            seconds=time.perf_counter() - started,
        )

    @property
    def rows(self) -> int:
        """Rows in each output (equal to the input's)."""
        return self.export_manifest.rows
