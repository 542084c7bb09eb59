"""Where and on what the benchmarks run: their directories, key, set-up and machine.

Holds the default work and results directories, the scenario every vtx run splits under,
the preparations that make runs comparable (:func:`warm_page_cache`,
:func:`compile_bytecode`), a fresh HMAC key per size (:func:`write_key_file`), the
description of the machine and library versions recorded in each result
(:func:`machine_info`) and the UTC timestamps of the records (:func:`now`). Shared by the
Parquet runner (:mod:`benchmarks.parquet_bench`) and the protobuf one
(:mod:`benchmarks.protobuf_run`).
"""

from __future__ import annotations

import compileall
import datetime as dt
import os
import platform
import secrets
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
#: Cached inputs, the key file, projections, scratch outputs and each child's last log.
DEFAULT_WORK_DIR = BENCH_DIR / ".data"
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
SCENARIO = "after-sales"


def warm_page_cache(path: Path) -> None:
    """Read ``path`` once so that no method pays for the first cold read."""
    with path.open("rb") as f:
        while f.read(16 << 20):
            pass


def compile_bytecode(repo_root: Path) -> None:
    """Byte-compile the packages the runs import from ``repo_root`` (``filter``, ``benchmarks``),
    as ``pip install`` does, so that no run pays for compiling their source. Without it every
    run compiles ~50 modules (about 0.15 s) where bytecode is not written back
    (``PYTHONDONTWRITEBYTECODE``, a read-only checkout): a cost of the checkout, not of vtx."""
    for package in ("filter", "benchmarks"):
        compileall.compile_dir(repo_root / package, quiet=1)


def machine_info() -> dict[str, Any]:
    """Describe the machine and library versions the benchmark ran with."""

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "polars": version("polars"),
        "pyarrow": version("pyarrow"),
        "duckdb": version("duckdb"),
        "pandas": version("pandas"),
        "vtx": version("vtx-egress") or version("vtx"),
    }


def write_key_file(work_dir: Path) -> Path:
    """Write a fresh 64-hex-character secret to ``work_dir/bench.key`` (mode 0600)."""
    key = work_dir / "bench.key"
    key.unlink(missing_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return key


def now() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
