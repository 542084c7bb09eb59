"""Deterministic generator of a wide, synthetic vehicle fleet log in Parquet.

In: ``--rows``, ``--vehicles``, ``--seed`` and an output path ``--out``.
Out: one Parquet file (zstd, row groups of ``--row-group-rows``) holding

* ``vin`` -- 17-character VIN-like strings with a valid check digit, one per vehicle;
* ``timestamp`` -- ``Datetime("us")``, 1 Hz and increasing per vehicle;
* one column per entry of :data:`SIGNALS`, named by its real VSS path
  (``Vehicle.Speed``, ``Vehicle.Cabin.HVAC.AmbientAirTemperature`` ...), typed
  after the VSS datatype (float -> float32, double -> float64, uint8/int16/...,
  boolean, low-cardinality strings), across the Powertrain, Chassis, Body,
  MotionManagement, ADAS, Diagnostics/Service, Speed/TraveledDistance branches
  plus the withheld ones (``CurrentLocation``, ``Cabin``, ``Occupant``);
* ``location`` -- a struct ``{latitude: f64, longitude: f64, speed: f32}``;
* ``Vehicle.Service.Notes`` -- free-text workshop notes (English and Chinese, high
  cardinality, a fifth null); about one row in a thousand (:data:`SENSITIVE_RATE`) holds
  a sensitive string: a licence plate, a mobile number, coordinates or an e-mail address.
  The shipped catalogue exports ``Vehicle.Service.**`` under ``after-sales``, so vtx's
  value detectors run on it;
* ``x_debug_counter`` -- a ``uint32`` column that is not a VSS signal.

Rows are interleaved by tick: row ``i`` belongs to vehicle ``i % vehicles`` at
tick ``i // vehicles``. The data are built with numpy a chunk of whole ticks at
a time and streamed through :class:`pyarrow.parquet.ParquetWriter`, so memory is
bounded by ``--chunk-rows`` (50M rows stream through in the same ~1 GB as 1M). For
the same rows, vehicles, seed and chunk size the output is identical from run to run;
:data:`GENERATOR_VERSION` changes whenever the data would, so cached files keyed by it
are never reused across versions.

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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Bumped whenever the generated data change (columns, models, draws): part of the cache key.
GENERATOR_VERSION = 2

# --------------------------------------------------------------------------- #
# Value models. Each draws a (ticks, vehicles) block; walks keep per-vehicle
# state between chunks so values vary slowly over time.
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Walk:
    """Random walk reflected into ``[lo, hi]``; ``step`` is the 1-s standard deviation."""

    lo: float
    hi: float
    step: float


@dataclass(frozen=True)
class Noise:
    """Independent normal samples ``N(mean, sd)`` clipped to ``[lo, hi]``."""

    mean: float
    sd: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Uniform:
    """Independent uniform samples in ``[lo, hi)``."""

    lo: float
    hi: float


@dataclass(frozen=True)
class Flag:
    """Boolean that is true with probability ``p``."""

    p: float


@dataclass(frozen=True)
class Choice:
    """Draw from ``values`` (strings or numbers) with relative ``weights``."""

    values: tuple[str | int | float, ...]
    weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class PerVehicle:
    """One value per vehicle, drawn once from ``values`` (e.g. a driver id)."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class Derived:
    """Computed from the vehicle's motion (speed, odometer, position, heading)."""

    source: str


Model = Walk | Noise | Uniform | Flag | Choice | PerVehicle | Derived

F32, F64 = pa.float32(), pa.float64()
U8, U16, U32 = pa.uint8(), pa.uint16(), pa.uint32()
I8, I16, I32 = pa.int8(), pa.int16(), pa.int32()
BOOL, STR = pa.bool_(), pa.string()

_PT = "Vehicle.Powertrain."
_TB = _PT + "TractionBattery."
_CE = _PT + "CombustionEngine."
_AX = "Vehicle.Chassis.Axle."
_MM = "Vehicle.MotionManagement."
_HVAC = "Vehicle.Cabin.HVAC.Station.Row1."
_DRV = "Vehicle.Occupant.Row1.DriverSide."

_DRIVER_IDS = tuple(f"drv-{i:05d}" for i in range(5000))

