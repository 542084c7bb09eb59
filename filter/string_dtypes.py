"""Which Polars types hold strings: the columns value detectors read.

Policy (`policy.plan` marks a field scanned) and mechanism (`apply.detectors` scans it) ask the
same question, so it is answered once, below both.
"""

from __future__ import annotations

import polars as pl


def is_string(dtype: pl.DataType) -> bool:
    """Whether values of `dtype` are strings, however stored: String (large or view in
    Arrow), Categorical (dictionary-encoded) or Enum."""
    return dtype.base_type() in (pl.String, pl.Categorical, pl.Enum)


def is_scannable(dtype: pl.DataType) -> bool:
    """Whether values of `dtype` hold strings, so that detectors run on them: strings,
    categoricals and enums, and lists, arrays and structs holding them at any depth."""
    if is_string(dtype):
        return True
    if isinstance(dtype, pl.List | pl.Array):
        return is_scannable(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(is_scannable(f.dtype) for f in dtype.fields)
    return False
