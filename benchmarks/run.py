"""Time ``vtx split`` against a plain Polars copy and hand-written baselines on one Parquet file.

In: one or more ``--rows`` sizes (plus ``--repeat``, ``--vehicles``, ``--seed``,
``--work-dir``, ``--results-dir``, ``--methods``, ``--max-rss-gb``, ``--timeout``). For each
size the input is generated with :mod:`benchmarks.generate` unless already cached in the work
dir, then every method runs ``--repeat`` times, each in a fresh subprocess, alternating the
order of the methods from one repeat to the next:

* ``vtx``  -- ``python -m filter split INPUT --export DIR --onshore DIR
  --scenario after-sales --key-file KEY --overwrite --quiet``;
* ``vtx-ray`` -- the same with ``--engine ray``: a local Ray cluster started and stopped by
  the run, so its start-up is in the time (needs ``pip install -e ".[ray]"``). Its peak RSS
  and CPU time are the driver process's: Ray's workers are not its children;
* ``copy`` -- ``pl.scan_parquet(INPUT).sink_parquet(OUTPUT)``, the floor for any
  single streaming pass over the file;
* ``duckdb``, ``pyarrow``, ``pandas`` -- the two projections (vtx's export and onshore
  column lists) written by DuckDB ``COPY``, by ``iter_batches`` with two ``ParquetWriter`` s,
  and by a naive ``pd.read_parquet`` + ``to_parquet`` (see :mod:`benchmarks.baselines`).

A child that exceeds ``--max-rss-gb`` or ``--timeout`` is killed; a failing method is
recorded with its reason, its remaining repeats are skipped, and after a resource limit it is
skipped at the larger sizes too. The other methods carry on.

Out: per size, ``<results-dir>/split-<rows>.json`` (every run's wall time, peak RSS and CPU
time, medians, rows/s, MB/s, the ratios to the copy, input and output sizes, the machine and
library versions, the date), then ``<results-dir>/README.md`` rewritten with a table of every
result file of the current generator version (followed by the tables of
:mod:`benchmarks.protobuf_run`'s results, if any) and ``<results-dir>/split.png`` (wall time and
peak RSS against rows, one line per method). The table is printed at the end.

Run as ``python -m benchmarks --rows 1000000 --rows 10000000`` from the repo root.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.fleet_signals import schema
from benchmarks.generate import GENERATOR_VERSION
from benchmarks.results_readme import (
    PARQUET_METHODS,
    load_parquet_records,
    parquet_table,
    rows_label,
    write_readme,
)

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_WORK_DIR = BENCH_DIR / ".data"
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
METHODS = PARQUET_METHODS
DEFAULT_METHODS = ("vtx", "copy", "duckdb", "pyarrow", "pandas")
#: Methods that write vtx's two projections and so need them computed first.
BASELINES = ("duckdb", "pyarrow", "pandas")
DEFAULT_ROWS = (1_000_000, 10_000_000)
SCENARIO = "after-sales"

COPY_SNIPPET = "import sys, polars as pl; pl.scan_parquet(sys.argv[1]).sink_parquet(sys.argv[2])"


@dataclass(frozen=True)
class RunResult:
    """One timed child process: wall time, peak RSS (ru_maxrss), user+system CPU time."""

    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    #: CPU time the rest of the machine used meanwhile (all busy time minus the child's):
    #: near 0 on a quiet machine; seconds of it mean the run competed for the cores.
    other_cpu_s: float = 0.0
    #: Seconds spent waiting for the machine to be quiet before the run (not timed).
    waited_s: float = 0.0


class RunFailed(RuntimeError):
    """A child exited non-zero or was killed; ``limit`` is set when a resource limit hit."""

    def __init__(self, reason: str, result: RunResult, limit: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result
        self.limit = limit


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float:
    """CPU seconds every core has spent busy since boot (``/proc/stat``; 0 if unreadable)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    return (sum(fields[:8]) - fields[3] - fields[4]) / _CLK_TCK


