"""Run a `SplitRequest` on an engine: the steps every split shares, once.

In: a `SplitRequest` and an `Engine` (default: `LocalEngine`, this machine).
Out: both targets published, a `SplitResult`.
May fail: `RequestError` (what the engine cannot run), `KeyFileError` (a weak key),
`CatalogueError`, `ScenarioError`, `InputError`, `UnclassifiedFieldsError`, `OutputError`, and
the engine's own (`RayUnavailableError`). On any failure, and on interruption, nothing is
published and both stagings are removed.

The steps, in this order, so that the first problem is the one shown: the engine accepts the
request; the key is checked, the catalogue resolved, checked against its pin and asked for the
scenario; the signing key resolved; the batch found and planned (`prepare_batch`, without
reading data); the targets checked; then, inside the engine's session and both stagings, the
engine writes and reconciles the part files (`Engine.write_parts`, the one step engines do
their own way), and the manifests are written, signed and published (`outputs.pair`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from filter.apply.pseudonym import check_key, key_id
from filter.engines.engine import Engine, SplitRun
from filter.engines.local import LocalEngine
from filter.engines.parquet_batch import ParquetBatch, parquet_batch
from filter.engines.request import (
    OnBadRecord,
    OutputFormat,
    ProgressCallback,
    ProtobufInput,
    SplitRequest,
    SplitResult,
)
from filter.memory_budget import MemoryBudget
from filter.outputs.pair import check_targets, publish_outputs, staged_outputs
from filter.outputs.signing_keys import resolve_signing_key
from filter.policy.catalogue import Catalogue
from filter.policy.pin import check_pin, resolve_catalogue
from filter.policy.plan import OnUnknown

if TYPE_CHECKING:
    from filter.engines.protobuf_batch import ProtobufBatch
    from filter.formats.protobuf.framing import Framing
    from filter.outputs.signing import SigningKey


def run(request: SplitRequest, engine: Engine | None = None) -> SplitResult:
    """Split the batch `request` names on `engine` (default `LocalEngine()`) and publish it."""
    engine = LocalEngine() if engine is None else engine
    started = time.perf_counter()
    key = check_key(request.key)  # before the engine loads anything (Ray)
    engine.check(request)
    catalogue = resolve_catalogue(request.catalogue)
    check_pin(catalogue, request.catalogue_sha256)
    catalogue.scenario(request.scenario)  # fail on a bad scenario before touching any file
    signer = resolve_signing_key(request.signing_key, key)  # refused before any file is read
    batch = prepare_batch(request, catalogue)
    targets = check_targets(request.export_dir, request.onshore_dir, batch.paths)
    run_id = uuid.uuid4().hex
    with (
        engine.session(),
        staged_outputs(*targets, run_id, overwrite=request.overwrite, plan=batch.plan,
                       input_paths=batch.paths) as stages,
    ):
        written = engine.write_parts(SplitRun(request, catalogue, key, batch, stages))
        manifests = publish_outputs(
            written.plan, run_id, written.inputs, stages, written.export_files,
            written.onshore_files, written.detections, key_id=key_id(key),
            extra=written.extra, signing_key=signer,
        )
    return SplitResult.published(targets, manifests, written.plan, started)


def prepare_batch(request: SplitRequest, catalogue: Catalogue) -> ParquetBatch | ProtobufBatch:
    """The batch of `request`, found and planned: Parquet footers, or a protobuf descriptor."""
    if request.protobuf is None:
        return parquet_batch(request.inputs, catalogue, request.scenario,
                             on_unknown=request.on_unknown, origin=request.origin)
    from filter.engines.protobuf_batch import protobuf_batch  # the protobuf runtime: on use

    return protobuf_batch(request.inputs, request.protobuf, catalogue, request.scenario,
                          on_unknown=request.on_unknown, origin=request.origin)


def split(
    inputs: str | Path | Sequence[str | Path],
    export_dir: str | Path,
    onshore_dir: str | Path,
    scenario: str,
    *,
    key: bytes,
    catalogue: Catalogue | str | Path | None = None,
    catalogue_sha256: str | None = None,
    origin: str | None = None,
    on_unknown: OnUnknown = "withhold",
    overwrite: bool = False,
    reencode: bool = False,
    signing_key: SigningKey | None = None,
    progress: ProgressCallback | None = None,
    engine: Engine | None = None,
    memory_budget: MemoryBudget | int | str | None = None,
) -> SplitResult:
    """Split Parquet `inputs` into published export and onshore directories.

    `catalogue`: an object, a file, or None for the shipped one; `catalogue_sha256` pins it
    (any other is refused). `origin` is where the batch comes from (a scenario may accept only
    some origins). The columns a side holds unchanged are copied as the input encoded them;
    `reencode` has Polars decode and encode every column instead (zstd level 1). A weak `key`
    is refused (`filter.apply.pseudonym.check_key`). `signing_key` (an Ed25519 key or its
    file, not the token key): sign both manifests; None: unsigned. `engine`: where to run
    (default `LocalEngine()`; `RayEngine(address)` for a Ray cluster). `memory_budget`: the
    memory the run may use (bytes or a size such as "4GiB"; None: VTX_MEMORY_BUDGET, else
    half the machine's); input that would not fit is refused (`MemoryBudgetExceeded`).
    """
    return run(SplitRequest.of(
        inputs, export_dir, onshore_dir, scenario, key=key, catalogue=catalogue,
        catalogue_sha256=catalogue_sha256, origin=origin, on_unknown=on_unknown,
        overwrite=overwrite, reencode=reencode, signing_key=signing_key, progress=progress,
        memory_budget=memory_budget,
    ), engine)


def split_protobuf(
    inputs: str | Path | Sequence[str | Path],
    export_dir: str | Path,
    onshore_dir: str | Path,
    scenario: str,
    *,
    key: bytes,
    message: str,
    descriptor_set: str | Path | None = None,
    framing: Framing = "delimited",
    kv_field: str | None = None,
    namespace: str = "fleet",
    on_bad_record: OnBadRecord = "fail",
    output_format: OutputFormat = "parquet",
    catalogue: Catalogue | str | Path | None = None,
    catalogue_sha256: str | None = None,
    origin: str | None = None,
    on_unknown: OnUnknown = "withhold",
    overwrite: bool = False,
    signing_key: SigningKey | None = None,
    progress: ProgressCallback | None = None,
    engine: Engine | None = None,
    memory_budget: MemoryBudget | int | str | None = None,
) -> SplitResult:
    """Split protobuf `inputs` of type `message` into published export and onshore outputs.

    The message type comes from `descriptor_set` (a FileDescriptorSet), or vtx's shipped
    schemas; `framing`, `kv_field`, `namespace` and `on_bad_record` as `ProtobufInput` says.
    `output_format` "protobuf" writes each side as delimited streams of the input's own type
    instead of Parquet. `memory_budget`: as `SplitRequest.memory_budget` (None: the
    environment's or the machine's default). The other arguments as for `split`.
    """
    options = ProtobufInput(
        message, None if descriptor_set is None else Path(descriptor_set), framing, kv_field,
        namespace, on_bad_record)
    return run(SplitRequest.of(
        inputs, export_dir, onshore_dir, scenario, key=key, catalogue=catalogue,
        catalogue_sha256=catalogue_sha256, origin=origin, protobuf=options,
        output_format=output_format, on_unknown=on_unknown, overwrite=overwrite,
        signing_key=signing_key, progress=progress, memory_budget=memory_budget,
    ), engine)
