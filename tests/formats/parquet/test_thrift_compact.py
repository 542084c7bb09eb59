"""Thrift compact protocol: real Parquet footers round-trip byte for byte; any struct
round-trips; damaged bytes give `ThriftError`, never another exception."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter.formats.parquet import thrift_compact as thrift
from filter.formats.parquet.thrift_compact import Field, ThriftError, ThriftList, ThriftMap


def footer(data: bytes) -> bytes:
    length = int.from_bytes(data[-8:-4], "little")
    return data[-8 - length:-8]


@pytest.mark.parametrize("writer", ["polars", "pyarrow"])
def test_parquet_footers_round_trip_byte_for_byte(writer) -> None:
    frame = pl.DataFrame({
        "vin": ["a", None, "b"], "x": [1.5, None, -2.0], "flag": [True, False, None],
        "s": [{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}], "l": [[1, 2], [], None],
    })
    buffer = io.BytesIO()
    if writer == "polars":
        frame.write_parquet(buffer, statistics=True)
    else:
        pq.write_table(frame.to_arrow(), buffer, write_page_index=True)
    encoded = footer(buffer.getvalue())
    decoded, end = thrift.decode(encoded)
    assert end == len(encoded)
    assert thrift.encode(decoded) == encoded
    assert decoded[3].value == 3  # FileMetaData.num_rows


_SCALARS = [
    st.tuples(st.just(thrift.TRUE), st.booleans()),
    st.tuples(st.just(thrift.BYTE), st.integers(-128, 127)),
    st.tuples(st.just(thrift.I16), st.integers(-(2**15), 2**15 - 1)),
    st.tuples(st.just(thrift.I32), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just(thrift.I64), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just(thrift.DOUBLE), st.floats(allow_nan=False)),
    st.tuples(st.just(thrift.BINARY), st.binary(max_size=40)),
]


def _values(wire: int) -> st.SearchStrategy[Any]:
    return {
        thrift.TRUE: st.booleans(), thrift.BYTE: st.integers(-128, 127),
        thrift.I32: st.integers(-(2**31), 2**31 - 1), thrift.BINARY: st.binary(max_size=8),
    }[wire]


def _fields(children: st.SearchStrategy[tuple[int, Any]]) -> st.SearchStrategy[tuple[int, Any]]:
    element = st.sampled_from([thrift.TRUE, thrift.BYTE, thrift.I32, thrift.BINARY])
    lists = element.flatmap(lambda w: st.lists(_values(w), max_size=20).map(
        lambda items, w=w: (thrift.LIST, ThriftList(w, items))))
    maps = st.tuples(element, element).flatmap(lambda kv: st.lists(
        st.tuples(_values(kv[0]), _values(kv[1])), max_size=4).map(
        lambda pairs, kv=kv: (thrift.MAP, ThriftMap(kv[0], kv[1], pairs))))
    structs = st.dictionaries(st.integers(1, 40), children, max_size=4).map(
        lambda d: (thrift.STRUCT, {k: Field(*v) for k, v in d.items()}))
    return st.one_of(*_SCALARS, lists, maps, structs)


structs = st.dictionaries(
    st.integers(1, 300), st.recursive(st.one_of(*_SCALARS), _fields, max_leaves=12), max_size=8,
).map(lambda d: {k: Field(*v) for k, v in d.items()})


def _normal(value: Any) -> Any:
    """A decoded value with the wire types that decode alike (TRUE/FALSE) made equal."""
    if isinstance(value, dict):
        return {k: (thrift.TRUE if f.wire in (thrift.TRUE, thrift.FALSE) else f.wire,
                    _normal(f.value)) for k, f in value.items()}
    if isinstance(value, ThriftList):
        return (value.element, [_normal(i) for i in value.items])
    if isinstance(value, ThriftMap):  # an empty map's types are not on the wire
        return (value.key, value.value, value.pairs) if value.pairs else ()
    return value


@settings(max_examples=200, deadline=None)
@given(struct=structs)
def test_any_struct_round_trips(struct) -> None:
    encoded = thrift.encode(struct)
    decoded, end = thrift.decode(encoded)
    assert end == len(encoded)
    assert _normal(decoded) == _normal(struct)
    assert thrift.encode(decoded) == encoded


@settings(max_examples=200, deadline=None)
@given(struct=structs, cut=st.floats(0, 1, exclude_max=True), noise=st.binary(max_size=8))
def test_damaged_bytes_raise_thrift_error(struct, cut, noise) -> None:
    encoded = thrift.encode(struct)
    damaged = encoded[: int(cut * len(encoded))] + noise
    with contextlib.suppress(ThriftError):  # decoding may succeed; nothing else may escape
        thrift.decode(damaged)


def test_truncation_and_nesting_are_named() -> None:
    with pytest.raises(ThriftError, match="truncated"):
        thrift.decode(thrift.encode({1: Field(thrift.I64, 2**40)})[:-3])
    with pytest.raises(ThriftError, match="runs past the end"):
        thrift.decode(thrift.encode({1: Field(thrift.BINARY, b"abcdef")})[:-3])
    nested: dict[int, Field] = {}
    for _ in range(100):
        nested = {1: Field(thrift.STRUCT, nested)}
    with pytest.raises(ThriftError, match="nested deeper"):
        thrift.decode(thrift.encode(nested))
    with pytest.raises(ThriftError, match="unknown wire type"):
        thrift.decode(bytes([0x1D, 0x00]))  # field 1 of wire type 13
