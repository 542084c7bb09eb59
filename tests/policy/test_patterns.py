"""Path patterns: syntax, matching, precedence and overlap (filter/policy/patterns.py)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# The matcher and the overlap check against plain definitions: a regular expression over the
# segments (what the matcher was before: right, but exponential on nested repeats), and the
# overlap as a search for a common path over a small alphabet.
_SEGMENTS = st.sampled_from(["a", "b", "*", "**"])
_PATTERNS = st.lists(_SEGMENTS, min_size=1, max_size=6).map(".".join)
_PATHS = st.lists(st.sampled_from(["a", "b", "c", "A"]), min_size=1, max_size=7).map(".".join)


def _by_regex(pattern: str, path: str) -> bool:
    parts = {"**": r"(?:\.[^.]*)*", "*": r"\.[^.]*"}
    regex = "".join(parts.get(s, r"\." + re.escape(s)) for s in pattern.casefold().split("."))
    return re.fullmatch(regex, "." + path.casefold()) is not None


@given(_PATTERNS, _PATHS)
def test_matching_is_the_regular_expressions(pattern: str, path: str) -> None:
    assert compile_pattern(pattern).matches(path) == _by_regex(pattern, path)


_SHORT_PATTERNS = st.lists(_SEGMENTS, min_size=1, max_size=4).map(".".join)


@given(_SHORT_PATTERNS, _SHORT_PATTERNS)
def test_overlap_is_a_common_path(a: str, b: str) -> None:
    # Paths over the patterns' names and one other, as long as both patterns together: a
    # shortest common path, if there is one, is among them (each of its names is one that
    # a segment of either pattern matched).
    longest = len(a.split(".")) + len(b.split("."))
    common = any(
        compile_pattern(a).matches(path) and compile_pattern(b).matches(path)
        for size in range(1, longest + 1)
        for path in (".".join(p) for p in itertools.product("abz", repeat=size))
    )
    assert compile_pattern(a).overlaps(compile_pattern(b)) == common


def test_nested_wildcards_against_a_long_name_take_linear_steps() -> None:
    # A regular expression of 15 alternating repeats backtracked for seconds on a 45-name
    # path that does not match (23: minutes); the matcher takes at most names x segments.
    pattern = compile_pattern(".".join(["**", "*"] * 15) + ".end")
    path = ".".join(["x"] * 45)
    assert not pattern.matches(path)
    assert pattern.matches(path + ".end")
    assert pattern.overlaps(compile_pattern("**.end"))


def test_a_pattern_beyond_the_limits_is_refused() -> None:
    with pytest.raises(PatternSyntaxError, match="at most 32"):
        compile_pattern(".".join(["a"] * 33))
    with pytest.raises(PatternSyntaxError, match="at most 256"):
        compile_pattern("Vehicle." + "x" * 257)
    compile_pattern(".".join(["a"] * 32))  # at the limits: fine
    compile_pattern("Vehicle." + "x" * 256)
