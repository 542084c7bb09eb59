"""The signal vocabularies vtx knows: the field paths catalogues are written against.

In: the shipped vocabulary files (``catalogue/vocabularies/*.txt``: one dotted path a line,
``#`` comments): every COVESA VSS leaf, and every fleet-telemetry key as ``fleet.<Key>``.
Out: the known paths, for the catalogue typo guard (a rule pattern under a vocabulary's root
that matches no known path) and for `vtx catalogue diff` (which known fields change).
May fail: `FileNotFoundError` when the package is installed without its data.
"""

from __future__ import annotations

from functools import cache

from filter.policy.catalogue import Catalogue
from filter.policy.patterns import ANY_MANY, ANY_ONE
from filter.resources import shipped_dir


@cache
def known_paths() -> tuple[str, ...]:
    """Every path of the shipped vocabularies, in file order."""
    paths: list[str] = []
    for file in sorted((shipped_dir("catalogue") / "vocabularies").glob("*.txt")):
        for line in file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                paths.append(line)
    return tuple(paths)


def vocabulary_roots(paths: tuple[str, ...]) -> frozenset[str]:
    """The first segments of `paths` (``vehicle``, ``fleet``), case-folded."""
    return frozenset(p.split(".", 1)[0].casefold() for p in paths)


def unmatched_patterns(catalogue: Catalogue, paths: tuple[str, ...] | None = None) -> list[str]:
    """Warnings for rule patterns rooted in a vocabulary that match none of its paths.

    A pattern such as ``Vehicle.Cabn.**`` can only be a typo (or a signal newer than the
    vocabulary); generic patterns (``**.Latitude``, ``camera.*.**``) are not checked.
    """
    paths = known_paths() if paths is None else paths
    roots = vocabulary_roots(paths)
    warnings = []
    for rule in catalogue.rules:
        for pattern in rule.patterns:
            first = pattern.segments[0]
            if first in (ANY_ONE, ANY_MANY) or first not in roots:
                continue
            if not any(pattern.matches(p) for p in paths):
                warnings.append(
                    f"{catalogue.source}: rules[{rule.index}] (id {rule.id!r}): pattern "
                    f"{pattern.text!r} matches no known field (a typo, or a signal newer than "
                    "the shipped vocabularies?)"
                )
    return warnings
