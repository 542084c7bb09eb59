"""Value-level detectors: sensitive values hiding inside ordinary string fields.

In: a Polars expression of a value that holds strings (a string, categorical or enum column, a
struct leaf, a list or array of them, at any depth: `as_strings` gives the strings it holds).
Out: boolean expressions, one per detector, true where the value holds: geographic coordinates
(pairs of decimals, hemisphere, degree and labelled forms, JSON included), a Chinese licence
plate, a VIN with a valid ISO 3779 check digit, a mainland mobile number, a resident identity
number with a valid GB 11643 check digit, an e-mail address, or media bytes (JPEG, PNG,
H.264/H.265, MP4, PCD or LAS, raw or base64); and, given the VINs of the batch (`BatchVins`),
whether the value is or holds one of them. Detection is apart from action: the engine decides
what a hit does (the value moves onshore); this module only finds.
May fail: nothing at run time; the patterns are compiled by Polars when the plan is applied.

Every value is matched as it is and, where it holds a character Unicode NFKC may change
(full-width digits and letters, compatibility forms), also as NFKC makes it: the detectors read
`detection_text`, the value followed by NUL and its NFKC form, so a hit on either is a hit.
Only detection sees the normalised text; the values are left as they are.

Everything is a vectorised expression (regular expressions with `str.contains`; check digits
computed column-wise over the extracted candidates), so detectors stream with the split and never
loop over rows in Python. Matched values are never returned or logged, only masks and counts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl

from filter.string_dtypes import is_scannable, is_string

# An ASCII word boundary: unlike `\b` it also separates digits from Chinese characters.
_B = r"(?-u:\b)"
_NOT_DIGIT_BEFORE = r"(?:^|[^0-9.])"
_NOT_DIGIT_AFTER = r"(?:[^0-9]|$)"

_DECIMAL = r"[-+]?\d{1,3}\.\d{4,}"
# Full-width punctuation of Chinese text that NFKC turns into ASCII: the patterns accept the
# first three wherever they accept `,` `;` and `:`, and none of the others anywhere, so a value
# holding them is matched as if they were ASCII without being normalised (see `_FOLDABLE`).
_FULL_WIDTH_PUNCTUATION = "\uff0c\uff1b\uff1a\uff08\uff09\uff01\uff1f"  # , ; : ( ) ! ?
# A decimal degree, as a labelled pair writes it (one decimal at least).
_DEGREES = r"[-+]?\d{1,3}\.\d+"
_LAT_WORD = r"(?i:lat|latitude)"
_LON_WORD = r"(?i:lng|lon|long|longitude)"
# A label: an English word not glued to letters before or after it ("flat", "lateral" are not
# labels), or the Chinese one.
_LAT_LABEL = rf"(?:(?:^|[^A-Za-z]){_LAT_WORD}{_B}|纬度|緯度)"
_LON_LABEL = rf"(?:(?:^|[^A-Za-z]){_LON_WORD}{_B}|经度|經度)"
# Between a label and its number: quotes, a colon or equals sign, spaces ("lat": "31.2", lat=31.2).
_IS = "[\"']?\\s*[:=\uff1a]?\\s*[\"']?\\s*"
# Between the two numbers of a labelled pair: a closing quote, a separator, spaces.
_AND = "[\"']?\\s*[,;/&|\uff0c\uff1b]?\\s*[\"']?\\s*"
# A label of both numbers at once: lat/lon, lng_lat, coordinates, gps.
_PAIR_LABEL = (
    rf"(?:^|[^A-Za-z])(?i:lat(?:itude)?\s*[/,_&-]?\s*(?:lng|lon|long|longitude)"
    rf"|(?:lng|lon|long|longitude)\s*[/,_&-]?\s*lat(?:itude)?|coord(?:inate)?s|gps|geo){_B}"
)
_COORDINATES = "|".join(
    [
        # A decimal pair with at least 4 decimals (about 10 m): "31.230416, 121.473701".
        f"{_NOT_DIGIT_BEFORE}{_DECIMAL}\\s*[,;/ \uff0c\uff1b]\\s*{_DECIMAL}",
        # Hemisphere forms: "(37.412374 N, 122.145867 W)", "N31.2304 E121.4737".
        "\\d{1,3}(?:\\.\\d+)?\\s*°?\\s*[NSns]\\s*[,; \uff0c\uff1b]?\\s*\\d{1,3}(?:\\.\\d+)?\\s*°?"
        + f"\\s*[EWew]{_NOT_DIGIT_AFTER}",
        "[NSns]\\s*\\d{1,3}(?:\\.\\d+)?°?\\s*[,; \uff0c\uff1b]?\\s*[EWew]\\s*\\d{1,3}(?:\\.\\d+)?",
        # Degrees, minutes, seconds: 31°13'49.5"N (seconds also as U+2033, as NFKC's two
        # U+2032, or as two apostrophes).
        r"\d{1,3}\s*°\s*\d{1,2}\s*['\u2032]\s*"
        r"(?:\d{1,2}(?:\.\d+)?\s*(?:[\"\u2033]|\u2032\u2032|'')\s*)?[NSEWnsew]",
        # Labelled pairs, in either order: lat=31.2304 lon=121.4737, latitude: 31.23,
        # longitude: 121.47, {"lat": 31.2304, "lng": 121.4737}, 纬度 31.23 经度 121.47.
        f"{_LAT_LABEL}{_IS}{_DEGREES}{_AND}{_LON_LABEL}{_IS}{_DEGREES}",
        f"{_LON_LABEL}{_IS}{_DEGREES}{_AND}{_LAT_LABEL}{_IS}{_DEGREES}",
        # One labelled number with a colon or equals sign and two decimals or more:
        # "latitude":"31.2304", lon=121.47.
        rf"(?:^|[^A-Za-z])(?i:lat|latitude|lng|lon|longitude){_B}[\"']?\s*[:=\uff1a]\s*[\"']?\s*"
        r"[-+]?\d{1,3}\.\d{2,}",
        # Chinese labels and hemispheres: 纬度 31.2304, 北纬31.2304°, 东经121°.
        "(?:纬度|緯度|经度|經度|北纬|南纬|东经|西经|北緯|南緯|東經|西經)\\s*[:=\uff1a]?\\s*"
        r"[-+]?\d{1,3}(?:\.\d+|\s*°|度)",
        # One label for both: lat/lon: 31.23/121.47, "coordinates": [121.47, 31.23].
        f"{_PAIR_LABEL}{_IS}[\\[({{]?\\s*{_DEGREES}{_AND}{_DEGREES}",
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


# Characters NFKC leaves as they are and that compose with no neighbour, beside ASCII: CJK
# ideographs and the punctuation of Chinese text (、。〃, brackets, quotes, dash, middle
# dot, degree and multiplication signs).
_NFKC_STABLE = (
    "\u3400-\u4dbf\u4e00-\u9fff\u3001-\u3003\u3008-\u3011\u3014-\u301b"
    "\u2018\u2019\u201c\u201d\u2014\u00b7\u00b0\u00d7"
)
# A character whose NFKC form the patterns may need to see: any other non-ASCII character.
# A value holding none is matched the same as NFKC would make it, as is.
_FOLDABLE = f"[^\\x00-\\x7f{_NFKC_STABLE}{_FULL_WIDTH_PUNCTUATION}]"


@dataclass(frozen=True)
class Detector:
    """A named test for one kind of sensitive value."""

    name: str
    description: str
    build: Callable[[pl.Expr], pl.Expr]  # detection text -> boolean expression
    pattern: str | None = None  # when the test is one `str.contains`: its regular expression

    def hits(self, value: pl.Expr) -> pl.Expr:
        """True where the string `value` holds this kind of value, as it is or as NFKC makes
        it (null where it is null)."""
        return self.build(detection_text(value))


#: Separates a value from its NFKC form in `detection_text`. No pattern takes it inside a
#: match (it is no space, digit, letter or punctuation): the classes that take it ("not a
#: digit", "not a letter") take it as they take an end of the text, so a match lies in one of
#: the two. (`[\s\S]{4}ftyp`, the media signature, may span it in a value of under four
#: characters: that errs towards a hit.)
_THEN_NFKC = "\x00"


def detection_text(value: pl.Expr) -> pl.Expr:
    """What the detectors read of the string `value`: the value itself, followed, where it
    holds a character the patterns may need normalised (full-width digits and letters,
    ligatures, circled digits...), by NUL and its Unicode NFKC form (null stays null). Values
    of ASCII and Chinese text, nearly all, are read as they are; media signatures are looked
    for at the start of the value itself only."""
    needs = value.str.contains(_FOLDABLE)
    cut = value.str.slice(0, pl.when(needs).then(None).otherwise(pl.lit(0, pl.Int64)))
    both = pl.concat_str([value, pl.lit(_THEN_NFKC), cut.str.normalize("NFKC")])
    return pl.when(needs).then(both).otherwise(value)


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
    Detector("coordinates", "geographic coordinates (decimal, hemisphere, DMS or labelled forms)",
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
#: The detector of the VINs of the batch itself in its strings (`BatchVins`), in counts.
BATCH_VIN = "batch_vin"
#: VINs of the batch at least this long are looked for inside strings; shorter ones (no VIN
#: is, but a VIN column may hold anything) only as a whole value, or they would hit any text.
MIN_EMBEDDED_VIN = 10
#: VINs per regular expression of `BatchVins` (100,000 compile within the 10 MB Polars allows
#: one, in 1.4 s, once per process).
_VINS_PER_PATTERN = 50_000
# The pattern-only detectors as one alternation: one pass of one automaton tells whether any
# of them hits, which is all the split needs per row (counts per detector are then taken on
# the few rows that hit).
_ANY_PATTERN = "|".join(f"(?:{d.pattern})" for d in DETECTORS if d.pattern is not None)
# Where a check-digit detector could find a candidate (it searches the upper-cased value).
_ANY_CANDIDATE = f"(?i)(?:{_VIN})|(?:{_RESIDENT_ID})"
# Where any detector could hit at all: a pattern, a check-digit candidate, or a character
# whose NFKC form might hit.
_ANY_SUSPECT = f"(?:{_ANY_PATTERN})|(?i:(?:{_VIN})|(?:{_RESIDENT_ID}))|{_FOLDABLE}"


def as_strings(value: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, bool]:
    """The strings `value` (of `dtype`, a scannable type) holds, as the detectors read them.

    A string (categoricals and enums as their strings): that String expression and False.
    Any other type: a List(String) expression of every string in the value, at any depth (list
    elements, array items, struct fields), null where `value` is null, and True.
    """
    if is_string(dtype):
        return (value if dtype == pl.String else value.cast(pl.String)), False
    return _string_list(value, dtype), True


def _string_list(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Every string in `value` of `dtype` as one List(String), null where `value` is null."""
    if is_string(dtype):
        return pl.concat_list([value.cast(pl.String)])
    if isinstance(dtype, pl.Array):
        return _string_list(value.arr.to_list(), pl.List(dtype.inner))
    if isinstance(dtype, pl.List):
        if is_string(dtype.inner):
            return value.cast(pl.List(pl.String))
        # Each element's strings, one list per element, flattened into the row's list.
        return value.list.eval(_string_list(pl.element(), dtype.inner).explode())
    assert isinstance(dtype, pl.Struct)
    empty = pl.lit([], dtype=pl.List(pl.String))
    parts = [_string_list(value.struct.field(f.name), f.dtype).fill_null(empty)
             for f in dtype.fields if is_scannable(f.dtype)]
    return pl.when(value.is_null()).then(None).otherwise(pl.concat_list(parts))


