"""The compiled wire primitives (`formats.protobuf.wire`), called by address as the decoder
calls them."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.internal.encoder import _VarintBytes
from hypothesis import given, settings
from hypothesis import strategies as st

from filter.formats.protobuf.wire import put_varint, skip, varint, varint_size


@settings(deadline=None)  # the first example compiles
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varints_round_trip_by_address(value: int) -> None:
    encoded = _VarintBytes(value)
    signed = np.int64(value - 2**64 if value >= 2**63 else value)  # the bits, as int64
    out = np.zeros(16, dtype=np.uint8)
    end = put_varint(out.ctypes.data, 0, signed)
    assert bytes(out[:end]) == encoded and end == varint_size(signed)
    buf = np.frombuffer(encoded + b"\xff", dtype=np.uint8)
    assert varint(buf.ctypes.data, 0, len(encoded)) == (signed, len(encoded))


@pytest.mark.parametrize("data", [b"\x80\x80", b"\xff" * 11])
def test_a_varint_cut_short_or_too_long_is_refused(data: bytes) -> None:
    buf = np.frombuffer(data, dtype=np.uint8)
    assert varint(buf.ctypes.data, 0, len(data))[1] == -1


def test_a_failed_read_never_reads_before_the_buffer() -> None:
    # Position -1 is what a failed read returns; reading at it would read the byte before the
    # buffer, which may not be mapped. Here the "address" is 0: reading anything crashes.
    assert varint(0, -1, 10) == (0, -1)
    assert [skip(0, -1, 10, wire) for wire in (0, 1, 2, 5)] == [-1, -1, -1, -1]
