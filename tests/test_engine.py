"""The in-memory split and its inverse (filter/engine.py via split_frame, filter/reconstruct.py)."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from filter import plan, split_frame, vehicle_token
from filter.reconstruct import reconstruct

from .conftest import KEY


def test_export_holds_only_exported_fields(batch: pl.DataFrame, mini_catalogue) -> None:
    export, onshore = split_frame(batch, mini_catalogue, "after-sales", key=KEY)
    assert export.columns[:2] == ["vehicle_token", "timestamp"]
    assert "vin" not in export.columns
    assert "Vehicle.Cabin.HVAC.AmbientAirTemperature" not in export.columns
    assert "x_debug_counter" in onshore.columns
    assert onshore.columns[:3] == ["vin", "vehicle_token", "timestamp"]
    assert export.height == onshore.height == batch.height


def test_split_struct_keeps_its_leaves_apart(batch: pl.DataFrame, mini_catalogue) -> None:
    export, onshore = split_frame(batch, mini_catalogue, "rnd", key=KEY)
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
    export, onshore = split_frame(batch, mini_catalogue, "rnd", key=KEY)
    pairs = onshore.select("vin", "vehicle_token").unique()
    assert pairs.height == batch["vin"].n_unique()
    for vin, token in pairs.iter_rows():
        assert token == vehicle_token(KEY, vin)
    assert export["vehicle_token"].equals(onshore["vehicle_token"])


def test_null_vin_gets_null_token(mini_catalogue) -> None:
    frame = pl.DataFrame({"vin": ["A" * 17, None], "ts": [1, 2], "Vehicle.Speed": [1.0, 2.0]})
    export, _ = split_frame(frame, mini_catalogue, "rnd", key=KEY)
    assert export["vehicle_token"].null_count() == 1


def test_outputs_reconstruct_the_input(batch: pl.DataFrame, mini_catalogue) -> None:
    for scenario in ("rnd", "after-sales"):
        export, onshore = split_frame(batch, mini_catalogue, scenario, key=KEY)
        assert_frame_equal(reconstruct(export, onshore, batch.schema), batch)


def test_lazy_in_lazy_out_and_caller_frame_untouched(batch: pl.DataFrame, mini_catalogue) -> None:
    before = batch.clone()
    export, onshore = split_frame(batch.lazy(), mini_catalogue, "rnd", key=KEY)
    assert isinstance(export, pl.LazyFrame) and isinstance(onshore, pl.LazyFrame)
    assert export.collect().height == batch.height
    assert_frame_equal(batch, before)


def test_plan_is_applied_not_rematched(batch: pl.DataFrame, mini_catalogue) -> None:
    # The plan is pure data: the same plan gives the same columns on any frame of the schema.
    p = plan(batch.schema, mini_catalogue, "rnd")
    export, _ = split_frame(batch.head(5), mini_catalogue, "rnd", key=KEY)
    exported = {f.column for f in p.fields if f.destination in ("export", "both")}
    assert set(export.columns) - {"vehicle_token"} == exported
