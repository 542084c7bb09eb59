"""A JSON object read member by member, each by its type, for a parser that must refuse what
it does not know (`filter.outputs.manifest_document`).

In: a value `json.loads` gave, and where in its document it is (for messages).
Out: `JsonFields`: its members taken as strings, counts, objects or lists of objects; `done()`
refuses a member nothing took.
May fail: `ValueError` naming the member (dotted, with list indexes: ``files[0].rows``) that is
missing or of the wrong type, or that is not known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

#: A JSON value as `json.loads` gives it.
JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"


class JsonFields:
    """The members of one JSON object, taken by name and type; `done` refuses any member not
    taken (a key the parser does not know)."""

    def __init__(self, value: JsonValue, where: str) -> None:
        if not isinstance(value, dict):
            raise ValueError(f"{where} is not an object")
        self._value: dict[str, JsonValue] = value
        self._where = where
        self._taken: set[str] = set()

    def name(self, key: str) -> str:
        """The dotted name of member `key`, for messages."""
        return f"{self._where}.{key}" if self._where else key

    def has(self, key: str) -> bool:
        return key in self._value

    def _take(self, key: str, ok: bool, kind: str) -> JsonValue:
        self._taken.add(key)
        if key not in self._value or not ok:
            raise ValueError(f"{self.name(key)} is missing or not {kind}")
        return self._value[key]

    def text(self, key: str) -> str:
        value = self._take(key, isinstance(self._value.get(key), str), "a string")
        assert isinstance(value, str)
        return value

    def text_or_null(self, key: str) -> str | None:
        """A string member that is there, written as null where there is none."""
        value = self._value.get(key)
        self._take(key, value is None or isinstance(value, str), "a string or null")
        return value if isinstance(value, str) else None

    def optional_text(self, key: str) -> str | None:
        """A string member older manifests (or some sections) leave out: None where absent."""
        return self.text(key) if self.has(key) else None

    def integer(self, key: str) -> int:
        value = self._take(key, is_int(self._value.get(key)), "an integer")
        assert isinstance(value, int)
        return value

    def count(self, key: str) -> int:
        """A non-negative integer (not a bool)."""
        value = self._value.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        taken = self._take(key, ok, "a count")
        assert isinstance(taken, int)
        return taken

    def optional_count(self, key: str) -> int | None:
        return self.count(key) if self.has(key) else None

    def object(self, key: str) -> JsonFields:
        value = self._take(key, isinstance(self._value.get(key), dict), "an object")
        return JsonFields(value, self.name(key))

    def objects(self, key: str) -> list[JsonFields]:
        """The objects of a list member."""
        value = self._take(key, isinstance(self._value.get(key), list), "a list")
        assert isinstance(value, list)
        return [JsonFields(item, f"{self.name(key)}[{index}]") for index, item in enumerate(value)]

    def counts(self, key: str, required: Sequence[str] = ()) -> dict[str, int]:
        """An object of counts by name (`class_counts`, `entries`, a detection's `hits`), in
        its order; the names in `required` must be among them."""
        found = self.object(key)
        counts = {name: found.count(name) for name in [*required, *found._value]}
        return {name: counts[name] for name in found._value}

    def done(self) -> None:
        """Refuse the members nothing took: this vtx does not know what they claim."""
        unknown = sorted(set(self._value) - self._taken)
        if unknown:
            raise ValueError(f"{self.name(unknown[0])} is not a key vtx writes")


def is_int(value: JsonValue) -> bool:
    """Whether `value` is a JSON integer (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


__all__ = [
    "JsonFields",
    "JsonObject",
    "JsonValue",
    "is_int",
]
