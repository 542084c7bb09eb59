"""Time ``vtx split`` against a plain Polars streaming copy of the same Parquet file.

In: one or more ``--rows`` sizes (plus ``--repeat``, ``--vehicles``, ``--seed``,
``--work-dir``, ``--results-dir``, ``--methods``). For each size the input is
generated with :mod:`benchmarks.generate` unless already cached in the work
dir, then every method runs ``--repeat`` times, each in a fresh subprocess,
alternating the order of the methods from one repeat to the next:

* ``vtx``  -- ``python -m filter split INPUT --export DIR --onshore DIR
  --scenario after-sales --key-file KEY --overwrite --quiet``;
* ``vtx-ray`` -- the same with ``--engine ray``: a local Ray cluster started and stopped by
  the run, so its start-up is in the time (needs ``pip install -e ".[ray]"``). Its peak RSS
  and CPU time are the driver process's: Ray's workers are not its children;
* ``copy`` -- ``pl.scan_parquet(INPUT).sink_parquet(OUTPUT)``, the floor for any
  single streaming pass over the file.

Out: per size, ``<results-dir>/split-<rows>.json`` (every run's wall time, peak
RSS and CPU time, medians, the vtx/copy ratios, input and output sizes, the
machine and library versions, the date), then ``<results-dir>/README.md``
rewritten with one table row per result file present, printed at the end.

Run as ``python -m benchmarks.run --rows 5000000 --repeat 3`` from the repo root.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.generate import generate, schema

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_WORK_DIR = BENCH_DIR / ".data"
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
METHODS = ("vtx", "vtx-ray", "copy")

COPY_SNIPPET = "import sys, polars as pl; pl.scan_parquet(sys.argv[1]).sink_parquet(sys.argv[2])"


@dataclass(frozen=True)
class RunResult:
    """One timed child process: wall time, peak RSS (ru_maxrss) and user+system CPU time."""

    wall_s: float
    peak_rss_mb: float
    cpu_s: float


def measure(cmd: Sequence[str], log: Path, cwd: Path | None = None) -> RunResult:
    """Run ``cmd`` as a child process and return its wall time, peak RSS and CPU time.

    The child's stdout and stderr go to ``log``. ``os.wait4`` reaps the child so
    its own ``ru_maxrss`` (kB on Linux) is read, not that of all children.
    Raises :class:`RuntimeError` with the log's tail if the child fails.
    """
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{cmd[:4]}... exited with {proc.returncode}:\n{tail}")
    return RunResult(
        wall_s=wall,
        peak_rss_mb=usage.ru_maxrss / 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
    )


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
        "vtx": version("vtx"),
    }


def method_command(method: str, src: Path, out: Path, key_file: Path) -> list[str]:
    """Return the child command line for ``method`` reading ``src`` and writing under ``out``."""
    if method in ("vtx", "vtx-ray"):
        engine = ["--engine", "ray"] if method == "vtx-ray" else []
        return [
            sys.executable, "-m", "filter", "split", str(src),
            "--export", str(out / "export"),
            "--onshore", str(out / "onshore"),
            "--scenario", "after-sales",
            "--key-file", str(key_file),
            "--overwrite", "--quiet", *engine,
        ]  # fmt: skip
    if method == "copy":
        return [sys.executable, "-c", COPY_SNIPPET, str(src), str(out / "copy.parquet")]
    raise ValueError(f"unknown method {method!r}")


def ensure_input(work_dir: Path, rows: int, vehicles: int, seed: int) -> tuple[Path, float | None]:
    """Return the cached input for these parameters, generating it first if absent.

    The second item is the generation time in seconds, or ``None`` if cached.
    """
    path = work_dir / f"fleet-{rows}-v{vehicles}-s{seed}.parquet"
    if path.exists():
        return path, None
    print(f"generating {path.name} ...", flush=True)
    stats = generate(path, rows=rows, vehicles=vehicles, seed=seed)
    print(f"  {stats.bytes / 1e6:,.1f} MB in {stats.seconds:.1f} s", flush=True)
    return path, stats.seconds


def write_key_file(work_dir: Path) -> Path:
    """Write a fresh 64-hex-character secret to ``work_dir/bench.key`` (mode 0600)."""
    key = work_dir / "bench.key"
    key.unlink(missing_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return key


def bench_one(
    rows: int,
    repeat: int,
    methods: Sequence[str],
    vehicles: int,
    seed: int,
    work_dir: Path,
) -> dict[str, Any]:
    """Benchmark every method on one input size and return the result record."""
    work_dir.mkdir(parents=True, exist_ok=True)
    src, gen_seconds = ensure_input(work_dir, rows, vehicles, seed)
    key_file = write_key_file(work_dir)
    repo_root = BENCH_DIR.parent
    warm_page_cache(src)
    runs: dict[str, list[RunResult]] = {m: [] for m in methods}
    outputs: dict[str, dict[str, dict[str, int]]] = {}
    for i in range(repeat):
        order = list(methods) if i % 2 == 0 else list(reversed(methods))
        for method in order:
            out = work_dir / f"out-{method}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            cmd = method_command(method, src, out, key_file)
            result = measure(cmd, work_dir / f"{method}.log", cwd=repo_root)
            runs[method].append(result)
            print(
                f"  [{i + 1}/{repeat}] {method:7s} {result.wall_s:7.2f} s  "
                f"{result.peak_rss_mb:8.1f} MB peak  {result.cpu_s:7.2f} s CPU",
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
        summary[method] = {
            "runs": [asdict(r) for r in results],
            "median_wall_s": statistics.median(r.wall_s for r in results),
            "median_peak_rss_mb": statistics.median(r.peak_rss_mb for r in results),
            "median_cpu_s": statistics.median(r.cpu_s for r in results),
            "output": outputs[method],
        }
    record: dict[str, Any] = {
        "benchmark": "split",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "input": {
            "path": src.name,
            "rows": rows,
            "columns": len(schema()),
            "bytes": src.stat().st_size,
            "vehicles": vehicles,
            "seed": seed,
            "generate_s": gen_seconds,
        },
        "repeat": repeat,
        "machine": machine_info(),
        "methods": summary,
    }
    if "vtx" in summary and "copy" in summary:
        vtx, copy = summary["vtx"], summary["copy"]
        record["ratio_wall_vtx_over_copy"] = vtx["median_wall_s"] / copy["median_wall_s"]
        record["ratio_rss_vtx_over_copy"] = vtx["median_peak_rss_mb"] / copy["median_peak_rss_mb"]
    if "vtx" in summary and "vtx-ray" in summary:
        # The Ray engine's overhead on this one machine: start-up, scheduling, a second pass.
        ray_wall = summary["vtx-ray"]["median_wall_s"]
        record["ratio_wall_ray_over_vtx"] = ray_wall / summary["vtx"]["median_wall_s"]
    return record


def _fmt(value: object, spec: str) -> str:
    """Format a number with ``spec``, or ``-`` when it is missing."""
    return "-" if value is None else format(value, spec)


def results_table(results_dir: Path) -> str:
    """Return a markdown table with one row per ``split-*.json`` file in ``results_dir``."""
    header = (
        "| rows | cols | input MB | vtx s | copy s | vtx/copy | vtx RSS MB | copy RSS MB "
        "| vtx CPU s | vtx-ray s | ray/vtx | nproc | RAM GB | polars | vtx | date |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|\n"
    )
    records = [json.loads(p.read_text()) for p in results_dir.glob("split-*.json")]
    lines = []
    for rec in sorted(records, key=lambda r: r["input"]["rows"]):
        m, inp, mach = rec["methods"], rec["input"], rec["machine"]
        vtx, copy, on_ray = m.get("vtx", {}), m.get("copy", {}), m.get("vtx-ray", {})
        lines.append(
            f"| {inp['rows']:,} | {inp['columns']} | {inp['bytes'] / 1e6:,.0f} "
            f"| {_fmt(vtx.get('median_wall_s'), '.2f')} | {_fmt(copy.get('median_wall_s'), '.2f')} "
            f"| {_fmt(rec.get('ratio_wall_vtx_over_copy'), '.2f')} "
            f"| {_fmt(vtx.get('median_peak_rss_mb'), ',.0f')} "
            f"| {_fmt(copy.get('median_peak_rss_mb'), ',.0f')} "
            f"| {_fmt(vtx.get('median_cpu_s'), '.1f')} "
            f"| {_fmt(on_ray.get('median_wall_s'), '.2f')} "
            f"| {_fmt(rec.get('ratio_wall_ray_over_vtx'), '.2f')} "
            f"| {mach['nproc']} | {mach['ram_gb']} | {mach['polars']} | {mach['vtx'] or '-'} "
            f"| {rec['date'][:10]} |"
        )
    return header + "\n".join(lines) + "\n"


def write_results(record: dict[str, Any], results_dir: Path) -> Path:
    """Write ``record`` to ``split-<rows>.json`` and rewrite ``README.md``; return the JSON path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    rows = record["input"]["rows"]
    path = results_dir / f"split-{rows}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    readme = (
        "# Benchmark results\n\n"
        "Written by `python -m benchmarks.run`; see `benchmarks/README.md` for what each "
        "column means. Times are medians over the repeats, in seconds; RSS is the child's "
        "peak resident set size.\n\n" + results_table(results_dir)
    )
    (results_dir / "README.md").write_text(readme)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: benchmark each ``--rows`` size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rows", type=int, action="append", help="input rows; repeatable (default 5000000)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (default 3)")
    parser.add_argument("--vehicles", type=int, default=2000, help="distinct VINs (default 2000)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument(
        "--methods",
        default="vtx,copy",
        help="comma-separated subset of vtx,vtx-ray,copy (default vtx,copy)",
    )
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="cached inputs")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown or not methods or args.repeat < 1:
        parser.error(f"bad --methods/--repeat: {sorted(unknown) or methods}")

    for rows in args.rows or [5_000_000]:
        print(f"rows={rows:,}", flush=True)
        record = bench_one(rows, args.repeat, methods, args.vehicles, args.seed, args.work_dir)
        path = write_results(record, args.results_dir)
        ratio = record.get("ratio_wall_vtx_over_copy")
        ray_ratio = record.get("ratio_wall_ray_over_vtx")
        print(f"  -> {path}" + (f"  (vtx/copy {ratio:.2f}x)" if ratio else "")
              + (f"  (ray/vtx {ray_ratio:.2f}x)" if ray_ratio else ""), flush=True)
    print()
    print(results_table(args.results_dir), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
