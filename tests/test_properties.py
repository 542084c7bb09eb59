"""The product's promises as properties, over random schemas, catalogues and data.

1. Fail closed: no field a catalogue classes withheld, or does not classify, or whose class the
   scenario does not export, is in the export (checked against an independent matcher); no
   value a detector hits is, whether its strings are plain, categorical (dictionary-encoded)
   or enum, alone or in lists.
2. Nothing lost: export plus onshore reconstruct the input, row for row.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from polars.testing.parametric import column, dataframes

from filter import CatalogueError, catalogue_from_mapping, read_manifest, split, split_frame
from filter.apply.reconstruct import reconstruct
from tests.conftest import KEY

NAMES = ["Vehicle", "Cabin", "Latitude", "Speed", "x"]
SCALARS = [pl.Int32, pl.Float64, pl.String, pl.Boolean]
#: An enum whose categories hold values the detectors must catch (a plate, a mobile number),
#: used by the data or not: the export's type must not carry them.
ENUM = pl.Enum(["Low", "Normal", "沪A12345", "13812345678"])
#: Strings stored otherwise than as plain strings: dictionary-encoded (categorical) or enum.
CODED_STRINGS = [pl.Categorical(), ENUM]
ORDINARY = ["o1", "o2", "o3"]
WITHHELD = ["w1", "w2"]

segments = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)


def dtypes(depth: int = 0) -> st.SearchStrategy[pl.DataType]:
    scalar = st.sampled_from(SCALARS)
    coded = st.sampled_from(CODED_STRINGS)
    if depth >= 2:
        return st.one_of(scalar, coded)
    struct = st.dictionaries(st.sampled_from(NAMES), dtypes(depth + 1), min_size=1,
                             max_size=3).map(pl.Struct)
    return st.one_of(scalar, scalar, struct, scalar.map(pl.List), coded, coded.map(pl.List))


@st.composite
def schemas(draw: st.DrawFn) -> pl.Schema:
    columns = draw(st.dictionaries(segments.map(".".join), dtypes(), min_size=1, max_size=5))
    return pl.Schema({"vin": pl.String, "ts": pl.Int64, **columns})


@st.composite
def catalogues(draw: st.DrawFn) -> dict[str, Any]:
    pattern = st.lists(st.sampled_from([*NAMES, "*", "**"]), min_size=1, max_size=4).map(".".join)
    rules = [
        {"id": f"r{i}", "class": draw(st.sampled_from(ORDINARY + WITHHELD)), "basis": "b",
         "patterns": draw(st.lists(pattern, min_size=1, max_size=2))}
        for i in range(draw(st.integers(0, 6)))
    ]
    return {
        "id": "random", "version": "1",
        "keys": {"vehicle_id": {"aliases": ["vin"]}, "timestamp": {"aliases": ["ts"]}},
        "classes": {**{c: {"kind": "ordinary"} for c in ORDINARY},
                    **{c: {"kind": "withheld"} for c in WITHHELD}},
        "scenarios": {"s": {"classes": draw(st.lists(st.sampled_from(ORDINARY), unique=True))}},
        "rules": rules,
    }


def frames(schema: pl.Schema) -> st.SearchStrategy[pl.DataFrame]:
    return dataframes(
        cols=[column(name, dtype=dtype, allow_null=name != "ts") for name, dtype in schema.items()],
        min_size=0, max_size=6,
    )


def build(data: dict[str, Any]):
    try:
        return catalogue_from_mapping(data)
    except CatalogueError:
        reject()  # ties between random rules: not a catalogue anyone could load


# --- an independent oracle: regular expressions, not filter.policy.patterns ---------------

def oracle_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for seg in pattern.split("."):
        if seg == "**":
            parts.append(r"(?:\.[^.]+)*")
        elif seg == "*":
            parts.append(r"\.[^.]+")
        else:
            parts.append(r"\." + re.escape(seg))
    return re.compile("".join(parts), re.IGNORECASE)


def oracle_rank(pattern: str) -> tuple[int, int, int]:
    segs = re.sub(r"(\*\*\.)+\*\*", "**", pattern).split(".")
    return (sum(s not in ("*", "**") for s in segs), -segs.count("**"), -segs.count("*"))


def oracle_exported(data: dict[str, Any], path: str) -> bool:
    best: tuple[tuple[int, int, int], str] | None = None
    for rule in data["rules"]:
        for pattern in rule["patterns"]:
            if oracle_regex(pattern).fullmatch("." + path):
                rank = oracle_rank(pattern)
                if best is None or rank > best[0]:
                    best = (rank, rule["class"])
    return best is not None and best[1] in data["scenarios"]["s"]["classes"]


def leaf_paths(schema: pl.Schema) -> list[str]:
    out = []

    def walk(prefix: str, dtype: pl.DataType) -> None:
        if isinstance(dtype, pl.Struct) and dtype.fields:
            for fld in dtype.fields:
                walk(f"{prefix}.{fld.name}", fld.dtype)
        else:
            out.append(prefix)

    for name, dtype in schema.items():
        walk(name, dtype)
    return out


def unique_paths(schema: pl.Schema) -> bool:
    paths = [p.casefold() for p in leaf_paths(schema)]
    return len(paths) == len(set(paths))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.filter_too_much])
@given(schema=schemas().filter(unique_paths), data=catalogues(), rows=st.data())
def test_export_holds_only_what_the_catalogue_exports(schema, data, rows) -> None:
    catalogue = build(data)
    frame = rows.draw(frames(schema))
    export, onshore = split_frame(frame, "s", key=KEY, catalogue=catalogue)

    exported = set(leaf_paths(export.schema)) - {"vehicle_token", "ts"}
    for path in exported:
        assert oracle_exported(data, path), f"{path} exported against the catalogue"
    for path in set(leaf_paths(schema)) - {"vin", "ts"}:
        assert (path in exported) == oracle_exported(data, path), path
    assert "vin" not in export.columns
    assert_frame_equal(reconstruct(export, onshore, schema), frame)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.filter_too_much])
@given(schema=schemas().filter(unique_paths), data=catalogues(), rows=st.data())
def test_published_outputs_reconcile_and_reconstruct(schema, data, rows) -> None:
    catalogue = build(data)
    frame = rows.draw(frames(schema))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        frame.write_parquet(root / "in.parquet")
        split(root / "in.parquet", root / "e", root / "o", "s", key=KEY, catalogue=catalogue)
        export_m, onshore_m = read_manifest(root / "e"), read_manifest(root / "o")
        assert export_m.rows == onshore_m.rows == frame.height
        assert export_m.inputs[0].rows == frame.height
        export = pl.read_parquet(root / "e" / "part-00000.parquet")
        onshore = pl.read_parquet(root / "o" / "part-00000.parquet")
        stored = pl.read_parquet(root / "in.parquet")
        assert_frame_equal(reconstruct(export, onshore, stored.schema), stored)


# Values every detector must catch, to plant in ordinary string fields: anywhere in the text,
# or (media bytes) at its start.
SENSITIVE = ["31.230416, 121.473701", "(37.412374 N, 122.145867 W)", "沪A12345",
             "1HGCM82633A004352", "13812345678", "11010519491231002X", "zhang@example.cn"]
MEDIA = ["/9j/4AAQSkZJRg", "\x00\x00\x00\x01gd", "data:image/png;base64,iVBORw0KGgo"]


def _stored_strings(dtype: pl.DataType) -> bool:
    """Whether `dtype` is strings, plain or coded, or a list of them."""
    inner = dtype.inner if isinstance(dtype, pl.List) else dtype
    return inner == pl.String or isinstance(inner, pl.Categorical | pl.Enum)


def _strings_of(column: pl.Series) -> set[str]:
    """Every string a column of strings (or of lists of strings) holds."""
    values = column.explode() if isinstance(column.dtype, pl.List) else column
    return set(values.cast(pl.String).drop_nulls())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.filter_too_much])
@given(schema=schemas().filter(unique_paths), data=catalogues(), rows=st.data())
def test_sensitive_values_in_ordinary_strings_never_reach_the_export(schema, data, rows) -> None:
    catalogue = build(data)
    frame = rows.draw(frames(schema))
    planted = []
    for name, dtype in schema.items():
        if not _stored_strings(dtype) or name in ("vin", "ts") or not frame.height:
            continue
        prefix = rows.draw(st.sampled_from(["", "note: ", "x "]))
        plantable = [*SENSITIVE, *([] if prefix else MEDIA)]
        inner = dtype.inner if isinstance(dtype, pl.List) else dtype
        if isinstance(inner, pl.Enum):  # its own categories are what it can hold
            prefix, plantable = "", ["沪A12345", "13812345678"]
        picks = rows.draw(st.lists(st.sampled_from([None, *plantable]),
                                   min_size=frame.height, max_size=frame.height))
        values = [(f"{prefix}{p}" if not isinstance(dtype, pl.List) else [f"{prefix}{p}", "ok"])
                  if p else v for p, v in zip(picks, frame[name].to_list(), strict=True)]
        if isinstance(inner, pl.Enum):
            values = [[x for x in v if x in ENUM.categories] if isinstance(v, list) else v
                      for v in values]
        frame = frame.with_columns(pl.Series(name, values, dtype=dtype))
        planted += [f"{prefix}{p}" for p in picks if p]
    export, onshore = split_frame(frame, "s", key=KEY, catalogue=catalogue)
    exported: set[str] = set()
    for name, dtype in export.schema.items():
        if _stored_strings(dtype):
            exported |= _strings_of(export[name])
            inner = dtype.inner if isinstance(dtype, pl.List) else dtype
            if isinstance(inner, pl.Enum):  # nor in the type, used or not
                exported |= set(inner.categories)
    assert not exported & set(planted)
    assert not exported & {"沪A12345", "13812345678"}
    assert_frame_equal(reconstruct(export, onshore, schema), frame)
