"""Bad input through the CLI: damaged Parquet, broken catalogues, wrong options.

Every case must end in exit 0 (a mutation may leave a valid file), 1 or 2, with exactly one
``vtx: error: `` line on stderr on failure (several for `catalogue validate`), no traceback, and
nothing published. The longer, seedable run is `tests/fuzz/fuzz_parquet.py`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filter.cli import vtx
from filter.cli.sample import sample_batch
from tests.conftest import DATA, KEY, MINI_CATALOGUE
from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload


def protobuf_seed(workdir: Path) -> bytes:
    """A delimited stream of key/value envelopes of the test fleet schema."""
    from filter.formats.protobuf.descriptors import load_schema

    payload = load_schema(DATA / "fleet_test.binpb", "testfleet.Payload")
    return delimited(*(make_payload(payload, f"LSV{i:014d}") for i in range(4)))

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="vtx-fuzz-") as tmp:
        root = Path(tmp)
        (root / "vtx.key").write_bytes(KEY)
        (root / "vtx.key").chmod(0o600)
        sample_batch(vehicles=4, samples=10, seed=11).write_parquet(
            root / "seed.parquet", row_group_size=12)
        yield root


def assert_clean(result: Result, *, many_errors: bool = False) -> None:
    assert not (result.exception and not isinstance(result.exception, SystemExit)), (
        repr(result.exception))
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code:
        lines = result.stderr.strip().splitlines()
        assert lines and all(line.startswith("vtx: error: ") for line in lines), result.stderr
        assert many_errors or len(lines) == 1, result.stderr


def split(workdir: Path, inputs: Path, *extra: str) -> Result:
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    result = CliRunner().invoke(vtx, [
        "split", str(inputs), "--export", str(out / "export"), "--onshore", str(out / "onshore"),
        "--scenario", "after-sales", "--key-file", str(workdir / "vtx.key"), "--quiet", *extra])
    if result.exit_code:
        assert not out.exists() or not any(out.iterdir()), "published on failure"
    return result


_MUTATION = st.tuples(
    st.sampled_from(["flip", "overwrite", "zero", "truncate", "insert", "delete"]),
    st.floats(0, 1, exclude_max=True),
    st.integers(1, 4096),
    st.binary(min_size=1, max_size=64),
)


def mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for kind, where, size, noise in mutations:
        if not out:
            break
        at = int(where * len(out))
        if kind == "flip":
            out[at] ^= noise[0] or 1
        elif kind == "overwrite":
            out[at:at + len(noise)] = noise
        elif kind == "zero":
            out[at:at + size] = bytes(len(out[at:at + size]))
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = noise
        else:
            del out[at:at + size]
    return bytes(out)


@FUZZ
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3))
def test_damaged_parquet(workdir, mutations) -> None:
    path = workdir / "case.parquet"
    path.write_bytes(mutate((workdir / "seed.parquet").read_bytes(), mutations))
    assert_clean(split(workdir, path, "--catalogue", str(MINI_CATALOGUE)))


@FUZZ
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3))
def test_damaged_protobuf_stream(workdir, mutations) -> None:
    stream = workdir / "case.bin"
    stream.write_bytes(mutate(protobuf_seed(workdir), mutations))
    assert_clean(split(workdir, stream, "--message", "testfleet.Payload",
                       "--descriptor-set", str(DATA / "fleet_test.binpb")))


@settings(max_examples=20, deadline=None, derandomize=True)
@given(data=st.binary(max_size=3000))
def test_random_bytes(workdir, data) -> None:
    path = workdir / "noise.parquet"
    path.write_bytes(data)
    result = split(workdir, path, "--catalogue", str(MINI_CATALOGUE))
    assert result.exit_code == 1
    assert_clean(result)


_LINES = MINI_CATALOGUE.read_text().splitlines()
_BAD_VALUES = ['1', '"x"', "[]", "true", "{}", '["**.**"]', '["Vehicle.*x"]', '["a..b"]',
               '["Vehicle.Cabin.**", "Vehicle.Cabin.**"]', '"secret"', '["nope"]', '"1d"',
               "{ rnd = { coarsen = 5 } }", '{ "*" = { round = "x" } }', "[1, 2]", '"\\u0000"']


@st.composite
def broken_catalogue(draw) -> str:
    lines = list(_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "value", "duplicate", "garbage", "class"]))
        if kind == "delete":
            del lines[i]
        elif kind == "value" and "=" in lines[i]:
            lines[i] = lines[i].split("=", 1)[0] + "= " + draw(st.sampled_from(_BAD_VALUES))
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "garbage":
            lines.insert(i, draw(st.sampled_from(["[[rules]]", "[classes.x]", "x = ", "]]",
                                                  'id = "dup"', "[scenarios.rnd]"])))
        elif kind == "class":
            lines[i] = lines[i].replace('"design"', '"desing"').replace('"cabin"', '"cab in"')
        if not lines:
            break
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=broken_catalogue())
def test_broken_catalogue(workdir, batch_file, text) -> None:
    path = workdir / "catalogue.toml"
    path.write_text(text)
    validate = CliRunner().invoke(vtx, ["catalogue", "validate", str(path)])
    assert_clean(validate, many_errors=True)
    assert validate.exit_code in (0, 2)
    shown = CliRunner().invoke(vtx, ["catalogue", "show", str(path)])
    assert_clean(shown)
    assert_clean(split(workdir, batch_file, "--catalogue", str(path)))


_TOKENS = ["split", "explain", "verify", "report", "catalogue", "validate", "show", "diff",
           "--scenario", "rnd", "after-sales", "nope", "--origin", "customer", "martian",
           "--catalogue", "--format", "json", "yaml", "--on-unknown", "fail", "maybe",
           "--export", "--onshore", "--html", "--key-file", "--overwrite", "--bogus", "-q",
           "--catalogue-sha256", "abc", "--field", "x", "", "-", "--", "@SEED", "@MINI", "@OUT",
           "@MISSING"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(argv=st.lists(st.sampled_from(_TOKENS), max_size=8))
def test_wrong_cli_options(workdir, argv) -> None:
    where = {"@SEED": str(workdir / "seed.parquet"), "@MINI": str(MINI_CATALOGUE),
             "@OUT": str(workdir / "cli-out"), "@MISSING": str(workdir / "missing")}
    args = [where.get(a, a) for a in argv]
    result = CliRunner().invoke(vtx, args, env={"VTX_KEY_FILE": ""})
    if args[:1] == ["verify"] and result.exit_code in (3, 4):
        return  # a verify that ran and found the output wanting (or half a pair): its own lines
    assert_clean(result, many_errors=args[:2] == ["catalogue", "validate"])


# Regressions: crashes the fuzzers found.


def test_footer_pointing_past_the_end_is_refused(workdir) -> None:
    """Bytes cut from the middle: the footer still parses but points past where it begins.
    Reading such a file made Polars panic (`range.end <= self.size`); now the footer check
    refuses it before any data is read."""
    data = (workdir / "seed.parquet").read_bytes()
    path = workdir / "cut.parquet"
    path.write_bytes(data[: len(data) // 3] + data[len(data) // 3 + 4000:])
    result = CliRunner().invoke(vtx, ["explain", str(path), "--scenario", "rnd", "--catalogue",
                                      str(MINI_CATALOGUE)])
    assert result.exit_code == 1
    assert "lie outside the file" in result.stderr
    assert_clean(result)


def test_a_native_panic_is_one_error_line(workdir, monkeypatch) -> None:
    import polars as pl

    def panic(*args, **kwargs):
        raise pl.exceptions.PanicException("assertion failed")

    monkeypatch.setattr("filter.cli.explain.inspect_batch", panic)
    result = CliRunner().invoke(vtx, ["explain", str(workdir / "seed.parquet"), "--scenario",
                                      "rnd"])
    assert result.exit_code == 1 and "unexpected PanicException" in result.stderr
    assert_clean(result)


def test_no_command_is_one_error_line() -> None:
    for args in ([], ["catalogue"]):
        result = CliRunner().invoke(vtx, args)
        assert result.exit_code == 2 and "Usage:" in result.stdout
        assert result.stderr.startswith("vtx: error: missing command")
        assert_clean(result)
