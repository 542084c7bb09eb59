"""Time ``vtx split`` on a key/value protobuf stream against a bare parse of the same file.

In: one or more ``--messages`` sizes (plus ``--repeat``, ``--vehicles``, ``--seed``,
``--work-dir``, ``--results-dir``, ``--methods``, ``--max-rss-gb``, ``--timeout``,
``--quiet-wait``). For each size the input, a varint-length-delimited stream of
``vtx.telemetry.v1.Envelope`` messages of about 20 entries each, is generated with
:mod:`benchmarks.generate_protobuf` unless already cached in the work dir, then every method
runs ``--repeat`` times, each in a fresh subprocess, alternating the order of the methods from
one repeat to the next, measured like the Parquet benchmark (:func:`benchmarks.measure.measure`:
wall time, peak RSS, CPU time, the rest of the machine's CPU time):

* ``vtx`` -- ``python -m filter split INPUT --format protobuf --message
  vtx.telemetry.v1.Envelope --export DIR --onshore DIR --scenario after-sales --key-file KEY
  --overwrite --quiet``;
* ``bare-parse`` -- read the file, frame it and ``Envelope.FromString`` every message, nothing
  else (:mod:`benchmarks.protobuf_parse`): the floor of any protobuf split;
* ``fromstring`` -- frame the whole file into a list first, then time only the
  ``FromString`` loop over it: the bare FromString loop rate.

A child that exceeds ``--max-rss-gb`` or ``--timeout`` is killed; a failing method is
recorded with its reason, its remaining repeats are skipped, and after a resource limit it is
skipped at the larger sizes too. The other methods carry on.

Out: per size, ``<results-dir>/protobuf-<messages>.json`` (every run's wall time, peak RSS and
CPU time; the parse children's own loop times; medians; messages/s, entries/s and MB/s; each
method's rate and peak RSS over the bare parse's; the headline ``ratio_vtx_over_bare_parse``;
vtx's output sizes, rows and entry counts; input size; machine and library versions; the
date), then ``<results-dir>/README.md`` rewritten with the Parquet and protobuf tables of every
result file of the current generator versions (:func:`benchmarks.results_readme.write_readme`). The
protobuf table is printed at the end.

Run as ``python -m benchmarks.protobuf_run --messages 1000000`` from the repo root.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.environment import (
    BENCH_DIR,
    DEFAULT_RESULTS_DIR,
    DEFAULT_WORK_DIR,
    SCENARIO,
    compile_bytecode,
    machine_info,
    now,
    warm_page_cache,
    write_key_file,
)
from benchmarks.generate_protobuf import GENERATOR_VERSION, stats_path
from benchmarks.measure import (
    RunFailed,
    RunResult,
    measure,
    summarise,
    tree_bytes,
    wait_until_quiet,
)
from benchmarks.protobuf_parse import ENVELOPE
from benchmarks.results_readme import (
    PROTOBUF_METHODS,
    TARGET_RATIO,
    protobuf_table,
    write_readme,
)

METHODS = PROTOBUF_METHODS
#: Methods run by :mod:`benchmarks.protobuf_parse`, which report their own loop time.
PARSE_METHODS = ("bare-parse", "fromstring")
DEFAULT_MESSAGES = (1_000_000,)


def method_command(method: str, src: Path, out: Path, key_file: Path) -> list[str]:
    """Return the child command line for ``method`` reading ``src`` and writing under ``out``."""
    if method in ("vtx", "vtx-streams"):
        streams = ["--output-format", "protobuf"] if method == "vtx-streams" else []
        return [
            sys.executable, "-m", "filter", "split", str(src),
            "--format", "protobuf", "--message", ENVELOPE,
            "--export", str(out / "export"),
            "--onshore", str(out / "onshore"),
            "--scenario", SCENARIO,
            "--key-file", str(key_file),
            "--overwrite", "--quiet", *streams,
        ]  # fmt: skip
    if method in PARSE_METHODS:
        report = out / "report.json"
        return [sys.executable, "-m", "benchmarks.protobuf_parse", method, str(src), str(report)]
    raise ValueError(f"unknown method {method!r}")


def input_path(work_dir: Path, messages: int, vehicles: int, seed: int) -> Path:
    """The cache path of an input: keyed by generator version, messages, vehicles and seed."""
    return work_dir / f"telemetry-g{GENERATOR_VERSION}-{messages}-v{vehicles}-s{seed}.pb"


def ensure_input(
    work_dir: Path, messages: int, vehicles: int, seed: int
) -> tuple[Path, dict[str, Any], float | None]:
    """Return the cached input and its generator statistics, generating it first if absent.

    The third item is the generation time in seconds, or ``None`` if cached.
    """
    path = input_path(work_dir, messages, vehicles, seed)
    if path.exists() and stats_path(path).exists():
        return path, json.loads(stats_path(path).read_text()), None
    print(f"generating {path.name} ...", flush=True)
    # In a child, like the Parquet runner: the runner's own peak RSS is every child's floor.
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "benchmarks.generate_protobuf", "--messages", str(messages)]
    cmd += ["--vehicles", str(vehicles), "--seed", str(seed), "--out", str(path)]
    subprocess.run(cmd, check=True, cwd=BENCH_DIR.parent)
    return path, json.loads(stats_path(path).read_text()), time.perf_counter() - started


def vtx_outputs(out: Path) -> dict[str, Any]:
    """Sizes and rows of vtx's two outputs, and the entry counts of its export manifest."""
    from filter.outputs.manifest import manifest_if_any

    manifests = {p.name: m for p in sorted(out.iterdir())
                 if p.is_dir() and (m := manifest_if_any(p)) is not None}
    outputs: dict[str, Any] = {  # rows: Parquet rows, or messages of the streams
        name: {"bytes": tree_bytes(out / name), "rows": m.rows}
        for name, m in manifests.items()
    }
    if "export" in manifests:
        outputs["entries"] = manifests["export"].to_json().get("entries")
    return outputs


