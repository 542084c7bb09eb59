"""The CLI prints data as data: file names, column names and rule ids with control
characters or Rich markup in them are shown escaped and literally, on one line each."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from filter.cli import vtx
from tests.conftest import MINI_CATALOGUE

#: Escape sequences a file name may carry: set the terminal's title, ring, clear the screen.
HOSTILE_NAME = "bad\nvtx: error: forged\x1b]0;owned\x07\x1b[2J.parquet"
MARKUP_COLUMNS = ["[link=https://example.invalid/x]Vehicle.Speed[/link]", "x[/bogus]",
                  "Vehicle.Cabin.[red]Note[/red]"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "400"})  # wide: a cell is never folded across lines


def _no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text


def test_a_file_name_cannot_forge_an_error_line_or_drive_the_terminal(runner, tmp_path,
                                                                      key_file) -> None:
    bad = tmp_path / HOSTILE_NAME
    bad.write_bytes(b"PAR1 this is not a Parquet file PAR1")
    result = runner.invoke(vtx, [
        "split", str(bad), "--export", str(tmp_path / "export"), "--onshore",
        str(tmp_path / "onshore"), "--scenario", "rnd", "--catalogue", str(MINI_CATALOGUE),
        "--key-file", str(key_file)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vtx: error: ")
    assert "bad\\nvtx: error: forged\\x1b]0;owned\\x07\\x1b[2J.parquet" in lines[0]
    _no_raw_controls(result.output)
    assert not (tmp_path / "export").exists() and not (tmp_path / "onshore").exists()


def _markup_batch(tmp_path: Path) -> Path:
    path = tmp_path / "markup.parquet"
    pq.write_table(pa.table({
        "vin": ["LRW3E7EK0PC100001"], "timestamp": pa.array([0], pa.timestamp("ms")),
        **{name: [1.0] for name in MARKUP_COLUMNS},
        "Vehicle.\x1b[31mRed": [2.0],
    }), path)
    return path


def test_explain_shows_column_names_as_they_are(runner, tmp_path) -> None:
    batch = _markup_batch(tmp_path)
    result = runner.invoke(vtx, ["explain", str(batch), "--scenario", "rnd",
                                 "--catalogue", str(MINI_CATALOGUE)])
    assert result.exit_code == 0, result.output  # no MarkupError for "x[/bogus]"
    for name in MARKUP_COLUMNS:
        assert name in result.stdout
    assert "Vehicle.\\x1b[31mRed" in result.stdout
    _no_raw_controls(result.output)
    shown = runner.invoke(vtx, ["explain", str(batch), "--scenario", "rnd", "--catalogue",
                                str(MINI_CATALOGUE), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    fields = {f["field"] for f in json.loads(shown.stdout)}
    assert set(MARKUP_COLUMNS) | {"Vehicle.\x1b[31mRed"} <= fields  # JSON escapes, parses back
    _no_raw_controls(shown.stdout)


def test_catalogue_diff_and_show_print_rule_ids_literally(runner, tmp_path) -> None:
    new = tmp_path / "new.toml"
    new.write_text(MINI_CATALOGUE.read_text().replace('version = "1"', 'version = "2"') + (
        '\n[[rules]]\nid = "typo-fix[conceal]"\nclass = "design"\n'
        'patterns = ["Vehicle.Body.Hood"]\nbasis = "test basis: [link=x]markup[/link]"\n'))
    diff = runner.invoke(vtx, ["catalogue", "diff", str(MINI_CATALOGUE), str(new)])
    assert diff.exit_code == 0, diff.output
    assert "rules added: typo-fix[conceal]" in diff.stdout
    show = runner.invoke(vtx, ["catalogue", "show", str(new)])
    assert show.exit_code == 0, show.output
    for text in ("typo-fix[conceal]", "[link=x]markup[/link]"):
        assert text in show.stdout


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640])
def test_a_key_file_others_can_read_gets_one_warning_line(runner, tmp_path, key_file,
                                                          batch_file, mode) -> None:
    key_file.chmod(mode)
    result = runner.invoke(vtx, [
        "split", str(batch_file), "--export", str(tmp_path / "export"), "--onshore",
        str(tmp_path / "onshore"), "--scenario", "rnd", "--catalogue", str(MINI_CATALOGUE),
        "--key-file", str(key_file), "-q"])
    assert result.exit_code == 0, result.output  # a warning: the split still runs
    assert result.stderr.splitlines() == [
        f"vtx: warning: {key_file}: key file is open to "
        f"{'group and others' if mode & 0o007 else 'group'} (mode {mode:04o}); "
        "keep it mode 0600 (chmod 600 FILE)"]


def test_a_private_key_file_gets_no_warning(runner, tmp_path, key_file, batch_file) -> None:
    result = runner.invoke(vtx, [
        "split", str(batch_file), "--export", str(tmp_path / "export"), "--onshore",
        str(tmp_path / "onshore"), "--scenario", "rnd", "--catalogue", str(MINI_CATALOGUE),
        "--key-file", str(key_file), "-q"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_the_python_api_warns_through_warnings(tmp_path, key_file) -> None:
    import filter as vtx_api
    from filter.secret_files import ExposedKeyWarning

    key_file.chmod(0o604)
    with pytest.warns(ExposedKeyWarning, match=r"open to others \(mode 0604\)"):
        vtx_api.load_key(key_file)