#: Curated VSS leaves (all present in ``shared/reference/vss-signals.csv``),
#: their Arrow type (from the VSS datatype) and how values are drawn.
SIGNALS: tuple[tuple[str, pa.DataType, Model], ...] = (
    # --- Speed / distance / vehicle dynamics
    ("Vehicle.Speed", F32, Derived("speed")),
    ("Vehicle.TraveledDistance", U32, Derived("odometer")),
    ("Vehicle.IsMoving", BOOL, Derived("moving")),
    ("Vehicle.Acceleration.Longitudinal", F32, Noise(0, 1.2, -10, 10)),
    ("Vehicle.Acceleration.Lateral", F32, Noise(0, 0.8, -10, 10)),
    ("Vehicle.Acceleration.Vertical", F32, Noise(0, 0.3, -5, 5)),
    ("Vehicle.AngularVelocity.Yaw", F32, Noise(0, 4, -90, 90)),
    # --- Powertrain: traction battery
    (_TB + "StateOfCharge.Current", F32, Walk(5, 100, 0.03)),
    (_TB + "StateOfCharge.Displayed", F32, Derived("soc_displayed")),
    (_TB + "StateOfHealth", F32, Walk(78, 100, 0.001)),
    (_TB + "CurrentVoltage", F32, Noise(396, 6, 300, 450)),
    (_TB + "CurrentCurrent", F32, Noise(0, 60, -350, 350)),
    (_TB + "CurrentPower", F32, Noise(0, 22000, -150000, 150000)),
    (_TB + "Temperature.Average", F32, Walk(-10, 55, 0.03)),
    (_TB + "Temperature.Max", F32, Walk(-8, 60, 0.03)),
    (_TB + "CellVoltage.Min", F32, Noise(3.62, 0.04, 2.8, 4.2)),
    (_TB + "CellVoltage.Max", F32, Noise(3.78, 0.04, 2.8, 4.25)),
    (_TB + "Range", U32, Walk(0, 600_000, 150)),
    (_TB + "Charging.IsCharging", BOOL, Flag(0.08)),
    (_TB + "Charging.ChargeLimit", U8, Choice((80, 90, 100), (0.6, 0.3, 0.1))),
    (_TB + "Charging.StartStopCharging", STR, Choice(("START", "STOP"), (0.1, 0.9))),
    (_TB + "Charging.TimeToComplete", U32, Uniform(0, 36_000)),
    # --- Powertrain: electric motors
    (_PT + "ElectricMotor.Front.Speed", F32, Noise(3500, 2200, -2000, 16000)),
    (_PT + "ElectricMotor.Front.Temperature", F32, Walk(-10, 150, 0.1)),
    (_PT + "ElectricMotor.Front.Power", I16, Noise(20, 40, -150, 250)),
    (_PT + "ElectricMotor.Front.Torque", I16, Noise(60, 110, -400, 600)),
    (_PT + "ElectricMotor.Rear.Speed", F32, Noise(3500, 2200, -2000, 16000)),
    (_PT + "ElectricMotor.Rear.Torque", I16, Noise(80, 140, -450, 700)),
    # --- Powertrain: combustion engine, transmission, fuel
    (_CE + "Speed", F32, Noise(1800, 650, 0, 7000)),
    (_CE + "IsRunning", BOOL, Flag(0.45)),
    (_CE + "EngineCoolant.Temperature", F32, Walk(-10, 120, 0.08)),
    (_CE + "EngineOil.Temperature", F32, Walk(-10, 140, 0.08)),
    (
        _CE + "EngineOil.Level",
        STR,
        Choice(
            ("CRITICALLY_LOW", "LOW", "NORMAL", "HIGH", "CRITICALLY_HIGH"),
            (0.005, 0.04, 0.92, 0.03, 0.005),
        ),
    ),
    (_CE + "TPS", U8, Uniform(0, 101)),
    (_CE + "MAF", U16, Uniform(0, 400)),
    (_PT + "Transmission.CurrentGear", I8, Choice((-1, 0, 1, 2, 3, 4, 5, 6))),
    (
        _PT + "Transmission.SelectedGear",
        I8,
        Choice((126, 127, 0, -1), (0.3, 0.6, 0.05, 0.05)),
    ),
    (
        _PT + "Transmission.PerformanceMode",
        STR,
        Choice(("NORMAL", "SPORT", "ECONOMY", "SNOW", "RAIN"), (0.6, 0.15, 0.2, 0.025, 0.025)),
    ),
    (_PT + "Transmission.Temperature", F32, Walk(-10, 130, 0.05)),
    (_PT + "FuelSystem.RelativeLevel", U8, Walk(0, 100, 0.02)),
    (_PT + "FuelSystem.Range", U32, Walk(0, 900_000, 120)),
    (_PT + "FuelSystem.InstantConsumption", F32, Noise(6.5, 2.5, 0, 40)),
    # --- Chassis
    (_AX + "Row1.Wheel.Left.Tire.Pressure", U16, Noise(240, 6, 150, 320)),
    (_AX + "Row1.Wheel.Right.Tire.Pressure", U16, Noise(240, 6, 150, 320)),
    (_AX + "Row2.Wheel.Left.Tire.Pressure", U16, Noise(250, 6, 150, 320)),
    (_AX + "Row2.Wheel.Right.Tire.Pressure", U16, Noise(250, 6, 150, 320)),
    (_AX + "Row1.Wheel.Left.Tire.IsPressureLow", BOOL, Flag(0.01)),
    (_AX + "Row1.Wheel.Right.Tire.IsPressureLow", BOOL, Flag(0.01)),
    (_AX + "Row1.Wheel.Left.Tire.Temperature", F32, Walk(-10, 90, 0.05)),
    (_AX + "Row1.Wheel.Left.Brake.PadWear", U8, Walk(0, 100, 0.002)),
    (_AX + "Row1.SteeringAngle", F32, Noise(0, 4, -40, 40)),
    (_AX + "Row1.Torque", I16, Noise(150, 200, -1500, 2500)),
    ("Vehicle.Chassis.SteeringWheel.Angle", I16, Noise(0, 60, -540, 540)),
    ("Vehicle.Chassis.Accelerator.PedalPosition", U8, Uniform(0, 101)),
    ("Vehicle.Chassis.Brake.PedalPosition", U8, Uniform(0, 101)),
    ("Vehicle.Chassis.ParkingBrake.IsEngaged", BOOL, Flag(0.3)),
    # --- Body
    (
        "Vehicle.Body.Lights.LightSwitch",
        STR,
        Choice(
            ("OFF", "POSITION", "DAYTIME_RUNNING_LIGHTS", "AUTO", "BEAM"),
            (0.2, 0.05, 0.3, 0.4, 0.05),
        ),
    ),
    ("Vehicle.Body.Lights.Beam.Low.IsOn", BOOL, Flag(0.4)),
    (
        "Vehicle.Body.Windshield.Front.Wiping.Mode",
        STR,
        Choice(
            ("OFF", "SLOW", "MEDIUM", "FAST", "INTERVAL", "RAIN_SENSOR"),
            (0.7, 0.05, 0.03, 0.02, 0.05, 0.15),
        ),
    ),
    ("Vehicle.Body.Windshield.Front.WasherFluid.Level", U8, Walk(0, 100, 0.01)),
    ("Vehicle.Body.Trunk.Rear.IsOpen", BOOL, Flag(0.02)),
    ("Vehicle.Body.Hood.IsOpen", BOOL, Flag(0.005)),
    # --- MotionManagement
    (_MM + "ElectricAxle.Row1.Torque", I16, Noise(80, 150, -800, 1200)),
    (_MM + "Brake.VehicleForceElectric", I16, Noise(-500, 900, -8000, 0)),
    (_MM + "Suspension.Axle.Row1.Wheel.Left.DampingRate", U8, Uniform(0, 101)),
    (_MM + "Steering.SteeringWheel.Torque", I16, Noise(0, 2, -15, 15)),
    # --- ADAS
    ("Vehicle.ADAS.ABS.IsEngaged", BOOL, Flag(0.01)),
    ("Vehicle.ADAS.ESC.IsEngaged", BOOL, Flag(0.01)),
    ("Vehicle.ADAS.TCS.IsEngaged", BOOL, Flag(0.01)),
    ("Vehicle.ADAS.CruiseControl.IsActive", BOOL, Flag(0.25)),
    ("Vehicle.ADAS.CruiseControl.SpeedSet", F32, Choice((30.0, 50.0, 80.0, 100.0, 110.0, 130.0))),
    ("Vehicle.ADAS.LaneDepartureDetection.IsWarning", BOOL, Flag(0.005)),
    (
        "Vehicle.ADAS.ActiveAutonomyLevel",
        STR,
        Choice(("SAE_0", "SAE_1", "SAE_2_DISENGAGING", "SAE_2"), (0.5, 0.2, 0.02, 0.28)),
    ),
    ("Vehicle.ADAS.ObstacleDetection.Front.Center.Distance", F32, Uniform(0.3, 250)),
    # --- Diagnostics / service / low voltage / exterior
    ("Vehicle.Diagnostics.DTCCount", U8, Choice((0, 1, 2, 3, 5), (0.9, 0.06, 0.02, 0.01, 0.01))),
    ("Vehicle.Service.IsServiceDue", BOOL, Flag(0.03)),
    ("Vehicle.Service.DistanceToService", F32, Walk(0, 30_000, 0.5)),
    ("Vehicle.Service.TimeToService", I32, Walk(0, 31_536_000, 1)),
    ("Vehicle.LowVoltageBattery.CurrentVoltage", F32, Noise(13.8, 0.3, 10.5, 15)),
    (
        "Vehicle.LowVoltageSystemState",
        STR,
        Choice(
            ("UNDEFINED", "LOCK", "OFF", "ACC", "ON", "START"), (0.01, 0.2, 0.1, 0.05, 0.63, 0.01)
        ),
    ),
    ("Vehicle.Exterior.AirTemperature", F32, Walk(-25, 40, 0.01)),
    # --- Withheld: location, cabin, occupant
    ("Vehicle.CurrentLocation.Latitude", F64, Derived("latitude")),
    ("Vehicle.CurrentLocation.Longitude", F64, Derived("longitude")),
    ("Vehicle.CurrentLocation.Altitude", F64, Walk(-20, 1800, 0.4)),
    ("Vehicle.CurrentLocation.Heading", F64, Derived("heading")),
    ("Vehicle.Cabin.HVAC.AmbientAirTemperature", F32, Walk(-20, 45, 0.02)),
    (_HVAC + "Driver.Temperature", F32, Choice(tuple(18 + 0.5 * i for i in range(15)))),
    (_HVAC + "Driver.FanSpeed", U8, Uniform(0, 101)),
    (_HVAC + "Driver.AirDistribution", STR, Choice(("UP", "MIDDLE", "DOWN"))),
    ("Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted", BOOL, Flag(0.97)),
    ("Vehicle.Cabin.Seat.Row1.PassengerSide.IsBelted", BOOL, Flag(0.4)),
    ("Vehicle.Cabin.Door.Row1.DriverSide.IsOpen", BOOL, Flag(0.01)),
    (
        "Vehicle.Cabin.Infotainment.Media.Played.Source",
        STR,
        Choice(("FM", "DAB", "USB", "BLUETOOTH", "INTERNET", "AM", "AUX", "UNKNOWN")),
    ),
    (_DRV + "Identifier.Subject", STR, PerVehicle(_DRIVER_IDS)),
    (_DRV + "Identifier.Issuer", STR, Choice(("https://id.example-oem.com",))),
    (_DRV + "HeadPosition.X", I16, Noise(0, 30, -400, 400)),
    (_DRV + "HeadPosition.Yaw", F32, Noise(0, 12, -90, 90)),
    (_DRV + "MidEyeGaze.Azimuth", F32, Noise(0, 15, -90, 90)),
    (_DRV + "MidEyeGaze.Elevation", F32, Noise(-5, 8, -60, 60)),
)

