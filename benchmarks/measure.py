"""Measures one benchmark child process: wall time, peak RSS, CPU time, and the others' CPU.

In: a command line, a log path and optional limits (peak RSS, wall time). Out:
:func:`measure`'s :class:`RunResult` (the child's own ``ru_maxrss`` and CPU time from
``os.wait4``, the wall time from ``Popen`` to reaping, the CPU time the rest of the machine
used meanwhile from ``/proc/stat``), :func:`wait_until_quiet` to start each run on an idle
machine, :func:`summarise` for the medians and throughput of one method's runs, and
:func:`tree_bytes` for the size of what a run wrote. Shared by the Parquet runner
(:mod:`benchmarks.parquet_bench`) and the protobuf one (:mod:`benchmarks.protobuf_run`).
May fail: :class:`RunFailed` when a child exits non-zero or is killed at a limit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


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
