"""`vtx split`: split a batch into published export and onshore outputs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from filter.cli.options import (
    catalogue_option,
    on_unknown_option,
    origin_option,
    scenario_option,
)
from filter.cli.summary import print_summary
from filter.pseudonym import load_key
from filter.splitter import ProgressCallback, check_pin, resolve_catalogue, split


@click.command("split")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--export", "export_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to publish the export set in.")
@click.option("--onshore", "onshore_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to publish the onshore set in.")
@scenario_option
@origin_option
@catalogue_option
@click.option("--catalogue-sha256", metavar="HEX", default=None,
              help="Refuse any catalogue whose SHA-256 is not HEX (pin a reviewed version).")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Secret key for vehicle tokens (default: the file named by VTX_KEY_FILE).")
@on_unknown_option
@click.option("--overwrite", is_flag=True, help="Replace non-empty targets.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display and no summary.")
def command(
    inputs: tuple[str, ...],
    export_dir: Path,
    onshore_dir: Path,
    scenario: str,
    origin: str | None,
    catalogue_path: Path | None,
    catalogue_sha256: str | None,
    key_file: Path | None,
    on_unknown: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Split Parquet INPUT files, directories or globs into an export and an onshore set."""
    catalogue = resolve_catalogue(catalogue_path)
    check_pin(catalogue, catalogue_sha256)
    catalogue.scenario(scenario)
    key = load_key(key_file)
    with _progress(enabled=not quiet and sys.stderr.isatty()) as progress:
        result = split(
            list(inputs), export_dir, onshore_dir, scenario,
            key=key, catalogue=catalogue, on_unknown=on_unknown,  # type: ignore[arg-type]
            origin=origin, overwrite=overwrite, progress=progress,
        )
    if not quiet:
        print_summary(result)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar on stderr, by rows, when stderr is a terminal."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("splitting"), BarColumn(), TextColumn("{task.fields[rows]} rows"),
        TextColumn("file {task.fields[file]}"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )
    task = bar.add_task("split", total=None, rows="0", file="0")

    def update(done_files: int, files: int, done_rows: int, rows: int) -> None:
        bar.update(task, completed=done_rows, total=rows, rows=f"{done_rows:,}/{rows:,}",
                   file=f"{done_files}/{files}")

    with bar:
        yield update
