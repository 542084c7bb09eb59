"""The audit report (filter/audit/report.py, filter/cli/report.py), checked without a browser."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from filter import InputError, split
from filter.audit.report import load_runs, render_report
from filter.cli import vtx
from tests import manifests
from tests.conftest import KEY, MINI_CATALOGUE


class _Page(HTMLParser):
    """Tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data) -> None:
        self.text.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture
def outputs(batch_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    split(batch_file, tmp_path / "export", tmp_path / "onshore", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    return tmp_path / "export", tmp_path / "onshore"


def test_report_pairs_sides_and_shows_manifest_facts(outputs, tmp_path) -> None:
    export, onshore = outputs
    result = CliRunner().invoke(vtx, ["report", str(onshore), str(export), "--html",
                                      str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "report of 1 run(s)" in result.stdout
    html = (tmp_path / "r.html").read_text()
    page = parse(html)
    text = " ".join(page.text)
    manifest = json.loads(manifests.manifest_text(export))
    inputs = json.loads(manifests.manifest_text(onshore))["inputs"]  # onshore only
    for fact in (manifest["run_id"], manifest["catalogue"]["sha256"], "mini", "after-sales",
                 inputs[0]["sha256"], manifest["keys"]["key_id"],
                 "Vehicle.Cabin.HVAC.AmbientAirTemperature",
                 "Vehicle.Diagnostics.DTCList", "moved values", "mobile_number",
                 "Rows reconcile"):
        assert fact in text, fact
    tags = [t for t, _ in page.tags]
    assert tags.count("svg") == 1 and "rect" in tags
    # Self-contained: no script, no external resource.
    assert "script" not in tags
    for _tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), attrs
    assert "<style>" in html and "@import" not in html


def test_one_side_only_and_many_runs(outputs, batch_file, tmp_path) -> None:
    export, _ = outputs
    split(batch_file, tmp_path / "e2", tmp_path / "o2", "rnd", key=KEY, catalogue=MINI_CATALOGUE)
    runs = load_runs([export, tmp_path / "e2", tmp_path / "o2"])
    assert [(r.export is not None, r.onshore is not None) for r in runs] == [
        (True, False), (True, True)]
    text = " ".join(parse(render_report(runs)).text)
    assert "Only the export side was given" in text and "2 run(s)" in text


def test_manifest_strings_are_escaped(outputs) -> None:
    export, onshore = outputs
    path = onshore  # the output holding the manifest
    manifest = json.loads(manifests.manifest_text(path))
    manifest["columns"][-1]["reason"] = "<script>alert(1)</script>"
    manifests.write_text(path, json.dumps(manifest))
    html = render_report(load_runs([export, onshore]))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_a_manifest_with_a_key_vtx_does_not_write_is_refused(outputs) -> None:
    export, onshore = outputs
    manifests.edit(onshore, lambda m: m.update(note="kept onshore"))
    with pytest.raises(InputError, match=r"_manifest.parquet: malformed: note is not a key"):
        load_runs([export, onshore])


def test_not_an_output(tmp_path) -> None:
    with pytest.raises(InputError, match="not a published vtx output"):
        load_runs([tmp_path])
    result = CliRunner().invoke(vtx, ["report", str(tmp_path), "--html", str(tmp_path / "r")])
    assert result.exit_code == 1 and result.stderr.startswith("vtx: error: ")
    assert not (tmp_path / "r").exists()


def test_the_report_is_not_written_through_a_planted_link(outputs, tmp_path) -> None:
    export, onshore = outputs
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "r.html"
    # A link at the name the report's temporary file had, and one at the target itself.
    (tmp_path / ".r.html.vtx-partial").symlink_to(victim)
    result = CliRunner().invoke(vtx, ["report", str(export), str(onshore), "--html",
                                      str(target)])
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep me"
    target.unlink()
    target.symlink_to(victim)
    result = CliRunner().invoke(vtx, ["report", str(export), "--html", str(target)])
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep me"
    assert not target.is_symlink() and "vtx audit report" in target.read_text()
    assert [p.name for p in tmp_path.iterdir() if "vtx-partial" in p.name] == [
        ".r.html.vtx-partial"]  # the planted link, left alone; no temporary file left behind
