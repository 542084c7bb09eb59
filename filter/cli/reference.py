"""The command-line reference (`docs/cli.md`), generated from the click commands themselves.

In: the `vtx` click group. Out: Markdown: per command (groups' subcommands included, in the
order ``vtx --help`` lists them), its usage line, its help text, and a table of its options as
``--help`` shows them (names, metavar, help, default, environment variable).
May fail: nothing; `python -m filter.cli.reference --check FILE` exits 1 when FILE differs from
what would be generated, so a test keeps the document in step with the code.

Run ``python -m filter.cli.reference docs/cli.md`` after changing a command or an option.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from filter.cli import vtx

_INTRO = """\
# `vtx` command reference

Generated from the commands' own definitions by `python -m filter.cli.reference docs/cli.md`;
`tests/cli/test_cli_reference.py` fails when this file and the code disagree. What each command
does in depth: [commands.md](commands.md); exit codes: the [README](../README.md#exit-codes).
"""


def reference_markdown() -> str:
    """The whole reference, as Markdown."""
    sections = [_INTRO]
    root = vtx.make_context("vtx", [], resilient_parsing=True)
    for path, command, ctx in _commands(vtx, root):
        sections.append(_section(path, command, ctx))
    return "\n".join(sections)


def _commands(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[str, click.Command, click.Context]]:
    yield ctx.command_path, command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(
                    sub, sub.make_context(name, [], parent=ctx, resilient_parsing=True))


def _section(path: str, command: click.Command, ctx: click.Context) -> str:
    lines = [f"## `{path}`", "", "```text", command.get_usage(ctx).strip(), "```", ""]
    if command.help:
        lines += [_paragraphs(command.help), ""]
    if isinstance(command, click.Group):
        names = [n for n in command.list_commands(ctx)
                 if not (c := command.get_command(ctx, n)) or not c.hidden]
        lines += ["Commands: " + ", ".join(f"`{path} {n}`" for n in names) + ".", ""]
    rows = [record for param in command.get_params(ctx)
            if isinstance(param, click.Option) and (record := param.get_help_record(ctx))]
    if rows:
        lines += ["| option | what it does |", "| --- | --- |"]
        lines += [f"| `{_cell(names)}` | {_cell(text)} |" for names, text in rows]
        lines.append("")
    return "\n".join(lines)


def _paragraphs(text: str) -> str:
    """Help text as Markdown paragraphs: click's ``\\b`` (keep lines as they are) honoured."""
    out = []
    for block in inspect.cleandoc(text).split("\n\n"):
        if block.startswith("\b\n"):
            out.append("\n".join(f"    {line}" for line in block[2:].splitlines()))
        else:
            out.append(" ".join(block.split()))
    return "\n\n".join(out)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    """``reference.py FILE`` writes the reference; ``--check FILE`` compares (exit 1: stale)."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    files = [a for a in args if a != "--check"]
    if len(files) != 1:
        print("usage: python -m filter.cli.reference [--check] FILE", file=sys.stderr)
        return 2
    target = Path(files[0])
    text = reference_markdown()
    if check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target}: out of date; run python -m filter.cli.reference {target}",
                  file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
