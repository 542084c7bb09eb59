"""`vtx catalogue validate|show`: check and read a catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from filter.catalogue import Catalogue, load_catalogue
from filter.cli.options import format_option
from filter.errors import EXIT_USAGE, CatalogueError

_FILE = click.argument(
    "file", required=False, type=click.Path(dir_okay=False, path_type=Path), metavar="[FILE]"
)


@click.group("catalogue")
def command() -> None:
    """Validate or show a catalogue (the shipped one when FILE is not given)."""


@command.command("validate")
@_FILE
def validate(file: Path | None) -> int:
    """Check a catalogue and report every problem at once."""
    try:
        cat = load_catalogue(file)
    except CatalogueError as exc:
        for problem in exc.problems:
            click.echo(f"vtx: error: {problem}", err=True)
        return EXIT_USAGE
    click.echo(
        f"{cat.source}: valid: catalogue {cat.id} {cat.version}, {len(cat.rules)} rules, "
        f"{len(cat.classes)} classes, {len(cat.scenarios)} scenarios, sha256 {cat.sha256}"
    )
    return 0


@command.command("show")
@_FILE
@format_option
def show(file: Path | None, output_format: str) -> None:
    """Print a catalogue's classes, scenarios and rules."""
    cat = load_catalogue(file)
    if output_format == "json":
        click.echo(json.dumps(_as_dict(cat), indent=2, ensure_ascii=False))
        return
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
