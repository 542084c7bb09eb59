"""The memory budget's sizes, default and settings (`filter.memory_budget`), as a user gives
them: the option, the environment variable, the request."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from filter.cli import vtx
from filter.engines.request import SplitRequest
from filter.errors import RequestError
from filter.memory_budget import (
    GiB,
    MemoryBudget,
    MemoryBudgetExceeded,
    default_budget,
    format_size,
    parse_size,
)
from tests.conftest import KEY


@pytest.mark.parametrize(("text", "size"), [
    ("4GiB", 4 << 30), ("4G", 4 << 30), ("4 gb", 4 << 30), ("512MiB", 512 << 20),
    ("1.5GiB", 3 << 29), ("1073741824", 1 << 30), ("2048k", 2 << 20), ("1TiB", 1 << 40),
])
def test_sizes_parse_in_binary_units(text, size) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "4 parsecs", "-1GiB", "4GiB of it", "1e9"])
def test_what_is_not_a_size_is_refused(text) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_sizes_print_in_the_largest_unit() -> None:
    assert [format_size(n) for n in (80, 12 << 10, 300 << 20, 3 << 29, 12 << 30)] == [
        "80 bytes", "12 KiB", "300 MiB", "1.5 GiB", "12 GiB"]


def test_a_budget_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="below the minimum, 512 MiB"):
        MemoryBudget(100 << 20)


def test_the_default_is_half_the_machine_at_most_and_never_below_the_minimum() -> None:
    import os

    machine = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 512 << 20 <= default_budget() <= max(machine // 2, 512 << 20)


def test_the_environment_sets_the_budget_and_a_request_may_name_its_own(monkeypatch,
                                                                        tmp_path) -> None:
    monkeypatch.setenv("VTX_MEMORY_BUDGET", "3GiB")
    request = SplitRequest.of("in.parquet", tmp_path / "e", tmp_path / "o", "rnd", key=KEY)
    assert request.budget == MemoryBudget(3 * GiB)
    named = SplitRequest.of("in.parquet", tmp_path / "e", tmp_path / "o", "rnd", key=KEY,
                            memory_budget="1GiB")
    assert named.budget == MemoryBudget(GiB)
    with pytest.raises(RequestError, match="memory budget: 'lots' is not a size"):
        SplitRequest.of("in.parquet", tmp_path / "e", tmp_path / "o", "rnd", key=KEY,
                        memory_budget="lots")


def test_a_piece_over_its_share_is_refused_naming_the_place_and_the_sizes() -> None:
    budget = MemoryBudget(1 * GiB)
    budget.check(budget.piece_limit, "in.parquet", "row group 2, column 'x'", "decoding it")
    with pytest.raises(MemoryBudgetExceeded) as raised:
        budget.check(budget.piece_limit + 1, "in.parquet", "row group 2, column 'x'",
                     "decoding it")
    assert str(raised.value) == (
        "in.parquet: row group 2, column 'x': decoding it needs about 213 MiB of memory, more "
        "than a piece of the memory budget (213 MiB of 1.0 GiB) allows (--memory-budget or "
        "VTX_MEMORY_BUDGET sets the budget)")
    assert raised.value.exit_code == 1


@pytest.mark.parametrize("command", ["split", "verify"])
def test_a_bad_budget_on_the_command_line_is_a_usage_error(command, tmp_path) -> None:
    args = {"split": ["split", "x.parquet", "--export", str(tmp_path / "e"), "--onshore",
                      str(tmp_path / "o"), "--scenario", "rnd"],
            "verify": ["verify", str(tmp_path)]}[command]
    result = CliRunner().invoke(vtx, [*args, "--memory-budget", "100MiB"])
    assert result.exit_code == 2
    assert "below the minimum, 512 MiB" in result.output
    result = CliRunner(env={"VTX_MEMORY_BUDGET": "plenty"}).invoke(vtx, args)
    assert result.exit_code == 2
    assert "'plenty' is not a size" in result.output
