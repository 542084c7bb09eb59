"""`vtx demo`: split a built-in sample fleet batch, end to end."""

from __future__ import annotations

from pathlib import Path

import click

from filter.cli.output import echo
from filter.cli.sample import DEMO_SCENARIO, run_demo
from filter.cli.summary import print_summary


@click.command("demo")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path),
                default=Path("vtx-demo"), metavar="[DIR]")
def command(directory: Path) -> None:
    """Write a seeded sample batch in DIR (default ./vtx-demo), split it, show the result."""
    demo = run_demo(directory)
    echo(f"sample batch: {demo.input_path} ({demo.result.rows:,} rows, "
               f"{demo.vehicles} vehicles); key: {demo.key_path}")
    print_summary(demo.result)
    echo(f"next: vtx explain {demo.input_path} --scenario {DEMO_SCENARIO}")
