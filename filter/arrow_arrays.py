"""Arrow arrays built straight from NumPy buffers and Python strings, without `pa.array`.

In: NumPy arrays of values (with an optional validity mask), or a list of strings.
Out: `numpy_array`: a primitive Arrow array over the values (no copy, but of booleans);
`string_array`: a string Arrow array. For the compiled key/value decoder's columns and the
Parquet encoder's dictionaries.
May fail: nothing beyond NumPy's and Arrow's own errors.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa


def numpy_array(
    values: np.ndarray, valid: np.ndarray | None = None, kind: pa.DataType | None = None
) -> pa.Array:
    """A primitive Arrow array over `values` (no copy, but of booleans), null where not
    `valid`, of type `kind` (by default, the type of `values`' dtype). (Not `pa.array`: it
    imports pandas where pandas is installed, half a second.)"""
    kind = pa.from_numpy_dtype(values.dtype) if kind is None else kind
    data = np.packbits(values, bitorder="little") if values.dtype == np.bool_ else values
    nulls = 0 if valid is None else len(valid) - int(np.count_nonzero(valid))
    bitmap = None if not nulls else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(kind, len(values),
                                 [bitmap, pa.py_buffer(np.ascontiguousarray(data))],
                                 null_count=nulls)


def string_array(values: list[str]) -> pa.Array:
    """A string Arrow array of `values` (built by Polars: see `numpy_array`)."""
    return pl.Series(values, dtype=pl.String).to_arrow()
