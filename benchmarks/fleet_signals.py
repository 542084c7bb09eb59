"""The columns of the Parquet fleet log and the value model of each: what is drawn, not how.

Holds the value models (:class:`Walk`, :class:`Noise`, :class:`Uniform`, :class:`Flag`,
:class:`Choice`, :class:`PerVehicle`, :class:`Derived`), the curated VSS leaves with their
Arrow type and model (:data:`SIGNALS`), the names and types of the other columns and the
file's :func:`schema`. :mod:`benchmarks.fleet_chunks` draws the values, chunk by chunk;
:mod:`benchmarks.fleet_notes` the free-text notes. Changing anything here changes the
generated data: bump :data:`benchmarks.generate.GENERATOR_VERSION`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

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

#: The free-text workshop notes (:mod:`benchmarks.fleet_notes` draws them).
NOTES_COLUMN = "Vehicle.Service.Notes"
#: The walk that ``Derived("soc_displayed")`` rounds.
SOC_CURRENT = _TB + "StateOfCharge.Current"
#: The ``location`` column: a GNSS fix and the speed at it.
LOCATION_TYPE = pa.struct(
    [("latitude", pa.float64()), ("longitude", pa.float64()), ("speed", pa.float32())]
)
TIMESTAMP_TYPE = pa.timestamp("us")


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
