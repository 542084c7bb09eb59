"""Which fields get a distinct-value table, and that the choice never changes the split
(filter/value_tables.py, through `split_frame` and `batch_lookups`)."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from filter import plan, split_frame
from filter.splitter import batch_lookups
from filter.value_tables import enumeration_fields

from .conftest import KEY

NOTES = "Vehicle.Service.Notes"


def fleet(notes: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({
        "vin": ["LSV00000000000001"] * len(notes),
        "ts": list(range(len(notes))),
        NOTES: notes,
    })


def judged(frame: pl.DataFrame, catalogue) -> list[str]:
    decided = plan(frame.schema, catalogue, "after-sales")
    return [d.path for d in enumeration_fields(frame.lazy(), decided)]


def test_a_short_batch_is_its_own_sample(mini_catalogue) -> None:
    # 1,000 distinct notes in 1,000 rows: the whole batch was seen, and it is within the limit.
    assert judged(fleet([f"note {i}" for i in range(1_000)]), mini_catalogue) == [NOTES]


def test_a_sample_of_mostly_distinct_values_is_free_text(mini_catalogue, monkeypatch) -> None:
    monkeypatch.setattr("filter.value_tables.SAMPLE_ROWS", 200)
    assert judged(fleet([f"note {i}" for i in range(1_000)]), mini_catalogue) == []
    assert judged(fleet(["ok", "check tyres"] * 500), mini_catalogue) == [NOTES]


def test_an_enumeration_only_at_the_start_gets_no_table(mini_catalogue, monkeypatch) -> None:
    # Judged an enumeration on its first rows, then found to have more distinct values than
    # the limit over the batch: it is scanned row by row, and the split is the same.
    monkeypatch.setattr("filter.value_tables.SAMPLE_ROWS", 200)
    monkeypatch.setattr("filter.value_tables.DISTINCT_LIMIT", 100)
    frame = fleet(["ok"] * 200 + [f"call 1381234{i:04d}" for i in range(800)])
    decided = plan(frame.schema, mini_catalogue, "after-sales")
    assert [d.path for d in enumeration_fields(frame.lazy(), decided)] == [NOTES]
    assert batch_lookups(frame.lazy(), decided, KEY).tables == {}
    export, onshore = split_frame(frame, mini_catalogue, "after-sales", key=KEY)
    assert export[NOTES].to_list() == ["ok"] * 200 + [None] * 800
    monkeypatch.setattr("filter.value_tables.DISTINCT_LIMIT", 10_000)  # now with a table
    assert NOTES in batch_lookups(frame.lazy(), decided, KEY).tables
    for with_table, by_row in zip(split_frame(frame, mini_catalogue, "after-sales", key=KEY),
                                  (export, onshore), strict=True):
        assert_frame_equal(with_table, by_row)