def summarise_method(
    results: list[RunResult],
    reports: list[dict[str, Any]],
    stats: dict[str, Any],
    failure: str | None,
) -> dict[str, Any]:
    """Medians and rates of one method's runs (and of its children's own loop times)."""
    messages, entries, size = stats["messages"], stats["entries"], stats["bytes"]
    summary = summarise(results, messages, size, failure)
    if "median_wall_s" not in summary:
        return summary
    wall = summary["median_wall_s"]
    summary["messages_per_s"] = summary.pop("rows_per_s")
    summary["entries_per_s"] = entries / wall
    if reports:
        loop = statistics.median(r["loop_s"] for r in reports)
        summary |= {
            "median_load_s": statistics.median(r["load_s"] for r in reports),
            "median_frame_s": statistics.median(r["frame_s"] for r in reports),
            "median_loop_s": loop,
            "loop_messages_per_s": messages / loop,
            "loop_entries_per_s": entries / loop,
            "loop_mb_per_s": size / 1e6 / loop,
        }
    return summary


def bench_one(
    messages: int,
    repeat: int,
    methods: Sequence[str],
    vehicles: int,
    seed: int,
    work_dir: Path,
    max_rss_gb: float | None = 16.0,
    timeout_s: float | None = 1800.0,
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
    src, stats, gen_seconds = ensure_input(work_dir, messages, vehicles, seed)
    key_file = write_key_file(work_dir)
    repo_root = BENCH_DIR.parent
    max_rss = None if max_rss_gb is None else int(max_rss_gb * 2**30)
    warm_page_cache(src)
    compile_bytecode(repo_root)
    started = now()
    runs: dict[str, list[RunResult]] = {m: [] for m in methods}
    reports: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    failures: dict[str, str] = {m: f"skipped: {skipped[m]}" for m in methods if m in skipped}
    outputs: dict[str, dict[str, Any]] = {}
    for i in range(repeat):
        order = list(methods) if i % 2 == 0 else list(reversed(methods))
        for method in order:
            if method in failures:
                continue
            out = work_dir / f"out-pb-{method}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            cmd = method_command(method, src, out, key_file)
            # Flush the previous run's dirty pages, so that no run pays for another's write-back.
            os.sync()
            waited = wait_until_quiet(quiet_wait_s) if quiet_wait_s > 0 else 0.0
            log = work_dir / f"pb-{method}.log"
            try:
                result = measure(cmd, log, repo_root, max_rss, timeout_s)
                result = dataclasses.replace(result, waited_s=waited)
                if method in PARSE_METHODS:
                    report = json.loads((out / "report.json").read_text())
                    if report["messages"] != stats["messages"]:
                        reason = f"parsed {report['messages']:,} of {stats['messages']:,} messages"
                        raise RunFailed(reason, result)
                    reports[method].append(report)
            except RunFailed as failed:
                failures[method] = failed.reason
                if failed.limit:
                    skipped[method] = f"{failed.reason} at {messages:,} messages"
                print(f"  [{i + 1}/{repeat}] {method:10s} FAILED: {failed.reason}", flush=True)
                shutil.rmtree(out, ignore_errors=True)
                continue
            runs[method].append(result)
            loop = f"  loop {reports[method][-1]['loop_s']:.2f} s" if reports[method] else ""
            print(
                f"  [{i + 1}/{repeat}] {method:10s} {result.wall_s:7.2f} s  "
                f"{result.peak_rss_mb:8.1f} MB peak  {result.cpu_s:7.2f} s CPU{loop}  "
                f"(others {result.other_cpu_s:.1f} s CPU, waited {waited:.0f} s)  {now()}",
                flush=True,
            )
            if method in ("vtx", "vtx-streams") and method not in outputs:
                outputs[method] = vtx_outputs(out)
            shutil.rmtree(out, ignore_errors=True)

    summary: dict[str, dict[str, Any]] = {}
    for method, results in runs.items():
        summary[method] = summarise_method(results, reports[method], stats, failures.get(method))
        summary[method]["output"] = outputs.get(method, {})
    bare = summary.get("bare-parse", {})
    for s in summary.values():
        if "messages_per_s" in s and "messages_per_s" in bare:
            s["ratio_rate_to_bare_parse"] = s["messages_per_s"] / bare["messages_per_s"]
            s["ratio_rss_to_bare_parse"] = s["median_peak_rss_mb"] / bare["median_peak_rss_mb"]
    backends = {r["backend"] for rs in reports.values() for r in rs}
    record: dict[str, Any] = {
        "benchmark": "protobuf",
        "date": now(),
        "started": started,
        "input": {
            "path": src.name,
            "generator": GENERATOR_VERSION,
            "message": ENVELOPE,
            "framing": "delimited",
            "messages": stats["messages"],
            "entries": stats["entries"],
            "bytes": stats["bytes"],
            "vehicles": vehicles,
            "seed": seed,
            "generate_s": gen_seconds,
            "generate_messages_per_s": stats["messages"] / stats["seconds"],
        },
        "repeat": repeat,
        # No child's peak RSS can read below this: Linux carries the runner's into ru_maxrss.
        "runner_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "limits": {"max_rss_gb": max_rss_gb, "timeout_s": timeout_s},
        "machine": machine_info()
        | {
            "protobuf": _version("protobuf"),
            "protobuf_backend": ",".join(sorted(backends)) or None,
        },
        "target_ratio_vtx_over_bare_parse": TARGET_RATIO,
        "methods": summary,
    }
    vtx, loop = summary.get("vtx", {}), summary.get("fromstring", {})
    if "ratio_rate_to_bare_parse" in vtx:
        record["ratio_vtx_over_bare_parse"] = vtx["ratio_rate_to_bare_parse"]
    if "messages_per_s" in vtx and "loop_messages_per_s" in loop:
        record["ratio_vtx_over_fromstring_loop"] = (
            vtx["messages_per_s"] / loop["loop_messages_per_s"]
        )
    return record


def _version(dist: str) -> str | None:
    """The installed version of ``dist``, or ``None``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def write_results(record: dict[str, Any], results_dir: Path) -> Path:
    """Write ``record`` to ``protobuf-<messages>.json`` and rewrite ``README.md``.

    Returns the JSON path.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"protobuf-{record['input']['messages']}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    write_readme(results_dir)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: benchmark each ``--messages`` size and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.protobuf_run", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument(
        "--messages",
        type=int,
        action="append",
        help="input messages; repeatable (default 1000000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (default 3)")
    parser.add_argument("--vehicles", type=int, default=2000, help="distinct VINs (default 2000)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (default all)",
    )
    parser.add_argument(
        "--max-rss-gb", type=float, default=16.0, help="kill a child above this RSS (default 16)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="kill a child after this many s (default 1800)",
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
    sizes = sorted(args.messages or DEFAULT_MESSAGES)
    if sizes[0] < 1:
        parser.error("--messages must be positive")

    skipped: dict[str, str] = {}
    for messages in sizes:
        print(f"messages={messages:,}  ({now()})", flush=True)
        record = bench_one(
            messages,
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
        ratio = record.get("ratio_vtx_over_bare_parse")
        print(
            f"  -> {path}"
            + (f"  vtx/bare-parse {ratio:.3f} (target {TARGET_RATIO})" if ratio else ""),
            flush=True,
        )
    print()
    print(protobuf_table(args.results_dir), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
