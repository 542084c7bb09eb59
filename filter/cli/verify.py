"""`vtx verify`: check a published output against its manifest, catalogue and counterpart.

Clean: one summary line on stdout, exit 0. Failures: one line ``vtx: verify: ...`` per failure
on stderr (no summary), exit 3. An output that cannot be checked at all (not a directory, a
catalogue that does not load) is an ordinary error: ``vtx: error: ...``, exit 1 or 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from filter.cli.options import catalogue_option
from filter.errors import EXIT_OK, EXIT_VERIFY

_DIR = click.Path(file_okay=False, path_type=Path)


@click.command("verify")
@click.argument("export_dir", type=_DIR)
@click.option("--onshore", "onshore_dir", type=_DIR, default=None,
              help="The onshore counterpart: also check it and reconcile the two.")
@catalogue_option
def command(export_dir: Path, onshore_dir: Path | None, catalogue_path: Path | None) -> int:
    """Check EXPORT_DIR: hashes, row counts and files against its manifest, every column
    against the catalogue and scenario, every string value against the detectors, and (with
    --onshore) no onshore VIN in the export and both sides reconciling. Exit 3 on failures."""
    from filter.verify import verify_output  # only for this command: it loads protobuf

    report = verify_output(export_dir, onshore_dir, catalogue_path)
    if report.ok:
        click.echo(report.summary())
        return EXIT_OK
    for failure in report.failures:
        click.echo(f"vtx: verify: {failure}", err=True)
    return EXIT_VERIFY
