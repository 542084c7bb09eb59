"""`vtx explain`: the per-field decision for an input, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from filter.cli.options import (
    catalogue_option,
    format_option,
    on_unknown_option,
    origin_option,
    scenario_option,
)
from filter.plan import ExportPlan, plan
from filter.readers.parquet import expand_inputs, inspect_batch
from filter.splitter import resolve_catalogue

_STYLE = {"export": "green", "onshore": "red", "both": "cyan"}


@click.command("explain")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@scenario_option
@origin_option
@catalogue_option
@format_option
@on_unknown_option
def command(
    inputs: tuple[str, ...],
    scenario: str,
    origin: str | None,
    catalogue_path: Path | None,
    output_format: str,
    on_unknown: str,
) -> None:
    """Show where every field of INPUT would go under SCENARIO, and why. Writes nothing."""
    catalogue = resolve_catalogue(catalogue_path)
    catalogue.scenario(scenario)
    sources = inspect_batch(expand_inputs(inputs))
    decided = plan(
        sources[0].schema, catalogue, scenario, on_unknown=on_unknown,  # type: ignore[arg-type]
        origin=origin,
    )
    if output_format == "json":
        click.echo(json.dumps([f.as_dict() for f in decided.fields], indent=2, ensure_ascii=False))
    else:
        _print_table(decided)


def _print_table(decided: ExportPlan) -> None:
    table = Table(
        title=f"{decided.catalogue_id} {decided.catalogue_version}, scenario {decided.scenario}",
        title_justify="left",
    )
    for name in ("field", "class", "destination", "rule", "reason"):
        table.add_column(name, overflow="fold")
    for f in decided.fields:
        style = _STYLE[f.destination]
        table.add_row(f.path, f.data_class, f"[{style}]{f.destination}[/]", f.rule or "-", f.reason)
    console = Console(width=max(Console().width, 140))
    console.print(table)
    exported = sum(1 for f in decided.fields if f.destination in ("export", "both"))
    console.print(
        f"{len(decided.fields)} fields: {exported} in the export (keys included), "
        f"{len(decided.fields) - exported} onshore only, {len(decided.unclassified)} unclassified"
    )
