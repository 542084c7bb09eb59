"""Fuzz vtx with broken Parquet: mutated and truncated inputs, random bytes, damaged outputs.

Run by hand (pytest does not collect it)::

    python tests/fuzz/fuzz_parquet.py --cases 2000 [--seed N]

Each case writes one damaged file and runs it through the CLI in-process (`CliRunner`):
`vtx split` (most cases), `vtx explain`, or `vtx verify` of a published export whose part was
damaged. A case passes when the exit code is 0 or 1 (verify: 0, 1 or 3; a mutation may leave a
valid file), a failure prints exactly one ``vtx: error: `` line on stderr (verify: only
``vtx: verify: `` lines) and no traceback, and a failed split publishes nothing. Prints the
number of cases run and every failing case (with its seed, to replay it); exits 1 on failures.
Cases where Polars' own panic hook printed to the process's stderr (vtx still exits 1 with one
error line) are listed apart: the cases run in-process, where that text reaches the real stderr;
the `vtx` command itself drops such reports (filter/cli/native_stderr.py).

Formats are in `SEEDS`: a new input format adds a seed file builder there.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from filter.cli import vtx  # noqa: E402
from filter.cli.sample import sample_batch  # noqa: E402

MINI_CATALOGUE = ROOT / "tests" / "data" / "mini-catalogue.toml"
KEY = b"824b886d0de2275fe19f856e9ec5b5a3"  # random hex: a key `check_key` accepts
NATIVE = "native code wrote to stderr"


def parquet_seed(directory: Path) -> bytes:
    """A small valid Parquet batch with several row groups, nested and list columns."""
    path = directory / "seed.parquet"
    sample_batch(vehicles=4, samples=10, seed=11).write_parquet(path, row_group_size=12)
    return path.read_bytes()


TEST_DESCRIPTORS = ROOT / "tests" / "data" / "fleet_test.binpb"


def protobuf_seed(directory: Path) -> bytes:
    """A small delimited stream of key/value envelopes of the test fleet schema."""
    from google.protobuf.internal.encoder import _VarintBytes

    from filter.formats.protobuf.descriptors import load_schema

    payload = load_schema(TEST_DESCRIPTORS, "testfleet.Payload").message_class
    out = bytearray()
    for i in range(6):
        msg = payload(vin=f"LSV{i:014d}")
        msg.created_at.seconds = 1_790_000_000 + i
        msg.data.add(key=8).value.double_value = 50.0 + i
        loc = msg.data.add(key=21).value.location_value
        loc.latitude, loc.longitude = 31.2, 121.4
        msg.data.add(key=64).value.string_value = "my car"
        data = msg.SerializeToString()
        out += _VarintBytes(len(data)) + data
    return bytes(out)


#: Seed file builders by input format: (suffix, builder, extra `vtx split` arguments).
SEEDS: dict[str, tuple[str, Callable[[Path], bytes], list[str]]] = {
    "parquet": (".parquet", parquet_seed, ["--catalogue", str(MINI_CATALOGUE)]),
    "protobuf": (".bin", protobuf_seed, ["--message", "testfleet.Payload",
                                          "--descriptor-set", str(TEST_DESCRIPTORS)]),
}


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random mutations: bit flips, overwritten ranges, truncation, random bytes."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["flip", "overwrite", "zero", "truncate", "random", "insert",
                           "footer", "delete"])
        n = len(out)
        if kind == "random":
            return bytes(rng.randbytes(rng.randint(0, 2048)))
        if n == 0:
            break
        at = rng.randrange(n)
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(n)
                out[i] ^= 1 << rng.randrange(8)
        elif kind in ("overwrite", "zero"):
            size = min(rng.choice([1, 4, 16, 256, 4096]), n - at)
            out[at:at + size] = (rng.randbytes(size) if kind == "overwrite" else bytes(size))
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = rng.randbytes(rng.randint(1, 64))
        elif kind == "delete":
            del out[at:at + rng.randint(1, 256)]
        elif kind == "footer":  # the footer length and the bytes just before it
            i = max(n - rng.randint(1, min(64, n)), 0)
            out[i] = rng.randrange(256)
    return bytes(out)


class RawStderr:
    """Captures what native code (a Rust panic message, say) writes to file descriptor 2,
    which `CliRunner` cannot see but a user's terminal would."""

    def __enter__(self) -> RawStderr:
        self._file = tempfile.TemporaryFile()
        sys.stderr.flush()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()


def invoke(runner: CliRunner, args: list[str]) -> tuple[Result, str]:
    """Run the CLI in-process; also return what reached the real stderr descriptor."""
    with RawStderr() as raw:
        result = runner.invoke(vtx, args)
    return result, raw.text