# --------------------------------------------------------------------------- #
# Free-text service notes
# --------------------------------------------------------------------------- #

NOTES_COLUMN = "Vehicle.Service.Notes"
#: Share of rows whose note is null.
NOTES_NULL_RATE = 0.2
#: Share of rows whose note holds a sensitive string (plate, mobile, coordinates, e-mail).
SENSITIVE_RATE = 0.001
_CN_COMMA = "\uff0c"  # the full-width comma of Chinese text


@dataclass(frozen=True)
class NoteTemplate:
    """``prefix + number + suffix``; the number is drawn in ``[lo, hi)`` and zero-padded to
    ``width`` digits. ``hi == 0`` means no number."""

    prefix: str
    suffix: str = ""
    lo: int = 0
    hi: int = 0
    width: int = 0


#: Harmless workshop notes, drawn uniformly. The numbers make the column high-cardinality
#: (realistic free text), so vtx scans it row by row rather than once per distinct value.
HARMLESS_NOTES: tuple[NoteTemplate, ...] = (
    NoteTemplate("Routine service completed at ", " km", 5_000, 300_000),
    NoteTemplate("Tyre pressures adjusted to ", " kPa", 220, 261),
    NoteTemplate("Customer reports rattle from rear left door above ", " km/h", 40, 131),
    NoteTemplate("DTC P0", " cleared after inspection", 100, 1000),
    NoteTemplate("Brake pads at ", "% - no action needed", 10, 91),
    NoteTemplate("Job card ", " closed", 100_000, 1_000_000),
    NoteTemplate("12V battery health ", "%, recharged overnight", 60, 101),
    NoteTemplate("Charging session aborted after ", " min, connector reseated", 1, 240),
    NoteTemplate("Wiper blades replaced"),
    NoteTemplate("Cabin air filter replaced"),
    NoteTemplate("No fault found; test drive OK"),
    NoteTemplate("Washer fluid topped up"),
    NoteTemplate("Charging port cover sticky, lubricated"),
    NoteTemplate(f"更换机油和机油滤清器{_CN_COMMA}里程 ", " 公里", 5_000, 300_000),
    NoteTemplate(f"左前轮胎压偏低{_CN_COMMA}已充气至 ", " kPa", 230, 251),
    NoteTemplate(f"客户反映空调异响{_CN_COMMA}已检查"),
    NoteTemplate(f"软件升级完成{_CN_COMMA}工单 ", "", 100_000, 1_000_000),
)

