"""`vtx report`: the audit report of published outputs, as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from filter.cli.output import echo


@click.command("report")
@click.argument("outputs", nargs=-1, required=True, metavar="OUTPUT_DIR...",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--html", "html_path", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write (replaced if it exists).")
def command(outputs: tuple[Path, ...], html_path: Path) -> None:
    """Write an audit report of OUTPUT_DIR... (export and/or onshore outputs; the two sides of
    a run are paired by run id): inputs, catalogue, scenario, what went where and why, and the
    value detectors' counts. From the manifests only: no data value is shown."""
    from filter.audit.report import write_report  # only for this command

    runs = write_report(outputs, html_path)
    echo(f"{html_path}: report of {len(runs)} run(s)")
