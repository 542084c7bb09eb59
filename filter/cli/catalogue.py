"""`vtx catalogue validate|show`: check and read a catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import click

from filter.cli.options import format_option
from filter.errors import EXIT_USAGE, CatalogueError
from filter.policy.catalogue import Catalogue
from filter.policy.catalogue_loading import load_catalogue
from filter.policy.diff import CatalogueDiff, diff_catalogues
from filter.policy.vocabulary import unmatched_patterns

_FILE = click.argument(
    "file", required=False, type=click.Path(dir_okay=False, path_type=Path), metavar="[FILE]"
)


@click.group("catalogue")
def command() -> None:
    """Validate, show or compare catalogues (the shipped one when FILE is not given)."""


@command.command("validate")
@_FILE
def validate(file: Path | None) -> int:
    """Check a catalogue and report every problem at once.

    Also warns about rule patterns under the VSS or fleet-telemetry roots that match no known
    field (likely typos); warnings do not fail validation.
    """
    try:
        cat = load_catalogue(file)
    except CatalogueError as exc:
        for problem in exc.problems:
            click.echo(f"vtx: error: {problem}", err=True)
        return EXIT_USAGE
    warnings = unmatched_patterns(cat)
    for warning in warnings:
        click.echo(f"vtx: warning: {warning}", err=True)
    click.echo(
        f"{cat.source}: valid: catalogue {cat.id} {cat.version}, {len(cat.rules)} rules, "
        f"{len(cat.classes)} classes, {len(cat.scenarios)} scenarios, sha256 {cat.sha256}"
        + (f", {len(warnings)} warning(s)" if warnings else "")
    )
    return 0


@command.command("diff")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--field", "fields", multiple=True, metavar="PATH",
              help="Compare on these field paths (repeatable) instead of the shipped "
              "vocabularies (all VSS leaves and fleet-telemetry keys).")
@format_option
def diff(old: Path, new: Path, fields: tuple[str, ...], output_format: str) -> None:
    """Show what changes from catalogue OLD to NEW: rules, scenarios, and field decisions."""
    result = diff_catalogues(load_catalogue(old), load_catalogue(new), fields or None)
    if output_format == "json":
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    _print_diff(result)


def _print_diff(result: CatalogueDiff) -> None:
    from rich.console import Console  # only for tables: `vtx split` never loads rich
    from rich.table import Table

    console = Console(width=max(Console().width, 140))
    console.print(f"[bold]{result.old}[/] -> [bold]{result.new}[/]")
    if result.empty:
        console.print("no changes")
        return
    for label, items in (("rules added", result.rules_added),
                         ("rules removed", result.rules_removed),
                         ("scenarios added", result.scenarios_added),
                         ("scenarios removed", result.scenarios_removed)):
        if items:
            console.print(f"{label}: {', '.join(items)}")
    for change in result.rules_changed + result.scenarios_changed:
        name = change.get("id") or change.get("scenario")
        parts = [f"{k}: {v[0]} -> {v[1]}" for k, v in change.items() if k not in ("id", "scenario")]
        console.print(f"changed {name}: " + "; ".join(parts))
    if result.fields:
        table = Table("scenario", "field", "class", "destination", "rule", "action",
                      title=f"{len(result.fields)} field decision(s) change", title_justify="left")
        for f in result.fields:
            table.add_row(
                f.scenario, f.field, _arrow(f.old_class, f.new_class),
                _arrow(f.old_destination, f.new_destination), _arrow(f.old_rule, f.new_rule),
                _arrow(f.old_action, f.new_action),
            )
        console.print(table)


def _arrow(old: object, new: object) -> str:
    return str(old or "-") if old == new else f"{old or '-'} -> {new or '-'}"


@command.command("show")
@_FILE
@format_option
def show(file: Path | None, output_format: str) -> None:
    """Print a catalogue's classes, scenarios and rules."""
    cat = load_catalogue(file)
    if output_format == "json":
        click.echo(json.dumps(_as_dict(cat), indent=2, ensure_ascii=False))
        return
    from rich.console import Console  # only for tables: `vtx split` never loads rich
    from rich.table import Table

    console = Console(width=max(Console().width, 140))
    console.print(f"[bold]{cat.id}[/] {cat.version}  sha256 {cat.sha256}\n{cat.description}\n")
    classes = Table("class", "kind", "description", title="classes", title_justify="left")
    for c in cat.classes.values():
        classes.add_row(c.name, c.kind, c.description)
    console.print(classes)
    scenarios = Table("scenario", "exports", "description", title="scenarios",
                      title_justify="left")
    for s in cat.scenarios.values():
        scenarios.add_row(s.name, ", ".join(sorted(s.classes)), s.description)
    console.print(scenarios)
    rules = Table("rule", "class", "patterns", "basis", title="rules", title_justify="left")
    for r in cat.rules:
        rules.add_row(r.id, r.data_class, "\n".join(p.text for p in r.patterns), r.basis)
    console.print(rules)


def _as_dict(cat: Catalogue) -> dict[str, object]:
    return {
        "id": cat.id,
        "version": cat.version,
        "sha256": cat.sha256,
        "source": cat.source,
        "description": cat.description,
        "keys": {k.role: {"aliases": list(k.aliases), "basis": k.basis} for k in cat.keys.values()},
        "classes": {c.name: {"kind": c.kind, "description": c.description}
                    for c in cat.classes.values()},
        "scenarios": {s.name: {"classes": sorted(s.classes), "description": s.description}
                      for s in cat.scenarios.values()},
        "rules": [
            {"id": r.id, "class": r.data_class, "patterns": [p.text for p in r.patterns],
             "basis": r.basis, "note": r.note}
            for r in cat.rules
        ],
    }
