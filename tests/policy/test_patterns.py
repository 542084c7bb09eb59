"""Path patterns: syntax, matching, precedence and overlap (filter/policy/patterns.py)."""

from __future__ import annotations

import pytest

from filter.policy.patterns import PatternSyntaxError, compile_pattern


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("Vehicle.Speed", "Vehicle.Speed", True),
        ("Vehicle.Speed", "vehicle.speed", True),  # case-insensitive
        ("Vehicle.Speed", "Vehicle.Speed.Max", False),
        ("Vehicle.*", "Vehicle.Speed", True),
        ("Vehicle.*", "Vehicle.Cabin.Door", False),  # '*' is exactly one segment
        ("Vehicle.Cabin.**", "Vehicle.Cabin.Door.Row1.IsOpen", True),
        ("Vehicle.Cabin.**", "Vehicle.Cabin", True),  # '**' may match nothing
        ("Vehicle.Cabin.**", "Vehicle.CabinX.Door", False),
        ("**.Latitude", "location.latitude", True),
        ("**.Latitude", "Latitude", True),
        ("**.Latitude", "Vehicle.CurrentLocation.Latitude", True),
        ("*.Latitude", "Vehicle.CurrentLocation.Latitude", False),
        ("Vehicle.**.Pressure", "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure", True),
        ("Vehicle.**.**.Pressure", "Vehicle.Pressure", True),
    ],
)
def test_matches(pattern: str, path: str, expected: bool) -> None:
    assert compile_pattern(pattern).matches(path) is expected


@pytest.mark.parametrize(
    "bad", ["", " Vehicle", "Vehicle..Speed", "Vehicle.Is*", "Vehicle.?", "a.[b]"]
)
def test_bad_syntax_is_rejected(bad: str) -> None:
    with pytest.raises(PatternSyntaxError):
        compile_pattern(bad)


def test_rank_orders_by_literals_then_double_then_single_stars() -> None:
    ranks = {p: compile_pattern(p).rank for p in
             ["Vehicle.Cabin.**", "**.Latitude", "Vehicle.*.Latitude", "Vehicle.**.Latitude",
              "Vehicle.CurrentLocation.Latitude"]}
    assert ranks["Vehicle.Cabin.**"] > ranks["**.Latitude"]
    assert ranks["Vehicle.*.Latitude"] > ranks["Vehicle.**.Latitude"]
    assert ranks["Vehicle.CurrentLocation.Latitude"] > ranks["Vehicle.*.Latitude"]


def test_consecutive_double_stars_fold() -> None:
    assert compile_pattern("a.**.**.b").rank == compile_pattern("a.**.b").rank


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Vehicle.*", "*.Speed", True),
        ("Vehicle.Cabin.**", "**.Latitude", True),
        ("Vehicle.Cabin.**", "Vehicle.Body.**", False),
        ("a.*", "a.*.*", False),
        ("a.**", "b.**", False),
        ("**", "x.y.z", True),
        ("a.*.c", "a.b.**", True),
        ("a.b", "A.B", True),
    ],
)
def test_overlap(a: str, b: str, expected: bool) -> None:
    pa, pb = compile_pattern(a), compile_pattern(b)
    assert pa.overlaps(pb) is expected
    assert pb.overlaps(pa) is expected
