"""vtx: the vehicle telemetry export filter.

Public API for pipelines::

    import filter as vtx

    key = vtx.load_key("fleet.key")
    vtx.split("batch/", "out/export", "out/onshore", "after-sales", key=key)

`load_catalogue` reads the policy, `plan` decides every field of a schema. A split is a
`SplitRequest` run on an engine (`run(request, engine)`: `LocalEngine`, or `RayEngine` for a
Ray cluster); the helpers build the request: `split` publishes export and onshore outputs
from Parquet files, `split_protobuf` from protobuf streams; `split_frame` splits a frame in
memory, `split_dataset` a Ray Dataset (the ``ray`` extra: ``pip install '.[ray]'``). Every
helper takes the scenario, then `key=`, `catalogue=` and the rest by name.
`read_manifest` reads an output's `Manifest`;
`verify_output` checks a published output; `open_export` gives a `LazyFrame` over one that
verifies (and refuses one that does not). What needs Ray, the protobuf runtime or the
verifier is loaded on first use: ``import filter`` imports none of them, and a Parquet split
starts sooner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from filter._version import __version__
from filter.apply.pseudonym import load_key, vehicle_token
from filter.engines.frames import split_frame
from filter.engines.local import LocalEngine
from filter.engines.request import ProtobufInput, SplitRequest, SplitResult
from filter.engines.run import run, split, split_protobuf
from filter.errors import (
    CatalogueError,
    InputError,
    KeyFileError,
    OutputError,
    RequestError,
    ScenarioError,
    UnclassifiedFieldsError,
    UnverifiedOutputError,
    VtxError,
)
from filter.outputs.manifest import read_manifest
from filter.outputs.manifest_document import Manifest
from filter.policy.catalogue import Catalogue
from filter.policy.catalogue_loading import catalogue_from_mapping, load_catalogue
from filter.policy.plan import ExportPlan, FieldDecision, plan

if TYPE_CHECKING:
    from filter.audit.opened import open_export
    from filter.audit.verify import VerifyReport, verify_output
    from filter.engines.ray import RayEngine
    from filter.engines.ray_dataset import split_dataset

__all__ = [
    "Catalogue",
    "CatalogueError",
    "ExportPlan",
    "FieldDecision",
    "InputError",
    "KeyFileError",
    "LocalEngine",
    "Manifest",
    "OutputError",
    "ProtobufInput",
    "RayEngine",
    "RequestError",
    "ScenarioError",
    "SplitRequest",
    "SplitResult",
    "UnclassifiedFieldsError",
    "UnverifiedOutputError",
    "VerifyReport",
    "VtxError",
    "__version__",
    "catalogue_from_mapping",
    "load_catalogue",
    "load_key",
    "open_export",
    "plan",
    "read_manifest",
    "run",
    "split",
    "split_dataset",
    "split_frame",
    "split_protobuf",
    "vehicle_token",
    "verify_output",
]


#: What `__getattr__` loads on first use, and from where.
_LOADED_ON_USE = {
    "RayEngine": "filter.engines.ray",
    "open_export": "filter.audit.opened",
    "split_dataset": "filter.engines.ray_dataset",
    "verify_output": "filter.audit.verify",
    "VerifyReport": "filter.audit.verify",
}


def __getattr__(name: str) -> Any:
    """Load `RayEngine`, `split_dataset`, `open_export`, `verify_output` and `VerifyReport`
    on first use."""
    if name in _LOADED_ON_USE:
        import importlib

        return getattr(importlib.import_module(_LOADED_ON_USE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
