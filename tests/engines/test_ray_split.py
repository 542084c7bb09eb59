"""The Ray engine (filter/engines/ray.py): same plan, same result as the local engine."""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from filter import InputError, read_manifest, split, split_frame
from filter.apply.reconstruct import reconstruct
from filter.cli import vtx
from filter.outputs.manifest import sha256_file
from tests import manifests
from tests.conftest import KEY, MINI_CATALOGUE

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")

from filter.engines.ray import RayEngine  # noqa: E402  (after the skip: needs ray)
from filter.engines.ray_dataset import split_dataset  # noqa: E402
from filter.engines.ray_session import RayUnavailableError, import_ray  # noqa: E402

#: `filter.split` on the Ray engine (a local cluster the fixture starts).
split_ray = functools.partial(split, engine=RayEngine())

#: Values the detectors move out of the export, and values they leave alone.
NOTES = ["31.230416, 121.473701", "tyre check ok", "沪A12345", None, "13812345678",
         "P0420 cleared", "zhang@example.cn", "tyre check ok"]


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the module; blocks kept small so a file makes several."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    context = ray.data.DataContext.get_current()
    saved = context.target_max_block_size
    context.target_max_block_size = 4 * 1024
    yield
    context.target_max_block_size = saved
    ray.shutdown()


