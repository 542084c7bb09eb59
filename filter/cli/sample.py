"""The built-in sample: a seeded fleet batch and an end-to-end split of it.

In: a directory and a seed.
Out: ``DIR/input/fleet-batch.parquet`` (a few hundred vehicles, VSS-named columns, one nested
struct whose leaves split between the outputs, one column no rule classifies), a demo key in
``DIR/demo.key``, and the batch split for the after-sales scenario into ``DIR/export`` and
``DIR/onshore`` (replaced on every run, so the demo can be repeated).

The sample is small and made with Python's seeded `random`, so it is identical on every machine.
"""

from __future__ import annotations

import os
import random
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from filter.apply.pseudonym import load_key
from filter.engines.request import SplitResult
from filter.engines.run import split
from filter.files import replace_file, write_new

DEMO_SCENARIO = "after-sales"
_DTCS = ["P0A80", "P0420", "C0035", "B1318", "U0100", "P0300"]
_GEARS = [-1, 0, 1, 2, 3, 4]
# World Manufacturer Identifiers of a few Chinese makers, for realistic-looking VINs.
_WMIS = ["LSV", "LFV", "LGX", "LRW", "LVS"]


@dataclass(frozen=True)
class DemoRun:
    """Where the demo put things, and the split's result."""

    input_path: Path
    key_path: Path
    vehicles: int
    result: SplitResult


def sample_batch(vehicles: int = 300, samples: int = 20, seed: int = 7) -> pl.DataFrame:
    """A seeded sample fleet batch: `samples` records per vehicle, one a minute."""
    rng = random.Random(seed)
    vins = [_vin(rng) for _ in range(vehicles)]
    start = datetime(2026, 11, 2, 8, 0, 0)
    rows = vehicles * samples
    vin_col = [v for v in vins for _ in range(samples)]
    ts_col = [start + timedelta(minutes=i) for _ in vins for i in range(samples)]
    soc = [round(rng.uniform(15, 95), 1) for _ in range(rows)]
    lat = [round(rng.uniform(30.7, 31.4), 6) for _ in range(rows)]
    lon = [round(rng.uniform(121.0, 121.9), 6) for _ in range(rows)]
    odometer = [rng.randint(1_000_000, 90_000_000) for _ in range(rows)]
    vehicle = [
        None if rng.random() < 0.02 else {
            "TraveledDistance": s,
            "CurrentLocation": {"Latitude": la, "Longitude": lo,
                                "Heading": round(rng.uniform(0, 360), 1)},
        }
        for s, la, lo in zip(odometer, lat, lon, strict=True)
    ]
    return pl.DataFrame(
        {
            "vin": vin_col,
            "timestamp": ts_col,
            "Vehicle.Speed": [round(rng.uniform(0, 120), 1) for _ in range(rows)],
            "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": soc,
            "Vehicle.Powertrain.TractionBattery.StateOfHealth": [
                round(rng.uniform(82, 100), 1) for _ in range(rows)],
            "Vehicle.Powertrain.TractionBattery.Temperature.Average": [
                round(rng.uniform(12, 41), 1) for _ in range(rows)],
            "Vehicle.Powertrain.TractionBattery.Charging.IsCharging": [
                rng.random() < 0.2 for _ in range(rows)],
            "Vehicle.Powertrain.Transmission.CurrentGear": [
                rng.choice(_GEARS) for _ in range(rows)],
            "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": [
                rng.randint(210, 260) for _ in range(rows)],
            "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure": [
                rng.randint(210, 260) for _ in range(rows)],
            "Vehicle.Diagnostics.DTCList": [
                rng.sample(_DTCS, k=rng.choice([0, 0, 0, 1, 2])) for _ in range(rows)],
            "Vehicle.Service.DistanceToService": [
                round(rng.uniform(-500, 15000), 0) for _ in range(rows)],
            "Vehicle.Cabin.HVAC.AmbientAirTemperature": [
                round(rng.uniform(16, 28), 1) for _ in range(rows)],
            "Vehicle.Occupant.Row1.DriverSide.Identifier.Subject": [
                f"driver-{rng.randint(1, 5 * vehicles)}" for _ in range(rows)],
            # A nested struct: TraveledDistance is exported, CurrentLocation stays onshore.
            "Vehicle": vehicle,
            # A column no catalogue rule knows: withheld as unclassified.
            "x_debug_counter": [rng.randint(0, 1 << 20) for _ in range(rows)],
        },
        schema_overrides={
            "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": pl.Float32,
            "Vehicle.Powertrain.TractionBattery.StateOfHealth": pl.Float32,
            "Vehicle.Powertrain.TractionBattery.Temperature.Average": pl.Float32,
            "Vehicle.Powertrain.Transmission.CurrentGear": pl.Int8,
            "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": pl.UInt16,
            "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure": pl.UInt16,
            "Vehicle.Speed": pl.Float32,
        },
    )


def run_demo(directory: str | Path, *, seed: int = 7) -> DemoRun:
    """Write the sample batch and a demo key under `directory`, then split the batch."""
    root = Path(directory)
    (root / "input").mkdir(parents=True, exist_ok=True)
    batch = sample_batch(seed=seed)
    input_path = root / "input" / "fleet-batch.parquet"
    # Written as new files (a link planted at either name is replaced or refused, never
    # written through).
    replace_file(input_path, lambda out: batch.write_parquet(out, row_group_size=2000))
    key_path = root / "demo.key"
    if not os.path.lexists(key_path):
        write_new(key_path, lambda out: out.write(secrets.token_hex(32).encode() + b"\n"),
                  mode=0o600)
    result = split(
        input_path,
        root / "export",
        root / "onshore",
        DEMO_SCENARIO,
        key=load_key(key_path),
        overwrite=True,
    )
    return DemoRun(input_path, key_path, batch["vin"].n_unique(), result)


def _vin(rng: random.Random) -> str:
    """A VIN-shaped identifier (17 characters, no I, O or Q); the check digit is not computed."""
    alphabet = "".join(c for c in string.ascii_uppercase + string.digits if c not in "IOQ")
    return rng.choice(_WMIS) + "".join(rng.choice(alphabet) for _ in range(14))