def wait_until_quiet(max_wait_s: float, threshold: float = 0.15, window_s: float = 1.0) -> float:
    """Wait until the machine's busy CPU over ``window_s`` is below ``threshold`` cores.

    Gives up after ``max_wait_s`` (the run then goes ahead, and its ``other_cpu_s`` shows
    the contention). Returns the seconds waited.
    """
    started = time.perf_counter()
    while True:
        before = busy_cpu_s()
        time.sleep(window_s)
        quiet = (busy_cpu_s() - before) / window_s < threshold
        waited = time.perf_counter() - started
        if quiet or waited >= max_wait_s:
            return waited


def _rss_bytes(pid: int) -> int:
    """Current resident set size of ``pid`` from ``/proc`` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def measure(
    cmd: Sequence[str],
    log: Path,
    cwd: Path | None = None,
    max_rss_bytes: int | None = None,
    timeout_s: float | None = None,
) -> RunResult:
    """Run ``cmd`` as a child process and return its wall time, peak RSS and CPU time.

    The child's stdout and stderr go to ``log``. ``os.wait4`` reaps the child so
    its own ``ru_maxrss`` (kB on Linux) is read, not that of all children. A watcher
    thread polls the child's RSS every 0.1 s and kills it (SIGKILL) past ``max_rss_bytes``
    or ``timeout_s``. The machine's busy CPU time is read before and after, to tell how much
    the rest of the machine competed with the child (``other_cpu_s``). Raises
    :class:`RunFailed` with the reason (and the log's tail) if the child fails or is killed.
    """
    killed: list[str] = []
    done = threading.Event()
    with log.open("wb") as out:
        busy_before = busy_cpu_s()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)

        def watch() -> None:
            while not done.wait(0.1):
                elapsed = time.perf_counter() - started
                if timeout_s is not None and elapsed > timeout_s:
                    killed.append(f"killed after the {timeout_s:.0f} s time limit")
                elif max_rss_bytes is not None and _rss_bytes(proc.pid) > max_rss_bytes:
                    killed.append(
                        f"killed above the {max_rss_bytes / 2**30:.0f} GB RSS limit "
                        f"after {elapsed:.0f} s"
                    )
                else:
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        busy = busy_cpu_s() - busy_before
        done.set()
        watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = RunResult(
        wall_s=wall,
        peak_rss_mb=usage.ru_maxrss / 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
        other_cpu_s=max(0.0, busy - usage.ru_utime - usage.ru_stime),
    )
    if killed:
        raise RunFailed(killed[0], result, limit=True)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        # A kill by the kernel's OOM killer is a resource limit too.
        oom = proc.returncode == -signal.SIGKILL
        reason = f"exited with {proc.returncode}" + (": " + " | ".join(tail) if tail else "")
        raise RunFailed(reason[-600:], result, limit=oom)
    return result


def tree_bytes(path: Path) -> int:
    """Return the total size in bytes of a file or of every file under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def parquet_rows(path: Path) -> int:
    """Return the number of rows in a Parquet file or in the ``*.parquet`` files of a dir."""
    import pyarrow.parquet as pq

    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


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


def write_key_file(work_dir: Path) -> Path:
    """Write a fresh 64-hex-character secret to ``work_dir/bench.key`` (mode 0600)."""
    key = work_dir / "bench.key"
    key.unlink(missing_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return key


def _now() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def summarise(
    results: list[RunResult], rows: int, input_bytes: int, failure: str | None
) -> dict[str, Any]:
    """Medians and throughput of one method's runs; ``status`` says whether it completed."""
    summary: dict[str, Any] = {
        "status": "failed" if failure else "ok",
        "runs": [asdict(r) for r in results],
    }
    if failure:
        summary["reason"] = failure
    if results and not failure:
        wall = statistics.median(r.wall_s for r in results)
        summary |= {
            "median_wall_s": wall,
            "median_peak_rss_mb": statistics.median(r.peak_rss_mb for r in results),
            "median_cpu_s": statistics.median(r.cpu_s for r in results),
            "median_other_cpu_s": statistics.median(r.other_cpu_s for r in results),
            "min_wall_s": min(r.wall_s for r in results),
            "rows_per_s": rows / wall,
            "mb_per_s": input_bytes / 1e6 / wall,
        }
    return summary


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
    started = _now()
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
                f"(others {result.other_cpu_s:.1f} s CPU, waited {waited:.0f} s)  {_now()}",
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
        "date": _now(),
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


def write_chart(results_dir: Path, path: Path | None = None) -> Path | None:
    """Plot wall time and peak RSS against rows, one line per method, to ``split.png``.

    Returns the path, or ``None`` when matplotlib is not installed or nothing completed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')", flush=True)
        return None
    records = load_parquet_records(results_dir)
    sizes = [r["input"]["rows"] for r in records]
    path = path or results_dir / "split.png"
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    plotted = False
    for method in METHODS:
        points = [
            (r["input"]["rows"], s["median_wall_s"], s["median_peak_rss_mb"])
            for r in records
            if (s := r["methods"].get(method)) and "median_wall_s" in s
        ]
        failed = [
            r["input"]["rows"]
            for r in records
            if (s := r["methods"].get(method)) and s.get("status", "ok") != "ok"
        ]
        if not points:
            continue
        label = method + (f" (failed at {rows_label(min(failed))})" if failed else "")
        xs, walls, rss = zip(*points, strict=True)
        style = {"marker": "o", "linewidth": 2.4 if method == "vtx" else 1.4}
        if method == "copy":
            style |= {"linestyle": "--", "color": "black"}
        (line,) = ax_t.plot(xs, walls, label=label, **style)
        ax_m.plot(xs, rss, label=label, **(style | {"color": line.get_color()}))
        plotted = True
    if not plotted:
        plt.close(fig)
        return None
    for ax, ylabel, title in (
        (ax_t, "wall time (s)", "Wall time (whole process)"),
        (ax_m, "peak RSS (MB)", "Peak RSS"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: rows_label(round(v))))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("input rows")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    mach = records[-1]["machine"]
    fig.suptitle(
        f"vtx split vs baselines ({mach['nproc']} cores, {mach['ram_gb']} GB RAM, "
        f"{records[-1]['date'][:10]})",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results(record: dict[str, Any], results_dir: Path) -> Path:
    """Write ``record`` to ``split-<rows>.json``, rewrite the chart and ``README.md``.

    Returns the JSON path.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    rows = record["input"]["rows"]
    path = results_dir / f"split-{rows}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    write_chart(results_dir)
    write_readme(results_dir)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: benchmark each ``--rows`` size and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument(
        "--rows",
        type=int,
        action="append",
        help="input rows; repeatable (default 1000000 and 10000000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (default 3)")
    parser.add_argument("--vehicles", type=int, default=2000, help="distinct VINs (default 2000)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (default {','.join(DEFAULT_METHODS)})",
    )
    parser.add_argument(
        "--max-rss-gb", type=float, default=16.0, help="kill a child above this RSS (default 16)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="kill a child after this many s (default 300)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each run, wait up to this many s for an idle machine (default 60; 0: never)",
    )
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="cached inputs")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown or not methods or args.repeat < 1:
        parser.error(f"bad --methods/--repeat: {sorted(unknown) or methods}")

    skipped: dict[str, str] = {}
    for rows in sorted(args.rows or DEFAULT_ROWS):
        print(f"rows={rows:,}  ({_now()})", flush=True)
        record = bench_one(
            rows,
            args.repeat,
            methods,
            args.vehicles,
            args.seed,
            args.work_dir,
            args.max_rss_gb,
            args.timeout,
            skipped,
            args.quiet_wait,
        )
        path = write_results(record, args.results_dir)
        ratios = "  ".join(
            f"{m}/copy {s['ratio_wall_to_copy']:.2f}x"
            for m, s in record["methods"].items()
            if "ratio_wall_to_copy" in s and m != "copy"
        )
        ray_ratio = record.get("ratio_wall_ray_over_vtx")
        print(
            f"  -> {path}  {ratios}" + (f"  (ray/vtx {ray_ratio:.2f}x)" if ray_ratio else ""),
            flush=True,
        )
    print()
    print(parquet_table(args.results_dir), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
