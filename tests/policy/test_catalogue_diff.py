"""Comparing catalogue versions (filter/policy/diff.py, `vtx catalogue diff`)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from filter import load_catalogue
from filter.cli import vtx
from filter.policy.diff import diff_catalogues
from tests.conftest import MINI_CATALOGUE

FIELDS = ["Vehicle.Speed", "Vehicle.Cabin.Seat.Heating", "Vehicle.Body.Horn.IsActive",
          "Vehicle.Powertrain.TractionBattery.StateOfHealth"]


def new_version(tmp_path: Path) -> Path:
    """Version 2 of the mini catalogue: speed becomes after-sales data, the cabin rule goes,
    a body rule arrives, rnd also exports after_sales, and after-sales rounds battery data."""
    text = MINI_CATALOGUE.read_text()
    text = text.replace('version = "1"', 'version = "2"')
    edits = [
        ('classes = ["design", "test"]', 'classes = ["design", "test", "after_sales"]'),
        ('[[rules]]\nid = "cabin"\nclass = "cabin"\npatterns = ["Vehicle.Cabin.**"]\n'
         'basis = "test basis: cabin"\n', ""),
        ('id = "speed"\nclass = "test"', 'id = "speed"\nclass = "after_sales"'),
        ('basis = "test basis: after-sales"',
         'basis = "test basis: after-sales"\nactions = { "after-sales" = { round = 1 } }'),
    ]
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    text += '\n[[rules]]\nid = "body"\nclass = "design"\npatterns = ["Vehicle.Body.**"]\n'
    text += 'basis = "b"\n'
    path = tmp_path / "v2.toml"
    path.write_text(text)
    return path


def test_diff_reports_rules_scenarios_and_fields(tmp_path: Path) -> None:
    old, new = load_catalogue(MINI_CATALOGUE), load_catalogue(new_version(tmp_path))
    result = diff_catalogues(old, new, FIELDS)
    assert (result.old, result.new) == ("mini 1", "mini 2")
    assert result.rules_added == ["body"] and result.rules_removed == ["cabin"]
    changed = {c["id"]: c for c in result.rules_changed}
    assert changed["speed"]["class"] == ["test", "after_sales"]
    assert changed["powertrain"]["actions"] == [{}, {"after-sales": "round to 1"}]
    assert result.scenarios_changed == [
        {"scenario": "rnd", "classes": [["design", "test"], ["after_sales", "design", "test"]]}]
    by = {(f.scenario, f.field): f for f in result.fields}
    speed = by[("after-sales", "Vehicle.Speed")]
    assert (speed.old_destination, speed.new_destination) == ("onshore", "export")
    cabin = by[("rnd", "Vehicle.Cabin.Seat.Heating")]
    assert (cabin.old_class, cabin.new_class) == ("cabin", "unclassified")
    assert cabin.old_destination == cabin.new_destination == "onshore"
    horn = by[("after-sales", "Vehicle.Body.Horn.IsActive")]
    assert (horn.old_destination, horn.new_destination) == ("onshore", "export")
    soh = by[("after-sales", "Vehicle.Powertrain.TractionBattery.StateOfHealth")]
    assert (soh.old_action, soh.new_action) == (None, "round to 1")
    assert ("rnd", "Vehicle.Powertrain.TractionBattery.StateOfHealth") in by


def test_same_catalogue_has_no_diff() -> None:
    cat = load_catalogue(MINI_CATALOGUE)
    assert diff_catalogues(cat, load_catalogue(MINI_CATALOGUE), FIELDS).empty


def test_cli_diff_table_and_json(tmp_path: Path) -> None:
    runner = CliRunner()
    new = str(new_version(tmp_path))
    table = runner.invoke(vtx, ["catalogue", "diff", str(MINI_CATALOGUE), new])
    assert table.exit_code == 0, table.output
    assert "rules added: body" in table.stdout and "rules removed: cabin" in table.stdout
    assert "onshore -> export" in table.stdout
    data = json.loads(runner.invoke(vtx, ["catalogue", "diff", str(MINI_CATALOGUE), new,
                                          "--format", "json", "--field", "Vehicle.Speed"]).stdout)
    assert {f["field"] for f in data["fields"]} == {"Vehicle.Speed"}
    same = runner.invoke(vtx, ["catalogue", "diff", str(MINI_CATALOGUE), str(MINI_CATALOGUE)])
    assert "no changes" in same.stdout


def test_validate_prints_typo_warnings(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text(MINI_CATALOGUE.read_text().replace('"Vehicle.Cabin.**"', '"Vehicle.Cabn.**"'))
    result = CliRunner().invoke(vtx, ["catalogue", "validate", str(typo)])
    assert result.exit_code == 0
    assert "vtx: warning: " in result.stderr and "'Vehicle.Cabn.**'" in result.stderr
    assert "1 warning(s)" in result.stdout
