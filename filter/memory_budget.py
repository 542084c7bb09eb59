"""The memory a run may use (`MemoryBudget`), and the one error for what would not fit in it.

In: the budget a user sets (``--memory-budget 4GiB``, ``VTX_MEMORY_BUDGET``), or none: the
default, fitted to the machine (`default_budget`).
Out: a `MemoryBudget`, which readers and engines ask, before they decompress or decode
anything, whether a piece of the input fits (`MemoryBudget.check`); sizes parsed and
printed (`parse_size`, `format_size`).
May fail: `MemoryBudgetExceeded` (an `InputError`, exit 1) naming the file, the place (row
group and column, or message) and the sizes; `ValueError` for a size that does not parse.

How the budget is spent: a part of it (`RESERVE`) is the process itself (the interpreter,
Polars, pyarrow, numba: 200-380 MB resident before the first byte is read); the rest is
shared by the pieces a run holds decoded at once (`PIECES_IN_FLIGHT`: the row group being
computed, the next one read ahead, and a piece of the background decode check), so each piece
may take `piece_limit` bytes. A piece's need is estimated from its page headers, as the
readers measure them, plus what the detectors make of the strings they scan (`SCAN_FACTOR`,
`LONGEST_VALUE_FACTOR`): `filter.formats.parquet.decode_budget.PieceNeed`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from filter.errors import InputError

ENVIRONMENT_VARIABLE = "VTX_MEMORY_BUDGET"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
#: The smallest budget accepted: below it the process alone would not fit.
MINIMUM = 512 * MiB
#: What the process holds before it reads any input (Python, Polars, pyarrow; numba and the
#: protobuf runtime for protobuf input: 380 MB of RSS before the first batch).
RESERVE = 384 * MiB
#: Pieces of the input a run holds decoded at the same time.
PIECES_IN_FLIGHT = 3
#: Bytes the value detectors hold per byte of the strings they scan: the text, and the text as
#: NFKC makes it.
SCAN_FACTOR = 2
#: Bytes the detectors' matching holds per byte of the longest value they scan, besides
#: (one 200 MB string: a split peaked at 2.4 GB; 400,000 strings of 1 KB: at 0.67 GB).
LONGEST_VALUE_FACTOR = 10

#: Bytes a split holds per row it computes columns for, besides the input's values: the
#: vehicle token on both sides (a string and its view) and the frames' share.
TOKEN_ROW_BYTES = 128

_UNITS = {"": 1, "b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB, "mib": MiB,
          "g": GiB, "gb": GiB, "gib": GiB, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


class MemoryBudgetExceeded(InputError):
    """A piece of the input that would take more memory than the run's budget allows."""


@dataclass(frozen=True)
class MemoryBudget:
    """The bytes a run may hold at most; see the module doc for how they are shared."""

    total: int

    def __post_init__(self) -> None:
        if self.total < MINIMUM:
            raise ValueError(f"a memory budget of {format_size(self.total)} is below the "
                             f"minimum, {format_size(MINIMUM)}")

    @property
    def piece_limit(self) -> int:
        """The bytes one piece of the input (a row group's decoded columns, a batch of
        messages) may take while it is processed."""
        return (self.total - RESERVE) // PIECES_IN_FLIGHT

    def check(self, need: int, source: str, where: str, what: str) -> None:
        """Raise `MemoryBudgetExceeded` when `need` bytes (for `what`, at `where` in
        `source`) do not fit in one piece."""
        if need > self.piece_limit:
            raise MemoryBudgetExceeded(
                f"{source}: {where}: {what} needs about {format_size(need)} of memory, more "
                f"than a piece of the memory budget ({format_size(self.piece_limit)} of "
                f"{format_size(self.total)}) allows",
                hint=f"--memory-budget or {ENVIRONMENT_VARIABLE} sets the budget")

    @classmethod
    def of(cls, setting: int | str | MemoryBudget | None) -> MemoryBudget:
        """The budget a request names: a budget, bytes, a size such as ``"4GiB"``, or None
        for the environment's (`ENVIRONMENT_VARIABLE`) or else the machine's default."""
        if isinstance(setting, MemoryBudget):
            return setting
        if setting is None:
            setting = os.environ.get(ENVIRONMENT_VARIABLE) or None
            if setting is None:
                return cls(default_budget())
        return cls(parse_size(setting) if isinstance(setting, str) else setting)


def default_budget() -> int:
    """Half the memory this process can have: the machine's, or less where a cgroup or a
    resource limit says so; never below `MINIMUM`."""
    limits = [_physical_memory()]
    limits += [n for n in (_cgroup_limit(), _resource_limit()) if n is not None]
    return max(MINIMUM, min(limits) // 2)


def parse_size(text: str) -> int:
    """Bytes from a size such as ``4GiB``, ``512M`` or ``1073741824`` (K, M, G and T are
    binary, 1024-based, with or without a B or iB)."""
    matched = _SIZE.fullmatch(text)
    unit = matched and _UNITS.get(matched.group(2).lower())
    if not matched or unit is None:
        raise ValueError(f"{text!r} is not a size (for example 4GiB, 512MiB)")
    return int(float(matched.group(1)) * unit)


def format_size(size: int) -> str:
    """`size` bytes for a message: ``1.5 GiB``, ``300 MiB``, ``12 KiB``, ``80 bytes``."""
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit:
            value = size / unit
            return f"{value:.1f} {name}" if value < 10 else f"{value:.0f} {name}"
    return f"{size} bytes"


def _physical_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2, or v1), if it has one."""
    for path in (Path("/sys/fs/cgroup/memory.max"),
                 Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 says "no limit" with a huge number
            return int(text)
    return None


def _resource_limit() -> int | None:
    """This process's address-space or data-segment limit (`ulimit -v`, `ulimit -d`)."""
    import resource

    found = []
    for limit in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft, _hard = resource.getrlimit(limit)
        if soft != resource.RLIM_INFINITY:
            found.append(soft)
    return min(found) if found else None
