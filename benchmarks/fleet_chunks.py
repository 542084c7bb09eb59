"""Draws the Parquet fleet log, one chunk of whole ticks at a time, as Arrow tables.

In: the number of vehicles and a seeded numpy generator (:class:`FleetState`, the
per-vehicle state carried from one chunk to the next), then a tick range per chunk. Out:
:func:`build_chunk`'s table of :func:`benchmarks.fleet_signals.schema`, row ``i`` being vehicle
``i % vehicles`` at tick ``i // vehicles``. Speed, heading, odometer and position follow one
motion model per vehicle; the other columns follow their value model in
:data:`benchmarks.fleet_signals.SIGNALS`. The draws are made in a fixed order from the one
generator, so the same seed and chunk size give the same values; reordering them changes the
data (bump :data:`benchmarks.generate.GENERATOR_VERSION`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from benchmarks.fleet_notes import draw_notes
from benchmarks.fleet_signals import (
    F32,
    F64,
    LOCATION_TYPE,
    SIGNALS,
    SOC_CURRENT,
    STR,
    TIMESTAMP_TYPE,
    U32,
    Choice,
    Flag,
    Model,
    Noise,
    PerVehicle,
    Uniform,
    Walk,
    schema,
)
from benchmarks.vins import make_vins

START_US = 1_709_251_200_000_000  # 2024-03-01T00:00:00, microseconds since the epoch


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold ``x`` into ``[lo, hi]`` as if bouncing off both bounds."""
    width = hi - lo
    y = np.mod(x - lo, 2 * width)
    return lo + np.where(y > width, 2 * width - y, y)


class FleetState:
    """Per-vehicle state carried from one chunk to the next."""

    def __init__(self, vehicles: int, rng: np.random.Generator) -> None:
        self.vehicles = vehicles
        self.rng = rng
        self.vins = pa.array(make_vins(vehicles, rng), STR)
        self.offset_s = rng.integers(0, 3600, size=vehicles)
        self.debug0 = rng.integers(0, 2**31, size=vehicles)
        self.speed_pos = rng.uniform(-40, 160, size=vehicles)
        self.odometer = rng.uniform(1e6, 2e8, size=vehicles)
        self.heading_pos = rng.uniform(0, 360, size=vehicles)
        self.lat = rng.uniform(45.0, 55.0, size=vehicles)
        self.lon = rng.uniform(5.0, 15.0, size=vehicles)
        self.walks: dict[str, np.ndarray] = {}
        self.current: dict[str, np.ndarray] = {}  # this chunk's walk values, for Derived
        self.per_vehicle: dict[str, np.ndarray] = {}
        for name, _, model in SIGNALS:
            if isinstance(model, Walk):
                self.walks[name] = rng.uniform(model.lo, model.hi, size=vehicles)
            elif isinstance(model, PerVehicle):
                self.per_vehicle[name] = rng.integers(0, len(model.values), size=vehicles)


def _motion(state: FleetState, ticks: int) -> dict[str, np.ndarray]:
    """Advance speed, heading, odometer and position by ``ticks`` seconds."""
    rng, v = state.rng, state.vehicles
    speed_pos = state.speed_pos + np.cumsum(rng.standard_normal((ticks, v)) * 2.5, axis=0)
    state.speed_pos = speed_pos[-1]
    speed = np.clip(_reflect(speed_pos, -40.0, 170.0), 0.0, None)  # km/h; < 0 means parked
    heading_pos = state.heading_pos + np.cumsum(rng.standard_normal((ticks, v)) * 6.0, axis=0)
    state.heading_pos = heading_pos[-1]
    heading = np.mod(heading_pos, 360.0)
    metres = speed / 3.6
    odometer = state.odometer + np.cumsum(metres, axis=0)
    state.odometer = odometer[-1]
    rad = np.deg2rad(heading)
    lat = state.lat + np.cumsum(metres * np.cos(rad) / 111_320.0, axis=0)
    lon = state.lon + np.cumsum(
        metres * np.sin(rad) / (111_320.0 * np.cos(np.deg2rad(state.lat))), axis=0
    )
    state.lat, state.lon = lat[-1], lon[-1]
    return {
        "speed": speed,
        "moving": speed > 0.0,
        "odometer": odometer,
        "heading": heading,
        "latitude": lat,
        "longitude": lon,
    }


