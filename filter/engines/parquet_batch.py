"""A Parquet batch, read as far as a plan needs: its files found and their footers checked,
its plan compiled from their schema.

In: the request's inputs (files, directories, globs), the catalogue, scenario and options.
Out: a `ParquetBatch`: every input's footer facts (`ParquetInput`) and the `ExportPlan`.
May fail: `InputError` (no input, unreadable or inconsistent files), `ScenarioError`,
`UnclassifiedFieldsError` under ``on_unknown="fail"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filter.errors import InputError
from filter.formats.parquet.inputs import ParquetInput, expand_inputs, inspect_batch
from filter.policy.catalogue import Catalogue
from filter.policy.plan import ExportPlan, OnUnknown, plan


@dataclass(frozen=True)
class ParquetBatch:
    """The Parquet files of a batch and their plan."""

    sources: list[ParquetInput]
    plan: ExportPlan

    @property
    def paths(self) -> list[Path]:
        """The input files, in order."""
        return [s.path for s in self.sources]

    @property
    def rows(self) -> int:
        """The rows of all inputs together."""
        return sum(s.rows for s in self.sources)


def parquet_batch(
    inputs: Sequence[str | Path], catalogue: Catalogue, scenario: str, *,
    on_unknown: OnUnknown, origin: str | None,
) -> ParquetBatch:
    """Find and check the input files, and plan from the first one's schema (every input's
    schema was checked to be the same)."""
    paths = expand_inputs(inputs)
    if not paths:
        raise InputError("no input files given")
    sources = inspect_batch(paths)
    return ParquetBatch(sources, plan(sources[0].schema, catalogue, scenario,
                                      on_unknown=on_unknown, origin=origin))
