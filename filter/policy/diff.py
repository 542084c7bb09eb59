"""Compare two catalogue versions the way a compliance reviewer needs to see them.

In: the old and the new `Catalogue`, and the field paths to compare them on (by default every
path of the shipped vocabularies: all VSS leaves and fleet-telemetry keys).
Out: a `CatalogueDiff`: rules added, removed and changed (by id); scenarios added, removed and
changed (exported classes, origin gates); and, per scenario both define, every field whose
class, destination or action changes.
May fail: nothing of its own (both catalogues are already validated).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from filter.policy.catalogue import Catalogue, Rule, Scenario
from filter.policy.plan import decide_path


@dataclass(frozen=True)
class FieldChange:
    """One field whose decision differs between the catalogues under one scenario."""

    scenario: str
    field: str
    old_class: str
    new_class: str
    old_destination: str
    new_destination: str
    old_rule: str | None
    new_rule: str | None
    old_action: str | None
    new_action: str | None


@dataclass(frozen=True)
class CatalogueDiff:
    """What changed from one catalogue to the other."""

    old: str  # "id version"
    new: str
    rules_added: list[str]
    rules_removed: list[str]
    rules_changed: list[dict[str, Any]]  # id and the attributes that differ
    scenarios_added: list[str]
    scenarios_removed: list[str]
    scenarios_changed: list[dict[str, Any]]
    fields: list[FieldChange]

    @property
    def empty(self) -> bool:
        """Whether nothing a reviewer must see changed."""
        return not (self.rules_added or self.rules_removed or self.rules_changed
                    or self.scenarios_added or self.scenarios_removed
                    or self.scenarios_changed or self.fields)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return asdict(self)


def diff_catalogues(
    old: Catalogue, new: Catalogue, paths: Iterable[str] | None = None
) -> CatalogueDiff:
    """Compare `old` and `new` on their rules, scenarios and the decisions for `paths`."""
    if paths is None:
        from filter.policy.vocabulary import known_paths

        paths = known_paths()
    fields = list(paths)
    old_rules = {r.id: r for r in old.rules}
    new_rules = {r.id: r for r in new.rules}
    shared_scenarios = [s for s in new.scenarios if s in old.scenarios]
    changes = []
    for scenario in shared_scenarios:
        for path in fields:
            before = decide_path(old, scenario, path)
            after = decide_path(new, scenario, path)
            old_action = before.action.describe() if before.action else None
            new_action = after.action.describe() if after.action else None
            if (before.data_class, before.destination, old_action) != (
                after.data_class, after.destination, new_action
            ):
                changes.append(FieldChange(
                    scenario, path, before.data_class, after.data_class, before.destination,
                    after.destination, before.rule, after.rule, old_action, new_action,
                ))
    return CatalogueDiff(
        old=f"{old.id} {old.version}",
        new=f"{new.id} {new.version}",
        rules_added=[r for r in new_rules if r not in old_rules],
        rules_removed=[r for r in old_rules if r not in new_rules],
        rules_changed=[
            {"id": rid, **_rule_changes(old_rules[rid], new_rules[rid])}
            for rid in new_rules
            if rid in old_rules and _rule_changes(old_rules[rid], new_rules[rid])
        ],
        scenarios_added=[s for s in new.scenarios if s not in old.scenarios],
        scenarios_removed=[s for s in old.scenarios if s not in new.scenarios],
        scenarios_changed=[
            {"scenario": s, **_scenario_changes(old.scenarios[s], new.scenarios[s])}
            for s in shared_scenarios
            if _scenario_changes(old.scenarios[s], new.scenarios[s])
        ],
        fields=changes,
    )


def _rule_changes(old: Rule, new: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if old.data_class != new.data_class:
        out["class"] = [old.data_class, new.data_class]
    old_patterns, new_patterns = [p.text for p in old.patterns], [p.text for p in new.patterns]
    if old_patterns != new_patterns:
        out["patterns"] = [old_patterns, new_patterns]
    if old.basis != new.basis:
        out["basis"] = [old.basis, new.basis]
    old_actions = {s: a.describe() for s, a in old.actions.items()}
    new_actions = {s: a.describe() for s, a in new.actions.items()}
    if old_actions != new_actions:
        out["actions"] = [old_actions, new_actions]
    return out


def _scenario_changes(old: Scenario, new: Scenario) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if old.classes != new.classes:
        out["classes"] = [sorted(old.classes), sorted(new.classes)]
    if old.origins != new.origins:
        out["origins"] = [sorted(old.origins or []), sorted(new.origins or [])]
    return out
