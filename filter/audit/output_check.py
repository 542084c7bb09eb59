"""One output directory as the verifier reads it, and what every check of it shares.

Out: `OutputCheck` (a directory's manifest, its trustworthy parts and the failures found in it);
`Failure` (one problem: where, a directory or a file with a column, and what; never a data
value); `leaves` (the dotted leaf paths below a column) and `part_schemas` (the schemas of a
directory's intact parts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from filter.audit.part_formats import PART_FORMATS
from filter.errors import first_line
from filter.formats.parquet.inputs import READ_ERRORS
from filter.memory_budget import MemoryBudget
from filter.outputs.manifest_document import Manifest


@dataclass(frozen=True)
class Failure:
    """One problem: where (a directory, or a file with a column) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class OutputCheck:
    """One output directory as read and checked: its manifest and its trustworthy parts."""

    directory: Path
    manifest: Manifest | None = None  # None: missing or unusable (a failure says why)
    intact: dict[str, Path] = field(default_factory=dict)  # name -> part whose hash matches
    rows: dict[str, int] = field(default_factory=dict)  # name -> footer rows
    failures: list[Failure] = field(default_factory=list)
    budget: MemoryBudget | None = None  # what reading its parts may use; None: the default

    def fail(self, where: str | Path, message: str) -> None:
        self.failures.append(Failure(str(where), message))


def leaves(name: str, dtype: pl.DataType) -> list[tuple[str, pl.Expr, pl.DataType]]:
    """(dotted path, expression, type) of every leaf below a column; structs are walked."""
    out: list[tuple[str, pl.Expr, pl.DataType]] = []
    stack: list[tuple[str, pl.Expr, pl.DataType]] = [(name, pl.col(name), dtype)]
    while stack:
        path, expr, current = stack.pop()
        if isinstance(current, pl.Struct) and current.fields:
            stack.extend((f"{path}.{f.name}", expr.struct.field(f.name), f.dtype)
                         for f in reversed(current.fields))
        else:
            out.append((path, expr, current))
    return out


def part_schemas(side: OutputCheck) -> dict[str, pl.Schema]:
    """The schema of every intact part (a part whose schema cannot be read fails and is dropped)."""
    schemas: dict[str, pl.Schema] = {}
    for name, path in list(side.intact.items()):
        try:
            schemas[name] = PART_FORMATS[path.suffix].schema(path, side.budget)
        except READ_ERRORS as exc:  # polars/pyarrow errors on a part that hashes right
            side.fail(path, f"schema cannot be read: {first_line(exc)}")
            del side.intact[name]
    return schemas


__all__ = [
    "Failure",
    "OutputCheck",
    "leaves",
    "part_schemas",
]
