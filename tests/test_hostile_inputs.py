"""Hostile inputs under a memory budget: each bomb of `tests.hostile_corpus` is refused with
one line naming the file and the place, exit 1, nothing published, and the run's peak memory
stays under its budget; legitimate inputs of the same budget's size still split.

Every case runs vtx in a subprocess under an address-space limit (`run_limited`), so an
allocation the budget failed to prevent ends the run rather than the machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hostile_corpus import (
    BUDGET,
    BUDGET_BYTES,
    CASES,
    NOTES,
    SLICED,
    VIN,
    Case,
    _split,
    run_limited,
)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bomb_is_refused_in_one_line_before_it_is_decoded(case: Case, tmp_path) -> None:
    argv = case.make(tmp_path)
    outcome = run_limited(argv)
    lines = outcome.stderr.splitlines()
    assert outcome.exit_code == case.exit_code, outcome.stderr
    assert len(lines) == 1 and lines[0].startswith("vtx: error: "), outcome.stderr
    assert re.search(case.message, lines[0]), lines[0]
    assert "Traceback" not in outcome.stderr and "panicked" not in outcome.stderr
    if argv[0] == "split":
        assert not (tmp_path / "export").exists() and not (tmp_path / "onshore").exists()
    assert outcome.peak_rss < BUDGET_BYTES, f"peak {outcome.peak_rss >> 20} MiB"


@pytest.mark.parametrize("make", [m for _, m in SLICED], ids=[n for n, _ in SLICED])
def test_a_row_group_too_large_for_a_piece_is_split_a_slice_at_a_time(make, tmp_path) -> None:
    argv = make(tmp_path)
    outcome = run_limited(argv)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.peak_rss < BUDGET_BYTES, f"peak {outcome.peak_rss >> 20} MiB"
    source = pq.read_table(tmp_path / "input.parquet")
    onshore = pq.read_table(tmp_path / "onshore")
    export = pq.read_table(tmp_path / "export")
    assert onshore.num_rows == export.num_rows == source.num_rows
    for column in source.column_names:  # every value kept, in order, on the side it goes to
        side = export if column in export.column_names else onshore
        assert side.column(column).to_pylist() == source.column(column).to_pylist(), column
    assert pq.read_metadata(tmp_path / "onshore" / "part-00000.parquet").num_row_groups > 1
    verified = run_limited(["verify", str(tmp_path / "export"), "--onshore",
                            str(tmp_path / "onshore"), "--memory-budget", BUDGET])
    assert verified.exit_code == 0, verified.stderr
    assert verified.peak_rss < BUDGET_BYTES


def test_a_detector_hit_in_a_slice_of_a_large_row_group_is_withheld(tmp_path) -> None:
    rows = 200_000
    notes = ["serviced " + "a" * 1000] * rows
    notes[150_001] = "call owner 13812345678 " + "a" * 1000  # in a late slice
    source = tmp_path / "input.parquet"
    pq.write_table(pa.table({"vin": [VIN] * rows, "timestamp": pa.array(
        range(rows), pa.int64()).cast(pa.timestamp("us")), NOTES: notes}), source,
        compression="zstd", use_dictionary=False, row_group_size=rows)
    outcome = run_limited(_split(tmp_path, source))
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.peak_rss < BUDGET_BYTES, f"peak {outcome.peak_rss >> 20} MiB"
    exported = pq.read_table(tmp_path / "export").column(NOTES).to_pylist()
    assert exported[150_001] is None
    assert exported[:150_001] == notes[:150_001] and exported[150_002:] == notes[150_002:]
    withheld = pq.read_table(tmp_path / "onshore").column(NOTES).to_pylist()
    assert withheld[150_001] == notes[150_001]


def _fleet_rows(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    notes = [f"replaced wiper blade {i}" for i in range(40)]
    return pa.table({
        "vin": pa.array([f"LRW3E7EK0PC1{i % 500:05d}" for i in range(rows)]),
        "timestamp": pa.array(range(rows), pa.int64()).cast(pa.timestamp("us")),
        "Vehicle.Speed": pa.array(rng.normal(60, 20, rows)),
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": pa.array(
            rng.uniform(0, 100, rows)),
        NOTES: pa.array([notes[i % 40] for i in range(rows)]),
    })


def test_a_file_of_many_row_groups_splits_within_the_budget(tmp_path) -> None:
    source = tmp_path / "input.parquet"
    pq.write_table(_fleet_rows(600_000, 1), source, row_group_size=30_000, compression="zstd")
    outcome = run_limited(_split(tmp_path, source))
    assert outcome.exit_code == 0, outcome.stderr
    assert pq.read_metadata(tmp_path / "export" / "part-00000.parquet").num_rows == 600_000
    assert outcome.peak_rss < BUDGET_BYTES, f"peak {outcome.peak_rss >> 20} MiB"
    verified = run_limited(["verify", str(tmp_path / "export"), "--onshore",
                            str(tmp_path / "onshore"), "--memory-budget", BUDGET])
    assert verified.exit_code == 0, verified.stderr
    assert verified.peak_rss < BUDGET_BYTES


def test_a_long_string_within_the_budget_is_split_and_scanned(tmp_path) -> None:
    source = tmp_path / "input.parquet"
    note = "call owner 13812345678 " + "x" * (2 << 20)  # 2 MB, with a phone number in it
    pq.write_table(pa.table({"vin": [VIN, VIN], "timestamp": pa.array(
        [0, 1], pa.int64()).cast(pa.timestamp("us")), NOTES: [note, "ok"]}), source)
    outcome = run_limited(_split(tmp_path, source))
    assert outcome.exit_code == 0, outcome.stderr
    exported = pq.read_table(tmp_path / "export").column(NOTES).to_pylist()
    assert exported == [None, "ok"]  # the detectors found the number in the long note
    assert outcome.peak_rss < BUDGET_BYTES


def test_the_default_budget_is_half_the_address_space_a_limit_allows() -> None:
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
            "from filter.memory_budget import default_budget; print(default_budget())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parent.parent)
    assert int(done.stdout) == 3 << 30