#: Sensitive notes, one row in a thousand: what vtx's detectors must catch.
SENSITIVE_NOTES: tuple[NoteTemplate, ...] = (
    NoteTemplate("车主车牌沪A", f"{_CN_COMMA}预约下周保养", 0, 100_000, 5),  # licence plate
    NoteTemplate("Call owner on 138", " when the car is ready", 0, 100_000_000, 8),  # mobile
    NoteTemplate("联系车主 139", " 取车", 0, 100_000_000, 8),  # mobile
    NoteTemplate("Towed from 31.23", ", 121.473701 to the workshop", 0, 10_000, 4),  # coords
    NoteTemplate("Send the invoice to owner", "@example.com", 1000, 10_000),  # e-mail
)
NOTE_TEMPLATES = HARMLESS_NOTES + SENSITIVE_NOTES


def _notes(rng: np.random.Generator, n: int) -> pa.Array:
    """Draw ``n`` notes: template indices and numbers with numpy, strings joined by Arrow."""
    harmless, sensitive = len(HARMLESS_NOTES), len(SENSITIVE_NOTES)
    idx = rng.integers(0, harmless, size=n)
    u = rng.random(n)
    is_sensitive = u < SENSITIVE_RATE
    idx[is_sensitive] = harmless + rng.integers(0, sensitive, size=int(is_sensitive.sum()))
    lo = np.array([t.lo for t in NOTE_TEMPLATES], dtype=np.int64)[idx]
    hi = np.array([t.hi for t in NOTE_TEMPLATES], dtype=np.int64)[idx]
    width = np.array([t.width for t in NOTE_TEMPLATES], dtype=np.int64)[idx]
    number = lo + np.floor(rng.random(n) * np.maximum(hi - lo, 1)).astype(np.int64)
    digits = pc.cast(pa.array(number), STR)
    # Zero-pad to the template's width (widths are few: pad once per distinct width).
    for w in {t.width for t in NOTE_TEMPLATES if t.width}:
        digits = pc.if_else(pa.array(width == w), pc.utf8_lpad(digits, w, "0"), digits)
    digits = pc.if_else(pa.array(hi > 0), digits, pa.scalar("", STR))
    take = pa.array(idx)
    notes = pc.binary_join_element_wise(
        pa.array([t.prefix for t in NOTE_TEMPLATES], STR).take(take),
        digits,
        pa.array([t.suffix for t in NOTE_TEMPLATES], STR).take(take),
        "",
    )
    is_null = (u >= SENSITIVE_RATE) & (u < SENSITIVE_RATE + NOTES_NULL_RATE)
    return pc.if_else(pa.array(is_null), pa.scalar(None, STR), notes)


