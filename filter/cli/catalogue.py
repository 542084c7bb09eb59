"""`vtx catalogue validate|show`: check and read a catalogue."""

from __future__ import annotations

from pathlib import Path

import click

from filter.cli.options import format_option
from filter.cli.output import cell, console, echo, echo_json
from filter.errors import EXIT_USAGE, CatalogueError
from filter.policy.catalogue import Catalogue
from filter.policy.catalogue_loading import (
    MAX_CATALOGUE_BYTES,
    MAX_PATTERNS,
    MAX_RULES,
    load_catalogue,
)
from filter.policy.diff import CatalogueDiff, diff_catalogues
from filter.policy.patterns import MAX_SEGMENT_CHARS, MAX_SEGMENTS
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
            echo(f"vtx: error: {problem}", err=True)
        return EXIT_USAGE
    warnings = unmatched_patterns(cat)
    for warning in warnings:
        echo(f"vtx: warning: {warning}", err=True)
    echo(
        f"{cat.source}: valid: catalogue {cat.id} {cat.version}, {len(cat.rules)} rules, "
        f"{len(cat.classes)} classes, {len(cat.scenarios)} scenarios, sha256 {cat.sha256}"
        + (f", {len(warnings)} warning(s)" if warnings else "")
    )
    echo(f"  limits: {MAX_RULES:,} rules, {MAX_PATTERNS:,} patterns, {MAX_SEGMENTS} segments a "
         f"pattern, {MAX_SEGMENT_CHARS} characters a segment, {MAX_CATALOGUE_BYTES:,} bytes a "
         "file (beyond them a catalogue is refused)")
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
        echo_json(result.as_dict())
        return
    _print_diff(result)


def _print_diff(result: CatalogueDiff) -> None:
    from rich.table import Table  # only for tables: `vtx split` never loads rich
    from rich.text import Text

    out = console()
    out.print(Text.assemble(cell(result.old, "bold"), " -> ", cell(result.new, "bold")))
    if result.empty:
        out.print("no changes")
        return
    for label, items in (("rules added", result.rules_added),
                         ("rules removed", result.rules_removed),
                         ("scenarios added", result.scenarios_added),
                         ("scenarios removed", result.scenarios_removed)):
        if items:
            out.print(cell(f"{label}: {', '.join(items)}"))
    for change in result.rules_changed + result.scenarios_changed:
        name = change.get("id") or change.get("scenario")
        parts = [f"{k}: {v[0]} -> {v[1]}" for k, v in change.items() if k not in ("id", "scenario")]
        out.print(cell(f"changed {name}: " + "; ".join(parts)))
    if result.fields:
        table = Table("scenario", "field", "class", "destination", "rule", "action",
                      title=f"{len(result.fields)} field decision(s) change", title_justify="left")
        for f in result.fields:
            table.add_row(*map(cell, (
                f.scenario, f.field, _arrow(f.old_class, f.new_class),
                _arrow(f.old_destination, f.new_destination), _arrow(f.old_rule, f.new_rule),
                _arrow(f.old_action, f.new_action),
            )))
        out.print(table)


def _arrow(old: object, new: object) -> str:
    return str(old or "-") if old == new else f"{old or '-'} -> {new or '-'}"


@command.command("show")
@_FILE
@format_option
def show(file: Path | None, output_format: str) -> None:
    """Print a catalogue's classes, scenarios and rules."""
    cat = load_catalogue(file)
    if output_format == "json":
        echo_json(_as_dict(cat))
        return
    from rich.table import Table  # only for tables: `vtx split` never loads rich
    from rich.text import Text

    out = console()
    out.print(Text.assemble(cell(cat.id, "bold"), cell(f" {cat.version}  sha256 {cat.sha256}")))
    out.print(cell(cat.description))
    out.print()
    classes = Table("class", "kind", "description", title="classes", title_justify="left")
    for c in cat.classes.values():
        classes.add_row(cell(c.name), cell(c.kind), cell(c.description))
    out.print(classes)
    scenarios = Table("scenario", "exports", "description", title="scenarios",
                      title_justify="left")
    for s in cat.scenarios.values():
        scenarios.add_row(cell(s.name), cell(", ".join(sorted(s.classes))), cell(s.description))
    out.print(scenarios)
    rules = Table("rule", "class", "patterns", "basis", title="rules", title_justify="left")
    for r in cat.rules:
        # A pattern per line: each escaped, the lines vtx's own.
        patterns = Text("\n").join(cell(p.text) for p in r.patterns)
        rules.add_row(cell(r.id), cell(r.data_class), patterns, cell(r.basis))
    out.print(rules)


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
