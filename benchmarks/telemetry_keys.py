"""The entries of the telemetry stream: which keys a message carries, how often, with what.

Holds :class:`Key` (a ``Field`` name, its value member, its probability, its vocabulary),
the vocabularies of the string and door keys, :data:`KEYS` in the order a message carries
them, the random walks (:data:`WALKS`) and the keys whose value belongs to the vehicle
(:data:`PER_VEHICLE`). :mod:`benchmarks.telemetry_values` draws the values,
:mod:`benchmarks.telemetry_encode` encodes them. Changing anything here changes the generated
bytes: bump :data:`benchmarks.generate_protobuf.GENERATOR_VERSION`.
May fail: ``ValueError`` at import if a :class:`Key` is inconsistent (a vocabulary key
without values, or values for a scalar key).
"""

from __future__ import annotations

from dataclasses import dataclass

#: A key number the shipped ``Field`` enum does not have (newer firmware).
NEWER_KEY = 300

#: Value members: scalars encoded column-wise; ``string`` and ``doors`` from a vocabulary.
KINDS = ("float", "double", "int", "long", "bool", "location", "string", "doors")


@dataclass(frozen=True)
class Key:
    """One entry kind: its ``Field`` name, value member, and how often a message carries it.

    ``vocab`` lists the values of ``string`` keys (strings) and ``doors`` keys (tuples of the
    ``Doors`` members that are open); their signal holds indexes into it.
    """

    name: str
    kind: str  # one of KINDS
    p: float
    vocab: tuple[str | tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.kind in ("string", "doors")) != bool(self.vocab):
            raise ValueError(f"key {self.name}: kind {self.kind!r} with {len(self.vocab)} values")


GEARS = ("P", "D", "R", "N")
CHARGE_STATES = ("Disconnected", "Charging", "Complete", "Stopped", "Starting", "NoPower")
DOORS: tuple[tuple[str, ...], ...] = (
    (),
    ("driver_front",),
    ("passenger_front",),
    ("driver_rear",),
    ("passenger_rear",),
    ("trunk_rear",),
    ("trunk_front",),
    ("driver_front", "passenger_front"),
)
DOOR_WEIGHTS = (0.88, 0.04, 0.02, 0.015, 0.015, 0.02, 0.005, 0.005)
CAR_TYPES = ("ModelY", "Model3", "ModelS", "ModelX", "Cybertruck")
TRIMS = ("RWD", "LR AWD", "Performance", "Plaid", "Foundation Series")
COLOURS = ("PearlWhite", "SolidBlack", "DeepBlueMetallic", "StealthGrey", "UltraRed", "Quicksilver")
VERSIONS = tuple(
    f"{v} {h}"
    for v, h in zip(
        ("2025.14.3", "2025.14.6", "2025.20.1", "2025.20.9", "2025.26.6", "2025.32.2",
         "2025.38.4", "2025.44.1"),
        ("9a3b1c2d4e5f", "0f1e2d3c4b5a", "77aa12bc09de", "c0ffee123456", "1b2c3d4e5f60",
         "deadbeef0042", "5e6f7a8b9c0d", "a1b2c3d4e5f6"),
        strict=True,
    )
)  # fmt: skip
VEHICLE_NAMES = (
    "Lily's Model Y", "Tom's car", "Family Wagon", "Mike's 3", "Blue Thunder", "The Beast",
    "Sunny", "Road Runner", "Grandpa's ride", "Work car", "Anna", "Silver Arrow",
    "张伟的车", "王芳的Model 3", "小蓝", "老李的车", "家用车", "闪电", "李娜", "陈先生",
    "挪车请电 13912345678", "Call 138 0013 8000 if blocking", "wang.lei@example.com",
)  # fmt: skip
DESTINATIONS = (
    "Home", "Work", "Shanghai Hongqiao Railway Station", "Pudong International Airport T2",
    "上海市浦东新区世纪大道100号", "临港新片区环湖西二路888号", "上海市徐汇区漕溪北路1111弄",
    "Lingang Supercharger", "IKEA Xuhui", "上海迪士尼度假区", "31.230416, 121.473701",
    "Dishui Lake", "复旦大学附属中山医院", "Jing'an Temple",
)  # fmt: skip
MEDIA_TITLES = (
    "Yesterday", "Bohemian Rhapsody", "月亮代表我的心", "晴天", "Shape of You", "Blinding Lights",
    "Hotel California", "稻香", "Let It Be", "平凡之路", "Radio Shanghai 103.7", "The Daily",
)  # fmt: skip
#: Update status strings; the last four are what a firmware bug might put there, and what
#: vtx's detectors must catch (coordinates, a mobile number, an e-mail address, a plate).
UPDATE_STATUS = (
    "2025.38.4", "2025.44.1", "2025.44.1 downloading", "2025.44.1 scheduled", "2025.44.1 installed",
    "install failed at 31.230416,121.473701", "contact owner 13812345678 before install",
    "log sent to zhang.wei@example.com", "车主车牌沪A12345\uff0c安装失败",  # \uff0c: Chinese comma
)  # fmt: skip
UPDATE_WEIGHTS = (0.3, 0.25, 0.15, 0.15, 0.1, 0.0125, 0.0125, 0.0125, 0.0125)

