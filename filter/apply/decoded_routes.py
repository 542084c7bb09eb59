"""Compiled steps of routing a decoded key/value batch (`kv_decoded_routing.split_decoded`).

In: the compiled decoder's per-entry arrays (key numbers, oneof member positions, detector
hits) and the table of what the scenario exports per key and member.
Out: the tally of key numbers, per entry whether it is exported, and per entry how many of
its message's entries before it are exported (the export's dense numbering): one pass each over a
batch's million entries, instead of NumPy's several passes and temporaries.
May fail: nothing (the caller's arrays are in range by construction).

Apart from `kv_routing` and `kv_decoded_routing`, which plain messages and `vtx explain
--message` use without numba:
this module loads it, and only the key/value path imports it.
"""

from __future__ import annotations

import numpy as np

from filter.formats.protobuf.kv_scalars import bounds
from filter.jit import kernel


@kernel()
def range_tally(numbers):  # pragma: no cover - compiled
    """The least and the greatest of `numbers` (not empty), and how many times each number
    between them occurs, if they span under 2**16 (else no tally: an empty array)."""
    low, high = bounds(numbers)
    if high - low >= 1 << 16:
        return np.int64(low), np.int64(high), np.zeros(0, np.int64)
    tally = np.zeros(high - low + 1, np.int64)
    for n in numbers:
        tally[n - low] += 1
    return np.int64(low), np.int64(high), tally


@kernel()
def chosen_entries(rows, low, member, table, detected):  # pragma: no cover - compiled
    """Per entry, whether it is exported: the cell of `table` at its key's row (`rows` minus
    `low`) and its member's column (`member` + 1), unless a detector hit it (`detected`)."""
    chosen = np.empty(len(rows), np.bool_)
    for e in range(len(rows)):
        chosen[e] = table[rows[e] - low, member[e] + 1] and not detected[e]
    return chosen


@kernel()
def chosen_before(positions, chosen):  # pragma: no cover - compiled
    """Per entry, how many entries of its message before it are `chosen`; `positions` are
    the entries' places in their messages (0 starts a message), in message order."""
    before = np.empty(len(positions), np.int64)
    count = 0
    for e in range(len(positions)):
        if positions[e] == 0:
            count = 0
        before[e] = count
        count += chosen[e]
    return before
