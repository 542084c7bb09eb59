"""Shared fixtures: a small catalogue, a key, and sample fleet batches written to tmp dirs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from filter import Catalogue, load_catalogue
from filter.cli.sample import sample_batch

DATA = Path(__file__).parent / "data"
MINI_CATALOGUE = DATA / "mini-catalogue.toml"
KEY = b"824b886d0de2275fe19f856e9ec5b5a3"  # random hex: a key `check_key` accepts


@pytest.fixture(scope="session")
def mini_catalogue() -> Catalogue:
    return load_catalogue(MINI_CATALOGUE)


@pytest.fixture(scope="session")
def batch() -> pl.DataFrame:
    """The demo's seeded sample, small: 12 vehicles x 10 records."""
    return sample_batch(vehicles=12, samples=10, seed=3)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "vtx.key"
    path.write_bytes(KEY + b"\n")
    path.chmod(0o600)  # as the docs recommend: a key others can read gets a warning
    return path


@pytest.fixture
def batch_file(tmp_path: Path, batch: pl.DataFrame) -> Path:
    """The sample batch as a Parquet file with several row groups."""
    path = tmp_path / "in" / "batch.parquet"
    path.parent.mkdir()
    batch.write_parquet(path, row_group_size=40)
    return path
