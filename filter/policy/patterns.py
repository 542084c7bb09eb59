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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, cached_property

ANY_ONE = "*"
ANY_MANY = "**"


class PatternSyntaxError(ValueError):
    """A pattern string that is not valid pattern syntax."""


@dataclass(frozen=True)
class PathPattern:
    """A compiled dotted-path pattern."""

    text: str
    segments: tuple[str, ...] = field(repr=False)

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled matcher, made on first use: a run matches paths against few of the
        catalogue's patterns (those that can match their first name), and compiling all of
        them took most of the catalogue's loading time."""
        return _regex(self.segments)

    @property
    def rank(self) -> tuple[int, int, int]:
        """Specificity, larger is more specific: (literals, -double stars, -single stars)."""
        literals = sum(1 for s in self.segments if s not in (ANY_ONE, ANY_MANY))
        many = sum(1 for s in self.segments if s == ANY_MANY)
        one = sum(1 for s in self.segments if s == ANY_ONE)
        return (literals, -many, -one)

    def matches(self, path: str) -> bool:
        """Whether the dotted `path` matches this pattern."""
        return self.regex.fullmatch("." + path.casefold()) is not None

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
    for seg in raw:
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


def _regex(segments: tuple[str, ...]) -> re.Pattern[str]:
    """A regular expression over "." + the case-folded path: one `\\.segment` per segment."""
    parts = []
    for seg in segments:
        if seg == ANY_MANY:
            parts.append(r"(?:\.[^.]*)*")
        elif seg == ANY_ONE:
            parts.append(r"\.[^.]*")
        else:
            parts.append(r"\." + re.escape(seg))
    return re.compile("".join(parts))


@cache
def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a and not b:
        return True
    if a and a[0] == ANY_MANY:
        # '**' matches nothing here, or eats the next segment b produces (when b[0] is '**'
        # too, dropping it means b's '**' matched nothing, which covers every case).
        return _overlap(a[1:], b) or (bool(b) and _overlap(a, b[1:]))
    if b and b[0] == ANY_MANY:
        return _overlap(b, a)
    if not a or not b:
        return False
    if a[0] == ANY_ONE or b[0] == ANY_ONE or a[0] == b[0]:
        return _overlap(a[1:], b[1:])
    return False
