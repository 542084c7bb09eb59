"""Plans: one decision per field (filter/policy/plan.py)."""

from __future__ import annotations

import tomllib

import polars as pl
import pyarrow as pa
import pytest

from filter import (
    CatalogueError,
    InputError,
    ScenarioError,
    UnclassifiedFieldsError,
    catalogue_from_mapping,
    plan,
)
from tests.conftest import MINI_CATALOGUE

SCHEMA = pl.Schema({
    "VIN": pl.String,
    "ts": pl.Datetime("us"),
    "Vehicle.Speed": pl.Float32,
    "Vehicle.Powertrain.TractionBattery.StateOfHealth": pl.Float32,
    "Vehicle.Cabin.HVAC.AmbientAirTemperature": pl.Float32,
    "Vehicle": pl.Struct({"TraveledDistance": pl.Float64,
                          "CurrentLocation": pl.Struct({"Latitude": pl.Float64})}),
    "Vehicle.Diagnostics.DTCList": pl.List(pl.String),
    "wheels": pl.List(pl.Struct({"Latitude": pl.Float64})),
    "mystery": pl.Int64,
})


def by_path(p):
    return {f.path: f for f in p.fields}


def test_every_leaf_gets_one_decision(mini_catalogue) -> None:
    decided = by_path(plan(SCHEMA, mini_catalogue, "rnd"))
    assert list(decided) == [
        "VIN", "ts", "Vehicle.Speed", "Vehicle.Powertrain.TractionBattery.StateOfHealth",
        "Vehicle.Cabin.HVAC.AmbientAirTemperature", "Vehicle.TraveledDistance",
        "Vehicle.CurrentLocation.Latitude", "Vehicle.Diagnostics.DTCList", "wheels", "mystery",
    ]
    assert decided["VIN"].destination == "onshore" and decided["VIN"].data_class == "key"
    assert decided["ts"].destination == "both"
    assert decided["Vehicle.CurrentLocation.Latitude"].data_class == "location"
    assert decided["Vehicle.CurrentLocation.Latitude"].inner == ("CurrentLocation", "Latitude")
    assert decided["Vehicle.Cabin.HVAC.AmbientAirTemperature"].destination == "onshore"


def test_struct_leaves_are_decided_apart(mini_catalogue) -> None:
    fields = [f for f in plan(SCHEMA, mini_catalogue, "rnd").fields if f.column == "Vehicle"]
    assert {(f.path, f.destination) for f in fields} == {
        ("Vehicle.TraveledDistance", "export"), ("Vehicle.CurrentLocation.Latitude", "onshore")}


def test_lists_are_classified_whole(mini_catalogue) -> None:
    decided = by_path(plan(SCHEMA, mini_catalogue, "after-sales"))
    assert decided["wheels"].data_class == "unclassified"  # not per element leaf
    assert decided["Vehicle.Diagnostics.DTCList"].destination == "export"


def test_ordinary_class_outside_the_scenario_stays_onshore(mini_catalogue) -> None:
    decided = by_path(plan(SCHEMA, mini_catalogue, "rnd"))
    soh = decided["Vehicle.Powertrain.TractionBattery.StateOfHealth"]
    assert soh.data_class == "after_sales"
    assert soh.destination == "onshore"
    assert soh.reason.startswith("not in scenario")


def test_unknown_fields_are_withheld_with_a_reason(mini_catalogue) -> None:
    p = plan(SCHEMA, mini_catalogue, "rnd")
    mystery = by_path(p)["mystery"]
    assert (mystery.data_class, mystery.destination) == ("unclassified", "onshore")
    assert mystery.rule is None
    assert "no catalogue rule" in mystery.reason
    assert p.unclassified == ["wheels", "mystery"]


def test_on_unknown_fail_lists_them(mini_catalogue) -> None:
    with pytest.raises(UnclassifiedFieldsError, match=r"2 field.*wheels, mystery"):
        plan(SCHEMA, mini_catalogue, "rnd", on_unknown="fail")


def test_missing_key_column(mini_catalogue) -> None:
    schema = {k: v for k, v in SCHEMA.items() if k != "ts"}
    with pytest.raises(InputError, match="no timestamp column: looked for timestamp, ts"):
        plan(schema, mini_catalogue, "rnd")


def test_reserved_token_column(mini_catalogue) -> None:
    with pytest.raises(InputError, match="vehicle_token"):
        plan({**SCHEMA, "vehicle_token": pl.String}, mini_catalogue, "rnd")


def test_pyarrow_schema_is_accepted(mini_catalogue) -> None:
    schema = pa.schema([("vin", pa.string()), ("timestamp", pa.timestamp("us")),
                        ("Vehicle.Speed", pa.float32())])
    assert by_path(plan(schema, mini_catalogue, "rnd"))["Vehicle.Speed"].destination == "export"


def test_explain_dict_has_the_documented_keys(mini_catalogue) -> None:
    row = plan(SCHEMA, mini_catalogue, "rnd").fields[2].as_dict()
    assert {"field", "class", "destination", "rule", "basis", "reason"} <= set(row)