@dataclass(frozen=True)
class BatchVins:
    """The VINs of a batch, to look for in its exported strings.

    A string that is one of them, or holds one of at least `MIN_EMBEDDED_VIN` characters, in
    any ASCII letter case (and also as NFKC makes it: full-width letters), is a hit of the
    `BATCH_VIN` detector. Whatever the batch's VIN column holds is looked for, a valid check
    digit or not. Holds the VINs themselves: never log it (the repr leaves them out).
    """

    # Looked for anywhere in a string: ASCII VINs (all real ones) upper-cased, in the
    # upper-cased text; any others in ASCII letter case.
    embedded: tuple[str, ...] = field(repr=False)
    other: tuple[str, ...] = field(repr=False)
    whole: tuple[str, ...] = field(repr=False)  # shorter: only a whole string is a hit (spaces
    # around it aside)
    # How the embedded VINs are looked for. Polars compiles a regular expression once per
    # process and keeps it; an Aho-Corasick automaton (`str.contains_any`) it builds anew for
    # every query. With 2,000 / 20,000 / 100,000 VINs: compiling takes 30 / 160 / 1,400 ms, a
    # query then 1-5 ms; an automaton 3 / 44 / 520 ms a query. So the same VINs in many
    # queries (a Parquet batch's row groups) are a regular expression, VINs that change from
    # query to query (key/value batches) an automaton.
    automaton: bool = False

    @classmethod
    def of(cls, vins: Iterable[str | None], *, automaton: bool = False) -> BatchVins:
        """The VINs of a batch from its distinct VINs (nulls and blanks left out); with
        `automaton`, for VINs tested in one query or few."""
        found = {v.strip() for v in vins if v is not None and v.strip()}
        long = [v for v in found if len(v) >= MIN_EMBEDDED_VIN]
        return cls(
            embedded=tuple(sorted({v.upper() for v in long if v.isascii()})),
            other=tuple(sorted(v for v in long if not v.isascii())),
            whole=tuple(sorted(v for v in found if len(v) < MIN_EMBEDDED_VIN)),
            automaton=automaton,
        )

    def __bool__(self) -> bool:
        return bool(self.embedded or self.other or self.whole)

    def hits(self, value: pl.Expr) -> pl.Expr:
        """True where the string `value` is or holds one of the VINs (null where it is
        null)."""
        return self.matches(detection_text(value))

    def matches(self, text: pl.Expr) -> pl.Expr:
        """`hits` of a value whose `detection_text` is `text`."""
        found = []
        if self.embedded:
            # Upper-casing maps nothing but a non-ASCII character to new ASCII letters, and
            # such a character makes the value a suspect (`_FOLDABLE`): `screen` still holds.
            upper = text.str.to_uppercase()
            if self.automaton:
                found.append(upper.str.contains_any(list(self.embedded)))
            else:
                found += [upper.str.contains(pattern) for pattern in self._embedded_patterns]
        if self.other:
            found.append(text.str.contains_any(list(self.other), ascii_case_insensitive=True))
        if self.whole:
            found.append(text.str.contains(self._whole_pattern))
        hit = pl.any_horizontal(found) if found else pl.lit(False)
        return pl.when(text.is_null()).then(None).otherwise(hit)

    @functools.cached_property
    def screen(self) -> str | None:
        """A regular expression that matches every string `hits` may hit as it is (one that
        hits only as NFKC makes it holds a character `_FOLDABLE` matches): the first three
        characters of each embedded VIN, any letter case, and the whole ones. None for none.
        Fleets have few manufacturer codes, so this adds little to the screen's one pass."""
        parts = []
        if self.embedded or self.other:
            prefixes = sorted({pl.escape_regex(v[:3]) for v in (*self.embedded, *self.other)})
            parts.append(f"(?i:{'|'.join(prefixes)})")
        if self.whole:
            parts.append(self._whole_pattern)
        return "|".join(parts) or None

    @functools.cached_property
    def _embedded_patterns(self) -> tuple[str, ...]:
        """The embedded VINs as alternations of at most `_VINS_PER_PATTERN` literals each."""
        escaped = [pl.escape_regex(v) for v in self.embedded]
        return tuple("|".join(escaped[i:i + _VINS_PER_PATTERN])
                     for i in range(0, len(escaped), _VINS_PER_PATTERN))

    @property
    def _whole_pattern(self) -> str:
        """A whole value, or a whole NFKC form after the separator (`detection_text`)."""
        vins = "|".join(pl.escape_regex(v) for v in self.whole)
        return rf"(?:^|{_THEN_NFKC})\s*(?i:{vins})\s*(?:{_THEN_NFKC}|$)"


