"""The Ray engine: a split run on a Ray cluster, with the same result as the local engine.

In: a `SplitRequest` (through `filter.engines.run.run`) and, for the engine, the address of
a Ray cluster (None: a local one, started for the run and shut down after; "auto": the one
``ray start`` runs on this machine).
Out: the same published outputs and `SplitResult` as the local engine, except that Parquet
input's part files follow Ray's blocks instead of the input files (`engines.ray_parquet`);
protobuf input gives the local engine's part names (`engines.ray_protobuf`).
May fail: `RayUnavailableError` (exit 2) when Ray is not installed; `RequestError` for what
only the local engine does (`reencode`, protobuf output); the local engine's errors;
`RayEngineError` for a task that failed for another reason. As with the local engine, a failed
or interrupted run publishes nothing.

Ray is imported lazily (`engines.ray_session.import_ray`): ``import filter`` never imports it.
On a real cluster the inputs and both targets must be on a file system every node and the
driver see at the same path, and vtx must be installed on every node.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from filter.engines.engine import SplitRun, WrittenParts
from filter.engines.ray_parquet import write_ray_parquet_parts
from filter.engines.ray_protobuf import write_ray_protobuf_parts
from filter.engines.ray_session import import_ray, ray_session
from filter.engines.request import SplitRequest
from filter.errors import RequestError


@dataclass(frozen=True)
class RayEngine:
    """Split on a Ray cluster: at `address`, or on a local one started for the run."""

    address: str | None = None

    def check(self, request: SplitRequest) -> None:
        """Refuse what only the local engine does; `RayUnavailableError` without Ray."""
        if request.reencode:
            raise RequestError("reencode runs on the local engine only")
        if request.output_format == "protobuf":
            raise RequestError("protobuf output runs on the local engine only")
        import_ray()

    def session(self) -> AbstractContextManager[object]:
        """The running Ray session, or one started (or connected to `address`) for the run."""
        return ray_session(self.address)

    def write_parts(self, run: SplitRun) -> WrittenParts:
        """Write and reconcile the part files of `run` on Ray, by its input format."""
        if run.request.protobuf is None:
            return write_ray_parquet_parts(run)
        return write_ray_protobuf_parts(run)
