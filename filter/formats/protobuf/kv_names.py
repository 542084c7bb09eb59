"""Enum numbers as their value names, for the key/value decoder's columns.

In: enum numbers decoded from the wire (key numbers, enum members' values) and the
`EnumDescriptor` that names them.
Out: `enum_names`: the Polars column of their names (optionally a `pl.Enum` column);
`name_codes`: per number, its position among the names it may take, for a writer's dictionary.
A number the enum does not know is spelled as its digits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import polars as pl
from google.protobuf.descriptor import EnumDescriptor

from filter.formats.protobuf.kv_tables import MAX_TABLE_FIELD
from filter.jit import kernel
from filter.string_codes import as_enum


def enum_names(
    numbers: pl.Series, enum: EnumDescriptor, name: str, *, coded: bool = False
) -> pl.Series:
    """Enum numbers as their value names; a number the enum does not know as its digits.

    With `coded` the names are a `pl.Enum` column (of the enum's names, and the digits of
    unknown numbers if there are any)."""
    lookup = name_lookup(enum_key(enum))
    codes, categories, extra = name_codes(numbers.to_numpy(), lookup)
    if not extra:
        table = lookup.coded if coded else lookup.names
    else:
        table = pl.Series([*categories, None], dtype=pl.String)
        if coded:
            table = table.cast(pl.Enum(categories))
    return table.gather(codes).alias(name)


def name_codes(values: np.ndarray, lookup: NameLookup) -> tuple[np.ndarray, list[str], bool]:
    """Per enum number, its position among the names it may take: the enum's value names,
    then those of the numbers outside the lookup table present in `values`, each spelled once
    (its name, for the few enums that have far numbers; else its digits). Also those names,
    and whether any number was outside the table."""
    known = len(lookup.names) - 1  # the trailing null
    codes, unknown = table_codes(values, lookup.index, known)
    if not unknown:  # as usual: every number is the enum's
        return codes, lookup.known, False
    missing = np.flatnonzero(codes == known)
    outside, which = np.unique(values[missing], return_inverse=True)
    spelled = [lookup.far.get(str(n), str(n)) for n in outside.tolist()]
    codes[missing] = known + which.ravel()
    return codes, [*lookup.known, *spelled], True


@kernel()
def table_codes(values, index, unknown):  # pragma: no cover - compiled
    """Each value's entry in `index` (int32; a value outside it: `unknown`), and how many
    values are `unknown`."""
    codes = np.empty(len(values), np.int32)
    missing = 0
    for i in range(len(values)):
        v = values[i]
        code = index[v] if 0 <= v < len(index) else unknown
        codes[i] = code
        missing += code == unknown
    return codes, missing


def enum_key(enum: EnumDescriptor) -> tuple[tuple[int, str], ...]:
    return tuple(sorted((v.number, v.name) for v in enum.values))


@dataclass(frozen=True)
class NameLookup:
    index: np.ndarray  # enum number -> position in `names`; numbers it lacks -> the last
    names: pl.Series  # the value names, then a null
    far: dict[str, str]  # the enum's numbers outside `index` (as digits) -> their names
    coded: pl.Series  # `names` as a `pl.Enum` of the table's names
    known: list[str]  # `names` but the null


@functools.cache
def name_lookup(known: tuple[tuple[int, str], ...]) -> NameLookup:
    near = [(k, v) for k, v in known if 0 <= k <= MAX_TABLE_FIELD]
    index = np.full(max((k for k, _ in near), default=0) + 1, len(near), dtype=np.int64)
    for position, (number, _) in enumerate(near):
        index[number] = position
    far = {str(k): v for k, v in known if not 0 <= k <= MAX_TABLE_FIELD}
    names = pl.Series([*(v for _, v in near), None], dtype=pl.String)
    return NameLookup(index, names, far, as_enum(names), [v for _, v in near])
