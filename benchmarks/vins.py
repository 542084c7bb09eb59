"""VIN-like vehicle identifiers for the generators: 17 characters with a valid check digit.

In: a count and a numpy random generator. Out: distinct VINs (a real manufacturer prefix,
random descriptor and plant, a model year 2020-2025, a six-digit serial) whose position 9
is the ISO 3779 / FMVSS 115 check digit. Both the Parquet fleet log
(:mod:`benchmarks.generate`) and the protobuf stream (:mod:`benchmarks.generate_protobuf`)
draw their vehicles here, so the two inputs look alike.
"""

from __future__ import annotations

import numpy as np

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
