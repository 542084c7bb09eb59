"""Catalogue loading and validation (filter/policy/catalogue_loading.py,
filter/policy/catalogue.py), and the shipped catalogue."""

from __future__ import annotations

import copy
import csv
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter import CatalogueError, ScenarioError, catalogue_from_mapping, load_catalogue
from filter.policy.catalogue import UNCLASSIFIED
from tests.conftest import DATA, MINI_CATALOGUE


def mini() -> dict[str, Any]:
    return tomllib.loads(MINI_CATALOGUE.read_text())


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(CatalogueError) as info:
        catalogue_from_mapping(data, source="cat.toml")
    return info.value.problems


def test_loads_and_classifies(mini_catalogue) -> None:
    assert mini_catalogue.id == "mini"
    assert len(mini_catalogue.sha256) == 64
    match = mini_catalogue.classify("Vehicle.CurrentLocation.Latitude")
    assert match is not None and match.rule.data_class == "location"
    assert mini_catalogue.classify("x_debug_counter") is None


def test_most_specific_rule_wins() -> None:
    data = mini()
    data["rules"].append({"id": "cabin-temp", "class": "test", "basis": "b",
                          "patterns": ["Vehicle.Cabin.HVAC.AmbientAirTemperature"]})
    cat = catalogue_from_mapping(data)
    assert cat.classify("Vehicle.Cabin.HVAC.AmbientAirTemperature").rule.id == "cabin-temp"
    assert cat.classify("Vehicle.Cabin.HVAC.Other").rule.id == "cabin"


def test_every_problem_is_reported_at_once() -> None:
    data = mini()
    del data["version"]
    data["colour"] = "x"
    data["classes"]["bogus"] = {"kind": "maybe"}
    data["scenarios"]["rnd"]["classes"].append("location")
    data["rules"][0]["class"] = "locaton"
    data["rules"][1]["patterns"] = ["Vehicle.Cab*"]
    data["rules"][2]["id"] = "cabin"
    del data["rules"][3]["basis"]
    problems = problems_of(data)
    text = "\n".join(problems)
    assert all(p.startswith("cat.toml: ") for p in problems)
    assert "version: required" in text
    assert "colour: unknown key" in text
    assert "classes.bogus.kind" in text
    assert "class 'location' is withheld and cannot be exported" in text
    assert "'locaton' is not declared (did you mean 'location'?)" in text
    assert "mixes a wildcard" in text
    assert "duplicate rule id" in text
    assert "basis: required" in text
    assert len(problems) >= 8


def test_tie_between_classes_is_an_error() -> None:
    data = mini()
    data["rules"] += [
        {"id": "a", "class": "test", "basis": "b", "patterns": ["Vehicle.*"]},
        {"id": "b", "class": "cabin", "basis": "b", "patterns": ["*.Speed"]},
    ]
    (problem,) = problems_of(data)
    assert "ties with" in problem and "'a'" in problem


def test_tie_within_one_class_is_allowed() -> None:
    data = mini()
    data["rules"] += [
        {"id": "a", "class": "test", "basis": "b", "patterns": ["Vehicle.*"]},
        {"id": "b", "class": "test", "basis": "b", "patterns": ["*.Speed"]},
    ]
    catalogue_from_mapping(data)


def test_unclassified_cannot_be_declared_or_exported() -> None:
    data = mini()
    data["classes"][UNCLASSIFIED] = {"kind": "ordinary"}
    data["scenarios"]["rnd"]["classes"].append(UNCLASSIFIED)
    text = "\n".join(problems_of(data))
    assert "built in" in text and "can never be exported" in text


def test_missing_keys_are_reported() -> None:
    data = mini()
    del data["keys"]["timestamp"]
    assert any("keys.timestamp" in p for p in problems_of(data))


