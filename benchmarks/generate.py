"""Deterministic generator of a wide, synthetic vehicle fleet log in Parquet.

In: ``--rows``, ``--vehicles``, ``--seed`` and an output path ``--out``.
Out: one Parquet file (zstd, row groups of ``--row-group-rows``) holding

* ``vin`` -- 17-character VIN-like strings with a valid check digit, one per vehicle;
* ``timestamp`` -- ``Datetime("us")``, 1 Hz and increasing per vehicle;
* one column per entry of :data:`benchmarks.fleet_signals.SIGNALS`, named by its real VSS
  path (``Vehicle.Speed``, ``Vehicle.Cabin.HVAC.AmbientAirTemperature`` ...), typed
  after the VSS datatype (float -> float32, double -> float64, uint8/int16/...,
  boolean, low-cardinality strings), across the Powertrain, Chassis, Body,
  MotionManagement, ADAS, Diagnostics/Service, Speed/TraveledDistance branches
  plus the withheld ones (``CurrentLocation``, ``Cabin``, ``Occupant``);
* ``location`` -- a struct ``{latitude: f64, longitude: f64, speed: f32}``;
* ``Vehicle.Service.Notes`` -- free-text workshop notes (English and Chinese, high
  cardinality, a fifth null); about one row in a thousand
  (:data:`benchmarks.fleet_notes.SENSITIVE_RATE`) holds a sensitive string: a licence
  plate, a mobile number, coordinates or an e-mail address. The shipped catalogue exports
  ``Vehicle.Service.**`` under ``after-sales``, so vtx's value detectors run on it;
* ``x_debug_counter`` -- a ``uint32`` column that is not a VSS signal.

Rows are interleaved by tick: row ``i`` belongs to vehicle ``i % vehicles`` at
tick ``i // vehicles``. The data are built with numpy a chunk of whole ticks at
a time and streamed through :class:`pyarrow.parquet.ParquetWriter`, so memory is
bounded by ``--chunk-rows`` (50M rows stream through in the same ~1 GB as 1M). For
the same rows, vehicles, seed and chunk size the output is identical from run to run;
:data:`GENERATOR_VERSION` changes whenever the data would, so cached files keyed by it
are never reused across versions.

The columns and their value models are in :mod:`benchmarks.fleet_signals`, the notes in
:mod:`benchmarks.fleet_notes`, the VINs in :mod:`benchmarks.vins`, and the drawing of each
chunk in :mod:`benchmarks.fleet_chunks`; this module writes the file.
May fail: ``ValueError`` on non-positive sizes.

Run as ``python -m benchmarks.generate --rows 5000000 --out fleet.parquet``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks.fleet_chunks import FleetState, build_chunk
from benchmarks.fleet_signals import schema

#: Bumped whenever the generated data change (columns, models, draws): part of the cache key.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class GenerateStats:
    """What :func:`generate` wrote."""

    path: Path
    rows: int
    columns: int
    bytes: int
    seconds: float


def generate(
    out: Path,
    rows: int = 1_000_000,
    vehicles: int = 2000,
    seed: int = 42,
    chunk_rows: int = 500_000,
    row_group_rows: int = 250_000,
    compression: str = "zstd",
) -> GenerateStats:
    """Write a synthetic fleet log of ``rows`` rows to ``out`` and return its statistics.

    The file is written to ``out`` with a temporary suffix and renamed when
    complete, so an interrupted run never leaves a truncated file at ``out``.
    """
    if rows < 1 or vehicles < 1:
        raise ValueError("rows and vehicles must be positive")
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    state = FleetState(vehicles, np.random.default_rng(seed))
    ticks_per_chunk = max(1, chunk_rows // vehicles)
    total_ticks = math.ceil(rows / vehicles)
    written = 0
    with pq.ParquetWriter(tmp, schema(), compression=compression) as writer:
        for tick0 in range(0, total_ticks, ticks_per_chunk):
            ticks = min(ticks_per_chunk, total_ticks - tick0)
            keep = min(ticks * vehicles, rows - written)
            table = build_chunk(state, tick0, ticks, keep)
            writer.write_table(table, row_group_size=row_group_rows)
            written += keep
    os.replace(tmp, out)
    return GenerateStats(
        path=out,
        rows=written,
        columns=len(schema()),
        bytes=out.stat().st_size,
        seconds=time.perf_counter() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: parse arguments, generate, print a one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows to write (default 1000000)"
    )
    parser.add_argument("--vehicles", type=int, default=2000, help="distinct VINs (default 2000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--chunk-rows", type=int, default=500_000, help="rows built per chunk")
    parser.add_argument(
        "--row-group-rows", type=int, default=250_000, help="Parquet row group size"
    )
    parser.add_argument("--compression", default="zstd", help="Parquet codec (default zstd)")
    parser.add_argument("--out", type=Path, required=True, help="output Parquet file")
    args = parser.parse_args(argv)
    stats = generate(
        args.out,
        args.rows,
        args.vehicles,
        args.seed,
        args.chunk_rows,
        args.row_group_rows,
        args.compression,
    )
    print(
        f"wrote {stats.path}: {stats.rows:,} rows x {stats.columns} columns, "
        f"{stats.bytes / 1e6:,.1f} MB in {stats.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