def problems(
    result: Result, raw: str, *, allowed: set[int], error_prefix: str = "vtx: error: "
) -> list[str]:
    """What is wrong with a CLI result, if anything."""
    found = []
    if raw.strip():
        found.append(f"{NATIVE}: {raw.strip().splitlines()[0][:200]!r}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        found.append(f"unexpected {type(result.exception).__name__}: {result.exception}")
    if result.exit_code not in allowed:
        found.append(f"exit code {result.exit_code}")
    if "Traceback" in result.output:
        found.append("traceback in output")
    lines = result.stderr.strip().splitlines()
    if result.exit_code not in (0,) and error_prefix == "vtx: error: ":
        if len(lines) != 1 or not lines[0].startswith(error_prefix):
            found.append(f"stderr is not one error line: {result.stderr[:300]!r}")
    elif result.exit_code == 3 and not all(line.startswith("vtx: verify: ") for line in lines):
        found.append(f"verify printed other lines: {result.stderr[:300]!r}")
    return found


def split_case(
    runner: CliRunner, work: Path, path: Path, key: Path, extra: list[str]
) -> list[str]:
    out = work / "out"
    result, raw = invoke(runner, ["split", str(path), "--export", str(out / "export"),
                                  "--onshore", str(out / "onshore"), "--scenario", "after-sales",
                                  "--key-file", str(key), "--quiet", *extra])
    found = problems(result, raw, allowed={0, 1})
    if result.exit_code != 0 and out.exists() and any(out.iterdir()):
        found.append(f"published on failure: {sorted(p.name for p in out.iterdir())}")
    shutil.rmtree(out, ignore_errors=True)
    return found


def explain_case(runner: CliRunner, path: Path) -> list[str]:
    result, raw = invoke(runner, ["explain", str(path), "--scenario", "rnd", "--catalogue",
                                  str(MINI_CATALOGUE), "--format", "json"])
    return problems(result, raw, allowed={0, 1})


def verify_case(runner: CliRunner, published: Path, damaged: bytes) -> list[str]:
    export = published / "export"
    (export / "part-00000.parquet").write_bytes(damaged)
    result, raw = invoke(runner, ["verify", str(export), "--onshore",
                                  str(published / "onshore"), "--catalogue", str(MINI_CATALOGUE)])
    return problems(result, raw, allowed={0, 3}, error_prefix="vtx: verify: ")


def run(cases: int, seed: int) -> int:
    runner = CliRunner()
    failures: list[str] = []
    native: list[str] = []
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vtx-fuzz-") as tmp:
        work = Path(tmp)
        key = work / "vtx.key"
        key.write_bytes(KEY)
        key.chmod(0o600)
        seeds = {fmt: (suffix, build(work), extra) for fmt, (suffix, build, extra) in SEEDS.items()}
        # A published split whose export part the verify cases damage.
        published = work / "published"
        clean = published / "input.parquet"
        published.mkdir()
        clean.write_bytes(seeds["parquet"][1])
        ok = runner.invoke(vtx, ["split", str(clean), "--export", str(published / "export"),
                                 "--onshore", str(published / "onshore"), "--scenario",
                                 "after-sales", "--catalogue", str(MINI_CATALOGUE),
                                 "--key-file", str(key), "--quiet"])
        assert ok.exit_code == 0, ok.output
        export_part = (published / "export" / "part-00000.parquet").read_bytes()
        for case in range(cases):
            rng = random.Random(f"{seed}-{case}")
            fmt = rng.choice(sorted(seeds))
            suffix, original, extra = seeds[fmt]
            kind = "split" if fmt != "parquet" else rng.choices(
                ["split", "explain", "verify"], weights=[6, 2, 2])[0]
            kinds[f"{fmt}/{kind}"] += 1
            if kind == "verify":
                found = verify_case(runner, published, mutate(export_part, rng))
            else:
                path = work / f"case{suffix}"
                path.write_bytes(mutate(original, rng))
                found = (split_case(runner, work, path, key, extra) if kind == "split"
                         else explain_case(runner, path))
            label = f"case {case} (seed {seed}, {fmt}/{kind})"
            for problem in found:
                # Polars' panic hook prints to the real stderr before vtx turns the panic into
                # one error line; vtx cannot silence it. Reported apart from vtx's own faults.
                bucket = native if problem.startswith(NATIVE) else failures
                bucket.append(f"{label}: {problem}")
    seconds = time.perf_counter() - started
    spread = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    print(f"{cases} cases in {seconds:.1f} s ({spread}): "
          f"{len(failures)} failure(s), {len(native)} case(s) with a native panic message")
    for failure in failures + native:
        print(failure)
    return 1 if failures else 0


def main() -> None:
    """Parse options and run the fuzzer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500, help="how many cases (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the case sequence")
    args = parser.parse_args()
    sys.exit(run(args.cases, args.seed))


if __name__ == "__main__":
    main()
