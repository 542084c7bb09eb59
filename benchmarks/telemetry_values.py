"""The values of the telemetry stream, drawn one chunk of whole ticks at a time.

In: the number of vehicles and a seeded numpy generator (:class:`Fleet`, the per-vehicle
state carried from one chunk to the next), then a tick range per chunk. Out:
:func:`draw_signals`, every key's value as an array of (ticks, vehicles): speed, heading,
odometer and position follow one motion model per vehicle, as in the Parquet generator
(:mod:`benchmarks.fleet_chunks`); state of charge, temperatures and tyre pressures are slow
random walks (:data:`benchmarks.telemetry_keys.WALKS`); the rest is noise or weighted
choices. String and door values are indexes into their key's vocabulary. The draws are made
in a fixed order from the one generator; reordering them changes the bytes (bump
:data:`benchmarks.generate_protobuf.GENERATOR_VERSION`).
"""

from __future__ import annotations

import numpy as np

from benchmarks.telemetry_keys import (
    CAR_TYPES,
    CHARGE_STATES,
    COLOURS,
    DESTINATIONS,
    DOOR_WEIGHTS,
    DOORS,
    MEDIA_TITLES,
    NEWER_KEY,
    PER_VEHICLE,
    TRIMS,
    UPDATE_STATUS,
    UPDATE_WEIGHTS,
    VEHICLE_NAMES,
    VERSIONS,
    WALKS,
)
from benchmarks.vins import make_vins

