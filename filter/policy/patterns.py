"""Path patterns over dotted field paths, with a predictable precedence.

In: a pattern string such as ``Vehicle.Cabin.**``, ``*.Latitude`` or ``Vehicle.Speed``.
Out: a compiled `PathPattern` that matches dotted paths, ranks against other patterns, and tells
whether two patterns can match a common path (used by catalogue validation to find ties).

Syntax: segments separated by ``.``. A segment is a literal name (compared case-insensitively,
because fleets spell the same VSS name in several cases), ``*`` (exactly one segment) or ``**``
(zero or more segments). Partial wildcards (``Is*``) are not allowed: they would make precedence
and overlap hard to predict, and an egress policy must be predictable.

Precedence: the most specific pattern wins, ranked by more literal segments, then fewer ``**``,
then fewer ``*``. Two patterns of equal rank that can match a common path are a tie.

Cost: matching walks the path's names and the pattern's segments with the wildcard matcher
that goes back only to the last ``**`` (`_matches`): at most (names x segments) steps, never
the exponential backtracking of a regular expression of nested repeats (``**.*.**.*...``
against a long name took minutes). Whether two patterns overlap is a table over their
segment pairs (`_overlap`): (segments x segments) steps and memory, nothing kept afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANY_ONE = "*"
ANY_MANY = "**"
#: The limits of a pattern (`compile_pattern` refuses beyond them): VSS paths have at most 8
#: names, fleet keys 2; the limits keep every match and overlap check small.
MAX_SEGMENTS = 32
MAX_SEGMENT_CHARS = 256


class PatternSyntaxError(ValueError):
    """A pattern string that is not valid pattern syntax."""


@dataclass(frozen=True)
class PathPattern:
    """A compiled dotted-path pattern."""

    text: str
    segments: tuple[str, ...] = field(repr=False)

    @property
    def rank(self) -> tuple[int, int, int]:
        """Specificity, larger is more specific: (literals, -double stars, -single stars)."""
        literals = sum(1 for s in self.segments if s not in (ANY_ONE, ANY_MANY))
        many = sum(1 for s in self.segments if s == ANY_MANY)
        one = sum(1 for s in self.segments if s == ANY_ONE)
        return (literals, -many, -one)

    def matches(self, path: str) -> bool:
        """Whether the dotted `path` matches this pattern."""
        return _matches(self.segments, path.casefold().split("."))

    def overlaps(self, other: PathPattern) -> bool:
        """Whether some path matches both this pattern and `other`."""
        return _overlap(self.segments, other.segments)


def compile_pattern(text: str) -> PathPattern:
    """Compile a pattern string, raising `PatternSyntaxError` with the reason when invalid."""
    if not isinstance(text, str) or not text.strip():
        raise PatternSyntaxError("empty pattern")
    if text != text.strip():
        raise PatternSyntaxError(f"pattern {text!r} has leading or trailing spaces")
    raw = text.split(".")
    if len(raw) > MAX_SEGMENTS:
        raise PatternSyntaxError(
            f"pattern of {len(raw)} segments: at most {MAX_SEGMENTS} are allowed")
    for seg in raw:
        if len(seg) > MAX_SEGMENT_CHARS:
            raise PatternSyntaxError(
                f"a segment of {len(seg)} characters: at most {MAX_SEGMENT_CHARS} are allowed")
        if seg == "":
            raise PatternSyntaxError(f"pattern {text!r} has an empty segment")
        if seg not in (ANY_ONE, ANY_MANY) and any(c in seg for c in "*?[]"):
            raise PatternSyntaxError(
                f"pattern {text!r}: segment {seg!r} mixes a wildcard with a name; "
                "use '*' for one whole segment or '**' for any number"
            )
    # Consecutive '**' mean the same as one; fold them so ranks stay honest.
    segments: list[str] = []
    for seg in raw:
        if seg == ANY_MANY and segments and segments[-1] == ANY_MANY:
            continue
        segments.append(seg if seg in (ANY_ONE, ANY_MANY) else seg.casefold())
    return PathPattern(text=text, segments=tuple(segments))


def _matches(segments: tuple[str, ...], names: list[str]) -> bool:
    """Whether `names` (a path's, case-folded) match `segments`: a literal matches its name,
    ``*`` any one name, ``**`` any run of names. On a mismatch the walk goes back to the last
    ``**`` only, which then takes one more name: every earlier choice is as good as any
    other, so no step is retried twice from the same place."""
    s = n = 0
    star = -1  # the last '**' met, and the first name it has not taken
    resume = 0
    while n < len(names):
        if s < len(segments) and segments[s] == ANY_MANY:
            star, resume = s, n
            s += 1
        elif s < len(segments) and segments[s] in (ANY_ONE, names[n]):
            s += 1
            n += 1
        elif star >= 0:
            resume += 1
            s, n = star + 1, resume
        else:
            return False
    while s < len(segments) and segments[s] == ANY_MANY:
        s += 1
    return s == len(segments)


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether some path matches both `a` and `b`: ``rest[i][j]``, whether `a[i:]` and
    `b[j:]` can match a common path, filled from the ends."""
    rows, cols = len(a), len(b)
    rest = [[False] * (cols + 1) for _ in range(rows + 1)]
    rest[rows][cols] = True
    for i in range(rows, -1, -1):
        for j in range(cols, -1, -1):
            if i == rows and j == cols:
                continue
            if i < rows and a[i] == ANY_MANY:
                # '**' matches nothing here, or takes the next name b's side makes (when b[j]
                # is '**' too, dropping it means b's '**' matched nothing: every case).
                rest[i][j] = rest[i + 1][j] or (j < cols and rest[i][j + 1])
            elif j < cols and b[j] == ANY_MANY:
                rest[i][j] = rest[i][j + 1] or (i < rows and rest[i + 1][j])
            elif i < rows and j < cols:
                rest[i][j] = (a[i] in (ANY_ONE, b[j]) or b[j] == ANY_ONE) and rest[i + 1][j + 1]
    return rest[0][0]