def suspects_only(value: pl.Expr, vins: BatchVins | None = None) -> pl.Expr:
    """The string `value` where some detector could hit it, "" elsewhere (null stays null);
    with `vins`, also where `vins.hits` could.

    One scan of one automaton. `any_hit` of the result equals `any_hit` of `value` (no detector
    hits "") and costs little, as nearly every value is then "": on 4M free-text notes both
    take 0.6 s, where `any_hit` of the notes takes 0.95 s. Give the result a column of its own
    (`with_columns`) before testing it: an expression that used it twice would scan twice.
    """
    screen = vins.screen if vins else None
    pattern = _ANY_SUSPECT if screen is None else f"{_ANY_SUSPECT}|{screen}"
    keep_all = pl.when(value.str.contains(pattern)).then(None)
    return value.str.slice(0, keep_all.otherwise(pl.lit(0, pl.Int64)))


@dataclass(frozen=True)
class StringScreen:
    """Whether any detector (and `BATCH_VIN`, given the VINs) hits a string column, in three
    steps, each to add with its own `with_columns` so that nothing is computed twice: the
    value cut to what could hit (`suspects_only`), then that cut's `detection_text`, then the
    test of the text (null where the value is null)."""

    cut: pl.Expr
    text: pl.Expr
    hit: pl.Expr


