"""Value-level detectors: sensitive values hiding inside ordinary string fields.

In: a Polars expression of a string value (a column, a struct leaf, or a list element).
Out: boolean expressions, one per detector, true where the value holds: geographic coordinates,
a Chinese licence plate, a VIN with a valid ISO 3779 check digit, a mainland mobile number, a
resident identity number with a valid GB 11643 check digit, an e-mail address, or media bytes
(JPEG, PNG, H.264/H.265, MP4, PCD or LAS, raw or base64). Detection is apart from action: the
engine decides what a hit does (the value moves onshore); this module only finds.
May fail: nothing at run time; the patterns are compiled by Polars when the plan is applied.

Everything is a vectorised expression (regular expressions with `str.contains`; check digits
computed column-wise over the extracted candidates), so detectors stream with the split and never
loop over rows in Python. Matched values are never returned or logged, only masks and counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

# An ASCII word boundary: unlike `\b` it also separates digits from Chinese characters.
_B = r"(?-u:\b)"
_NOT_DIGIT_BEFORE = r"(?:^|[^0-9.])"
_NOT_DIGIT_AFTER = r"(?:[^0-9]|$)"

_DECIMAL = r"[-+]?\d{1,3}\.\d{4,}"
_COORDINATES = "|".join(
    [
        # A decimal pair with at least 4 decimals (about 10 m): "31.230416, 121.473701".
        rf"{_NOT_DIGIT_BEFORE}{_DECIMAL}\s*[,;/ ]\s*{_DECIMAL}",
        # Hemisphere forms: "(37.412374 N, 122.145867 W)", "N31.2304 E121.4737".
        r"\d{1,3}(?:\.\d+)?\s*°?\s*[NSns]\s*[,; ]?\s*\d{1,3}(?:\.\d+)?\s*°?\s*[EWew]"
        + rf"{_NOT_DIGIT_AFTER}",
        r"[NSns]\s*\d{1,3}(?:\.\d+)?°?\s*[,; ]?\s*[EWew]\s*\d{1,3}(?:\.\d+)?",
        # Degrees, minutes, seconds: 31°13'49.5"N.
        r"\d{1,3}\s*°\s*\d{1,2}\s*['\u2032]\s*(?:\d{1,2}(?:\.\d+)?\s*[\"\u2033]\s*)?[NSEWnsew]",
    ]
)
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领"
_PLATE = (
    rf"[{_PROVINCES}][A-HJ-NP-Z][·•\s]?"
    r"(?:[A-HJ-NP-Z0-9]{5,6}|[A-HJ-NP-Z0-9]{4}[挂学警港澳])(?:[^A-Za-z0-9]|$)"
)
# 13812345678, +86 138 1234 5678, 138-1234-5678.
_MOBILE = rf"{_NOT_DIGIT_BEFORE}(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{{4}}[- ]?\d{{4}}{_NOT_DIGIT_AFTER}"
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_VIN = rf"{_B}[A-HJ-NPR-Z0-9]{{17}}{_B}"
_RESIDENT_ID = (
    rf"{_B}[1-9]\d{{5}}(?:18|19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{{3}}[0-9Xx]{_B}"
)
_MEDIA = "^(?:" + "|".join(
    [
        "\u00ff\u00d8\u00ff",  # JPEG read as Latin-1
        r"/9j/",  # JPEG, base64
        "\u0089PNG",  # PNG read as Latin-1
        r"iVBORw0KGgo",  # PNG, base64
        r"\x00\x00\x00\x01|\x00\x00\x01",  # H.264 / H.265 Annex B start codes
        r"AAAAAW|AAABZ|AAABQ",  # the same, base64
        r"[\s\S]{4}ftyp",  # MP4 / MOV
        r"AAAA[A-Za-z0-9+/]GZ0eX",  # the same, base64
        r"# \.PCD|VERSION \.?0?\.7|FIELDS x y z",  # PCD point cloud header
        r"LASF|TEFTR",  # LAS point cloud, raw and base64
        r"data:(?:image|video|audio|application/octet-stream)[/;,]",  # data URIs
    ]
) + ")"

# ISO 3779 check digit (position 9): letter values and position weights.
_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7, "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
# GB 11643-1999 (ISO 7064 MOD 11-2) check character of the 18-character resident ID.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


@dataclass(frozen=True)
class Detector:
    """A named test for one kind of sensitive value."""

    name: str
    description: str
    build: Callable[[pl.Expr], pl.Expr]  # string expression -> boolean expression
    pattern: str | None = None  # when the test is one `str.contains`: its regular expression

    def hits(self, value: pl.Expr) -> pl.Expr:
        """True where the string `value` holds this kind of value (null where it is null)."""
        return self.build(value)


def _contains(pattern: str) -> Callable[[pl.Expr], pl.Expr]:
    return lambda value: value.str.contains(pattern)


def _vin_valid(candidate: pl.Expr) -> pl.Expr:
    total = pl.sum_horizontal(
        candidate.str.slice(i, 1).replace_strict(_VIN_VALUES, return_dtype=pl.Int32) * weight
        for i, weight in enumerate(_VIN_WEIGHTS)
        if weight
    )
    remainder = total % 11
    expected = pl.when(remainder == 10).then(pl.lit("X")).otherwise(remainder.cast(pl.String))
    return candidate.str.slice(8, 1) == expected


def _resident_id_valid(candidate: pl.Expr) -> pl.Expr:
    upper = candidate.str.to_uppercase()
    total = pl.sum_horizontal(
        upper.str.slice(i, 1).cast(pl.Int32) * weight for i, weight in enumerate(_ID_WEIGHTS)
    )
    expected = (total % 11).replace_strict(
        list(range(11)), list(_ID_CHECK), return_dtype=pl.String
    )
    return upper.str.slice(17, 1) == expected


def _with_check(pattern: str, valid: Callable[[pl.Expr], pl.Expr]) -> Callable[[pl.Expr], pl.Expr]:
    """Candidates by regex, confirmed by a check digit computed on every candidate at once."""

    def build(value: pl.Expr) -> pl.Expr:
        candidates = value.str.to_uppercase().str.extract_all(pattern)
        confirmed = candidates.list.eval(valid(pl.element())).list.any()
        # A string with no candidate gives an empty list: any() is false, never null.
        return pl.when(value.is_null()).then(None).otherwise(confirmed)

    return build


DETECTORS: tuple[Detector, ...] = (
    Detector("coordinates", "geographic coordinates (decimal, hemisphere or DMS forms)",
             _contains(_COORDINATES), _COORDINATES),
    Detector("licence_plate", "Chinese licence plate", _contains(_PLATE), _PLATE),
    Detector("vin", "vehicle identification number with a valid ISO 3779 check digit",
             _with_check(_VIN, _vin_valid)),
    Detector("mobile_number", "mainland China mobile number", _contains(_MOBILE), _MOBILE),
    Detector("resident_id", "resident identity number with a valid GB 11643 check digit",
             _with_check(_RESIDENT_ID, _resident_id_valid)),
    Detector("email", "e-mail address", _contains(_EMAIL), _EMAIL),
    Detector("media", "image, video or point-cloud bytes (raw or base64)", _contains(_MEDIA),
             _MEDIA),
)
DETECTOR_NAMES = tuple(d.name for d in DETECTORS)
# The pattern-only detectors as one alternation: one pass of one automaton tells whether any
# of them hits, which is all the split needs per row (counts per detector are then taken on
# the few rows that hit).
_ANY_PATTERN = "|".join(f"(?:{d.pattern})" for d in DETECTORS if d.pattern is not None)
# Where a check-digit detector could find a candidate (it searches the upper-cased value).
_ANY_CANDIDATE = f"(?i)(?:{_VIN})|(?:{_RESIDENT_ID})"
# Where any detector could hit at all: a pattern, or a check-digit candidate.
_ANY_SUSPECT = f"(?:{_ANY_PATTERN})|(?i:(?:{_VIN})|(?:{_RESIDENT_ID}))"


def is_scannable(dtype: pl.DataType) -> bool:
    """Whether detectors run on values of `dtype`: strings and lists of strings."""
    if dtype == pl.String:
        return True
    return isinstance(dtype, pl.List) and dtype.inner == pl.String


def suspects_only(value: pl.Expr) -> pl.Expr:
    """The string `value` where some detector could hit it, "" elsewhere (null stays null).

    One scan of one automaton. `any_hit` of the result equals `any_hit` of `value` (no detector
    hits "") and costs little, as nearly every value is then "": on 4M free-text notes both
    take 0.6 s, where `any_hit` of the notes takes 0.95 s. Give the result a column of its own
    (`with_columns`) before testing it: an expression that used it twice would scan twice.
    """
    keep_all = pl.when(value.str.contains(_ANY_SUSPECT)).then(None)
    return value.str.slice(0, keep_all.otherwise(pl.lit(0, pl.Int64)))


def string_screen(value: pl.Expr, column: str) -> tuple[pl.Expr, pl.Expr]:
    """Whether any detector hits the string `value`, in two steps: `value` cut to what a
    detector could hit (`suspects_only`), named `column`, to add with `with_columns`; then
    `any_hit` of that column (null where `value` is null), to select after it."""
    return suspects_only(value).alias(column), any_hit(pl.col(column), pl.String)


def any_hit(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """True per row where any detector hits the value (or any element of the list).

    Equal to OR-ing `detector_hits`, computed with one combined pattern for the detectors that
    are a single pattern, plus the check-digit detectors.
    """
    def one(v: pl.Expr) -> pl.Expr:
        # The check-digit detectors upper-case and extract candidates, which costs; they run
        # only on values where a cheap case-insensitive scan finds a candidate at all.
        candidate = pl.when(v.str.contains(_ANY_CANDIDATE)).then(v)
        checked = [d.hits(candidate).fill_null(False) for d in DETECTORS if d.pattern is None]
        return pl.any_horizontal(v.str.contains(_ANY_PATTERN), *checked)

    if dtype == pl.String:
        return pl.when(value.is_null()).then(None).otherwise(one(value))
    return pl.when(value.is_null()).then(None).otherwise(
        value.list.eval(one(pl.element())).list.any()
    )


def detector_hits(value: pl.Expr, dtype: pl.DataType) -> dict[str, pl.Expr]:
    """Per detector, a boolean per row: does the value (or any element of the list) hit?"""
    if dtype == pl.String:
        return {d.name: d.hits(value) for d in DETECTORS}
    return {
        d.name: pl.when(value.is_null()).then(None).otherwise(
            value.list.eval(d.hits(pl.element())).list.any()
        )
        for d in DETECTORS
    }