#: ``created_at`` of the first tick: 2026-01-01T00:00:00Z.
START_S = 1_767_225_600


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold ``x`` into ``[lo, hi]`` as if bouncing off both bounds."""
    width = hi - lo
    y = np.mod(x - lo, 2 * width)
    return lo + np.where(y > width, 2 * width - y, y)


class Fleet:
    """Per-vehicle state carried from one chunk to the next."""

    def __init__(self, vehicles: int, rng: np.random.Generator) -> None:
        self.vehicles = vehicles
        self.rng = rng
        self.vins = make_vins(vehicles, rng)
        # Each vehicle reports at its own millisecond, in vehicle order: time never goes back.
        self.millis = np.sort(rng.integers(0, 1000, size=vehicles))
        self.speed_pos = rng.uniform(-40, 160, size=vehicles)
        self.heading_pos = rng.uniform(0, 360, size=vehicles)
        self.odometer = rng.uniform(1_000.0, 200_000.0, size=vehicles)  # km
        self.lat = rng.uniform(30.7, 31.5, size=vehicles)  # around Shanghai
        self.lon = rng.uniform(121.0, 122.0, size=vehicles)
        self.walks = {k: rng.uniform(lo, hi, size=vehicles) for k, (lo, hi, _) in WALKS.items()}
        self.per_vehicle = {
            "VehicleName": rng.integers(0, len(VEHICLE_NAMES), size=vehicles),
            "Version": rng.integers(0, len(VERSIONS), size=vehicles),
            "CarType": rng.integers(0, len(CAR_TYPES), size=vehicles),
            "Trim": rng.integers(0, len(TRIMS), size=vehicles),
            "ExteriorColor": rng.integers(0, len(COLOURS), size=vehicles),
            "ChargeLimitSoc": rng.choice([80, 90, 100], size=vehicles, p=[0.6, 0.3, 0.1]),
        }


def draw_signals(fleet: Fleet, tick0: int, ticks: int) -> dict[str, np.ndarray]:
    """Every key's value for ticks ``[tick0, tick0 + ticks)``: arrays of (ticks, vehicles)."""
    rng, shape = fleet.rng, (ticks, fleet.vehicles)
    s: dict[str, np.ndarray] = {}
    for name, (lo, hi, step) in WALKS.items():
        pos = fleet.walks[name] + np.cumsum(rng.standard_normal(shape) * step, axis=0)
        fleet.walks[name] = pos[-1]
        s[name] = _reflect(pos, lo, hi)
    # Motion: speed (km/h, below 0 means parked), heading, odometer and position together.
    speed_pos = fleet.speed_pos + np.cumsum(rng.standard_normal(shape) * 2.5, axis=0)
    fleet.speed_pos = speed_pos[-1]
    speed = np.clip(_reflect(speed_pos, -40.0, 170.0), 0.0, None)
    moving = speed > 0.0
    heading_pos = fleet.heading_pos + np.cumsum(rng.standard_normal(shape) * 6.0, axis=0)
    fleet.heading_pos = heading_pos[-1]
    heading = np.mod(heading_pos, 360.0)
    metres = speed / 3.6
    odometer = fleet.odometer + np.cumsum(metres / 1000.0, axis=0)
    fleet.odometer = odometer[-1]
    rad = np.deg2rad(heading)
    lat = fleet.lat + np.cumsum(metres * np.cos(rad) / 111_320.0, axis=0)
    lon = fleet.lon + np.cumsum(
        metres * np.sin(rad) / (111_320.0 * np.cos(np.deg2rad(fleet.lat))), axis=0
    )
    fleet.lat, fleet.lon = lat[-1], lon[-1]
    noise = rng.standard_normal((6, *shape))
    soc = s["Soc"]
    charging = ~moving & (rng.random(shape) < 0.3)
    pack_current = np.where(moving, speed * 1.2 + noise[0] * 15.0, noise[0] * 0.5)
    pack_current = np.where(charging, -rng.uniform(20.0, 250.0, shape), pack_current)
    gear = np.where(moving, np.where(rng.random(shape) < 0.02, 2, 1), 0)
    states = rng.choice(len(CHARGE_STATES), size=shape, p=[0.1, 0.4, 0.2, 0.2, 0.05, 0.05])
    seconds = START_S + np.arange(tick0, tick0 + ticks, dtype=np.int64)[:, None]
    s |= {
        "BatteryLevel": soc - 0.4,
        "PackVoltage": 330.0 + 0.9 * soc + noise[1] * 0.5,
        "PackCurrent": pack_current,
        "VehicleSpeed": speed,
        "Odometer": odometer,
        "Location": np.stack([lat + noise[2] * 2e-5, lon + noise[3] * 2e-5], axis=-1),
        "GpsHeading": heading,
        "Gear": gear,
        "EstBatteryRange": soc * 4.6,
        "RatedRange": soc * 4.9,
        "IdealBatteryRange": soc * 5.1,
        "EnergyRemaining": soc * 0.78,
        "ModuleTempMin": s["ModuleTempMax"] - 1.5 - np.abs(noise[4]),
        "BrickVoltageMax": 3.30 + soc * 0.009,
        "BrickVoltageMin": 3.30 + soc * 0.009 - 0.008 - np.abs(noise[5]) * 0.002,
        "DCDCEnable": rng.random(shape) < 0.95,
        "ChargeState": np.where(charging, states, 0),
        "ChargeLimitSoc": np.broadcast_to(fleet.per_vehicle["ChargeLimitSoc"], shape),
        "ChargeAmps": np.where(charging, 32, 0),
        "ChargerVoltage": np.where(charging, 230.0 + noise[5] * 3.0, 0.0),
        "TimeToFullCharge": np.where(charging, (100.0 - soc) / 25.0, 0.0),
        "LifetimeEnergyUsed": odometer * 0.16,
        "TpmsLastSeenPressureTimeFl": seconds - rng.integers(0, 600, size=shape),
        "DiAxleSpeedR": speed * 9.3,
        "DiMotorCurrentR": pack_current * 1.5,
        "PedalPosition": np.clip(speed * 0.25 + noise[4] * 5.0, 0.0, 100.0) * moving,
        "BrakePedal": moving & (rng.random(shape) < 0.1),
        "LateralAcceleration": noise[1] * 0.8 * moving,
        "LongitudinalAcceleration": noise[2] * 0.6 * moving,
        "CruiseSetSpeed": rng.choice([0, 60, 80, 100, 120], size=shape),
        "DoorState": np.where(moving, 0, rng.choice(len(DOORS), size=shape, p=DOOR_WEIGHTS)),
        "Locked": moving | (rng.random(shape) < 0.8),
        "SentryMode": ~moving & (rng.random(shape) < 0.2),
        "GpsState": rng.random(shape) < 0.99,
        "LocatedAtHome": ~moving & (rng.random(shape) < 0.3),
        "DestinationName": rng.integers(0, len(DESTINATIONS), size=shape),
        "MediaNowPlayingTitle": rng.integers(0, len(MEDIA_TITLES), size=shape),
        "SoftwareUpdateVersion": rng.choice(len(UPDATE_STATUS), size=shape, p=UPDATE_WEIGHTS),
        "Experimental_1": noise[3],
        str(NEWER_KEY): 50.0 + noise[0] * 10.0,
    }
    for name in PER_VEHICLE:
        if name not in s:
            s[name] = np.broadcast_to(fleet.per_vehicle[name], shape)
    return s
