"""Parquet's RLE/bit-packed hybrid encoding, of definition levels and dictionary codes.

In: integers (levels, codes), each under 2**width; or one-bit values packed eight to a byte;
or values with how many rows each repeats (`Repeated` columns).
Out: their encoding (numpy uint8 arrays; bytes from `hybrid` and `rle_run`), as a data page
holds it after the levels' 4-byte length or the codes' bit width. The compiled kernels are
numba functions (`filter.jit.kernel`).
May fail: nothing.
"""

from __future__ import annotations

import numpy as np

from filter.formats.parquet import thrift_compact as thrift
from filter.jit import kernel


def rle_run(count: int, value: int, width: int) -> bytes:
    """One RLE run of `count` times `value` (the hybrid's header is a ULEB128 varint)."""
    header = bytearray()
    thrift.write_varint(header, count << 1)
    return bytes(header) + value.to_bytes((width + 7) // 8, "little")


def hybrid(values: np.ndarray, width: int) -> bytes:
    """The RLE/bit-packed hybrid encoding of `values` (integers, each < 2**width).

    One-bit values (most definition levels) are packed first, eight to a byte, and the
    kernel then reads whole bytes (`rle_bits`): a tenth of the time of `rle_hybrid`, which
    reads them one at a time. Values that change at most every other row (the codes of key
    and member names, entry indexes) have no runs worth looking for: they are bit-packed
    whole (`bit_packed`), in a third of the time.
    """
    if width == 1:
        return rle_bits(np.packbits(values, bitorder="little"), len(values)).tobytes()
    if len(values) > 16 and 2 * np.count_nonzero(values[1:] != values[:-1]) > len(values):
        return bit_packed(values, width).tobytes()
    return rle_hybrid(values, width).tobytes()


# --- compiled kernels ---------------------------------------------------------------------


#: A run of this many equal bytes (8 one-bit values each) or more becomes an RLE run in
#: `rle_bits`: a shorter one costs less as bit-packed bytes than the run and a new header.
_RUN_BYTES = 4


@kernel()
def rle_bits(packed, count):  # pragma: no cover - compiled
    """The RLE/bit-packed hybrid encoding of `count` one-bit values, given packed eight to a
    byte, least significant bit first (`np.packbits(values, bitorder="little")`).

    A byte is a bit-packed group of 8 as it stands. Runs of `_RUN_BYTES` or more bytes of
    all zeros or all ones become RLE runs; the last byte, which may be part padding, is
    always bit-packed.
    """
    size = len(packed)
    full = count // 8  # bytes holding 8 values each
    # Worst case: a 1-byte literal (5-byte header) between two shortest runs (6 bytes each).
    out = np.empty(size * 4 + 16, np.uint8)
    o = 0
    literal = 0  # start of the bytes waiting to be bit-packed
    i = 0
    while i < full:
        byte = packed[i]
        if byte != 0 and byte != 0xFF:
            i += 1
            continue
        j = i + 1
        while j < full and packed[j] == byte:
            j += 1
        if j - i >= _RUN_BYTES:
            if i > literal:
                o = _varint(out, o, ((i - literal) << 1) | 1)
                out[o:o + i - literal] = packed[literal:i]
                o += i - literal
            o = _varint(out, o, ((j - i) * 8) << 1)
            out[o] = 1 if byte else 0
            o += 1
            literal = j
        i = j
    if size > literal:
        o = _varint(out, o, ((size - literal) << 1) | 1)
        out[o:o + size - literal] = packed[literal:size]
        o += size - literal
    return out[:o]


@kernel()
def sparse_bits(rows, height):  # pragma: no cover - compiled
    """`height` one-bit values, set at `rows` and clear elsewhere, packed eight to a byte as
    `rle_bits` takes them."""
    packed = np.zeros((height + 7) // 8, np.uint8)
    for r in rows:
        packed[r >> 3] |= np.uint8(1 << (r & 7))
    return packed


@kernel()
def rle_hybrid(values, width):  # pragma: no cover - compiled
    """Parquet's RLE/bit-packed hybrid encoding of `values` (integers, each < 2**width).

    Runs of 8 or more equal values become RLE runs; what lies between them is bit-packed in
    groups of 8, the last group padded with zeros.
    """
    n = len(values)
    value_bytes = (width + 7) // 8
    out = np.empty(n * value_bytes + (n // 8 + 2) * (width + 10) + 16, np.uint8)
    o = 0
    pending = 0  # values from `pending_start` waiting to be bit-packed
    pending_start = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and values[j] == values[i]:
            j += 1
        run = j - i
        if run >= 8:
            # The bit-packed values before the run must fill whole groups of 8: the run
            # lends them what they lack.
            lend = (8 - pending % 8) % 8
            if pending:
                o = _bit_pack(values, pending_start, pending + lend, width, out, o)
            rest = run - lend
            if rest > 0:
                o = _varint(out, o, rest << 1)
                for b in range(value_bytes):
                    out[o] = (values[i] >> (8 * b)) & 0xFF
                    o += 1
            pending = 0
            i = j
            pending_start = i
        else:
            if pending == 0:
                pending_start = i
            pending += run
            i = j
    if pending:
        o = _bit_pack(values, pending_start, pending, width, out, o)
    return out[:o]


@kernel()
def rle_runs(values, counts, width):  # pragma: no cover - compiled
    """The RLE/bit-packed hybrid encoding of `values[k]` repeated `counts[k]` times: RLE runs
    only, one per stretch of equal values (counts of 0 are skipped). From two repeats on a
    run is no larger than bit-packing them, and it costs a step per value, not per row."""
    value_bytes = (width + 7) // 8
    out = np.empty(len(values) * (10 + value_bytes) + 16, np.uint8)
    o = 0
    run = 0
    current = 0
    for k in range(len(values)):
        count = counts[k]
        if count == 0:
            continue
        if run and values[k] == current:
            run += count
            continue
        if run:
            o = _rle(out, o, run, current, value_bytes)
        current = values[k]
        run = count
    if run:
        o = _rle(out, o, run, current, value_bytes)
    return out[:o]


@kernel(inline="always")
def _rle(out, o, count, value, value_bytes):  # pragma: no cover - compiled
    o = _varint(out, o, count << 1)
    for b in range(value_bytes):
        out[o] = (value >> (8 * b)) & 0xFF
        o += 1
    return o


@kernel()
def bit_packed(values, width):  # pragma: no cover - compiled
    """`values` as one bit-packed run of the hybrid encoding (the last group padded)."""
    n = len(values)
    out = np.empty((n + 7) // 8 * width + 16, np.uint8)
    return out[:_bit_pack(values, 0, n, width, out, 0)]


@kernel(inline="always")
def _varint(out, o, n):  # pragma: no cover - compiled
    while n > 0x7F:
        out[o] = (n & 0x7F) | 0x80
        o += 1
        n >>= 7
    out[o] = n
    return o + 1


@kernel(inline="always")
def _bit_pack(values, start, count, width, out, o):  # pragma: no cover - compiled
    groups = (count + 7) // 8
    o = _varint(out, o, (groups << 1) | 1)
    end = start + count
    if width <= 8:  # a group of 8 values fits one 64-bit word: `width` bytes of it
        for g in range(groups):
            first = start + 8 * g
            word = np.uint64(0)
            for k in range(min(8, end - first)):
                word |= np.uint64(values[first + k]) << np.uint64(k * width)
            for b in range(width):
                out[o] = (word >> np.uint64(8 * b)) & np.uint64(0xFF)
                o += 1
        return o
    window = np.uint64(0)  # wider values: through a 64-bit window, a byte at a time
    bits = 0
    for k in range(groups * 8):
        value = np.uint64(values[start + k]) if start + k < end else np.uint64(0)
        window |= value << np.uint64(bits)
        bits += width
        while bits >= 8:
            out[o] = window & np.uint64(0xFF)
            o += 1
            window >>= np.uint64(8)
            bits -= 8
    if bits > 0:
        out[o] = window & np.uint64(0xFF)
        o += 1
    return o
