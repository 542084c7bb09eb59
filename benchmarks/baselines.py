"""The baselines ``vtx split`` is timed against, each run as its own child process.

In: ``python -m benchmarks.baselines METHOD INPUT PROJECTIONS OUT_DIR`` where METHOD is
``duckdb``, ``pyarrow`` or ``pandas``, INPUT a Parquet file, PROJECTIONS a JSON file
``{"export": [columns], "onshore": [columns]}`` (vtx's own top-level column lists for the
scenario) and OUT_DIR a directory; or ``python -m benchmarks.baselines projections INPUT
PROJECTIONS`` to write that JSON file from vtx's plan (:func:`projections`).
Out: ``OUT_DIR/export.parquet`` and ``OUT_DIR/onshore.parquet`` (zstd, like the copy).
May fail: whatever the library raises (out of memory, a missing package); the runner records
the exit status.

The baselines only project columns: no pseudonymous token, no value detectors, no manifest,
hashes or fsync. They do less work than vtx and are a lower bound for "two projections of
the file", not a replacement for it. Each imports only its own library, so start-up and peak
RSS are its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

SIDES = ("export", "onshore")


def _quote_ident(name: str) -> str:
    """Quote a column name for SQL (names here hold dots)."""
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    """Quote a string literal for SQL."""
    return "'" + text.replace("'", "''") + "'"


def run_duckdb(src: Path, columns: dict[str, list[str]], out: Path) -> None:
    """``COPY (SELECT <projection> FROM read_parquet(src)) TO ...`` once per side."""
    import duckdb

    con = duckdb.connect()
    for side in SIDES:
        select = ", ".join(_quote_ident(c) for c in columns[side])
        con.execute(
            f"COPY (SELECT {select} FROM read_parquet({_quote_str(str(src))})) "
            f"TO {_quote_str(str(out / f'{side}.parquet'))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    con.close()


def run_pyarrow(src: Path, columns: dict[str, list[str]], out: Path) -> None:
    """One pass of ``ParquetFile.iter_batches`` feeding two ``ParquetWriter`` s."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(src)
    full = pf.schema_arrow
    schemas = {side: pa.schema([full.field(c) for c in columns[side]]) for side in SIDES}
    needed = list(dict.fromkeys(c for side in SIDES for c in columns[side]))
    writers = {
        side: pq.ParquetWriter(out / f"{side}.parquet", schemas[side], compression="zstd")
        for side in SIDES
    }
    try:
        for batch in pf.iter_batches(columns=needed):
            for side in SIDES:
                writers[side].write_batch(batch.select(columns[side]))
    finally:
        for writer in writers.values():
            writer.close()


def run_pandas(src: Path, columns: dict[str, list[str]], out: Path) -> None:
    """What people write by hand: read the whole file, select, ``to_parquet`` twice."""
    import pandas as pd

    df = pd.read_parquet(src)
    for side in SIDES:
        df[columns[side]].to_parquet(out / f"{side}.parquet", compression="zstd")


def projections(src: Path, scenario: str = "after-sales") -> dict[str, list[str]]:
    """vtx's top-level export and onshore columns for ``src`` under ``scenario``.

    Taken from vtx's own plan with the shipped catalogue, so the baselines write the columns
    vtx writes: without the token column vtx adds (the export has no vehicle identifier at
    all), and with whole struct columns where vtx would split one.
    """
    import pyarrow.parquet as pq

    import filter
    from filter.policy.plan import plan

    export_plan = plan(pq.read_schema(src), filter.load_catalogue(), scenario)
    return {
        side: list(dict.fromkeys(d.column for d in export_plan.decisions_for(side)))
        for side in SIDES
    }


BASELINES: dict[str, Callable[[Path, dict[str, list[str]], Path], None]] = {
    "duckdb": run_duckdb,
    "pyarrow": run_pyarrow,
    "pandas": run_pandas,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry point: ``METHOD INPUT PROJECTIONS OUT_DIR`` or ``projections INPUT OUT``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 3 and args[0] == "projections":
        Path(args[2]).write_text(json.dumps(projections(Path(args[1])), indent=2) + "\n")
        return 0
    if len(args) != 4 or args[0] not in BASELINES:
        print(
            f"usage: python -m benchmarks.baselines {{{','.join(BASELINES)}}} "
            "INPUT PROJECTIONS OUT_DIR",
            file=sys.stderr,
        )
        return 2
    method, src, spec, out = args
    columns = json.loads(Path(spec).read_text())
    BASELINES[method](Path(src), columns, Path(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
