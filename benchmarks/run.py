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

The measurement of a child is in :mod:`benchmarks.measure`, the set-up shared with the
protobuf runner in :mod:`benchmarks.environment`, the runs of one size in
:mod:`benchmarks.parquet_bench` and the chart in :mod:`benchmarks.chart`; this module holds
the command line and writes the results.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.chart import write_chart
from benchmarks.environment import DEFAULT_RESULTS_DIR, DEFAULT_WORK_DIR, now
from benchmarks.parquet_bench import DEFAULT_METHODS, DEFAULT_ROWS, METHODS, bench_one
from benchmarks.results_readme import parquet_table, write_readme


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
        print(f"rows={rows:,}  ({now()})", flush=True)
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
