"""The results README: the Parquet and protobuf tables, rendered from the result files.

In: a results directory holding ``split-<rows>.json`` (`benchmarks.run`) and
``protobuf-<messages>.json`` (`benchmarks.protobuf_run`) records. Out: ``README.md`` there,
both tables, each from the records of its generator's current version; and the table
formatting both runners print with. May fail: nothing of its own (a malformed record file is a
`KeyError` or `JSONDecodeError`, as the runners wrote it).

Its own module so that the two runners, which each rewrite the README after a run, need not
import each other: both import this, and this imports neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.generate import GENERATOR_VERSION as PARQUET_GENERATOR
from benchmarks.generate_protobuf import GENERATOR_VERSION as PROTOBUF_GENERATOR

#: Every Parquet method, in the order of tables and charts.
PARQUET_METHODS = ("vtx", "vtx-ray", "copy", "duckdb", "pyarrow", "pandas")
#: Every protobuf method, in the order of tables.
PROTOBUF_METHODS = ("vtx", "vtx-streams", "bare-parse", "fromstring")
#: Issue 7's target: vtx at least as fast as the bare parse (issue 4 asked half as fast).
TARGET_RATIO = 1.0


def fmt(value: object, spec: str) -> str:
    """Format a number with ``spec``, or ``-`` when it is missing."""
    return "-" if value is None else format(value, spec)


def rows_label(rows: int) -> str:
    """``1000000`` -> ``1M``, ``2500000`` -> ``2.5M``, ``200000`` -> ``200k``."""
    if rows >= 1_000_000:
        return f"{rows / 1e6:g}M"
    return f"{rows / 1e3:g}k" if rows >= 1000 else str(rows)


def _load_records(
    results_dir: Path, pattern: str, generator: object, size: str
) -> list[dict[str, Any]]:
    """The records of files matching `pattern` made by `generator`, by their input's `size`."""
    records = [json.loads(p.read_text()) for p in results_dir.glob(pattern)]
    current = [r for r in records if r["input"].get("generator") == generator]
    return sorted(current, key=lambda r: r["input"][size])


def load_parquet_records(results_dir: Path) -> list[dict[str, Any]]:
    """The ``split-*.json`` records of the current generator version, by rows."""
    return _load_records(results_dir, "split-*.json", PARQUET_GENERATOR, "rows")