@pytest.fixture(scope="module")
def fleet(batch: pl.DataFrame) -> pl.DataFrame:
    """The sample batch with exported free-text notes, some of which the detectors move."""
    notes = pl.Series("Vehicle.Service.Notes", NOTES * (batch.height // len(NOTES) + 1))
    return batch.with_columns(notes.head(batch.height))


@pytest.fixture
def fleet_files(tmp_path: Path, fleet: pl.DataFrame) -> list[Path]:
    """The fleet as three Parquet files of several row groups each."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for index, start in enumerate((0, 50, 90)):
        path = folder / f"fleet-{index}.parquet"
        fleet.slice(start, 50 if index == 0 else 40).write_parquet(path, row_group_size=10)
        paths.append(path)
    return paths


def outputs(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The export and onshore part files under `root`, concatenated in name order."""
    return tuple(  # type: ignore[return-value]
        pl.concat([pl.read_parquet(p) for p in sorted((root / side).glob("part-*.parquet"))])
        for side in ("export", "onshore")
    )


def by_key(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("vehicle_token", "timestamp")


@pytest.mark.parametrize("scenario", ["after-sales", "rnd"])
def test_ray_gives_the_local_result(fleet_files, fleet, tmp_path, scenario) -> None:
    local = split(fleet_files, tmp_path / "local" / "export", tmp_path / "local" / "onshore",
                  scenario, key=KEY, catalogue=MINI_CATALOGUE, origin="test-fleet")
    on_ray = split_ray(fleet_files, tmp_path / "ray" / "export", tmp_path / "ray" / "onshore",
                       scenario, key=KEY, catalogue=MINI_CATALOGUE, origin="test-fleet")
    local_export, local_onshore = outputs(tmp_path / "local")
    ray_export, ray_onshore = outputs(tmp_path / "ray")
    # Same columns and the same rows (Ray may order the blocks otherwise than the input).
    for ours, theirs in ((ray_export, local_export), (ray_onshore, local_onshore)):
        assert ours.columns == theirs.columns
        assert_frame_equal(by_key(ours), by_key(theirs))
    # The two sides line up row for row, so they reconstruct the input.
    rebuilt = reconstruct(ray_export, ray_onshore, fleet.schema)
    assert_frame_equal(rebuilt.sort("vin", "timestamp"), fleet.sort("vin", "timestamp"))
    for side in ("export", "onshore"):
        mine = getattr(on_ray, f"{side}_manifest")
        theirs = getattr(local, f"{side}_manifest")
        for field in ("rows", "class_counts", "detections", "columns", "inputs", "catalogue"):
            assert getattr(mine, field) == getattr(theirs, field), field
        # The blocks, not the files, make the parts; each pair lines up row for row.
        assert len(mine.files) > len(fleet_files)
        for record in mine.files:
            part = tmp_path / "ray" / side / record.name
            assert record.sha256 == sha256_file(part)
            assert record.rows == pl.scan_parquet(part).select(pl.len()).collect().item()
    assert [f.rows for f in on_ray.export_manifest.files] == [
        f.rows for f in on_ray.onshore_manifest.files]
    assert on_ray.export_manifest.run_id == on_ray.onshore_manifest.run_id
    if scenario == "after-sales":
        (notes,) = [d for d in on_ray.export_manifest.detections
                    if d.field == "Vehicle.Service.Notes"]
        assert notes.moved_values == fleet["Vehicle.Service.Notes"].is_in(
            [NOTES[0], NOTES[2], NOTES[4], NOTES[6]]).sum()
    assert not [p for p in (tmp_path / "ray").iterdir() if p.name.startswith(".")]


def test_fields_over_the_distinct_limit_are_scanned_row_by_row(
    fleet_files, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("filter.apply.value_tables.DISTINCT_LIMIT", 3)  # both engines read it
    local = split(fleet_files, tmp_path / "l-e", tmp_path / "l-o", "after-sales", key=KEY,
                  catalogue=MINI_CATALOGUE)
    on_ray = split_ray(fleet_files, tmp_path / "r-e", tmp_path / "r-o", "after-sales", key=KEY,
                       catalogue=MINI_CATALOGUE)
    assert on_ray.onshore_manifest.detections == local.onshore_manifest.detections
    for side in ("e", "o"):
        ours = pl.read_parquet(tmp_path / f"r-{side}" / "*.parquet")
        theirs = pl.read_parquet(tmp_path / f"l-{side}" / "*.parquet")
        assert_frame_equal(ours, theirs)


def test_split_dataset_in_memory(fleet, mini_catalogue) -> None:
    ds = ray.data.from_arrow([fleet.slice(0, 60).to_arrow(), fleet.slice(60).to_arrow()])
    export_ds, onshore_ds = split_dataset(ds, "after-sales", key=KEY, catalogue=mini_catalogue)
    export = pl.from_arrow(pa.concat_tables(ray.get(export_ds.to_arrow_refs())))
    onshore = pl.from_arrow(pa.concat_tables(ray.get(onshore_ds.to_arrow_refs())))
    assert isinstance(export, pl.DataFrame) and isinstance(onshore, pl.DataFrame)
    want_export, want_onshore = split_frame(fleet, "after-sales", key=KEY, catalogue=mini_catalogue)
    assert_frame_equal(by_key(export), by_key(want_export))
    assert_frame_equal(by_key(onshore), by_key(want_onshore))
    assert "vin" not in export.columns


def test_cli_engine_ray(fleet_files, key_file, tmp_path) -> None:
    result = CliRunner().invoke(vtx, [
        "split", str(fleet_files[0].parent), "--export", str(tmp_path / "export"),
        "--onshore", str(tmp_path / "onshore"), "--scenario", "after-sales",
        "--catalogue", str(MINI_CATALOGUE), "--key-file", str(key_file), "--engine", "ray",
    ])
    assert result.exit_code == 0, result.output
    assert "120 rows" in result.stdout
    assert read_manifest(tmp_path / "export").rows == 120
    assert read_manifest(tmp_path / "onshore").rows == 120
    # A pipeline on Ray reads a published directory as it is: the manifest file adds no row.
    for side in ("export", "onshore"):
        assert ray.data.read_parquet(str(tmp_path / side)).count() == 120


def test_the_driver_signs_both_manifests(fleet_files, tmp_path) -> None:
    from filter.audit.verify import verify_output
    from filter.outputs.signing_keys import generate

    generate(tmp_path / "egress.key", tmp_path / "egress.pub")
    split_ray(fleet_files, tmp_path / "export", tmp_path / "onshore", "after-sales", key=KEY,
              catalogue=MINI_CATALOGUE, signing_key=tmp_path / "egress.key")
    report = verify_output(tmp_path / "export", tmp_path / "onshore", MINI_CATALOGUE,
                           public_key=tmp_path / "egress.pub")
    assert report.ok, report.failures
    assert all(manifests.signature(tmp_path / side) is not None for side in ("export", "onshore"))


def test_vtx_process_starts_and_stops_its_own_cluster(fleet_files, key_file, tmp_path) -> None:
    # A separate process: no Ray session yet, so `vtx` starts a local cluster, prints only
    # its summary, and shuts the cluster down (the process exits).
    done = subprocess.run(
        [sys.executable, "-m", "filter", "split", *map(str, fleet_files),
         "--export", str(tmp_path / "export"), "--onshore", str(tmp_path / "onshore"),
         "--scenario", "after-sales", "--catalogue", str(MINI_CATALOGUE),
         "--key-file", str(key_file), "--engine", "ray"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "120 rows" in done.stdout
    assert read_manifest(tmp_path / "export").rows == 120


def test_cli_ray_address_needs_engine_ray(fleet_files, key_file, tmp_path) -> None:
    result = CliRunner().invoke(vtx, [
        "split", str(fleet_files[0]), "--export", str(tmp_path / "export"),
        "--onshore", str(tmp_path / "onshore"), "--scenario", "rnd",
        "--catalogue", str(MINI_CATALOGUE), "--key-file", str(key_file), "--ray-address", "auto",
    ])
    assert result.exit_code == 2
    assert "--ray-address needs --engine ray" in result.stderr


def test_corrupt_input_publishes_nothing(fleet_files, tmp_path) -> None:
    data = bytearray(fleet_files[1].read_bytes())
    mid = len(data) // 2
    data[mid - 1500 : mid + 1500] = b"\xff" * 3000  # data pages; the footer stays readable
    fleet_files[1].write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"fleet-1\.parquet: row group \d+\b.*corrupt"):
        split_ray(fleet_files, tmp_path / "export", tmp_path / "onshore", "after-sales",
                  key=KEY, catalogue=MINI_CATALOGUE)
    assert not (tmp_path / "export").exists() and not (tmp_path / "onshore").exists()
    assert not [p for p in tmp_path.iterdir() if ".vtx-" in p.name]


def test_without_ray_the_engine_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RayUnavailableError, match=r"pip install '\.\[ray\]'") as caught:
        import_ray()
    assert caught.value.exit_code == 2


def test_import_filter_does_not_import_ray() -> None:
    code = "import sys, filter; assert 'ray' not in sys.modules; filter.split_dataset"
    subprocess.run([sys.executable, "-c", code + "; assert 'ray' not in sys.modules"],
                   check=True)


def test_a_path_with_glob_characters_is_that_file_on_ray(fleet, tmp_path) -> None:
    fleet.write_parquet(tmp_path / "b[1].parquet")
    fleet.head(5).drop("Vehicle.Cabin.HVAC.AmbientAirTemperature").write_parquet(
        tmp_path / "b1.parquet")
    given = tmp_path / "b[1].parquet"
    result = split_ray(str(given), tmp_path / "e[1]", tmp_path / "o[1]", "after-sales",
                       key=KEY, catalogue=MINI_CATALOGUE)
    assert result.onshore_manifest.inputs[0].sha256 == sha256_file(given)
    onshore = pl.concat([pl.read_parquet(p, glob=False)
                         for p in sorted((tmp_path / "o[1]").glob("part-*.parquet"))])
    assert onshore.height == fleet.height
    assert "Vehicle.Cabin.HVAC.AmbientAirTemperature" in onshore.columns