LOCATION_TYPE = pa.struct(
    [("latitude", pa.float64()), ("longitude", pa.float64()), ("speed", pa.float32())]
)
TIMESTAMP_TYPE = pa.timestamp("us")
START_US = 1_709_251_200_000_000  # 2024-03-01T00:00:00, microseconds since the epoch


def schema() -> pa.Schema:
    """Return the Arrow schema of the generated file (``vin``, ``timestamp``, signals, extras)."""
    fields = [pa.field("vin", STR), pa.field("timestamp", TIMESTAMP_TYPE)]
    fields += [pa.field(name, dtype) for name, dtype, _ in SIGNALS]
    fields += [
        pa.field("location", LOCATION_TYPE),
        pa.field(NOTES_COLUMN, STR),
        pa.field("x_debug_counter", U32),
    ]
    return pa.schema(fields)


# --------------------------------------------------------------------------- #
# VINs
# --------------------------------------------------------------------------- #

_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
_VIN_VALUES = dict(zip("ABCDEFGH", range(1, 9), strict=True)) | {
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
    **{str(d): d for d in range(10)},
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_WMIS = ("WVW", "WBA", "WDD", "VF1", "YV1", "5YJ", "1FA", "JTD", "TMB", "ZFA", "KNA", "SAL")
_MODEL_YEARS = "LMNPRS"  # 2020 .. 2025


def vin_check_digit(vin: str) -> str:
    """Return the ISO 3779 / FMVSS 115 check digit (position 9) for a 17-character VIN."""
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True))
    rem = total % 11
    return "X" if rem == 10 else str(rem)


