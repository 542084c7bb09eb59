"""The in-memory split and its inverse (apply/columns.py via split_frame,
apply/reconstruct.py)."""

from __future__ import annotations

import copy
import tomllib
from datetime import datetime

import polars as pl
from polars.testing import assert_frame_equal

from filter import catalogue_from_mapping, plan, split_frame, vehicle_token
from filter.apply.reconstruct import reconstruct
from tests import manifests
from tests.conftest import KEY, MINI_CATALOGUE


def test_export_holds_only_exported_fields(batch: pl.DataFrame, mini_catalogue) -> None:
    export, onshore = split_frame(batch, "after-sales", key=KEY, catalogue=mini_catalogue)
    assert export.columns[:2] == ["vehicle_token", "timestamp"]
    assert "vin" not in export.columns
    assert "Vehicle.Cabin.HVAC.AmbientAirTemperature" not in export.columns
    assert "x_debug_counter" in onshore.columns
    assert onshore.columns[:3] == ["vin", "vehicle_token", "timestamp"]
    assert export.height == onshore.height == batch.height


def test_split_struct_keeps_its_leaves_apart(batch: pl.DataFrame, mini_catalogue) -> None:
    export, onshore = split_frame(batch, "rnd", key=KEY, catalogue=mini_catalogue)
    assert export.schema["Vehicle"] == pl.Struct({"TraveledDistance": pl.Int64})
    assert onshore.schema["Vehicle"] == pl.Struct(
        {"CurrentLocation": pl.Struct({"Latitude": pl.Float64, "Longitude": pl.Float64,
                                       "Heading": pl.Float64})})
    # A null input struct is null on both sides, not a struct of nulls.
    nulls = batch["Vehicle"].is_null()
    assert nulls.any()
    assert export["Vehicle"].is_null().equals(nulls)
    assert onshore["Vehicle"].is_null().equals(nulls)


def test_tokens_are_per_vin_hmac(batch: pl.DataFrame, mini_catalogue) -> None:
    export, onshore = split_frame(batch, "rnd", key=KEY, catalogue=mini_catalogue)
    pairs = onshore.select("vin", "vehicle_token").unique()
    assert pairs.height == batch["vin"].n_unique()
    for vin, token in pairs.iter_rows():
        assert token == vehicle_token(KEY, vin)
    assert export["vehicle_token"].equals(onshore["vehicle_token"])


def test_null_vin_gets_null_token(mini_catalogue) -> None:
    frame = pl.DataFrame({"vin": ["A" * 17, None], "ts": [1, 2], "Vehicle.Speed": [1.0, 2.0]})
    export, _ = split_frame(frame, "rnd", key=KEY, catalogue=mini_catalogue)
    assert export["vehicle_token"].null_count() == 1


def test_outputs_reconstruct_the_input(batch: pl.DataFrame, mini_catalogue) -> None:
    for scenario in ("rnd", "after-sales"):
        export, onshore = split_frame(batch, scenario, key=KEY, catalogue=mini_catalogue)
        assert_frame_equal(reconstruct(export, onshore, batch.schema), batch)


def test_lazy_in_lazy_out_and_caller_frame_untouched(batch: pl.DataFrame, mini_catalogue) -> None:
    before = batch.clone()
    export, onshore = split_frame(batch.lazy(), "rnd", key=KEY, catalogue=mini_catalogue)
    assert isinstance(export, pl.LazyFrame) and isinstance(onshore, pl.LazyFrame)
    assert export.collect().height == batch.height
    assert_frame_equal(batch, before)


def test_plan_is_applied_not_rematched(batch: pl.DataFrame, mini_catalogue) -> None:
    # The plan is pure data: the same plan gives the same columns on any frame of the schema.
    p = plan(batch.schema, mini_catalogue, "rnd")
    export, _ = split_frame(batch.head(5), "rnd", key=KEY, catalogue=mini_catalogue)
    exported = {f.column for f in p.fields if f.destination in ("export", "both")}
    assert set(export.columns) - {"vehicle_token"} == exported


# --- value detectors and actions -------------------------------------------------------------

SENSITIVE = ["31.230416, 121.473701", "沪A12345", "1HGCM82633A004352", "13812345678",
             "11010519491231002X", "zhang@example.cn", "/9j/4AAQSkZJRg"]


def notes_frame() -> pl.DataFrame:
    clean = ["P0420 cleared", None, "tyre check ok"]
    return pl.DataFrame({
        "vin": ["LSV00000000000001"] * 10,
        "ts": list(range(10)),
        "Vehicle.Service.Notes": [*SENSITIVE, *clean],
        "Vehicle.Diagnostics.DTCList": [["P0420", "13812345678"], ["P0300"]] * 5,
    })


def test_detected_values_move_onshore(mini_catalogue) -> None:
    frame = notes_frame()
    export, onshore = split_frame(frame, "after-sales", key=KEY, catalogue=mini_catalogue)
    notes = export["Vehicle.Service.Notes"].to_list()
    assert notes == [None] * 7 + ["P0420 cleared", None, "tyre check ok"]
    assert onshore["Vehicle.Service.Notes"].to_list() == [*SENSITIVE, None, None, None]
    assert export["Vehicle.Diagnostics.DTCList"].to_list() == [None, ["P0300"]] * 5
    assert_frame_equal(reconstruct(export, onshore, frame.schema), frame)


