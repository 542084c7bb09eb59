"""Ray Datasets split for pipelines: a `ray.data.Dataset` in, two lazy Datasets out.

In: a Dataset of the batch, the scenario, the token key, a catalogue.
Out: (export, onshore) Datasets, one row per input row each.
May fail: `RayUnavailableError` without the ``ray`` extra; `KeyFileError` (a weak key),
`CatalogueError`, `ScenarioError`, `InputError` (a Dataset without a schema),
`UnclassifiedFieldsError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from filter.apply.columns import Lookups, split_lazy
from filter.apply.pseudonym import check_key
from filter.engines.ray_parquet import block_frame, dataset_lookups
from filter.engines.ray_session import import_ray
from filter.errors import InputError
from filter.policy.catalogue import Catalogue
from filter.policy.pin import resolve_catalogue
from filter.policy.plan import ExportPlan, OnUnknown, plan

if TYPE_CHECKING:
    from ray.data import Dataset


def split_dataset(
    ds: Dataset,
    scenario: str,
    *,
    key: bytes,
    catalogue: Catalogue | str | Path | None = None,
    on_unknown: OnUnknown = "withhold",
    origin: str | None = None,
) -> tuple[Dataset, Dataset]:
    """Split a Ray `Dataset` into lazy (export, onshore) Datasets, for pipelines.

    The plan comes from the Dataset's schema; its distinct VINs and scanned strings are read
    now, in one pass over those columns (`dataset_lookups`); the rest is lazy. Each side is
    its own `map_batches` over `ds` (Arrow blocks in, Polars inside): consuming both runs the
    split twice, each time computing only its side, which costs less than materialising a
    combined block and keeps each Dataset independent. Both hold one row per input row and,
    with ``DataContext.execution_options.preserve_order``, in the same order; otherwise pair
    them by ``vehicle_token`` and the timestamp. Detector hit counts are not reported here
    (`split_ray` writes them to the manifests). A weak `key` is refused
    (`filter.apply.pseudonym.check_key`).
    """
    key = check_key(key)
    import_ray()
    cat = resolve_catalogue(catalogue)
    schema = ds.schema()
    if schema is None:
        raise InputError("the dataset has no schema (is it empty?)")
    base = schema.base_schema if hasattr(schema, "base_schema") else schema
    export_plan = plan(base, cat, scenario, on_unknown=on_unknown, origin=origin)
    lookups = dataset_lookups(ds, export_plan, key)
    sides: list[Dataset] = [
        ds.map_batches(
            _split_side, batch_format="pyarrow", batch_size=None,
            fn_kwargs={"export_plan": export_plan, "lookups": lookups, "side": side},
        )
        for side in ("export", "onshore")
    ]
    return sides[0], sides[1]


def _split_side(
    batch: pa.Table, *, export_plan: ExportPlan, lookups: Lookups,
    side: Literal["export", "onshore"],
) -> pa.Table:
    """One side of one block (runs on a worker)."""
    queries = split_lazy(block_frame(batch, export_plan), export_plan, lookups)
    return (queries.export if side == "export" else queries.onshore).collect().to_arrow()
