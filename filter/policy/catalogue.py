"""The catalogue model: the declarative policy that says which fields are ordinary data.

Out: a frozen `Catalogue` whose `classify(path)` returns the winning `Rule` for a dotted path, or
None when no rule matches (the engine then withholds the field as `unclassified`); its keys,
classes, scenarios and rules; `action_for`, the action a rule or key column takes under a
scenario. Catalogues are read and validated by `filter.policy.catalogue_loading`.
May fail: `ScenarioError` for a scenario the catalogue does not have; `CatalogueError` for two
rules of a hand-built catalogue that tie on a path with different classes.

Patterns and their precedence are defined in `filter.policy.patterns`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from filter.errors import CatalogueError, ScenarioError
from filter.policy.patterns import PathPattern

ClassKind = Literal["ordinary", "withheld"]

#: The class of a field no rule matches. Built in, always withheld: it is the fail-closed default.
UNCLASSIFIED = "unclassified"
KEY_ROLES = ("vehicle_id", "timestamp")
#: Where a batch comes from; a scenario may accept only some (`origins`).
ORIGINS = ("test-fleet", "customer")
#: Scenario key of an action that applies under every scenario.
ANY_SCENARIO = "*"


@dataclass(frozen=True)
class Action:
    """How an exported value is transformed: coarsened in time, or rounded.

    The export gets the transformed value; the onshore output keeps the original, so nothing
    is lost. `coarsen` truncates timestamps to a Polars duration (``"1h"``, ``"15m"``, ``"1d"``);
    `round` rounds numbers to `digits` decimals (negative: to tens, hundreds, ...).
    """

    kind: Literal["coarsen", "round"]
    every: str | None = None
    digits: int | None = None

    def describe(self) -> str:
        """Short text for manifests and `vtx explain`."""
        return f"coarsen to {self.every}" if self.kind == "coarsen" else f"round to {self.digits}"


def action_for(actions: Mapping[str, Action], scenario: str) -> Action | None:
    """The action of `scenario`, else the one for every scenario (``"*"``), else None."""
    return actions.get(scenario) or actions.get(ANY_SCENARIO)


@dataclass(frozen=True)
class KeyColumn:
    """A record-key column (vehicle identifier or timestamp), found by any of its aliases."""

    role: str
    aliases: tuple[str, ...]
    basis: str = ""
    actions: Mapping[str, Action] = field(default_factory=dict)

    def find(self, columns: Iterable[str]) -> str | None:
        """The first column (in alias order) whose name equals an alias, case-insensitively."""
        by_fold = {c.casefold(): c for c in columns}
        for alias in self.aliases:
            if alias.casefold() in by_fold:
                return by_fold[alias.casefold()]
        return None


@dataclass(frozen=True)
class DataClass:
    """A class of data, ordinary (exportable in some scenario) or withheld (always onshore)."""

    name: str
    kind: ClassKind
    description: str = ""


@dataclass(frozen=True)
class Scenario:
    """A Lingang scenario and the ordinary classes it may export."""

    name: str
    classes: frozenset[str]
    description: str = ""
    origins: frozenset[str] | None = None  # None: batches of any origin

    def refuses(self, origin: str | None) -> bool:
        """Whether this scenario refuses a batch of `origin` (None: origin not stated)."""
        return self.origins is not None and origin not in self.origins


@dataclass(frozen=True)
class Rule:
    """Patterns mapping field paths to a class, with the legal basis for it."""

    id: str
    data_class: str
    patterns: tuple[PathPattern, ...]
    basis: str
    note: str = ""
    index: int = 0  # position in the file, for messages and stable tie-breaking
    actions: Mapping[str, Action] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleMatch:
    """The rule that decided a path, and which of its patterns matched."""

    rule: Rule
    pattern: PathPattern


@dataclass(frozen=True)
class _FirstName:
    """The patterns that can match paths of one first name, in rule order, indexed by the
    second name they ask for: a path's candidates are found without testing every pattern
    (the fleet keys: some 300 names, each with a rule of its own)."""

    every: tuple[tuple[Rule, PathPattern], ...]
    any_second: tuple[int, ...]  # positions in `every` of the patterns any second name fits
    by_second: dict[str, tuple[int, ...]]  # the others, by the second name they ask for

    @classmethod
    def of(cls, patterns: Iterable[tuple[Rule, PathPattern]]) -> _FirstName:
        every = tuple(patterns)
        any_second: list[int] = []
        by_second: dict[str, list[int]] = {}
        for position, (_, pattern) in enumerate(every):
            # A pattern's second name rules a path out only after a first name that is not
            # "**" (a superset: the regex decides).
            if len(pattern.segments) == 1 or pattern.segments[0] == "**" \
                    or pattern.segments[1] in ("*", "**"):
                any_second.append(position)
            else:
                by_second.setdefault(pattern.segments[1], []).append(position)
        return cls(every, tuple(any_second), {k: tuple(v) for k, v in by_second.items()})

    def candidates(self, second: str | None) -> tuple[tuple[Rule, PathPattern], ...]:
        """The patterns that can match a path with this second name (None: it has none)."""
        if second is None:
            return self.every
        positions = sorted(self.any_second + self.by_second.get(second, ()))
        return tuple(self.every[p] for p in positions)


@dataclass(frozen=True)
class Catalogue:
    """A validated catalogue. Build it with `load_catalogue` or `catalogue_from_mapping`."""

    id: str
    version: str
    description: str
    keys: Mapping[str, KeyColumn]
    classes: Mapping[str, DataClass]
    scenarios: Mapping[str, Scenario]
    rules: tuple[Rule, ...]
    source: str
    sha256: str
    # Decisions already made, by path: plans and diffs ask for the same paths many times.
    _classified: dict[str, RuleMatch | None] = field(
        default_factory=dict, compare=False, repr=False
    )
    # Per first path segment, and per first two, the patterns that can match such a path,
    # in rule order.
    _by_first: dict[str, _FirstName] = field(default_factory=dict, compare=False, repr=False)
    _candidates: dict[tuple[str, str | None], tuple[tuple[Rule, PathPattern], ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def classify(self, path: str) -> RuleMatch | None:
        """The most specific rule matching the dotted `path`, or None when none does."""
        if path not in self._classified:
            self._classified[path] = self._best_match(path)
        return self._classified[path]

    def _patterns_for(self, path: str) -> tuple[tuple[Rule, PathPattern], ...]:
        """The patterns that can match `path` as far as its first two names tell: the
        fleet keys' rules (``fleet.Soc``) are not tried on ``fleet.Odometer``, nor VSS rules
        on other branches."""
        names = path.casefold().split(".", 2)
        first, second = names[0], names[1] if len(names) > 1 else None
        found = self._candidates.get((first, second))
        if found is not None:
            return found
        under = self._by_first.get(first)
        if under is None:
            under = self._by_first[first] = _FirstName.of(
                (rule, pattern) for rule in self.rules for pattern in rule.patterns
                if pattern.segments[0] in ("*", "**", first)
            )
        found = self._candidates[(first, second)] = under.candidates(second)
        return found

    def _best_match(self, path: str) -> RuleMatch | None:
        best: RuleMatch | None = None
        for rule, pattern in self._patterns_for(path):
            if not pattern.matches(path):
                continue
            if best is None or pattern.rank > best.pattern.rank:
                best = RuleMatch(rule, pattern)
            elif (
                pattern.rank == best.pattern.rank
                and rule.data_class != best.rule.data_class
            ):
                # Validation rejects such ties; a hand-built catalogue could still have one.
                raise CatalogueError(
                    [
                        f"{self.source}: rules {best.rule.id!r} and {rule.id!r} tie on "
                        f"{path!r} with different classes"
                    ]
                )
        return best

    def kind_of(self, data_class: str) -> ClassKind:
        """Whether `data_class` is ordinary or withheld (`unclassified` is withheld)."""
        if data_class == UNCLASSIFIED:
            return "withheld"
        return self.classes[data_class].kind

    def scenario(self, name: str) -> Scenario:
        """The scenario called `name`, or `ScenarioError` with a did-you-mean hint."""
        try:
            return self.scenarios[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.scenarios), n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
            raise ScenarioError(
                f"catalogue {self.id!r} has no scenario {name!r}; "
                f"it has: {', '.join(sorted(self.scenarios))}",
                hint=hint,
            ) from None
