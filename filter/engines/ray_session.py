"""Ray for the engines: the import, a session for a run, and what a worker hands back.

In: an optional cluster address; on the driver, the rows workers return.
Out: the `ray` module (`import_ray`); a session (`ray_session`: the running one, or one
started for the block and shut down after); each worker row checked (`checked_rows`), its part
files as records (`part_records`); a failed task as the error vtx would report.
May fail: `RayUnavailableError` (exit 2) without the ``ray`` extra; `RayEngineError` for a
cluster that cannot be reached or a task that failed for a reason that is not the input's or
the target's; `InputError` and `OutputError` that a worker named.

Workers return errors in their rows rather than raising them: Ray Data would wrap them and
lose their type. Every worker, of Parquet blocks or protobuf units, returns one `WORKER_ROW`.
Ray is imported lazily, here only: ``import filter`` never imports it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from filter.errors import (
    EXIT_DATA,
    EXIT_USAGE,
    InputError,
    OutputError,
    VtxError,
    first_line,
    os_reason,
)
from filter.formats.parquet.inputs import ParquetInput, locate_corruption
from filter.outputs.manifest import FileRecord

if TYPE_CHECKING:
    from ray.data import Dataset

_INSTALL_HINT = ("the ray engine needs the ray extra: pip install '.[ray]' in a vtx checkout "
                 "(distribution vtx-egress)")


class RayEngineError(VtxError):
    """The Ray engine failed for a reason that is not the input's or the target's."""

    exit_code = EXIT_DATA


class RayUnavailableError(RayEngineError):
    """Ray is not installed (the ``ray`` extra)."""

    exit_code = EXIT_USAGE


def import_ray() -> ModuleType:
    """The `ray` module, with `ray.data` loaded; `RayUnavailableError` without the extra."""
    try:
        import ray
        import ray.data  # loads the submodule: ray.data.read_parquet, DataContext
    except ImportError:
        raise RayUnavailableError(_INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Use the running Ray session, or start one (local, or connected to `address`) for the
    block, with Ray's logging kept to errors and Ray Data's progress output off, and shut it
    down after."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    # Workers print nothing of ours; streaming their logs would only add Ray's own lines
    # (e.g. at shutdown) to the one-line output of the CLI.
    options: dict[str, Any] = {
        # "local": a new cluster even when `ray start` runs one here or RAY_ADDRESS is set.
        "address": address or "local", "logging_level": logging.ERROR, "log_to_driver": False,
    }
    if address is None:
        options["include_dashboard"] = False
    context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.print_on_execution_start)
    data_logger = logging.getLogger("ray.data")
    saved_level = data_logger.level
    try:
        ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RayEngineError(
            f"cannot start or reach the Ray cluster at {address or 'a new local cluster'}: "
            f"{first_line(exc)}",
            hint="start one with `ray start --head`, then use --ray-address auto",
        ) from None
    try:
        # Our own errors name the file; Ray Data's progress lines and its copies of a task's
        # traceback would break the one-line error of the CLI.
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        data_logger.setLevel(logging.CRITICAL)
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        data_logger.setLevel(saved_level)
        ray.shutdown()


@contextmanager
def translated_errors(sources: Sequence[ParquetInput] = ()) -> Iterator[None]:
    """Turn a failed Ray task into the error vtx would report: a corrupt input names its file
    and row group (found by reading the inputs again on the driver), else `RayEngineError`."""
    try:
        yield
    except VtxError:
        raise
    except Exception as exc:
        for source in sources:
            if (found := locate_corruption(source)) is not None:
                raise found from None
        raise RayEngineError(
            f"a Ray task failed: {_worker_error(exc)}; nothing was published",
            hint="run with --debug for the traceback",
        ) from exc


def _worker_error(exc: BaseException) -> str:
    """The worker's own error line from a Ray error's text (its last ``Name: message`` line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        name, sep, _ = line.partition(": ")
        if sep and name.replace(".", "").isidentifier() and name[:1].isupper():
            return line
    return first_line(exc)


#: The row a worker returns: an error, or what it found (VINs: a first pass over protobuf
#: units) or wrote (its part files and counts).
WORKER_ROW = pa.schema([
    ("error", pa.string()),  # None, "input" or "output"
    ("message", pa.string()),
    ("rows", pa.int64()),  # rows read (a Parquet block)
    ("vins", pa.list_(pa.string())),
    ("parts", pa.string()),  # JSON: [[name, export rows, bytes, sha256, onshore rows, ...]]
    ("tally", pa.string()),  # JSON: detections; of protobuf units also messages, entries ...
])


def worker_row(**values: Any) -> pa.Table:
    """One `WORKER_ROW` with `values`; the others null."""
    row: dict[str, Any] = dict.fromkeys(WORKER_ROW.names)
    row.update(values)
    return pa.Table.from_pylist([row], schema=WORKER_ROW)


def part_entry(name: str, export: FileRecord, onshore: FileRecord) -> list[Any]:
    """A written pair of part files as a worker row lists it."""
    return [name, export.rows, export.bytes, export.sha256,
            onshore.rows, onshore.bytes, onshore.sha256]


def part_records(
    row: dict[str, Any], export_dir: Path, onshore_dir: Path
) -> list[tuple[FileRecord, FileRecord]]:
    """The (export, onshore) records of the part files a worker row lists."""
    return [(FileRecord(export_dir / name, e_rows, e_bytes, e_sha),
             FileRecord(onshore_dir / name, o_rows, o_bytes, o_sha))
            for name, e_rows, e_bytes, e_sha, o_rows, o_bytes, o_sha in json.loads(row["parts"])]


def error_row(exc: Exception) -> pa.Table:
    """What vtx can name about a failure, returned rather than raised (Ray would wrap it)."""
    if isinstance(exc, InputError):
        return worker_row(error="input", message=exc.message)
    if isinstance(exc, OutputError):
        return worker_row(error="output", message=exc.message)
    assert isinstance(exc, OSError)
    return worker_row(error="output", message=f"cannot write output: {os_reason(exc)}")


def checked_rows(ds: Dataset) -> Iterator[dict[str, Any]]:
    """The worker rows of `ds` in order; a worker's error is raised as the error it names."""
    rows = iter(ds.iter_rows())
    try:
        for row in rows:
            if row["error"]:
                raise (OutputError if row["error"] == "output" else InputError)(row["message"])
            yield row
    finally:
        # On failure, stop the tasks still running before the caller discards the staging.
        close = getattr(rows, "close", None)
        if close is not None:
            close()