def test_unknown_scenario_suggests_the_close_one(mini_catalogue) -> None:
    with pytest.raises(ScenarioError, match="did you mean 'after-sales'"):
        mini_catalogue.scenario("aftersales")


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("id = \n")
    with pytest.raises(CatalogueError, match=r"bad\.toml: invalid TOML"):
        load_catalogue(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read catalogue"):
        load_catalogue(tmp_path / "absent.toml")


def test_mapping_digest_is_stable() -> None:
    assert catalogue_from_mapping(mini()).sha256 == catalogue_from_mapping(
        copy.deepcopy(mini())).sha256


# --- the shipped catalogue ----------------------------------------------------------------------

SCENARIOS = {"manufacturing", "rnd", "after-sales", "used-car"}


@pytest.fixture(scope="module")
def shipped():
    return load_catalogue()


def vss_rows() -> list[dict[str, str]]:
    # Copied from ../shared/reference/vss-signals.csv (COVESA VSS, MPL 2.0): tests/data/README.md
    with (DATA / "vss-signals.csv").open() as fh:
        return list(csv.DictReader(fh))


def vss_paths() -> list[str]:
    return [row["path"] for row in vss_rows()]


def test_shipped_catalogue_has_the_four_scenarios(shipped) -> None:
    assert set(shipped.scenarios) == SCENARIOS
    for cls in ("location", "cabin", "exterior_sensing", "personal", "important"):
        assert shipped.classes[cls].kind == "withheld"
    for cls in ("design", "test", "manufacturing", "after_sales", "used_car"):
        assert shipped.classes[cls].kind == "ordinary"
    assert all(rule.basis.strip() for rule in shipped.rules)


@pytest.mark.parametrize(
    "prefix",
    ["Vehicle.CurrentLocation.", "Vehicle.Cabin.", "Vehicle.Occupant.", "Vehicle.Driver."],
)
def test_shipped_catalogue_withholds_sensitive_branches(shipped, prefix: str) -> None:
    # Every signal (sensor, actuator) is withheld; static attributes such as a seat layout or
    # the GNSS receiver's mounting position may be design data.
    leaves = [r for r in vss_rows() if r["path"].startswith(prefix)]
    assert leaves
    for row in leaves:
        match = shipped.classify(row["path"])
        assert match is not None, f"{row['path']} is unclassified"
        if row["kind"] != "attribute":
            kind = shipped.kind_of(match.rule.data_class)
            assert kind == "withheld", (row["path"], match.rule.id)


@pytest.mark.parametrize(
    "prefix",
    ["Vehicle.Powertrain.", "Vehicle.Chassis.", "Vehicle.Body.", "Vehicle.Diagnostics.",
     "Vehicle.Service.", "Vehicle.MotionManagement.", "Vehicle.LowVoltageBattery."],
)
def test_shipped_catalogue_exports_technical_branches(shipped, prefix: str) -> None:
    # Classified leaf by leaf; ordinary but for a few argued exceptions (e.g. a charging
    # point's identifier, which maps the charging network).
    paths = [r["path"] for r in vss_rows() if r["path"].startswith(prefix)]
    kinds = []
    for path in paths:
        match = shipped.classify(path)
        assert match is not None, f"{path} is unclassified"
        kinds.append(shipped.kind_of(match.rule.data_class))
    assert kinds.count("ordinary") >= 0.9 * len(kinds), prefix


def test_shipped_ordinary_branches_are_exported_somewhere(shipped) -> None:
    exportable = set().union(*(s.classes for s in shipped.scenarios.values()))
    for path in vss_paths():
        match = shipped.classify(path)
        if match and shipped.kind_of(match.rule.data_class) == "ordinary":
            assert match.rule.data_class in exportable, path


def test_shipped_catalogue_withholds_generic_coordinates(shipped) -> None:
    for path in ("location.latitude", "gps.longitude", "Vehicle.Trip.Start.Latitude"):
        match = shipped.classify(path)
        assert match is not None and shipped.kind_of(match.rule.data_class) == "withheld", path


def test_shipped_catalogue_classifies_every_vss_leaf(shipped) -> None:
    unclassified = [p for p in vss_paths() if shipped.classify(p) is None]
    assert len(vss_paths()) == 1367
    assert unclassified == []


def fleet_keys() -> list[str]:
    # Copied from ../shared/reference/fleet-telemetry-fields.csv: tests/data/README.md
    with (DATA / "fleet-telemetry-fields.csv").open() as fh:
        return [row["name"] for row in csv.DictReader(fh)]


def test_shipped_catalogue_classifies_every_fleet_key_by_its_own_name(shipped) -> None:
    keys = fleet_keys()
    assert len(keys) == 260
    for key in keys:
        match = shipped.classify(f"fleet.{key}")
        assert match is not None, f"fleet.{key} is unclassified"
        # Deliberately: by a literal pattern naming the key, not by a generic rule.
        assert match.pattern.text.casefold() in (f"fleet.{key}".casefold(),
                                                 f"fleet.{key}.**".casefold()), key


_SEGMENTS = ["Vehicle", "fleet", "Cabin", "Soc", "Location", "Speed", "x", "*", "OBD",
             "Powertrain", "TractionBattery", "Seat", "Row1", "DriverSide", "Position"]


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.sampled_from(_SEGMENTS) | st.sampled_from(fleet_keys()),
                      min_size=1, max_size=5))
def test_property_candidates_hold_every_matching_pattern_in_rule_order(shipped,
                                                                       names: list[str]) -> None:
    # The index by first two names (`Catalogue._patterns_for`) may only leave out patterns
    # that cannot match: classifying through it is classifying against every rule.
    for path in (".".join(names), ".".join(names).casefold()):
        candidates = shipped._patterns_for(path)
        every = [(r, p) for r in shipped.rules for p in r.patterns]
        matching = [(r, p) for r, p in every if p.matches(path)]
        assert [c for c in candidates if c in matching] == matching
        order = [every.index(c) for c in candidates]
        assert order == sorted(order)


