"""The command line (filter/cli/): commands, messages and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from filter.cli import vtx
from tests import manifests
from tests.conftest import MINI_CATALOGUE


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def split_args(inputs: list[str], tmp_path: Path, *extra: str) -> list[str]:
    return ["split", *inputs, "--export", str(tmp_path / "export"),
            "--onshore", str(tmp_path / "onshore"), "--scenario", "rnd",
            "--catalogue", str(MINI_CATALOGUE), *extra]


def keyed_args(batch_file: Path, tmp_path: Path, key_file: Path) -> list[str]:
    return split_args([str(batch_file)], tmp_path, "--key-file", str(key_file))


def assert_one_line_error(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vtx: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.output


def assert_nothing_published(tmp_path: Path) -> None:
    assert not (tmp_path / "export").exists()
    assert not (tmp_path / "onshore").exists()
    assert not [p for p in tmp_path.iterdir() if ".vtx-" in p.name]


def test_split_prints_a_summary(runner, batch_file, key_file, tmp_path) -> None:
    result = runner.invoke(vtx, keyed_args(batch_file, tmp_path, key_file))
    assert result.exit_code == 0, result.output
    assert "120 rows" in result.stdout
    assert "unclassified 1" in result.stdout
    assert (tmp_path / "export" / "_manifest.parquet").is_file()


def test_split_quiet_prints_nothing(runner, batch_file, key_file, tmp_path) -> None:
    result = runner.invoke(
        vtx, split_args([str(batch_file)], tmp_path, "--key-file", str(key_file), "--quiet"))
    assert result.exit_code == 0 and result.output == ""


def test_key_from_environment(runner, batch_file, key_file, tmp_path) -> None:
    result = runner.invoke(vtx, split_args([str(batch_file)], tmp_path),
                           env={"VTX_KEY_FILE": str(key_file)})
    assert result.exit_code == 0, result.output


def test_missing_key_refuses_with_exit_2(runner, batch_file, tmp_path) -> None:
    result = runner.invoke(vtx, split_args([str(batch_file)], tmp_path), env={"VTX_KEY_FILE": ""})
    assert_one_line_error(result, 2, "no pseudonymisation key")
    assert_nothing_published(tmp_path)


def test_bad_catalogue_exit_2(runner, batch_file, key_file, tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(MINI_CATALOGUE.read_text().replace('class = "cabin"', 'class = "cabn"'))
    args = split_args([str(batch_file)], tmp_path, "--key-file", str(key_file))
    args[args.index(str(MINI_CATALOGUE))] = str(bad)
    result = runner.invoke(vtx, args)
    assert_one_line_error(result, 2, "bad.toml: rules[1] (id 'cabin').class: class 'cabn'")
    assert_nothing_published(tmp_path)


def test_corrupt_parquet_exit_1(runner, batch_file, key_file, tmp_path) -> None:
    data = bytearray(batch_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 3000] = b"\x00" * 3000
    batch_file.write_bytes(bytes(data))
    result = runner.invoke(vtx, keyed_args(batch_file, tmp_path, key_file))
    assert_one_line_error(result, 1, "batch.parquet")
    assert_nothing_published(tmp_path)


def test_truncated_parquet_exit_1(runner, batch_file, key_file, tmp_path) -> None:
    batch_file.write_bytes(batch_file.read_bytes()[:1000])
    result = runner.invoke(vtx, keyed_args(batch_file, tmp_path, key_file))
    assert_one_line_error(result, 1, "batch.parquet: not a readable Parquet file")
    assert_nothing_published(tmp_path)


def test_not_parquet_at_all_exit_1(runner, key_file, tmp_path) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_text("vin,timestamp\n")
    result = runner.invoke(vtx, split_args([str(junk)], tmp_path, "--key-file", str(key_file)))
    assert_one_line_error(result, 1, "junk.parquet")


def test_on_unknown_fail_lists_fields(runner, batch_file, key_file, tmp_path) -> None:
    result = runner.invoke(vtx, split_args([str(batch_file)], tmp_path, "--key-file",
                                           str(key_file), "--on-unknown", "fail"))
    assert_one_line_error(result, 1, "not classified by catalogue 'mini': x_debug_counter")
    assert_nothing_published(tmp_path)


def test_unknown_scenario_exit_2(runner, batch_file, key_file, tmp_path) -> None:
    args = split_args([str(batch_file)], tmp_path, "--key-file", str(key_file))
    args[args.index("rnd")] = "r-and-d"
    result = runner.invoke(vtx, args)
    assert_one_line_error(result, 2, "no scenario 'r-and-d'")


def test_usage_errors_are_one_line_exit_2(runner, tmp_path) -> None:
    assert_one_line_error(runner.invoke(vtx, ["split", "--bogus"]), 2, "No such option")
    assert_one_line_error(runner.invoke(vtx, ["split", "x.parquet"]), 2, "Missing option")
    assert_one_line_error(runner.invoke(vtx, ["nope"]), 2, "No such command")


def test_non_empty_target_refused(runner, batch_file, key_file, tmp_path) -> None:
    args = split_args([str(batch_file)], tmp_path, "--key-file", str(key_file), "-q")
    assert runner.invoke(vtx, args).exit_code == 0
    assert_one_line_error(runner.invoke(vtx, args), 1, "not empty (use --overwrite")
    assert runner.invoke(vtx, [*args, "--overwrite"]).exit_code == 0


def test_debug_shows_the_traceback(runner, tmp_path, key_file) -> None:
    result = runner.invoke(vtx, ["--debug", *split_args([str(tmp_path / "absent.parquet")],
                                                       tmp_path, "--key-file", str(key_file))])
    assert result.exit_code != 0
    assert result.exception is not None  # re-raised for the traceback


def test_explain_json(runner, batch_file) -> None:
    result = runner.invoke(vtx, ["explain", str(batch_file), "--scenario", "rnd", "--catalogue",
                                 str(MINI_CATALOGUE), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["field"]: r for r in json.loads(result.stdout)}
    assert rows["Vehicle.CurrentLocation.Latitude"]["destination"] == "onshore"
    assert rows["Vehicle.TraveledDistance"]["destination"] == "export"
    assert rows["x_debug_counter"]["class"] == "unclassified"
    for row in rows.values():
        assert {"field", "class", "destination", "rule", "basis", "reason"} <= set(row)


def test_explain_table_writes_nothing(runner, batch_file) -> None:
    before = sorted(batch_file.parent.parent.rglob("*"))
    result = runner.invoke(vtx, ["explain", str(batch_file), "--scenario", "after-sales"])
    assert result.exit_code == 0, result.output
    assert "Vehicle.CurrentLocation.Latitude" in result.stdout and "onshore" in result.stdout
    assert sorted(batch_file.parent.parent.rglob("*")) == before


def test_catalogue_validate_and_show(runner, tmp_path) -> None:
    ok = runner.invoke(vtx, ["catalogue", "validate"])
    assert ok.exit_code == 0 and "valid: catalogue lingang-icv" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(MINI_CATALOGUE.read_text().replace('kind = "withheld"', 'kind = "secret"', 1)
                   .replace('version = "1"', ""))
    result = runner.invoke(vtx, ["catalogue", "validate", str(bad)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 2 and all(line.startswith("vtx: error: ") for line in lines)
    shown = runner.invoke(vtx, ["catalogue", "show", str(MINI_CATALOGUE), "--format", "json"])
    assert json.loads(shown.stdout)["id"] == "mini"
    table = runner.invoke(vtx, ["catalogue", "show"])
    assert table.exit_code == 0 and "after-sales" in table.stdout


def test_demo(runner, tmp_path) -> None:
    result = runner.invoke(vtx, ["demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "6,000 rows" in result.stdout
    assert (tmp_path / "demo" / "export" / "_manifest.parquet").is_file()
    assert runner.invoke(vtx, ["demo", str(tmp_path / "demo")]).exit_code == 0  # repeatable


def test_version(runner) -> None:
    result = runner.invoke(vtx, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("vtx ")


def test_installed_vtx_runs_as_a_subprocess(batch_file, key_file, tmp_path) -> None:
    exe = shutil.which("vtx", path=os.path.dirname(sys.executable)) or shutil.which("vtx")
    command = [exe] if exe else [sys.executable, "-m", "filter"]
    done = subprocess.run(
        [*command, *split_args([str(batch_file)], tmp_path, "--key-file", str(key_file))],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "120 rows" in done.stdout
    failed = subprocess.run([*command, "split", str(batch_file), "--export", "e", "--onshore",
                             "o", "--scenario", "rnd"], capture_output=True, text=True,
                            timeout=120, check=False, env={**os.environ, "VTX_KEY_FILE": ""})
    assert failed.returncode == 2
    assert failed.stderr.startswith("vtx: error: no pseudonymisation key")
    assert "Traceback" not in failed.stderr


def test_rnd_refuses_customer_telemetry(runner, batch_file, key_file, tmp_path) -> None:
    args = ["split", str(batch_file), "--export", str(tmp_path / "export"), "--onshore",
            str(tmp_path / "onshore"), "--scenario", "rnd", "--key-file", str(key_file)]
    assert_one_line_error(runner.invoke(vtx, [*args, "--origin", "customer"]), 2,
                          "scenario 'rnd' takes only data from test-fleet")
    assert_nothing_published(tmp_path)
    assert_one_line_error(runner.invoke(vtx, args), 2, "--origin")
    ok = runner.invoke(vtx, [*args, "--origin", "test-fleet", "-q"])
    assert ok.exit_code == 0, ok.output
    manifest = json.loads(manifests.manifest_text(tmp_path / "export"))
    assert manifest["origin"] == "test-fleet"


def test_catalogue_pin(runner, batch_file, key_file, tmp_path) -> None:
    from filter import load_catalogue

    args = keyed_args(batch_file, tmp_path, key_file)
    pinned = load_catalogue(MINI_CATALOGUE).sha256
    assert runner.invoke(vtx, [*args, "--catalogue-sha256", pinned.upper(), "-q"]).exit_code == 0
    result = runner.invoke(vtx, [*args, "--catalogue-sha256", "0" * 64, "--overwrite"])
    assert_one_line_error(result, 2, f"catalogue sha256 is {pinned}, not the pinned 000")


def test_a_native_panic_report_stays_off_stderr(key_file, tmp_path) -> None:
    # A Parquet file, damaged by the fuzzer, on which Polars' reader panics: Rust prints a
    # report with a backtrace to stderr before vtx reports the error in one line.
    damaged = Path(__file__).parent.parent / "data" / "polars-panics.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "filter", "split", str(damaged), "--export",
         str(tmp_path / "e"), "--onshore", str(tmp_path / "o"), "--scenario", "after-sales",
         "--catalogue", str(MINI_CATALOGUE), "--key-file", str(key_file), "--quiet"],
        capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if k != "VTX_DEBUG"},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("vtx: error: ") and "panicked" not in done.stderr
    assert not (tmp_path / "e").exists()


def test_stderr_filter_forwards_every_line_before_exit() -> None:
    # The last line written before the process exits must come through the filter: run the
    # race many times (each a fresh process, stderr a pipe as in CI).
    code = (
        "import os, sys\n"
        "from filter.cli.native_stderr import native_panics_filtered\n"
        "with native_panics_filtered():\n"
        "    os.write(2, b\"\\nthread 'x' (1) panicked at a.rs:1:\\nboom\\n\")\n"
        "    sys.stderr.write('vtx: error: the one line\\n')\n"
        "sys.exit(1)\n"
    )
    for _ in range(15):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 1
        assert done.stderr == "vtx: error: the one line\n"


def test_the_command_loads_only_what_a_parquet_split_needs() -> None:
    import subprocess
    import sys

    # Start-up counts on every run: numba (about 0.4 s to import) waits for protobuf input;
    # the protobuf runtime, the verifier and rich (progress bars, tables) wait for their use.
    # `filter` still offers them: its module __getattr__ loads them on first use.
    code = (
        "import sys, filter.cli\n"
        "late = ['numba', 'google.protobuf', 'filter.engines.protobuf', 'filter.audit.verify',\n"
        "        'filter.audit.part_formats', 'filter.audit.output_check',\n"
        "        'filter.audit.integrity', 'filter.audit.claims', 'filter.audit.export_policy',\n"
        "        'filter.audit.stream_policy', 'filter.audit.export_values',\n"
        "        'filter.audit.reconcile', 'rich']\n"
        "loaded = [m for m in late if m in sys.modules]\n"
        "assert not loaded, f'at start-up: {loaded}'\n"
        "import filter\n"
        "assert callable(filter.split_protobuf) and callable(filter.verify_output)\n"
        "assert filter.VerifyReport.__name__ == 'VerifyReport'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_numba_waits_for_compiled_protobuf_work() -> None:
    import subprocess
    import sys

    # The protobuf split itself (plain messages, `vtx explain --message`) needs no numba: the
    # compiled key/value decoder and the Parquet encoder load it when they are used.
    code = (
        "import sys, filter.engines.protobuf, filter.apply.kv_routing\n"
        "import filter.apply.kv_decoded_routing\n"
        "assert 'numba' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reencode_writes_every_column_anew(runner, tmp_path, key_file) -> None:
    """By default unchanged columns keep the input's encoding; --reencode has Polars write
    them all (zstd), with the same values."""
    import polars as pl
    import pyarrow.parquet as pq

    from filter.cli.sample import sample_batch

    source = tmp_path / "in" / "snappy.parquet"
    source.parent.mkdir()
    sample_batch(vehicles=4, samples=5, seed=1).write_parquet(source, compression="snappy")
    codecs = {}
    for label, extra in (("copied", []), ("reencoded", ["--reencode"])):
        out = tmp_path / label
        result = runner.invoke(vtx, split_args([str(source)], out, "--key-file", str(key_file),
                                               "--quiet", *extra))
        assert result.exit_code == 0, result.output
        meta = pq.read_metadata(out / "export" / "part-00000.parquet").row_group(0)
        codecs[label] = {meta.column(i).compression for i in range(meta.num_columns)}
    assert codecs == {"copied": {"SNAPPY", "ZSTD"}, "reencoded": {"ZSTD"}}
    assert pl.read_parquet(tmp_path / "copied" / "export" / "*.parquet").equals(
        pl.read_parquet(tmp_path / "reencoded" / "export" / "*.parquet"))


def test_reencode_is_for_parquet_input(runner, tmp_path, key_file, batch_file) -> None:
    result = runner.invoke(vtx, split_args([str(batch_file)], tmp_path, "--key-file",
                                           str(key_file), "--reencode", "--engine", "ray"))
    assert_one_line_error(result, 2, "--reencode applies to Parquet input with --engine local")


def test_special_files_are_refused_at_once(batch_file, key_file, tmp_path) -> None:
    # Each case in a process of its own, with a timeout: a FIFO or /dev/zero read as a file
    # blocks (or reads) forever.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    descriptors = Path(__file__).parent.parent / "data" / "fleet_test.binpb"
    protobuf = ["--message", "testfleet.Payload", "--descriptor-set", str(descriptors)]
    cases = {
        "protobuf input, FIFO": ([str(fifo), *protobuf], 1, "fifo: is a FIFO"),
        "protobuf input, /dev/zero": (["/dev/zero", *protobuf], 1,
                                      "/dev/zero: is a character device"),
        "Parquet input, FIFO": ([str(fifo)], 1, "fifo: is a FIFO"),
        "key file": ([str(batch_file), "--key-file", str(fifo)], 2,
                     "cannot read key file (--key-file): not a regular file (a FIFO)"),
        "catalogue": ([str(batch_file), "--catalogue", str(fifo)], 2,
                      "cannot read catalogue: not a regular file (a FIFO)"),
        "descriptor set": ([str(batch_file), "--message", "testfleet.Payload",
                            "--descriptor-set", "/dev/zero"], 1,
                           "cannot read descriptor set: not a regular file (a character"),
    }
    for name, (args, code, fragment) in cases.items():
        done = subprocess.run(
            [sys.executable, "-m", "filter", "split", *args, "--export", str(tmp_path / "e"),
             "--onshore", str(tmp_path / "o"), "--scenario", "after-sales",
             *([] if "--key-file" in args else ["--key-file", str(key_file)])],
            capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == code, (name, done.stderr)
        assert done.stderr.startswith("vtx: error: ") and fragment in done.stderr, name
        assert len(done.stderr.splitlines()) == 1, name
        assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists(), name


def test_demo_does_not_write_through_planted_links(runner, tmp_path) -> None:
    demo = tmp_path / "demo"
    (demo / "input").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (demo / "input" / "fleet-batch.parquet").symlink_to(victim)
    (demo / "demo.key").symlink_to(tmp_path / "planted.key")  # dangling: written through?
    result = runner.invoke(vtx, ["demo", str(demo)])
    assert result.exit_code == 2, result.output  # the key link is not a key: refused
    assert "demo.key: cannot read key file" in result.stderr
    assert victim.read_text() == "keep me" and not (tmp_path / "planted.key").exists()
    assert not (demo / "input" / "fleet-batch.parquet").is_symlink()  # replaced, not followed