def make_vins(n: int, rng: np.random.Generator) -> list[str]:
    """Return ``n`` distinct, VIN-like 17-character strings with valid check digits."""
    serials = rng.choice(1_000_000, size=n, replace=False)
    wmi = rng.integers(0, len(_WMIS), size=n)
    vds = rng.integers(0, len(_VIN_CHARS), size=(n, 5))
    year = rng.integers(0, len(_MODEL_YEARS), size=n)
    plant = rng.integers(0, len(_VIN_CHARS), size=n)
    vins = []
    for i in range(n):
        body = "".join(_VIN_CHARS[j] for j in vds[i])
        vin = f"{_WMIS[wmi[i]]}{body}0{_MODEL_YEARS[year[i]]}{_VIN_CHARS[plant[i]]}{serials[i]:06d}"
        vins.append(vin[:8] + vin_check_digit(vin) + vin[9:])
    return vins


# --------------------------------------------------------------------------- #
# Chunked generation
# --------------------------------------------------------------------------- #


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold ``x`` into ``[lo, hi]`` as if bouncing off both bounds."""
    width = hi - lo
    y = np.mod(x - lo, 2 * width)
    return lo + np.where(y > width, 2 * width - y, y)


class _FleetState:
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


def _motion(state: _FleetState, ticks: int) -> dict[str, np.ndarray]:
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
    state: _FleetState,
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
        values = np.round(state.current[_TB + "StateOfCharge.Current"])
    else:
        values = motion[model.source]
    flat = np.ravel(values)[:keep]
    if pa.types.is_integer(dtype):
        flat = np.rint(flat)
    return pa.array(flat.astype(dtype.to_pandas_dtype(), copy=False), dtype)


def _chunk(state: _FleetState, tick0: int, ticks: int, keep: int) -> pa.Table:
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
    columns += [location, _notes(state.rng, keep), pa.array(debug, U32)]
    return pa.Table.from_arrays(columns, schema=schema())


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
    state = _FleetState(vehicles, np.random.default_rng(seed))
    ticks_per_chunk = max(1, chunk_rows // vehicles)
    total_ticks = math.ceil(rows / vehicles)
    written = 0
    with pq.ParquetWriter(tmp, schema(), compression=compression) as writer:
        for tick0 in range(0, total_ticks, ticks_per_chunk):
            ticks = min(ticks_per_chunk, total_ticks - tick0)
            keep = min(ticks * vehicles, rows - written)
            writer.write_table(_chunk(state, tick0, ticks, keep), row_group_size=row_group_rows)
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