def _column(
    name: str,
    dtype: pa.DataType,
    model: Model,
    state: FleetState,
    motion: dict[str, np.ndarray],
    ticks: int,
    keep: int,
) -> pa.Array:
    """Draw one signal for a chunk of ``ticks`` x vehicles and keep the first ``keep`` rows."""
    rng, shape = state.rng, (ticks, state.vehicles)
    if isinstance(model, Walk):
        pos = state.walks[name] + np.cumsum(rng.standard_normal(shape) * model.step, axis=0)
        state.walks[name] = pos[-1]
        values = state.current[name] = _reflect(pos, model.lo, model.hi)
    elif isinstance(model, Noise):
        raw = rng.standard_normal(shape, dtype=np.float32) * model.sd + model.mean
        values = np.clip(raw, model.lo, model.hi)
    elif isinstance(model, Uniform):
        values = rng.uniform(model.lo, model.hi, size=shape)
    elif isinstance(model, Flag):
        values = rng.random(shape, dtype=np.float32) < model.p
    elif isinstance(model, Choice):
        p = None if model.weights is None else np.asarray(model.weights) / sum(model.weights)
        idx = rng.choice(len(model.values), size=shape, p=p).astype(np.int32)
        if pa.types.is_string(dtype):
            return pa.array(model.values, STR).take(pa.array(idx.ravel()[:keep]))
        values = np.asarray(model.values)[idx]
    elif isinstance(model, PerVehicle):
        idx = np.broadcast_to(state.per_vehicle[name], shape)
        return pa.array(model.values, STR).take(pa.array(idx.ravel()[:keep]))
    elif model.source == "soc_displayed":
        values = np.round(state.current[SOC_CURRENT])
    else:
        values = motion[model.source]
    flat = np.ravel(values)[:keep]
    if pa.types.is_integer(dtype):
        flat = np.rint(flat)
    return pa.array(flat.astype(dtype.to_pandas_dtype(), copy=False), dtype)


def build_chunk(state: FleetState, tick0: int, ticks: int, keep: int) -> pa.Table:
    """Build the table for ticks ``[tick0, tick0 + ticks)``, truncated to ``keep`` rows."""
    v = state.vehicles
    tick = np.arange(tick0, tick0 + ticks, dtype=np.int64)[:, None]
    vehicle = np.broadcast_to(np.arange(v), (ticks, v)).ravel()[:keep]
    ts = (START_US + (state.offset_s[None, :] + tick) * 1_000_000).ravel()[:keep]
    motion = _motion(state, ticks)
    columns: list[pa.Array] = [
        state.vins.take(pa.array(vehicle)),
        pa.array(ts, TIMESTAMP_TYPE),
    ]
    for name, dtype, model in SIGNALS:
        columns.append(_column(name, dtype, model, state, motion, ticks, keep))
    gnss_noise = state.rng.standard_normal((2, keep)) * 2e-5
    location = pa.StructArray.from_arrays(
        [
            pa.array(motion["latitude"].ravel()[:keep] + gnss_noise[0], F64),
            pa.array(motion["longitude"].ravel()[:keep] + gnss_noise[1], F64),
            pa.array(motion["speed"].ravel()[:keep].astype(np.float32), F32),
        ],
        fields=list(LOCATION_TYPE),
    )
    debug = ((state.debug0[None, :] + tick) % 2**32).astype(np.uint32).ravel()[:keep]
    columns += [location, draw_notes(state.rng, keep), pa.array(debug, U32)]
    return pa.Table.from_arrays(columns, schema=schema())
