"""Value-level detectors (filter/apply/detectors.py): each with values it must and must not find."""

from __future__ import annotations

import base64
import dataclasses

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter.apply.detectors import (
    BATCH_VIN,
    DETECTOR_NAMES,
    DETECTORS,
    BatchVins,
    any_hit,
    as_strings,
    detector_hits,
    string_screen,
    suspects_only,
)
from filter.string_dtypes import is_scannable

CASES: dict[str, tuple[list[str], list[str]]] = {
    "coordinates": (
        ["31.230416, 121.473701", "loc=31.230416,121.473701", "(37.412374 N, 122.145867 W)",
         "N31.2304 E121.4737", "31°13'49.5\"N 121°28'25.3\"E", "-33.86882 151.20929",
         "31°13\u203249.5\u2033N", "31°13'49.5''N",
         # Full-width punctuation and digits (issue 23, item 4).
         "31.2304\uff0c121.4737", "31.2304\uff1b121.4737", "\uff13\uff11.2304, 121.4737",
         "31\uff0e2304, 121\uff0e4737",
         # Labelled pairs, either order, and the ways JSON writes them.
         "lat=31.2304 lon=121.4737", "latitude: 31.2304, longitude: 121.4737",
         '{"lat": 31.2304, "lng": 121.4737}', '{"lat":"31.23","lon":"121.47"}',
         "lon 121.47 lat 31.23", "LNG=121.47&LAT=31.23", "Lat: 31.2 / Long: 121.4",
         "lat\uff1a31.23\uff0clng\uff1a121.47", "lat/lon: 31.23/121.47",
         "lng,lat=121.47,31.23", '"coordinates": [121.47, 31.23]', "gps 31.23 121.47",
         # One labelled value with two decimals or more.
         '"latitude":"31.2304"', "lat=31.23", "longitude: -122.14", "lng\uff1a121.47",
         # Chinese labels.
         "纬度\uff1a31.2304\uff0c经度\uff1a121.4737", "北纬31.2304°", "东经 121.47", "经度121度"],
        ["v1.2.3", "12.5 km/h", "3.14159", "2026-11-25 08:00:00", "P0420", "1.5, 2.5",
         "2026-11-24T10:15:30.123456", "1.2.3.4", "10.0.0.1", "version 31.2304.121",
         "Lateral 0.25, longitudinal 0.31", "latency: 12.34 ms", "flat=31.23",
         "plateau 12.5 km", "long 3.5 m cable", "lat 31",
         "更换机油和机油滤清器\uff0c里程 123456 公里",
         "左前轮胎压偏低\uff0c已充气至 240 kPa", "\uff11.\uff12.\uff13", "position: 12.5, 30.2",
         "lat/lon unknown", "coordinates 1, 2"],
    ),
    "licence_plate": (
        ["沪A12345", "粤B·D12345", "京N 8888学", "plate 浙A1B2C3 seen",
         "沪\uff21\uff11\uff12\uff13\uff14\uff15", "沪\uff21·12345"],
        ["京A1234", "A12345", "沪", "Shanghai"],
    ),
    "vin": (
        # Valid ISO 3779 check digits (position 9).
        ["1HGCM82633A004352", "vin: 1hgcm82633a004352.", "LSVAB2185N2116429",
         "".join(chr(ord(c) + 0xFEE0) for c in "LSVAB2185N2116429")],
        ["1HGCM82633A004353", "1HGCM82633A00435", "1HGCM82633A0043521", "IHGCM82633A004352"],
    ),
    "mobile_number": (
        ["13812345678", "call 13812345678 now", "+86 138-1234-5678", "电话19912345678",
         "\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
         "电话\uff1a\uff11\uff13\uff18 \uff11\uff12\uff13\uff14 \uff15\uff16\uff17\uff18",
         "138\u30001234\u30005678"],
        ["12812345678", "138123456789", "1381234567", "order 0213812345678x",
         "工单\uff11\uff12\uff13\uff14\uff15\uff16", "\uff13\uff12\uff10 kPa"],
    ),
    "resident_id": (
        # Valid GB 11643 check characters.
        ["11010519491231002X", "id 440524188001010014", "11010519491231002x"],
        ["110105194912310021", "11010519491331002X", "1101051949123100", "440524188001010015"],
    ),
    "email": (
        ["a@b.cn", "mail: zhang.san+fleet@example.com.cn",
         "\uff5a\uff48\uff41\uff4e\uff47\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4e",
         "zhang\uff20example.cn"],
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
    # However the strings are stored, at any depth (issue 23, item 1).
    for dtype in (pl.Categorical, pl.Enum(["a"]), pl.List(pl.Categorical),
                  pl.Array(pl.String, 2), pl.List(pl.List(pl.String)),
                  pl.List(pl.Struct({"n": pl.Int8, "s": pl.Enum(["a"])}))):
        assert is_scannable(dtype), dtype
    assert not is_scannable(pl.List(pl.Struct({"n": pl.Int8})))


def test_strings_of_every_type_are_read_as_strings() -> None:
    frame = pl.DataFrame({
        "cat": pl.Series(["ok", "a@b.cn", None], dtype=pl.Categorical),
        "enum": pl.Series([None, "ok", "a@b.cn"], dtype=pl.Enum(["ok", "a@b.cn"])),
        "lists": pl.Series([["ok"], None, ["x", "a@b.cn"]], dtype=pl.List(pl.Categorical)),
        "nested": pl.Series([[["ok"]], [None, ["a@b.cn"]], None]),
        "structs": pl.Series([[{"n": 1, "s": "ok"}], [{"n": 2, "s": "a@b.cn"}, None], []]),
        "array": pl.Series([["a", "b"], ["c", "a@b.cn"], None], dtype=pl.Array(pl.String, 2)),
    })
    expected = {"cat": [False, True, None], "enum": [None, False, True],
                "lists": [False, None, True], "nested": [False, True, None],
                "structs": [False, True, False], "array": [False, True, None]}
    for name, dtype in frame.schema.items():
        strings, many = as_strings(pl.col(name), dtype)
        assert frame.select(strings).to_series().dtype == (pl.List(pl.String) if many
                                                           else pl.String)
        assert frame.select(any_hit(pl.col(name), dtype)).to_series().to_list() == \
            expected[name], name
        email = frame.select(detector_hits(pl.col(name), dtype)["email"]).to_series()
        assert email.to_list() == expected[name], name


# Issue 23, item 4: what must hit, and ordinary text that must not, through the split itself
# (the shipped catalogue exports the service notes in after-sales).
MUST_HIT = [
    "31.2304\uff0c121.4737", "lat=31.2304 lon=121.4737", "latitude: 31.2304, longitude: 121.4737",
    '{"lat": 31.2304, "lng": 121.4737}', '"latitude":"31.2304"', "lon=121.4737 lat=31.2304",
    "\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
    "沪\uff21\uff11\uff12\uff13\uff14\uff15",
    "".join(chr(ord(c) + 0xFEE0) for c in "1HGCM82633A004352"),
    "\uff5a\uff48\uff41\uff4e\uff47\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45"
    "\uff0e\uff43\uff4e",
    "车停在 纬度\uff1a31.2304\uff0c经度\uff1a121.4737",
]
MUST_NOT_HIT = [
    "firmware 1.2.3", "v2.10.4 installed", "3.14159", "12.5 km/h", "0.0001234",
    "2026-11-24 10:15:30.123456", "10:15:30", "192.168.1.1", "Lateral 0.25 g, longitudinal 0.31 g",
    "latency: 12.34 ms", "flat tyre at 2.35 bar", "更换机油和机油滤清器\uff0c里程 123456 公里",
    "工单\uff11\uff12\uff13\uff14\uff15\uff16", "\uff13\uff12\uff10 kPa", "Job card 123456 closed",
]


def test_the_split_moves_what_must_hit_and_keeps_ordinary_text_as_it_is() -> None:
    from filter import split_frame
    from tests.conftest import KEY

    notes = [*MUST_HIT, *MUST_NOT_HIT]
    frame = pl.DataFrame({"vin": ["LSV00000000000001"] * len(notes),
                          "timestamp": list(range(len(notes))), "Vehicle.Service.Notes": notes})
    export, onshore = split_frame(frame, "after-sales", key=KEY)
    exported = export["Vehicle.Service.Notes"].to_list()
    assert exported[:len(MUST_HIT)] == [None] * len(MUST_HIT)
    # Detection alone sees the normalised text: what is exported is exactly what came in.
    assert exported[len(MUST_HIT):] == MUST_NOT_HIT
    assert onshore["Vehicle.Service.Notes"].to_list()[:len(MUST_HIT)] == MUST_HIT


def test_the_characters_read_without_normalising_are_those_nfkc_leaves_alone() -> None:
    """`_FOLDABLE` lets ASCII, CJK ideographs and the common punctuation of Chinese text be
    matched as they are: each must be its own NFKC form and compose with nothing (else NFKC of
    a value could hold what the value does not); the full-width , ; : ( ) ! ? become their
    ASCII forms, which the patterns take where they take those."""
    import re
    import unicodedata

    from filter.apply.detectors import _FOLDABLE, _FULL_WIDTH_PUNCTUATION

    foldable = re.compile(_FOLDABLE)
    kept = [chr(c) for c in range(0x110000)
            if not 0xD800 <= c < 0xE000 and not foldable.match(chr(c))]
    assert len(kept) > 20_000  # the CJK ideographs among them
    composable = set()
    for c in range(0x110000):
        parts = unicodedata.decomposition(chr(c)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            composable.add(chr(int(parts[1], 16)))
    for ch in kept:
        if ch in _FULL_WIDTH_PUNCTUATION:
            assert unicodedata.normalize("NFKC", ch) in ",;:()!?"
            continue
        assert unicodedata.normalize("NFKC", ch) == ch, hex(ord(ch))
        assert unicodedata.combining(ch) == 0 and ch not in composable, hex(ord(ch))


# Characters that NFKC changes, and ASCII the patterns care about, to build adversarial text.
_FOLDING = st.text(alphabet=st.sampled_from(
    "0123456789.,;:-+ @/NSEWnsewlatongLATONG°'\"沪AB"
    "\uff10\uff11\uff13\uff18\uff0c\uff1b\uff1a\uff0e\uff20\u3000\u2033\u2032"
    "\u2460\u00b9\u00b2\u00aa\u2024\ufe50\U0001d7cf"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FOLDING, min_size=1, max_size=8))
def test_whatever_nfkc_makes_of_a_value_that_hits_the_value_hits(values: list[str]) -> None:
    import unicodedata

    frame = pl.DataFrame({"s": values, "n": [unicodedata.normalize("NFKC", v) for v in values]})
    as_is = frame.select(any_hit(pl.col("s"), pl.String)).to_series().to_list()
    normalised = frame.select(any_hit(pl.col("n"), pl.String)).to_series().to_list()
    assert all(a or not n for a, n in zip(as_is, normalised, strict=True))


def test_batch_vins_are_found_whole_inside_any_case_and_full_width() -> None:
    vins = BatchVins.of(["LRW3E7EK0PC100001", "X1", None, " ", "LSVAB2185N2116429 "])
    assert "LRW3E7EK0PC100001" not in repr(vins)  # a log never shows them
    values = ["LRW3E7EK0PC100001", "lrw3e7ek0pc100001", "see xLRW3E7EK0PC100001y",
              "".join(chr(ord(c) + 0xFEE0) for c in "LRW3E7EK0PC100001"), "LSVAB2185N2116429",
              " x1 ", "x1", "LRW3E7EK0PC10000", "tax1 paid", "", None]
    for way in (vins, dataclasses.replace(vins, automaton=True)):
        hits = pl.select(way.hits(pl.lit(pl.Series(values, dtype=pl.String)))).to_series()
        assert hits.to_list() == [True] * 7 + [False, False, False, None]
    assert not BatchVins.of([None, ""])
    nothing = pl.select(BatchVins.of([]).hits(pl.lit(pl.Series(["a", None])))).to_series()
    assert nothing.to_list() == [False, None]
    counted = pl.DataFrame({"s": values}).select(
        detector_hits(pl.col("s"), pl.String, vins)[BATCH_VIN].fill_null(False).sum()).item()
    assert counted == 7


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


@settings(max_examples=200, deadline=None)
@given(_STRINGS, st.lists(st.sampled_from(["1HGCM82633A004352", "LRW3E7EK0PC100001", "ab",
                                           "LSVAB2185N2116429"]), max_size=3))
def test_cutting_to_suspects_keeps_every_batch_vin_hit(
    values: list[str | None], vins: list[str]
) -> None:
    batch = BatchVins.of(vins)
    planted = [v if v is None or i % 3 else f"{v} {vins[0] if vins else ''}".lower()
               for i, v in enumerate(values)]
    frame = pl.DataFrame({"s": planted}, schema={"s": pl.String})
    screen = string_screen(pl.col("s"), "t", batch)
    screened = frame.with_columns(screen.cut).with_columns(screen.text).select(screen.hit)
    direct = frame.select(any_hit(pl.col("s"), pl.String, batch))
    assert screened.to_series().to_list() == direct.to_series().to_list()
