"""Value-level detectors (filter/detectors.py): each with values it must and must not find."""

from __future__ import annotations

import base64

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter.detectors import (
    DETECTOR_NAMES,
    DETECTORS,
    any_hit,
    detector_hits,
    is_scannable,
    suspects_only,
)

CASES: dict[str, tuple[list[str], list[str]]] = {
    "coordinates": (
        ["31.230416, 121.473701", "loc=31.230416,121.473701", "(37.412374 N, 122.145867 W)",
         "N31.2304 E121.4737", "31°13'49.5\"N 121°28'25.3\"E", "-33.86882 151.20929",
         "31°13\u203249.5\u2033N"],
        ["v1.2.3", "12.5 km/h", "3.14159", "2026-11-25 08:00:00", "P0420", "1.5, 2.5"],
    ),
    "licence_plate": (
        ["沪A12345", "粤B·D12345", "京N 8888学", "plate 浙A1B2C3 seen"],
        ["京A1234", "A12345", "沪", "Shanghai"],
    ),
    "vin": (
        # Valid ISO 3779 check digits (position 9).
        ["1HGCM82633A004352", "vin: 1hgcm82633a004352.", "LSVAB2185N2116429"],
        ["1HGCM82633A004353", "1HGCM82633A00435", "1HGCM82633A0043521", "IHGCM82633A004352"],
    ),
    "mobile_number": (
        ["13812345678", "call 13812345678 now", "+86 138-1234-5678", "电话19912345678"],
        ["12812345678", "138123456789", "1381234567", "order 0213812345678x"],
    ),
    "resident_id": (
        # Valid GB 11643 check characters.
        ["11010519491231002X", "id 440524188001010014", "11010519491231002x"],
        ["110105194912310021", "11010519491331002X", "1101051949123100", "440524188001010015"],
    ),
    "email": (
        ["a@b.cn", "mail: zhang.san+fleet@example.com.cn"],
        ["x@y", "@example.com", "user at example.com"],
    ),
    "media": (
        ["/9j/4AAQSkZJRgABAQ", "iVBORw0KGgoAAAANSUhEUg", "\x00\x00\x00\x01gd00",
         "\x00\x00\x00 ftypisom", base64.b64encode(b"\x00\x00\x00\x18ftypmp42").decode(),
         "# .PCD v0.7", "VERSION .7\nFIELDS x y z", "LASF\x00\x00", "data:image/jpeg;base64,/9j/",
         "\u00ff\u00d8\u00ff\u00e0", "\u0089PNG\r\n"],
        ["JPEG", "png", "video.mp4", "the lidar is ok", "x/9j/"],
    ),
}


def _hits(name: str, values: list[str]) -> list[bool]:
    (detector,) = [d for d in DETECTORS if d.name == name]
    series = pl.Series(values, dtype=pl.String)
    return pl.select(detector.hits(pl.lit(series))).to_series().to_list()


def test_every_detector_has_cases() -> None:
    assert set(CASES) == set(DETECTOR_NAMES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_detector_finds_positives(name: str) -> None:
    positives, _ = CASES[name]
    assert _hits(name, positives) == [True] * len(positives)


@pytest.mark.parametrize("name", sorted(CASES))
def test_detector_ignores_negatives(name: str) -> None:
    _, negatives = CASES[name]
    assert _hits(name, negatives) == [False] * len(negatives)


def test_null_stays_null() -> None:
    frame = pl.DataFrame({"s": [None, "a@b.cn"]}, schema={"s": pl.String})
    hits = frame.select(**detector_hits(pl.col("s"), pl.String))
    assert hits.row(0) == (None,) * len(DETECTORS)
    assert hits["email"].to_list() == [None, True]


def test_lists_hit_when_any_element_hits() -> None:
    frame = pl.DataFrame({"s": [["P0420", "13812345678"], ["P0420"], [], None]})
    hits = frame.select(**detector_hits(pl.col("s"), pl.List(pl.String)))
    assert hits["mobile_number"].to_list() == [True, False, False, None]


def test_scannable_types() -> None:
    assert is_scannable(pl.String) and is_scannable(pl.List(pl.String))
    assert not is_scannable(pl.Int64) and not is_scannable(pl.List(pl.Int64))


_EVERY_CASE = [v for positives, negatives in CASES.values() for v in (*positives, *negatives)]
#: Columns of strings: nulls, the cases above alone and run together, and any text.
_STRINGS = st.lists(st.one_of(
    st.none(),
    st.sampled_from(_EVERY_CASE),
    st.lists(st.sampled_from(_EVERY_CASE), min_size=1, max_size=3).map(" ".join),
    st.text(max_size=30),
), max_size=20)


@settings(max_examples=200, deadline=None)
@given(_STRINGS)
def test_any_hit_is_the_or_of_every_detector(values: list[str | None]) -> None:
    # `any_hit` takes shortcuts (one combined pattern; candidates first): never other answers.
    frame = pl.DataFrame({"s": values}, schema={"s": pl.String})
    one = frame.select(any_hit(pl.col("s"), pl.String)).to_series().to_list()
    each = frame.select(**detector_hits(pl.col("s"), pl.String))
    every = each.select(pl.any_horizontal(pl.all().fill_null(False))).to_series().to_list()
    assert one == [None if v is None else hit for v, hit in zip(values, every, strict=True)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.one_of(
    st.none(), st.sampled_from(_EVERY_CASE), st.text(max_size=20)), max_size=4)), max_size=10))
def test_any_hit_on_lists_is_the_or_of_every_detector(
    values: list[list[str | None] | None],
) -> None:
    dtype = pl.List(pl.String)
    frame = pl.DataFrame({"s": values}, schema={"s": dtype})
    one = frame.select(any_hit(pl.col("s"), dtype)).to_series().to_list()
    each = frame.select(**detector_hits(pl.col("s"), dtype))
    every = each.select(pl.any_horizontal(pl.all().fill_null(False))).to_series().to_list()
    assert one == [None if v is None else hit for v, hit in zip(values, every, strict=True)]


def test_no_detector_hits_the_empty_string() -> None:
    # `suspects_only` cuts the values no detector could hit to "": that must hit nothing.
    hits = pl.DataFrame({"s": [""]}).select(**detector_hits(pl.col("s"), pl.String))
    assert hits.row(0) == (False,) * len(DETECTORS)


@settings(max_examples=200, deadline=None)
@given(_STRINGS)
def test_cutting_to_suspects_keeps_every_hit(values: list[str | None]) -> None:
    frame = pl.DataFrame({"s": values}, schema={"s": pl.String})
    cut = frame.with_columns(suspects_only(pl.col("s")).alias("cut"))
    assert cut["cut"].is_null().to_list() == frame["s"].is_null().to_list()
    assert cut.filter(pl.col("cut") != "")["cut"].to_list() == \
        cut.filter(pl.col("cut") != "")["s"].to_list()  # kept values are kept whole
    assert cut.select(any_hit(pl.col("cut"), pl.String)).to_series().to_list() == \
        cut.select(any_hit(pl.col("s"), pl.String)).to_series().to_list()