def string_screen(value: pl.Expr, column: str, vins: BatchVins | None = None) -> StringScreen:
    """The `StringScreen` of the string `value`; its steps are named `column` and
    `column` + "_cut"."""
    cut = f"{column}_cut"
    text = pl.col(column)
    hit = _any_in_text(text)
    if vins:
        hit = hit | vins.matches(text)
    return StringScreen(suspects_only(value, vins).alias(cut),
                        detection_text(pl.col(cut)).alias(column), hit)


def _any_in_text(text: pl.Expr) -> pl.Expr:
    """Whether any detector hits a value whose `detection_text` is `text`."""
    # The check-digit detectors upper-case and extract candidates, which costs; they run
    # only on values where a cheap case-insensitive scan finds a candidate at all.
    candidate = pl.when(text.str.contains(_ANY_CANDIDATE)).then(text)
    checked = [d.build(candidate).fill_null(False) for d in DETECTORS if d.pattern is None]
    return pl.any_horizontal(text.str.contains(_ANY_PATTERN), *checked)


def any_hit(value: pl.Expr, dtype: pl.DataType, vins: BatchVins | None = None) -> pl.Expr:
    """True per row where any detector hits the value (a string, or any string it holds,
    as it is or as NFKC makes it); with `vins`, also where it is or holds one of them.

    Equal to OR-ing `detector_hits` (and `vins.hits`), computed with one combined pattern for
    the detectors that are a single pattern, plus the check-digit detectors.
    """

    def one(v: pl.Expr) -> pl.Expr:
        text = detection_text(v)
        hit = _any_in_text(text)
        return hit | vins.matches(text) if vins else hit

    strings, many = as_strings(value, dtype)
    if not many:
        return pl.when(strings.is_null()).then(None).otherwise(one(strings))
    return pl.when(value.is_null()).then(None).otherwise(
        strings.list.eval(one(pl.element())).list.any()
    )


def detector_hits(
    value: pl.Expr, dtype: pl.DataType, vins: BatchVins | None = None
) -> dict[str, pl.Expr]:
    """Per detector (and `BATCH_VIN` with `vins`), a boolean per row: does the value (a
    string, or any string it holds) hit?"""
    tests: dict[str, Callable[[pl.Expr], pl.Expr]] = {d.name: d.hits for d in DETECTORS}
    if vins:
        tests[BATCH_VIN] = vins.hits
    strings, many = as_strings(value, dtype)
    if not many:
        return {name: test(strings) for name, test in tests.items()}
    return {
        name: pl.when(value.is_null()).then(None).otherwise(
            strings.list.eval(test(pl.element())).list.any()
        )
        for name, test in tests.items()
    }
