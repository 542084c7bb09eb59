"""Which fields get a distinct-value table, and that the choice never changes the split
(filter/apply/value_tables.py, through `split_frame` and `batch_lookups`)."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from filter import plan, split_frame
from filter.apply.lookups import batch_lookups
from filter.apply.value_tables import distinct_query, enumeration_fields
from tests.conftest import KEY

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
    monkeypatch.setattr("filter.apply.value_tables.SAMPLE_ROWS", 200)
    assert judged(fleet([f"note {i}" for i in range(1_000)]), mini_catalogue) == []
    assert judged(fleet(["ok", "check tyres"] * 500), mini_catalogue) == [NOTES]


def test_an_enumeration_only_at_the_start_gets_no_table(mini_catalogue, monkeypatch) -> None:
    # Judged an enumeration on its first rows, then found to have more distinct values than
    # the limit over the batch: it is scanned row by row, and the split is the same.
    monkeypatch.setattr("filter.apply.value_tables.SAMPLE_ROWS", 200)
    monkeypatch.setattr("filter.apply.value_tables.DISTINCT_LIMIT", 100)
    frame = fleet(["ok"] * 200 + [f"call 1381234{i:04d}" for i in range(800)])
    decided = plan(frame.schema, mini_catalogue, "after-sales")
    assert [d.path for d in enumeration_fields(frame.lazy(), decided)] == [NOTES]
    assert batch_lookups(frame.lazy(), decided, KEY).tables == {}
    export, onshore = split_frame(frame, "after-sales", key=KEY, catalogue=mini_catalogue)
    assert export[NOTES].to_list() == ["ok"] * 200 + [None] * 800
    monkeypatch.setattr("filter.apply.value_tables.DISTINCT_LIMIT", 10_000)  # now with a table
    assert NOTES in batch_lookups(frame.lazy(), decided, KEY).tables
    with_tables = split_frame(frame, "after-sales", key=KEY, catalogue=mini_catalogue)
    for with_table, by_row in zip(with_tables, (export, onshore), strict=True):
        assert_frame_equal(with_table, by_row)


def test_a_batch_read_in_runs_finds_what_one_query_finds(mini_catalogue, tmp_path,
                                                          monkeypatch) -> None:
    """`batch_lookups` over a Parquet scan, a few rows at a time: the same tokens and the
    same tables; a field past the limit in a later run gets no table, as in one query."""
    frame = pl.DataFrame({
        "vin": [f"LSV0000000000000{i % 7}" for i in range(100)],
        "ts": list(range(100)),
        NOTES: ["ok", None, "check tyres", "call 13812345678"] * 25,
    })
    path = tmp_path / "fleet.parquet"
    frame.write_parquet(path, row_group_size=10)
    decided = plan(frame.schema, mini_catalogue, "after-sales")
    whole = batch_lookups(pl.scan_parquet(path), decided, KEY)
    monkeypatch.setattr("filter.apply.lookups.LOOKUP_RUN_ROWS", 13)
    runs = batch_lookups(pl.scan_parquet(path), decided, KEY, rows=frame.height)
    assert len(runs.tokens) == 7 and runs.tokens == whole.tokens
    assert set(runs.tables) == set(whole.tables) == {NOTES}
    assert sorted(runs.tables[NOTES].values) == sorted(whole.tables[NOTES].values)
    hits = {t: {name: sorted(table.values[c] for c in codes)
                for name, codes in table.hit_codes.items()}
            for t, table in (("runs", runs.tables[NOTES]), ("whole", whole.tables[NOTES]))}
    assert hits["runs"] == hits["whole"] and any(hits["runs"].values())

    monkeypatch.setattr("filter.apply.value_tables.SAMPLE_ROWS", 20)  # all "ok": an enumeration
    monkeypatch.setattr("filter.apply.value_tables.ENUM_SHARE", 0.5)
    monkeypatch.setattr("filter.apply.value_tables.DISTINCT_LIMIT", 30)  # passed in the 6th run
    growing = frame.with_columns(
        pl.when(pl.col("ts") < 40).then(pl.lit("ok")).otherwise(pl.format("note {}", "ts"))
        .alias(NOTES))
    growing.write_parquet(path, row_group_size=10)
    assert [d.path for d in enumeration_fields(pl.scan_parquet(path), decided)] == [NOTES]
    queries = []

    def recording(*args):
        queries.append(args[2].path)
        return distinct_query(*args)

    monkeypatch.setattr("filter.apply.lookups.distinct_query", recording)
    assert batch_lookups(pl.scan_parquet(path), decided, KEY, rows=frame.height).tables == {}
    assert queries == [NOTES] * 6  # of 8 runs: not read again once past the limit
