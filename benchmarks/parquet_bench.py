"""One input size of the Parquet benchmark: its input, each method's child, the repeats, the record.

In: a row count, the repeats, the methods (:data:`METHODS`), the generator's vehicles and
seed, the work dir and the per-child limits. :func:`bench_one` generates the input with
:mod:`benchmarks.generate` unless cached (:func:`ensure_input`), computes vtx's two
projections for the baselines (:func:`write_projections`), then runs every method's child
(:func:`method_command`) ``repeat`` times through :func:`benchmarks.measure.measure`,
alternating the order of the methods from one repeat to the next. Out: the result record of
the size (every run, medians, rows/s, MB/s, the ratios to the copy, output sizes and rows,
input, machine, limits, projections), which :mod:`benchmarks.run` writes.
May fail: ``subprocess.CalledProcessError`` when generating the input or the projections
fails; a failing method is recorded in the record, not raised.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.environment import (
    BENCH_DIR,
    SCENARIO,
    compile_bytecode,
    machine_info,
    now,
    warm_page_cache,
    write_key_file,
)
from benchmarks.fleet_signals import schema
from benchmarks.generate import GENERATOR_VERSION
from benchmarks.measure import (
    RunFailed,
    RunResult,
    measure,
    summarise,
    tree_bytes,
    wait_until_quiet,
)
from benchmarks.results_readme import PARQUET_METHODS

METHODS = PARQUET_METHODS
DEFAULT_METHODS = ("vtx", "copy", "duckdb", "pyarrow", "pandas")
#: Methods that write vtx's two projections and so need them computed first.
BASELINES = ("duckdb", "pyarrow", "pandas")
DEFAULT_ROWS = (1_000_000, 10_000_000)

COPY_SNIPPET = "import sys, polars as pl; pl.scan_parquet(sys.argv[1]).sink_parquet(sys.argv[2])"


def parquet_rows(path: Path) -> int:
    """Return the number of rows in a Parquet file or in the ``*.parquet`` files of a dir."""
    import pyarrow.parquet as pq

    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def write_projections(work_dir: Path, src: Path) -> Path:
    """Write vtx's export and onshore columns of ``src`` to ``work_dir/projections.json``.

    Computed in a child (:func:`benchmarks.baselines.projections`) so the runner never
    imports vtx or Polars: a child's ``ru_maxrss`` starts at the runner's own peak.
    """
    path = work_dir / "projections.json"
    cmd = [sys.executable, "-m", "benchmarks.baselines", "projections", str(src), str(path)]
    subprocess.run(cmd, check=True, cwd=BENCH_DIR.parent)
    return path


def method_command(
    method: str, src: Path, out: Path, key_file: Path, spec: Path | None = None
) -> list[str]:
    """Return the child command line for ``method`` reading ``src`` and writing under ``out``.

    ``spec`` is the projections file the baselines read (see :func:`write_projections`).
    """
    if method in ("vtx", "vtx-ray"):
        engine = ["--engine", "ray"] if method == "vtx-ray" else []
        return [
            sys.executable, "-m", "filter", "split", str(src),
            "--export", str(out / "export"),
            "--onshore", str(out / "onshore"),
            "--scenario", SCENARIO,
            "--key-file", str(key_file),
            "--overwrite", "--quiet", *engine,
        ]  # fmt: skip
    if method == "copy":
        return [sys.executable, "-c", COPY_SNIPPET, str(src), str(out / "copy.parquet")]
    if method in BASELINES:
        if spec is None:
            raise ValueError(f"method {method!r} needs the projections file")
        return [sys.executable, "-m", "benchmarks.baselines", method, str(src), str(spec), str(out)]
    raise ValueError(f"unknown method {method!r}")


def input_path(work_dir: Path, rows: int, vehicles: int, seed: int) -> Path:
    """The cache path of an input: keyed by generator version, rows, vehicles and seed."""
    return work_dir / f"fleet-g{GENERATOR_VERSION}-{rows}-v{vehicles}-s{seed}.parquet"


def ensure_input(work_dir: Path, rows: int, vehicles: int, seed: int) -> tuple[Path, float | None]:
    """Return the cached input for these parameters, generating it first if absent.

    The second item is the generation time in seconds, or ``None`` if cached.
    """
    path = input_path(work_dir, rows, vehicles, seed)
    if path.exists():
        return path, None
    print(f"generating {path.name} ...", flush=True)
    # In a child: generating in the runner would raise its peak RSS, which every later
    # child inherits as the floor of its ru_maxrss (Linux keeps it across fork and exec).
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "benchmarks.generate", "--rows", str(rows)]
    cmd += ["--vehicles", str(vehicles), "--seed", str(seed), "--out", str(path)]
    subprocess.run(cmd, check=True, cwd=BENCH_DIR.parent)
    return path, time.perf_counter() - started


def bench_one(
    rows: int,
    repeat: int,
    methods: Sequence[str],
    vehicles: int,
    seed: int,
    work_dir: Path,
    max_rss_gb: float | None = 16.0,
    timeout_s: float | None = 300.0,
    skipped: dict[str, str] | None = None,
    quiet_wait_s: float = 60.0,
) -> dict[str, Any]:
    """Benchmark every method on one input size and return the result record.

    Before each run the runner waits up to ``quiet_wait_s`` for the machine to be idle.

    ``skipped`` maps methods not to run (they failed on a resource limit at a smaller size)
    to the reason; methods failing here on a resource limit are added to it.
    """
    skipped = {} if skipped is None else skipped
    work_dir.mkdir(parents=True, exist_ok=True)
    src, gen_seconds = ensure_input(work_dir, rows, vehicles, seed)
    input_bytes = src.stat().st_size
    key_file = write_key_file(work_dir)
    spec = write_projections(work_dir, src) if set(methods) & set(BASELINES) else None
    repo_root = BENCH_DIR.parent
    max_rss = None if max_rss_gb is None else int(max_rss_gb * 2**30)
    warm_page_cache(src)
    compile_bytecode(repo_root)
    started = now()
    runs: dict[str, list[RunResult]] = {m: [] for m in methods}
    failures: dict[str, str] = {m: f"skipped: {skipped[m]}" for m in methods if m in skipped}
    outputs: dict[str, dict[str, dict[str, int]]] = {}
    for i in range(repeat):
        order = list(methods) if i % 2 == 0 else list(reversed(methods))
        for method in order:
            if method in failures:
                continue
            out = work_dir / f"out-{method}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            cmd = method_command(method, src, out, key_file, spec)
            # Flush the previous run's dirty pages, so that no run pays for another's write-back.
            os.sync()
            waited = wait_until_quiet(quiet_wait_s) if quiet_wait_s > 0 else 0.0
            try:
                result = measure(cmd, work_dir / f"{method}.log", repo_root, max_rss, timeout_s)
                result = dataclasses.replace(result, waited_s=waited)
            except RunFailed as failed:
                failures[method] = failed.reason
                if failed.limit:
                    skipped[method] = f"{failed.reason} at {rows:,} rows"
                print(f"  [{i + 1}/{repeat}] {method:7s} FAILED: {failed.reason}", flush=True)
                shutil.rmtree(out, ignore_errors=True)
                continue
            runs[method].append(result)
            print(
                f"  [{i + 1}/{repeat}] {method:7s} {result.wall_s:7.2f} s  "
                f"{result.peak_rss_mb:8.1f} MB peak  {result.cpu_s:7.2f} s CPU  "
                f"(others {result.other_cpu_s:.1f} s CPU, waited {waited:.0f} s)  {now()}",
                flush=True,
            )
            if method not in outputs:
                outputs[method] = {
                    p.name: {"bytes": tree_bytes(p), "rows": parquet_rows(p)}
                    for p in sorted(out.iterdir())
                }
            shutil.rmtree(out, ignore_errors=True)

    summary: dict[str, dict[str, Any]] = {}
    for method, results in runs.items():
        summary[method] = summarise(results, rows, input_bytes, failures.get(method))
        summary[method]["output"] = outputs.get(method, {})
    copy = summary.get("copy", {})
    for s in summary.values():
        if "median_wall_s" in s and "median_wall_s" in copy:
            s["ratio_wall_to_copy"] = s["median_wall_s"] / copy["median_wall_s"]
            s["ratio_rss_to_copy"] = s["median_peak_rss_mb"] / copy["median_peak_rss_mb"]
    record: dict[str, Any] = {
        "benchmark": "split",
        "date": now(),
        "started": started,
        "input": {
            "path": src.name,
            "generator": GENERATOR_VERSION,
            "rows": rows,
            "columns": len(schema()),
            "bytes": input_bytes,
            "vehicles": vehicles,
            "seed": seed,
            "generate_s": gen_seconds,
        },
        "repeat": repeat,
        # No child's peak RSS can read below this: Linux carries the runner's into ru_maxrss.
        "runner_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "limits": {"max_rss_gb": max_rss_gb, "timeout_s": timeout_s},
        "machine": machine_info(),
        "projections": None if spec is None else json.loads(spec.read_text()),
        "methods": summary,
    }
    vtx = summary.get("vtx", {})
    if "ratio_wall_to_copy" in vtx:
        record["ratio_wall_vtx_over_copy"] = vtx["ratio_wall_to_copy"]
        record["ratio_rss_vtx_over_copy"] = vtx["ratio_rss_to_copy"]
    ray = summary.get("vtx-ray", {})
    if "median_wall_s" in vtx and "median_wall_s" in ray:
        # The Ray engine's overhead on this one machine: start-up, scheduling, a second pass.
        record["ratio_wall_ray_over_vtx"] = ray["median_wall_s"] / vtx["median_wall_s"]
    return record
