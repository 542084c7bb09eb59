"""How the CLI prints: every line through `filter.printable`, Rich consoles with markup off.

In: the lines, JSON documents and tables a command shows.
Out: `echo` (a line on stdout or stderr, escaped), `echo_json` (a JSON document), `console`
(a Rich console that never reads markup, emoji codes or highlights: a column named
``[link=https://example.invalid]Vehicle.Speed[/link]`` is printed as those characters) and
`cell` (a table cell, escaped, optionally styled by vtx itself).
May fail: nothing of its own.

Data reaches every one of them (file names, column names, rule ids, catalogue text), so no
command calls `click.echo` or makes a console of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from filter.printable import printable, printable_json

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

#: Tables are laid out at least this wide (wrapped rows are harder to read than a wide one).
TABLE_WIDTH = 140


def echo(text: str, *, err: bool = False) -> None:
    """Print `text` as one line (`printable`), on stderr with `err`."""
    click.echo(printable(text), err=err)


def echo_json(document: Any) -> None:
    """Print `document` as indented JSON (`printable_json`)."""
    click.echo(printable_json(document))


def console(*, stderr: bool = False) -> Console:
    """A Rich console for tables and summaries: markup, emoji codes and highlighting off."""
    from rich.console import Console  # only for tables: `vtx split` never loads rich

    width = max(Console().width, TABLE_WIDTH)
    return Console(width=width, stderr=stderr, markup=False, emoji=False, highlight=False)


def cell(value: object, style: str = "") -> Text:
    """A table cell or line of `value` (escaped), in vtx's own `style` if given: a `Text`,
    which Rich never parses for markup."""
    from rich.text import Text

    return Text(printable(value), style=style)
