"""The Arrow columns of decoded key/value entries (filter/formats/parquet/entry_columns.py):
the compiled pass that partitions a side's entries.

Whole files encoded from the decoder's arrays are checked against Polars' writer in
`test_parquet_encoder` and `test_kv_engine`.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from filter.formats.parquet import entry_columns


@settings(max_examples=200, deadline=None)
@given(data=st.data(), messages=st.integers(1, 12), groups=st.integers(0, 4))
def test_property_side_entries_partitions_a_side_by_member_group(
    data: st.DataObject, messages: int, groups: int
) -> None:
    # One pass over a side's entries gives what its columns are built from: how many per
    # message, their members, positions and keys, and their rows and entries by member
    # group.
    per_message = data.draw(st.lists(st.integers(0, 6), min_size=messages,
                                     max_size=messages))
    ent_msg = np.repeat(np.arange(messages), per_message).astype(np.int64)
    n = len(ent_msg)
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_)
    ent_member = np.array(data.draw(st.lists(st.integers(-1, 5), min_size=n, max_size=n)),
                          np.int16)
    group_of = np.array(data.draw(st.lists(st.integers(-1, groups - 1), min_size=7,
                                           max_size=7)), np.int64)
    ent_pos = np.concatenate([np.arange(k) for k in per_message]).astype(np.int64)
    ent_key = np.array(data.draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)),
                       np.int32)
    want = np.flatnonzero(keep)
    counts, member, positions, numbers, grouped, offsets = entry_columns.side_entries(
        want, ent_msg, ent_pos, ent_key, messages, ent_member, group_of, groups)
    assert positions.tolist() == ent_pos[want].tolist()
    assert numbers.tolist() == ent_key[want].tolist()
    assert counts.tolist() == np.bincount(ent_msg[keep], minlength=messages).tolist()
    assert member.tolist() == ent_member[want].tolist()
    group = group_of[ent_member[want] + 1]
    for g in range(groups):
        rows = np.flatnonzero(group == g)
        assert grouped[0][offsets[g]:offsets[g + 1]].tolist() == rows.tolist()
        assert grouped[1][offsets[g]:offsets[g + 1]].tolist() == want[rows].tolist()
