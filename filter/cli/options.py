"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from filter.memory_budget import ENVIRONMENT_VARIABLE, MemoryBudget
from filter.policy.catalogue import ORIGINS

F = TypeVar("F", bound=Callable[..., Any])


def catalogue_option(func: F) -> F:
    """``--catalogue FILE``: the catalogue to apply (the shipped one by default)."""
    return click.option(
        "--catalogue",
        "catalogue_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Catalogue TOML file (default: the shipped lingang-icv catalogue).",
    )(func)


def scenario_option(func: F) -> F:
    """``--scenario NAME``: the Lingang scenario whose ordinary classes may be exported."""
    return click.option(
        "--scenario",
        required=True,
        metavar="NAME",
        help="Scenario: manufacturing, rnd, after-sales or used-car (as the catalogue defines).",
    )(func)


def on_unknown_option(func: F) -> F:
    """``--on-unknown withhold|fail``: what to do with fields no rule classifies."""
    return click.option(
        "--on-unknown",
        type=click.Choice(["withhold", "fail"]),
        default="withhold",
        show_default=True,
        help="Withhold unclassified fields onshore, or stop and list them.",
    )(func)


def format_option(func: F) -> F:
    """``--format table|json``."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Human-readable table or JSON.",
    )(func)


def origin_option(func: F) -> F:
    """``--origin test-fleet|customer``: where the batch comes from (some scenarios require it)."""
    return click.option(
        "--origin",
        type=click.Choice(list(ORIGINS)),
        default=None,
        help="Where the batch comes from; required by scenarios that accept only some origins "
        "(the shipped rnd scenario takes test-fleet data only).",
    )(func)


def memory_budget_option(func: F) -> F:
    """``--memory-budget SIZE``: the memory a run may use (default: VTX_MEMORY_BUDGET, else
    half the machine's)."""

    def parsed(_ctx: click.Context, _param: click.Parameter, value: str | None) -> MemoryBudget:
        try:
            return MemoryBudget.of(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(
        "--memory-budget", metavar="SIZE", envvar=ENVIRONMENT_VARIABLE, show_envvar=True,
        default=None, callback=parsed,
        help="Memory the run may use, e.g. 4GiB (default: half the machine's, or of its "
             "cgroup or ulimit). Input that would not fit is refused before it is decoded.",
    )(func)
