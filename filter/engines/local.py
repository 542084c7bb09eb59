"""The local engine: a split on this machine, in this process.

In: a `SplitRun` (from `filter.engines.run.run`).
Out: the part files in both stagings, reconciled (`WrittenParts`).
May fail: what the Parquet and protobuf splits may (`engines.parquet`, `engines.protobuf`).

Parquet input goes through `engines.parquet`, protobuf input through `engines.protobuf`
(loaded on first use: a Parquet run never imports the protobuf runtime or the compiled decoder).
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

from filter.engines.engine import SplitRun, WrittenParts
from filter.engines.parquet import write_parquet_parts
from filter.engines.request import SplitRequest


class LocalEngine:
    """Split on this machine: every option of a `SplitRequest` is supported."""

    def check(self, request: SplitRequest) -> None:
        """Nothing to refuse: the request checked its own options."""

    def session(self) -> AbstractContextManager[object]:
        """Nothing held open."""
        return contextlib.nullcontext()

    def write_parts(self, run: SplitRun) -> WrittenParts:
        """Write and reconcile the part files of `run`, by its input format."""
        if run.request.protobuf is None:
            return write_parquet_parts(run)
        from filter.engines.protobuf import write_protobuf_parts

        return write_protobuf_parts(run)