@pytest.mark.parametrize(
    ("key", "kind"),
    [("Location", "withheld"), ("GpsHeading", "withheld"), ("DestinationName", "withheld"),
     ("RouteLine", "withheld"), ("LocatedAtHome", "withheld"), ("VehicleName", "withheld"),
     ("MediaNowPlayingTitle", "withheld"), ("DriverSeatOccupied", "withheld"),
     ("GuestModeEnabled", "withheld"), ("Soc", "ordinary"), ("PackVoltage", "ordinary"),
     ("TpmsPressureFl", "ordinary"), ("DiStatorTempR", "ordinary"), ("Odometer", "ordinary"),
     ("ServiceMode", "ordinary"), ("DCChargingPower", "ordinary")],
)
def test_fleet_keys_land_where_they_belong(shipped, key: str, kind: str) -> None:
    match = shipped.classify(f"fleet.{key}")
    assert shipped.kind_of(match.rule.data_class) == kind


def test_new_firmware_keys_stay_unclassified(shipped) -> None:
    assert shipped.classify("fleet.SomeKeyFromNewFirmware") is None


def test_shipped_catalogue_has_no_typo_warnings(shipped) -> None:
    from filter.policy.vocabulary import unmatched_patterns

    assert unmatched_patterns(shipped) == []


def test_typo_guard_warns_about_unmatched_vocabulary_patterns() -> None:
    from filter.policy.vocabulary import unmatched_patterns

    data = mini()
    data["rules"].append({"id": "typo", "class": "cabin", "basis": "b",
                          "patterns": ["Vehicle.Cabn.**", "**.Whatever", "camera.*.**"]})
    warnings = unmatched_patterns(catalogue_from_mapping(data, source="cat.toml"))
    assert len(warnings) == 1
    assert "rules[5] (id 'typo'): pattern 'Vehicle.Cabn.**' matches no known field" in warnings[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b", "C", "*", "**"]), min_size=1, max_size=4),
                min_size=2, max_size=12))
def test_tie_check_compares_every_pair_that_can_overlap(segment_lists) -> None:
    from filter.policy.catalogue_loading import _candidate_pairs
    from filter.policy.patterns import compile_pattern

    # Rules of two classes, in turn: pairs of one class never tie, so are never compared.
    patterns = [compile_pattern(".".join(s)) for s in segment_lists]
    rules = [SimpleNamespace(data_class="ab"[i % 2]) for i in range(len(patterns))]
    group = list(zip(rules, patterns, strict=True))
    candidates = set(_candidate_pairs(group))  # type: ignore[arg-type]
    for i, a in enumerate(patterns):
        for j in range(i + 1, len(patterns)):
            if a.overlaps(patterns[j]) and i % 2 != j % 2:
                assert (i, j) in candidates
            if i % 2 == j % 2:
                assert (i, j) not in candidates


def _many_rules(count: int, pattern) -> dict[str, Any]:
    data = mini()
    data["rules"] = [{"id": f"r{i}", "class": "cabin", "basis": "b", "patterns": [pattern(i)]}
                     for i in range(count)]
    return data


def _two_class_rules(count: int, pattern) -> dict[str, Any]:
    data = mini()
    data["rules"] = [{"id": f"r{i}", "class": ("cabin", "design")[i % 2], "basis": "b",
                      "patterns": [pattern(i)]} for i in range(count)]
    return data


def test_a_catalogue_beyond_the_limits_is_refused(tmp_path: Path) -> None:
    from filter.policy.catalogue_loading import MAX_CATALOGUE_BYTES, MAX_RULES

    assert problems_of(_many_rules(MAX_RULES + 1, lambda i: f"Vehicle.X{i}")) == [
        f"cat.toml: rules: {MAX_RULES + 1:,} rules: at most {MAX_RULES:,} are allowed"]
    big = tmp_path / "big.toml"
    big.write_bytes(MINI_CATALOGUE.read_bytes() + b"#" * MAX_CATALOGUE_BYTES)
    with pytest.raises(CatalogueError, match="larger than 16,777,216 bytes"):
        load_catalogue(big)


def test_many_wildcard_rules_load_quickly_and_ties_are_reported_up_to_a_cap() -> None:
    # Each took seconds to minutes, or gigabytes, when every pair of one rank was compared:
    # 5,000 rules of one class; 5,000 of two classes that cannot meet (a name at a fixed
    # place differs); and 5,000 of two classes that all tie (reported up to the cap).
    from filter.policy.catalogue_loading import MAX_TIES_SHOWN

    catalogue_from_mapping(_many_rules(5_000, lambda i: "**.*." * 10 + f"x{i}"))
    catalogue_from_mapping(_two_class_rules(5_000, lambda i: f"*.*.a{i}.**.*"))
    catalogue_from_mapping(_two_class_rules(5_000, lambda i: f"**.x{i}"))
    found = problems_of(_two_class_rules(5_000, lambda i: f"**.x{i}.**"))
    assert len(found) == MAX_TIES_SHOWN + 1
    assert all("ties with" in p for p in found[:-1]) and "not all are shown" in found[-1]