def test_two_fields_with_one_dotted_path_are_refused(mini_catalogue) -> None:
    schema = {"vin": pl.String, "ts": pl.Int64, "a.b": pl.Int8, "a": pl.Struct({"B": pl.Int8})}
    with pytest.raises(InputError, match="same dotted path"):
        plan(schema, mini_catalogue, "rnd")


def test_origin_gate(mini_catalogue) -> None:
    data = tomllib.loads(MINI_CATALOGUE.read_text())
    data["scenarios"]["rnd"]["origins"] = ["test-fleet"]
    gated = catalogue_from_mapping(data)
    assert plan(SCHEMA, gated, "rnd", origin="test-fleet").origin == "test-fleet"
    with pytest.raises(ScenarioError, match="only data from test-fleet; this batch is 'customer'"):
        plan(SCHEMA, gated, "rnd", origin="customer")
    with pytest.raises(ScenarioError, match="--origin"):
        plan(SCHEMA, gated, "rnd")
    assert plan(SCHEMA, gated, "after-sales", origin="customer").scenario == "after-sales"


def test_bad_origins_and_actions_are_catalogue_errors() -> None:
    data = tomllib.loads(MINI_CATALOGUE.read_text())
    data["scenarios"]["rnd"]["origins"] = ["lab"]
    data["rules"][0]["actions"] = {"rnd": {"coarsen": "hourly"}, "nope": {"round": 1},
                                   "*": {"round": 1, "coarsen": "1h"}}
    with pytest.raises(CatalogueError) as info:
        catalogue_from_mapping(data)
    text = "\n".join(info.value.problems)
    assert "origins: must be a non-empty list of: test-fleet, customer" in text
    assert "actions.rnd.coarsen" in text and "actions.nope: no such scenario" in text
    assert "actions.*: must be" in text


def test_action_that_does_not_fit_the_type_withholds_the_field() -> None:
    data = tomllib.loads(MINI_CATALOGUE.read_text())
    for rule in data["rules"]:
        if rule["id"] == "speed":
            rule["actions"] = {"rnd": {"coarsen": "1h"}}
    decided = by_path(plan(SCHEMA, catalogue_from_mapping(data), "rnd"))
    speed = decided["Vehicle.Speed"]
    assert speed.destination == "onshore" and "cannot apply" in speed.reason


def test_exported_strings_are_scanned(mini_catalogue) -> None:
    decided = by_path(plan(SCHEMA, mini_catalogue, "after-sales"))
    assert decided["Vehicle.Diagnostics.DTCList"].scanned
    assert not decided["Vehicle.Cabin.HVAC.AmbientAirTemperature"].scanned  # not exported


def test_exported_strings_are_scanned_however_they_are_stored(mini_catalogue) -> None:
    """Issue 23, item 1: dictionary-encoded, categorical, enum, large and view strings, and
    lists, arrays and structs holding them, are all strings to the detectors."""
    import pyarrow as pa

    stored = pa.schema([
        ("vin", pa.string()), ("ts", pa.int64()),
        ("Vehicle.Service.Dictionary", pa.dictionary(pa.int32(), pa.string())),
        ("Vehicle.Service.Large", pa.large_string()),
        ("Vehicle.Service.View", pa.string_view()),
        ("Vehicle.Service.Lists", pa.list_(pa.dictionary(pa.int8(), pa.string()))),
        ("Vehicle.Service.Nested", pa.list_(pa.struct([("n", pa.int8()), ("s", pa.string())]))),
        ("Vehicle.Service.Numbers", pa.list_(pa.int32())),
    ])
    decided = by_path(plan(stored, mini_catalogue, "after-sales"))
    for path in ("Dictionary", "Large", "View", "Lists", "Nested"):
        assert decided[f"Vehicle.Service.{path}"].scanned, path
        assert decided[f"Vehicle.Service.{path}"].as_dict()["detectors"] is True
    assert not decided["Vehicle.Service.Numbers"].scanned
    polars_types = {"vin": pl.String, "ts": pl.Int64,
                    "Vehicle.Service.Category": pl.Categorical(),
                    "Vehicle.Service.Enum": pl.Enum(["a", "b"]),
                    "Vehicle.Service.Array": pl.Array(pl.String, 2)}
    decided = by_path(plan(polars_types, mini_catalogue, "after-sales"))
    assert all(decided[f"Vehicle.Service.{p}"].scanned for p in ("Category", "Enum", "Array"))


def test_binary_inside_lists_and_structs_is_withheld(mini_catalogue) -> None:
    schema = {"vin": pl.String, "ts": pl.Int64,
              "Vehicle.Service.Photos": pl.List(pl.Binary),
              "Vehicle.Service.Visit": pl.List(pl.Struct({"note": pl.String, "scan": pl.Binary}))}
    decided = by_path(plan(schema, mini_catalogue, "after-sales"))
    for path in ("Vehicle.Service.Photos", "Vehicle.Service.Visit"):
        assert decided[path].destination == "onshore", path
        assert "binary data is never exported" in decided[path].reason
