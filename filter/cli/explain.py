"""`vtx explain`: the per-field decision for an input, nothing written."""

from __future__ import annotations

from pathlib import Path

import click

from filter.cli.options import (
    catalogue_option,
    format_option,
    on_unknown_option,
    origin_option,
    scenario_option,
)
from filter.cli.output import cell, console, echo_json
from filter.formats.parquet.inputs import expand_inputs, inspect_batch
from filter.policy.pin import resolve_catalogue
from filter.policy.plan import ExportPlan, plan

_STYLE = {"export": "green", "onshore": "red", "both": "cyan"}


@click.command("explain")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@scenario_option
@origin_option
@catalogue_option
@format_option
@on_unknown_option
@click.option("--message", metavar="FULL.NAME", default=None,
              help="Explain a protobuf message type instead of Parquet INPUT (no input needed).")
@click.option("--descriptor-set", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="FileDescriptorSet with the message type (default: vtx's shipped schemas).")
@click.option("--kv-field", metavar="NAME", default=None,
              help="The repeated entries field of a key/value envelope (default: detected).")
@click.option("--kv-namespace", metavar="NAME", default="fleet", show_default=True,
              help="Catalogue namespace of key/value keys.")
def command(
    inputs: tuple[str, ...],
    scenario: str,
    origin: str | None,
    catalogue_path: Path | None,
    output_format: str,
    on_unknown: str,
    message: str | None,
    descriptor_set: Path | None,
    kv_field: str | None,
    kv_namespace: str,
) -> None:
    """Show where every field of Parquet INPUT, or of a protobuf --message type, would go
    under SCENARIO, and why. Writes nothing."""
    catalogue = resolve_catalogue(catalogue_path)
    catalogue.scenario(scenario)
    if message is not None:
        from filter.engines.protobuf_batch import descriptor_plan
        from filter.formats.protobuf.descriptors import load_schema

        decided = descriptor_plan(
            load_schema(descriptor_set, message, kv_field=kv_field), catalogue, scenario,
            on_unknown=on_unknown, origin=origin, namespace=kv_namespace,  # type: ignore[arg-type]
        )
    elif not inputs:
        raise click.UsageError("give Parquet INPUT files, or a protobuf --message type")
    else:
        sources = inspect_batch(expand_inputs(inputs))
        decided = plan(
            sources[0].schema, catalogue, scenario,
            on_unknown=on_unknown, origin=origin,  # type: ignore[arg-type]
        )
    if output_format == "json":
        echo_json([f.as_dict() for f in decided.fields])
    else:
        _print_table(decided)


def _print_table(decided: ExportPlan) -> None:
    from rich.table import Table  # only for tables: `vtx split` never loads rich

    table = Table(
        title=cell(f"{decided.catalogue_id} {decided.catalogue_version}, "
                   f"scenario {decided.scenario}"),
        title_justify="left",
    )
    for name in ("field", "class", "destination", "rule", "reason"):
        table.add_column(name, overflow="fold")
    for f in decided.fields:
        style = _STYLE[f.destination]
        table.add_row(cell(f.path), cell(f.data_class), cell(f.destination, style),
                      cell(f.rule or "-"), cell(f.reason))
    out = console()
    out.print(table)
    exported = sum(1 for f in decided.fields if f.destination in ("export", "both"))
    out.print(cell(
        f"{len(decided.fields)} fields: {exported} in the export (keys included), "
        f"{len(decided.fields) - exported} onshore only, {len(decided.unclassified)} unclassified"
    ))