def parquet_table(results_dir: Path) -> str:
    """Return markdown tables: one row per (size, method), then the machine of each size."""
    records = load_parquet_records(results_dir)
    lines = [
        "| rows | input MB | method | wall s | rows/s | MB/s | peak RSS MB | CPU s "
        "| wall / copy | RSS / copy | others' CPU s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rec in records:
        inp = rec["input"]
        for method in PARQUET_METHODS:
            s = rec["methods"].get(method)
            if s is None:
                continue
            head = f"| {rows_label(inp['rows'])} | {inp['bytes'] / 1e6:,.0f} | {method} "
            if s.get("status", "ok") != "ok":
                reason = s.get("reason", "failed").replace("|", "/")[:120]
                lines.append(head + f"| {reason} | | | | | | | |")
                continue
            lines.append(
                head + f"| {s['median_wall_s']:.2f} | {s['rows_per_s'] / 1e6:.2f}M "
                f"| {s['mb_per_s']:,.0f} | {s['median_peak_rss_mb']:,.0f} "
                f"| {s['median_cpu_s']:.1f} | {fmt(s.get('ratio_wall_to_copy'), '.2f')} "
                f"| {fmt(s.get('ratio_rss_to_copy'), '.2f')} "
                f"| {fmt(s.get('median_other_cpu_s'), '.1f')} |"
            )
    lines += [
        "",
        "| rows | cols | repeats | nproc | RAM GB | polars | duckdb | pyarrow | pandas | vtx "
        "| started (UTC) | finished (UTC) |",
        "|---:|---:|---:|---:|---:|---|---|---|---|---|---|---|",
    ]
    for rec in records:
        inp, mach = rec["input"], rec["machine"]
        lines.append(
            f"| {rows_label(inp['rows'])} | {inp['columns']} | {rec['repeat']} "
            f"| {mach['nproc']} | {mach['ram_gb']} | {mach['polars']} "
            f"| {mach.get('duckdb') or '-'} | {mach['pyarrow']} | {mach.get('pandas') or '-'} "
            f"| {mach['vtx'] or '-'} | {rec.get('started', '-')} | {rec['date']} |"
        )
    return "\n".join(lines) + "\n"


def load_protobuf_records(results_dir: Path) -> list[dict[str, Any]]:
    """The ``protobuf-*.json`` records of the current generator version, by messages."""
    return _load_records(results_dir, "protobuf-*.json", PROTOBUF_GENERATOR, "messages")


def protobuf_table(results_dir: Path) -> str:
    """Markdown tables: one row per (size, method), then the machine of each size ("" if none)."""
    records = load_protobuf_records(results_dir)
    if not records:
        return ""
    lines = [
        "| messages | entries | input MB | method | wall s | msgs/s | entries/s | MB/s "
        "| peak RSS MB | CPU s | loop s | loop msgs/s | rate / bare-parse | others' CPU s |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rec in records:
        inp = rec["input"]
        for method in PROTOBUF_METHODS:
            s = rec["methods"].get(method)
            if s is None:
                continue
            head = (
                f"| {rows_label(inp['messages'])} | {inp['entries'] / 1e6:.2f}M "
                f"| {inp['bytes'] / 1e6:,.0f} | {method} "
            )
            if s.get("status", "ok") != "ok":
                reason = s.get("reason", "failed").replace("|", "/")[:120]
                lines.append(head + f"| {reason} | | | | | | | | | |")
                continue
            loop_rate = s.get("loop_messages_per_s")
            lines.append(
                head + f"| {s['median_wall_s']:.2f} | {s['messages_per_s'] / 1e3:,.1f}k "
                f"| {s['entries_per_s'] / 1e6:.2f}M | {s['mb_per_s']:,.1f} "
                f"| {s['median_peak_rss_mb']:,.0f} | {s['median_cpu_s']:.1f} "
                f"| {fmt(s.get('median_loop_s'), '.2f')} "
                f"| {'-' if loop_rate is None else f'{loop_rate / 1e3:,.1f}k'} "
                f"| {fmt(s.get('ratio_rate_to_bare_parse'), '.3f')} "
                f"| {fmt(s.get('median_other_cpu_s'), '.1f')} |"
            )
    lines += [
        "",
        "| messages | repeats | vtx / bare-parse | vtx / FromString loop | generated msgs/s "
        "| nproc | RAM GB | protobuf | backend | polars | vtx | started (UTC) | finished (UTC) |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---|",
    ]
    for rec in records:
        inp, mach = rec["input"], rec["machine"]
        lines.append(
            f"| {rows_label(inp['messages'])} | {rec['repeat']} "
            f"| {fmt(rec.get('ratio_vtx_over_bare_parse'), '.3f')} "
            f"| {fmt(rec.get('ratio_vtx_over_fromstring_loop'), '.3f')} "
            f"| {inp['generate_messages_per_s']:,.0f} | {mach['nproc']} | {mach['ram_gb']} "
            f"| {mach.get('protobuf') or '-'} | {mach.get('protobuf_backend') or '-'} "
            f"| {mach['polars']} | {mach['vtx'] or '-'} | {rec.get('started', '-')} "
            f"| {rec['date']} |"
        )
    return "\n".join(lines) + "\n"


def write_readme(results_dir: Path) -> Path:
    """Rewrite ``results_dir/README.md`` from every result file there: Parquet, then protobuf.

    Called by both runners, so that each keeps the other's table. Returns the path.
    """
    parts = [
        "# Benchmark results\n\n"
        "Written by `python -m benchmarks` (Parquet) and `python -m benchmarks.protobuf_run` "
        "(protobuf); see `benchmarks/README.md` for what each method does and what each column "
        "means.\n"
    ]
    if load_parquet_records(results_dir):
        chart = results_dir / "split.png"
        parts.append(
            "\n## Parquet: `vtx split` against a copy and hand-written baselines\n\n"
            "Times are medians over the repeats, in seconds, of whole child processes (start-up "
            "included); rows/s and MB/s are input rows and input bytes over that time; RSS is the "
            "child's peak resident set size. The baselines (`duckdb`, `pyarrow`, `pandas`) only "
            "project vtx's two column lists: no token, no detectors, no manifest; they do less "
            "work than vtx.\n\n"
            + parquet_table(results_dir)
            + ("\n![wall time and peak RSS against rows](split.png)\n" if chart.exists() else "")
        )
    protobuf = protobuf_table(results_dir)
    if protobuf:
        parts.append(
            "\n## Protobuf: `vtx split` against a bare parse of a key/value stream\n\n"
            "`vtx.telemetry.v1.Envelope` messages of about 20 entries each. Times are medians "
            "over the repeats, in seconds, of whole child processes (start-up included); msgs/s, "
            "entries/s and MB/s are input messages, entries and bytes over that time. *loop s* is "
            "the child's own timed loop: for `bare-parse` reading, framing and parsing, for "
            "`fromstring` the FromString loop alone over messages framed beforehand. "
            "*rate / bare-parse* is a method's msgs/s over the bare parse's; the target for vtx "
            f"is {TARGET_RATIO}.\n\n" + protobuf
        )
    path = results_dir / "README.md"
    path.write_text("".join(parts))
    return path
