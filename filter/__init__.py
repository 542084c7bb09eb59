"""vtx: the vehicle telemetry export filter.

Public API for pipelines::

    from filter import load_catalogue, plan, split, split_frame, load_key

`load_catalogue` reads the policy, `plan` decides every field of a schema, `split` publishes
export and onshore outputs from Parquet files, `split_protobuf` from protobuf streams,
`split_frame` splits a frame in memory, `verify_output` checks a published output.
`split_dataset` splits a Ray Dataset (``vtx[ray]``); it is loaded on first use, so
``import filter`` does not import Ray.
"""

from __future__ import annotations

from typing import Any

from filter._version import __version__
from filter.catalogue import Catalogue, catalogue_from_mapping, load_catalogue
from filter.errors import (
    CatalogueError,
    InputError,
    KeyFileError,
    OutputError,
    ScenarioError,
    UnclassifiedFieldsError,
    VtxError,
)
from filter.manifest import read_manifest
from filter.plan import ExportPlan, FieldDecision, plan
from filter.protobuf_split import split_protobuf
from filter.pseudonym import load_key, vehicle_token
from filter.splitter import SplitResult, split, split_frame
from filter.verify import VerifyReport, verify_output

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


def __getattr__(name: str) -> Any:
    """Load `split_dataset` (and with it the Ray adapter) on first use."""
    if name == "split_dataset":
        from filter.ray_split import split_dataset

        return split_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
