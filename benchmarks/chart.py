"""The Parquet benchmark's chart: wall time and peak RSS against rows, one line per method.

In: a results directory holding ``split-<rows>.json`` records (:mod:`benchmarks.run`). Out:
``split.png`` there (log-log, two panels), from every record of the current generator
version, with a method that failed at some size labelled so. Needs matplotlib (the
``bench`` extra); without it no chart is drawn and a line says so.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.results_readme import PARQUET_METHODS, load_parquet_records, rows_label


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
    for method in PARQUET_METHODS:
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