def test_detection_counts_reach_the_manifest(tmp_path, mini_catalogue) -> None:
    from filter import split

    notes_frame().write_parquet(tmp_path / "notes.parquet")
    result = split(tmp_path / "notes.parquet", tmp_path / "e", tmp_path / "o", "after-sales",
                   key=KEY, catalogue=mini_catalogue)
    found = {d.field: d for d in result.export_manifest.detections}
    notes = found["Vehicle.Service.Notes"]
    assert notes.moved_values == 7
    assert notes.hits["vin"] == 1 and notes.hits["media"] == 1
    assert found["Vehicle.Diagnostics.DTCList"].hits["mobile_number"] == 5
    text = "".join(manifests.manifest_text(tmp_path / d) for d in ("e", "o"))
    assert not any(value in text for value in SENSITIVE)  # counts, never values


def with_actions(mini_catalogue_data: dict) -> dict:
    data = copy.deepcopy(mini_catalogue_data)
    data["keys"]["timestamp"]["actions"] = {"after-sales": {"coarsen": "1h"}}
    for rule in data["rules"]:
        if rule["id"] == "powertrain":
            rule["actions"] = {"*": {"round": 0}}
    return data


def test_actions_transform_the_export_and_keep_the_exact_value_onshore() -> None:
    data = with_actions(tomllib.loads(MINI_CATALOGUE.read_text()))
    catalogue = catalogue_from_mapping(data)
    frame = pl.DataFrame({
        "vin": ["LSV00000000000001", "LSV00000000000002"],
        "timestamp": [datetime(2026, 11, 2, 8, 41, 7), datetime(2026, 11, 2, 9, 5, 0)],
        "Vehicle.Powertrain.TractionBattery.StateOfHealth": [91.46, 87.51],
        "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": [231, 244],
    })
    export, onshore = split_frame(frame, "after-sales", key=KEY, catalogue=catalogue)
    assert export["timestamp"].to_list() == [datetime(2026, 11, 2, 8), datetime(2026, 11, 2, 9)]
    assert onshore["timestamp"].equals(frame["timestamp"])
    assert export["Vehicle.Powertrain.TractionBattery.StateOfHealth"].to_list() == [91.0, 88.0]
    assert onshore["Vehicle.Powertrain.TractionBattery.StateOfHealth"].to_list() == [91.46, 87.51]
    assert_frame_equal(reconstruct(export, onshore, frame.schema), frame)
    # Under rnd the timestamp is not coarsened.
    export_rnd, _ = split_frame(frame, "rnd", key=KEY, catalogue=catalogue)
    assert export_rnd["timestamp"].equals(frame["timestamp"])


def test_binary_fields_are_never_exported(mini_catalogue) -> None:
    frame = pl.DataFrame({"vin": ["A" * 17], "ts": [1], "Vehicle.Service.Snapshot": [b"\xff\xd8"]})
    export, onshore = split_frame(frame, "after-sales", key=KEY, catalogue=mini_catalogue)
    assert "Vehicle.Service.Snapshot" not in export.columns
    assert onshore["Vehicle.Service.Snapshot"].to_list() == [b"\xff\xd8"]


def test_row_by_row_scan_agrees_with_distinct_value_tables(mini_catalogue, monkeypatch) -> None:
    from filter.apply import value_tables

    frame = notes_frame()
    by_table = split_frame(frame, "after-sales", key=KEY, catalogue=mini_catalogue)
    monkeypatch.setattr(value_tables, "DISTINCT_LIMIT", 0)  # every field counts as free text
    by_row = split_frame(frame, "after-sales", key=KEY, catalogue=mini_catalogue)
    for table_side, row_side in zip(by_table, by_row, strict=True):
        assert_frame_equal(table_side, row_side)
    assert by_row[0]["Vehicle.Service.Notes"].null_count() == 8


def test_detectors_reach_string_leaves_inside_structs(mini_catalogue) -> None:
    frame = pl.DataFrame({
        "vin": ["LSV00000000000001"] * 3,
        "ts": [1, 2, 3],
        "Vehicle": [
            {"Service": {"Note": "沪A12345 towed", "Code": 1},
             "CurrentLocation": {"Latitude": 1.0}},
            {"Service": {"Note": "all fine", "Code": 2},
             "CurrentLocation": {"Latitude": 2.0}},
            None,
        ],
    })
    export, onshore = split_frame(frame, "after-sales", key=KEY, catalogue=mini_catalogue)
    assert export["Vehicle"].to_list() == [
        {"Service": {"Note": None, "Code": 1}},
        {"Service": {"Note": "all fine", "Code": 2}},
        None,
    ]
    assert onshore["Vehicle"].to_list()[0] == {
        "Service": {"Note": "沪A12345 towed"}, "CurrentLocation": {"Latitude": 1.0}}
    assert_frame_equal(reconstruct(export, onshore, frame.schema), frame)


def test_row_by_row_counts_agree_with_value_table_counts(tmp_path, mini_catalogue,
                                                         monkeypatch) -> None:
    from filter import split
    from filter.apply import value_tables

    notes_frame().write_parquet(tmp_path / "notes.parquet")

    def detections(target: str) -> dict:
        result = split(tmp_path / "notes.parquet", tmp_path / target / "e",
                       tmp_path / target / "o", "after-sales", key=KEY,
                       catalogue=mini_catalogue)
        return {d.field: d for d in result.export_manifest.detections}

    by_table = detections("table")
    monkeypatch.setattr(value_tables, "DISTINCT_LIMIT", 0)
    by_row = detections("row")
    assert by_row == by_table
    assert by_row["Vehicle.Service.Notes"].moved_values == 7