#: Every entry kind, in the order a message carries them. Ten keys in every message, the
#: others with their probability: about 20 entries a message on average.
KEYS: tuple[Key, ...] = (
    Key("Soc", "float", 1.0),
    Key("BatteryLevel", "float", 1.0),
    Key("PackVoltage", "float", 1.0),
    Key("PackCurrent", "float", 1.0),
    Key("VehicleSpeed", "double", 1.0),
    Key("Odometer", "double", 1.0),
    Key("Location", "location", 1.0),
    Key("GpsHeading", "double", 1.0),
    Key("Gear", "string", 1.0, GEARS),
    Key("EstBatteryRange", "double", 1.0),
    Key("RatedRange", "double", 0.5),
    Key("IdealBatteryRange", "double", 0.4),
    Key("EnergyRemaining", "double", 0.5),
    Key("ModuleTempMax", "float", 0.6),
    Key("ModuleTempMin", "float", 0.6),
    Key("BrickVoltageMax", "float", 0.4),
    Key("BrickVoltageMin", "float", 0.4),
    Key("DCDCEnable", "bool", 0.2),
    Key("ChargeState", "string", 0.2, CHARGE_STATES),
    Key("ChargeLimitSoc", "int", 0.1),
    Key("ChargeAmps", "int", 0.1),
    Key("ChargerVoltage", "double", 0.1),
    Key("TimeToFullCharge", "double", 0.1),
    Key("LifetimeEnergyUsed", "double", 0.1),
    Key("TpmsPressureFl", "float", 0.35),
    Key("TpmsPressureFr", "float", 0.35),
    Key("TpmsPressureRl", "float", 0.35),
    Key("TpmsPressureRr", "float", 0.35),
    Key("TpmsLastSeenPressureTimeFl", "long", 0.05),
    Key("DiAxleSpeedR", "double", 0.45),
    Key("DiMotorCurrentR", "double", 0.45),
    Key("DiStatorTempR", "float", 0.25),
    Key("PedalPosition", "float", 0.45),
    Key("BrakePedal", "bool", 0.25),
    Key("LateralAcceleration", "float", 0.45),
    Key("LongitudinalAcceleration", "float", 0.45),
    Key("CruiseSetSpeed", "int", 0.05),
    Key("InsideTemp", "float", 0.4),
    Key("OutsideTemp", "float", 0.4),
    Key("DoorState", "doors", 0.15, DOORS),
    Key("Locked", "bool", 0.15),
    Key("SentryMode", "bool", 0.05),
    Key("GpsState", "bool", 0.05),
    Key("LocatedAtHome", "bool", 0.05),
    Key("VehicleName", "string", 0.04, VEHICLE_NAMES),
    Key("Version", "string", 0.04, VERSIONS),
    Key("CarType", "string", 0.02, CAR_TYPES),
    Key("Trim", "string", 0.02, TRIMS),
    Key("ExteriorColor", "string", 0.02, COLOURS),
    Key("DestinationName", "string", 0.02, DESTINATIONS),
    Key("MediaNowPlayingTitle", "string", 0.03, MEDIA_TITLES),
    Key("SoftwareUpdateVersion", "string", 0.002, UPDATE_STATUS),
    Key("Experimental_1", "double", 0.01),
    Key(str(NEWER_KEY), "float", 0.001),
)
#: Random walks reflected into [lo, hi] with a 1-s standard deviation ``step``.
WALKS: dict[str, tuple[float, float, float]] = {
    "Soc": (5.0, 100.0, 0.02),
    "ModuleTempMax": (15.0, 45.0, 0.05),
    "DiStatorTempR": (20.0, 110.0, 0.3),
    "InsideTemp": (12.0, 35.0, 0.05),
    "OutsideTemp": (-5.0, 38.0, 0.01),
    "TpmsPressureFl": (2.6, 3.2, 0.002),
    "TpmsPressureFr": (2.6, 3.2, 0.002),
    "TpmsPressureRl": (2.6, 3.2, 0.002),
    "TpmsPressureRr": (2.6, 3.2, 0.002),
}
#: String keys whose value belongs to the vehicle, not to the message.
PER_VEHICLE = ("VehicleName", "Version", "CarType", "Trim", "ExteriorColor", "ChargeLimitSoc")


def mean_entries() -> float:
    """The expected number of entries per message."""
    return sum(k.p for k in KEYS)
