"""docs/cli.md is what `filter.cli.reference` generates from the commands: every command and
every option of every command is documented, and the file is not stale."""

from __future__ import annotations

from pathlib import Path

import click

from filter.cli import vtx
from filter.cli.reference import main, reference_markdown

DOC = Path(__file__).parent.parent.parent / "docs" / "cli.md"


def _all_commands(command: click.Command, path: str = "vtx"):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _all_commands(sub, f"{path} {name}")


def test_the_reference_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/cli.md is stale: run python -m filter.cli.reference docs/cli.md")


def test_every_command_and_option_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for path, command in _all_commands(vtx):
        assert f"## `{path}`" in text, path
        section = text.split(f"## `{path}`\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                for flag in param.opts + param.secondary_opts:
                    assert flag in section, f"{path}: {flag} missing"
            elif isinstance(param, click.Argument):
                assert param.human_readable_name in section, f"{path}: {param.name} missing"


def test_check_mode_reports_a_stale_file(tmp_path, capsys) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main([str(stale)]) == 0 and main(["--check", str(stale)]) == 0
