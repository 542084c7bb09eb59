"""vtx: the vehicle telemetry export filter.

Public API for pipelines::

    from filter import load_catalogue, plan, split, split_frame, load_key

`load_catalogue` reads the policy, `plan` decides every field of a schema, `split` publishes
export and onshore outputs from Parquet files, `split_protobuf` from protobuf streams,
`split_frame` splits a frame in memory, `verify_output` checks a published output.
`split_dataset` splits a Ray Dataset (the ``ray`` extra: ``pip install '.[ray]'``). It,
`split_protobuf` and `verify_output` (with `VerifyReport`) are loaded on first use:
``import filter`` imports neither Ray nor the protobuf runtime, and a Parquet split starts
sooner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from filter._version import __version__
from filter.apply.pseudonym import load_key, vehicle_token
from filter.engines.parquet import SplitResult, split, split_frame
from filter.errors import (
    CatalogueError,
    InputError,
    KeyFileError,
    OutputError,
    ScenarioError,
    UnclassifiedFieldsError,
    VtxError,
)
from filter.outputs.manifest import read_manifest
from filter.policy.catalogue import Catalogue
from filter.policy.catalogue_loading import catalogue_from_mapping, load_catalogue
from filter.policy.plan import ExportPlan, FieldDecision, plan

if TYPE_CHECKING:
    from filter.audit.verify import VerifyReport, verify_output
    from filter.engines.protobuf import split_protobuf
    from filter.engines.ray import split_dataset

__all__ = [
    "Catalogue",
    "CatalogueError",
    "ExportPlan",
    "FieldDecision",
    "InputError",
    "KeyFileError",
    "OutputError",
    "ScenarioError",
    "SplitResult",
    "UnclassifiedFieldsError",
    "VerifyReport",
    "VtxError",
    "__version__",
    "catalogue_from_mapping",
    "load_catalogue",
    "load_key",
    "plan",
    "read_manifest",
    "split",
    "split_dataset",
    "split_frame",
    "split_protobuf",
    "vehicle_token",
    "verify_output",
]


#: What `__getattr__` loads on first use, and from where.
_LOADED_ON_USE = {
    "split_dataset": "filter.engines.ray",
    "split_protobuf": "filter.engines.protobuf",
    "verify_output": "filter.audit.verify",
    "VerifyReport": "filter.audit.verify",
}


def __getattr__(name: str) -> Any:
    """Load `split_dataset`, `split_protobuf`, `verify_output` and `VerifyReport` on first use."""
    if name in _LOADED_ON_USE:
        import importlib

        return getattr(importlib.import_module(_LOADED_ON_USE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
