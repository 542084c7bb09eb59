"""Reading and validating a catalogue: the TOML file (or mapping) into a `Catalogue`.

In: a TOML file (or an equivalent mapping) with `id`, `version`, `description`, `[keys.*]`,
`[classes.*]`, `[scenarios.*]` and `[[rules]]` (format in catalogue/README.md and below).
Out: a frozen `Catalogue` (`filter.policy.catalogue`) whose `classify(path)` returns the
winning `Rule` for a dotted path, or None when no rule matches (the engine then withholds the
field as `unclassified`).
May fail: `CatalogueError` listing *every* problem found, each naming the file and the entry.

Format sketch::

    id = "lingang-icv"
    version = "2026.11.0"
    description = "..."
    [keys.vehicle_id]            # raw VIN column; never exported, replaced by a keyed token
    aliases = ["vin", "Vehicle.VehicleIdentification.VIN"]
    basis = "..."
    [keys.timestamp]             # record time; kept in both outputs
    aliases = ["timestamp", "ts"]
    [classes.location]
    kind = "withheld"            # or "ordinary"
    [scenarios.after-sales]
    classes = ["after_sales", "design"]
    [[rules]]
    id = "cabin"
    class = "cabin"
    patterns = ["Vehicle.Cabin.**"]
    basis = "Several Provisions on Automobile Data Security (Trial), 2021, art. 3"

Patterns and their precedence are defined in `filter.policy.patterns`.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from filter.errors import CatalogueError, os_reason
from filter.files import read_regular
from filter.policy.catalogue import (
    ANY_SCENARIO,
    KEY_ROLES,
    ORIGINS,
    UNCLASSIFIED,
    Action,
    Catalogue,
    DataClass,
    KeyColumn,
    Rule,
    Scenario,
)
from filter.policy.patterns import (
    ANY_MANY,
    ANY_ONE,
    PathPattern,
    PatternSyntaxError,
    compile_pattern,
)
from filter.resources import default_catalogue_path

_TOP_KEYS = {"id", "version", "description", "keys", "classes", "scenarios", "rules"}
_KEY_KEYS = {"aliases", "basis", "description", "actions"}
_CLASS_KEYS = {"kind", "description"}
_SCENARIO_KEYS = {"classes", "description", "origins"}
_RULE_KEYS = {"id", "class", "patterns", "basis", "note", "actions"}
_ACTION_KEYS = {"coarsen", "round"}
_DURATION = re.compile(r"^[1-9]\d*(?:us|ms|s|m|h|d|w|mo|y)$")


#: The limits of a catalogue (with `patterns.MAX_SEGMENTS` and `MAX_SEGMENT_CHARS`): the
#: shipped one has under a hundred rules; these keep loading and the tie check (which
#: compares patterns of different classes that could meet) within seconds.
MAX_CATALOGUE_BYTES = 16 * 1024 * 1024
MAX_RULES = 5_000
MAX_PATTERNS = 20_000
#: Ties reported before the check stops: a catalogue with more has a mistake of its own kind
#: (a pattern repeated under two classes), and a complete list of them grows as pairs do.
MAX_TIES_SHOWN = 50


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load and validate a catalogue TOML file; `None` loads the shipped default catalogue."""
    file = Path(path) if path is not None else default_catalogue_path()
    try:
        if file.stat().st_size > MAX_CATALOGUE_BYTES:
            raise CatalogueError([f"{file}: larger than {MAX_CATALOGUE_BYTES:,} bytes: "
                                  "not a catalogue vtx reads (see `vtx catalogue validate`)"])
        raw = read_regular(file)  # a FIFO or device is refused, not read
    except OSError as exc:
        raise CatalogueError([f"{file}: cannot read catalogue: {os_reason(exc)}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogueError([f"{file}: not UTF-8 text (byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError([f"{file}: invalid TOML: {exc}"]) from None
    return catalogue_from_mapping(data, source=str(file), sha256=hashlib.sha256(raw).hexdigest())


def catalogue_from_mapping(
    data: Mapping[str, Any], *, source: str = "<catalogue>", sha256: str | None = None
) -> Catalogue:
    """Validate a catalogue given as a mapping (as parsed from TOML) and build it.

    Raises `CatalogueError` with every problem found. `sha256` defaults to a digest of the
    mapping's canonical JSON, so in-memory catalogues are pinned too.
    """
    problems: list[str] = []

    def problem(where: str, text: str) -> None:
        problems.append(f"{source}: {where}: {text}")

    if not isinstance(data, Mapping):
        raise CatalogueError([f"{source}: a catalogue is a table of keys"])
    for key in sorted(set(data) - _TOP_KEYS):
        problem(key, f"unknown key{_did_you_mean(key, _TOP_KEYS)}")

    ident = _required_str(data, "id", "id", problem)
    version = _required_str(data, "version", "version", problem)
    description = _optional_str(data, "description", "description", problem)
    classes = _parse_classes(data.get("classes"), problem)
    scenarios = _parse_scenarios(data.get("scenarios"), classes, problem)
    keys = _parse_keys(data.get("keys"), set(scenarios), problem)
    rules = _parse_rules(data.get("rules"), classes, set(scenarios), problem)
    _check_ties(rules, problem)

    if problems:
        raise CatalogueError(problems)
    if sha256 is None:
        canonical = json.dumps(data, sort_keys=True, default=str).encode()
        sha256 = hashlib.sha256(canonical).hexdigest()
    return Catalogue(
        id=ident,
        version=version,
        description=description,
        keys=keys,
        classes=classes,
        scenarios=scenarios,
        rules=tuple(rules),
        source=source,
        sha256=sha256,
    )


# --- parsing helpers: each reports problems and returns what it could build ---------------------

Problem = Any  # callable(where, text); kept loose to keep signatures short


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _required_str(table: Mapping[str, Any], key: str, where: str, problem: Problem) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        problem(where, "required, a non-empty string")
        return ""
    return value


def _optional_str(table: Mapping[str, Any], key: str, where: str, problem: Problem) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        problem(where, "must be a string")
        return ""
    return value


def _table(value: Any, where: str, problem: Problem) -> Mapping[str, Any]:
    if value is None:
        problem(where, "required table is missing")
        return {}
    if not isinstance(value, Mapping):
        problem(where, "must be a table")
        return {}
    return value


def _unknown_keys(entry: Mapping[str, Any], allowed: set[str], where: str, p: Problem) -> None:
    for key in sorted(set(entry) - allowed):
        p(f"{where}.{key}", f"unknown key{_did_you_mean(key, allowed)}")


def _parse_keys(value: Any, scenario_names: set[str], problem: Problem) -> dict[str, KeyColumn]:
    keys: dict[str, KeyColumn] = {}
    table = _table(value, "keys", problem)
    for role in sorted(set(table) - set(KEY_ROLES)):
        problem(f"keys.{role}", f"unknown key role{_did_you_mean(role, KEY_ROLES)}")
    for role in KEY_ROLES:
        where = f"keys.{role}"
        entry = table.get(role)
        if not isinstance(entry, Mapping):
            if table:
                problem(where, "required table is missing")
            continue
        _unknown_keys(entry, _KEY_KEYS, where, problem)
        aliases = entry.get("aliases")
        if (
            not isinstance(aliases, list)
            or not aliases
            or not all(isinstance(a, str) and a.strip() for a in aliases)
        ):
            problem(f"{where}.aliases", "required, a non-empty list of column names")
            continue
        basis = _optional_str(entry, "basis", f"{where}.basis", problem)
        actions = _parse_actions(entry.get("actions"), f"{where}.actions", scenario_names, problem)
        keys[role] = KeyColumn(role=role, aliases=tuple(aliases), basis=basis, actions=actions)
    if "vehicle_id" in keys and "timestamp" in keys:
        shared = {a.casefold() for a in keys["vehicle_id"].aliases} & {
            a.casefold() for a in keys["timestamp"].aliases
        }
        if shared:
            problem("keys", f"aliases used for both key roles: {', '.join(sorted(shared))}")
    return keys


def _parse_classes(value: Any, problem: Problem) -> dict[str, DataClass]:
    classes: dict[str, DataClass] = {}
    for name, entry in _table(value, "classes", problem).items():
        where = f"classes.{name}"
        if name == UNCLASSIFIED:
            problem(where, f"{UNCLASSIFIED!r} is built in (always withheld); do not declare it")
            continue
        if not isinstance(entry, Mapping):
            problem(where, "must be a table with 'kind'")
            continue
        _unknown_keys(entry, _CLASS_KEYS, where, problem)
        kind = entry.get("kind")
        if kind not in ("ordinary", "withheld"):
            problem(f"{where}.kind", f"must be 'ordinary' or 'withheld', not {kind!r}")
            continue
        desc = _optional_str(entry, "description", f"{where}.description", problem)
        classes[name] = DataClass(name=name, kind=kind, description=desc)
    return classes


def _parse_scenarios(
    value: Any, classes: Mapping[str, DataClass], problem: Problem
) -> dict[str, Scenario]:
    scenarios: dict[str, Scenario] = {}
    for name, entry in _table(value, "scenarios", problem).items():
        where = f"scenarios.{name}"
        if not isinstance(entry, Mapping):
            problem(where, "must be a table with 'classes'")
            continue
        _unknown_keys(entry, _SCENARIO_KEYS, where, problem)
        names = entry.get("classes")
        if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
            problem(f"{where}.classes", "required, a list of ordinary class names")
            continue
        for cls in names:
            if cls not in classes:
                if cls != UNCLASSIFIED:
                    problem(
                        f"{where}.classes",
                        f"class {cls!r} is not declared{_did_you_mean(cls, classes)}",
                    )
                else:
                    problem(f"{where}.classes", f"{UNCLASSIFIED!r} can never be exported")
            elif classes[cls].kind != "ordinary":
                problem(f"{where}.classes", f"class {cls!r} is withheld and cannot be exported")
        desc = _optional_str(entry, "description", f"{where}.description", problem)
        origins = entry.get("origins")
        if origins is not None and (
            not isinstance(origins, list) or not origins or not set(origins) <= set(ORIGINS)
        ):
            problem(f"{where}.origins", f"must be a non-empty list of: {', '.join(ORIGINS)}")
            origins = None
        scenarios[name] = Scenario(
            name=name, classes=frozenset(names), description=desc,
            origins=frozenset(origins) if origins is not None else None,
        )
    return scenarios


def _parse_rules(
    value: Any, classes: Mapping[str, DataClass], scenario_names: set[str], problem: Problem
) -> list[Rule]:
    rules: list[Rule] = []
    if value is None:
        problem("rules", "required, an array of [[rules]] tables")
        return rules
    if not isinstance(value, list):
        problem("rules", "must be an array of [[rules]] tables")
        return rules
    if len(value) > MAX_RULES:
        problem("rules", f"{len(value):,} rules: at most {MAX_RULES:,} are allowed")
        return rules
    if sum(len(e.get("patterns") or ()) for e in value
           if isinstance(e, Mapping) and isinstance(e.get("patterns"), list)) > MAX_PATTERNS:
        problem("rules", f"more than {MAX_PATTERNS:,} patterns in all: not allowed")
        return rules
    seen: dict[str, int] = {}
    for index, entry in enumerate(value):
        where = f"rules[{index}]"
        if not isinstance(entry, Mapping):
            problem(where, "must be a table")
            continue
        rule_id = entry.get("id")
        if isinstance(rule_id, str) and rule_id.strip():
            where = f"rules[{index}] (id {rule_id!r})"
            if rule_id in seen:
                problem(where, f"duplicate rule id, first used by rules[{seen[rule_id]}]")
            seen.setdefault(rule_id, index)
        else:
            problem(where, "id: required, a non-empty string")
            rule_id = f"#{index}"
        _unknown_keys(entry, _RULE_KEYS, where, problem)
        data_class = entry.get("class")
        if not isinstance(data_class, str) or (
            data_class not in classes and data_class != UNCLASSIFIED
        ):
            hint = _did_you_mean(str(data_class), classes) if isinstance(data_class, str) else ""
            problem(f"{where}.class", f"class {data_class!r} is not declared{hint}")
            data_class = None
        basis = entry.get("basis")
        if not isinstance(basis, str) or not basis.strip():
            problem(f"{where}.basis", "required, the legal basis for this rule")
        note = entry.get("note", "")
        if not isinstance(note, str):
            problem(f"{where}.note", "must be a string")
            note = ""
        patterns = _parse_patterns(entry.get("patterns"), f"{where}.patterns", problem)
        actions = _parse_actions(entry.get("actions"), f"{where}.actions", scenario_names, problem)
        if data_class is not None and patterns and isinstance(basis, str) and basis.strip():
            rules.append(Rule(rule_id, data_class, patterns, basis, note, index, actions))
    return rules


def _parse_actions(
    value: Any, where: str, scenario_names: set[str], problem: Problem
) -> dict[str, Action]:
    """``{scenario or "*" = {coarsen = "1h"} | {round = 2}}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problem(where, 'must be a table of scenario (or "*") = {coarsen = "1h"} or {round = N}')
        return {}
    actions: dict[str, Action] = {}
    for scenario, spec in value.items():
        here = f"{where}.{scenario}"
        if scenario != ANY_SCENARIO and scenario not in scenario_names:
            problem(here, f"no such scenario{_did_you_mean(scenario, scenario_names)}")
            continue
        if not isinstance(spec, Mapping) or len(spec) != 1 or not set(spec) <= _ACTION_KEYS:
            problem(here, 'must be {coarsen = "DURATION"} or {round = DIGITS}')
            continue
        if "coarsen" in spec:
            every = spec["coarsen"]
            if not isinstance(every, str) or not _DURATION.match(every):
                problem(f"{here}.coarsen", f'a duration such as "1h", "15m" or "1d", not {every!r}')
                continue
            actions[scenario] = Action("coarsen", every=every)
        else:
            digits = spec["round"]
            if not isinstance(digits, int) or isinstance(digits, bool) or not -9 <= digits <= 9:
                problem(f"{here}.round", f"whole number of digits from -9 to 9, not {digits!r}")
                continue
            actions[scenario] = Action("round", digits=digits)
    return actions


def _parse_patterns(value: Any, where: str, problem: Problem) -> tuple[PathPattern, ...]:
    if not isinstance(value, list) or not value:
        problem(where, "required, a non-empty list of path patterns")
        return ()
    compiled: list[PathPattern] = []
    for i, text in enumerate(value):
        try:
            compiled.append(compile_pattern(text))
        except PatternSyntaxError as exc:
            problem(f"{where}[{i}]", str(exc))
    return tuple(compiled) if len(compiled) == len(value) else ()


def _candidate_pairs(group: list[tuple[Rule, PathPattern]]) -> Iterator[tuple[int, int]]:
    """The pairs (i, j) of `group` (patterns of one rank) of different classes that may
    overlap, found through an index instead of by comparing every pair.

    Two patterns of names only overlap when they are the same path. A pattern with a
    wildcard is compared only with those that agree with it on the names its paths must have
    at fixed places (`_places`): it takes the shortest list of patterns that could agree on
    one of its own names, and checks the other places. Patterns
    with no name at any of those places (``**.x.**``) are compared with all: any two of them
    tie (a path holding both names matches both), and the check stops at the first ties."""
    exact: dict[tuple[str, ...], list[int]] = {}
    places = [_places(pattern.segments) for _, pattern in group]
    named: dict[tuple[int, str], list[int]] = {}  # (place, name) -> patterns with it there
    held: dict[int, set[int]] = {}  # place -> patterns with a name there
    for index, (_, pattern) in enumerate(group):
        if not any(seg in (ANY_ONE, ANY_MANY) for seg in pattern.segments):
            exact.setdefault(pattern.segments, []).append(index)
        for place, name in places[index].items():
            named.setdefault((place, name), []).append(index)
            held.setdefault(place, set()).add(index)
    # Per place, the patterns that leave it open, made when first asked for.
    open_at: dict[int, list[int]] = {}

    def leaving_open(place: int) -> list[int]:
        if place not in open_at:
            open_at[place] = [i for i in range(len(group)) if i not in held[place]]
        return open_at[place]

    for members in exact.values():
        for n, a in enumerate(members):
            for b in members[n + 1:]:
                if group[a][0].data_class != group[b][0].data_class:
                    yield a, b
    everyone = range(len(group))
    for w, (rule, pattern) in enumerate(group):
        if pattern.segments in exact:
            continue
        mine = places[w]
        # The place where fewest patterns could agree with this one: those naming the same
        # name there, and those leaving it open.
        place = min(mine, key=lambda p: len(named[(p, mine[p])]) + len(group) - len(held[p]),
                    default=None)
        candidates = (everyone if place is None else
                      itertools.chain(named[(place, mine[place])], leaving_open(place)))
        for other in candidates:
            if other == w or group[other][0].data_class == rule.data_class:
                continue
            wild_other = group[other][1].segments not in exact
            if wild_other and other < w:
                continue  # found from `other`'s side (agreeing is symmetric)
            theirs = places[other]
            if all(theirs.get(p, name) == name for p, name in mine.items()):
                yield min(w, other), max(w, other)


def _places(segments: tuple[str, ...]) -> dict[int, str]:
    """The names a pattern's paths must hold at fixed places: before its first ``**`` its
    segments sit at places 0, 1, ... from the start, after its last at places -1, -2, ...
    from the end (a pattern without ``**`` is fixed from both ends: its paths are exactly as
    long as it is). A place a pattern leaves open (``*``, or beyond its fixed segments) is
    not in it."""
    many = [i for i, seg in enumerate(segments) if seg == ANY_MANY]
    prefix = segments[:many[0]] if many else segments
    suffix = segments[many[-1] + 1:] if many else segments
    places = {k: seg for k, seg in enumerate(prefix) if seg != ANY_ONE}
    places.update({-1 - k: seg for k, seg in enumerate(reversed(suffix)) if seg != ANY_ONE})
    return places


def _check_ties(rules: list[Rule], problem: Problem) -> None:
    """Report pairs of equal-rank patterns that can match a common path with different classes.

    Patterns of one class never tie (whichever wins, the class is the same): a rank whose
    patterns are all of one class is not looked into, and only pairs of different classes are
    compared (`_candidate_pairs`)."""
    by_rank: dict[tuple[int, int, int], list[tuple[Rule, PathPattern]]] = {}
    for rule in rules:
        for pattern in rule.patterns:
            by_rank.setdefault(pattern.rank, []).append((rule, pattern))
    found = 0
    for group in by_rank.values():
        if len({rule.data_class for rule, _ in group}) < 2:
            continue
        for i, j in _candidate_pairs(group):
            (rule_a, pat_a), (rule_b, pat_b) = group[i], group[j]
            if pat_a.overlaps(pat_b):
                found += 1
                if found > MAX_TIES_SHOWN:
                    problem("rules", f"more ties than the {MAX_TIES_SHOWN} above: not all are "
                                     "shown (fix those first)")
                    return
                problem(
                    f"rules[{rule_b.index}] (id {rule_b.id!r})",
                    f"pattern {pat_b.text!r} ({rule_b.data_class}) ties with "
                    f"{pat_a.text!r} of rule {rule_a.id!r} ({rule_a.data_class}): equally "
                    "specific and both can match the same path; make one more specific",
                )
