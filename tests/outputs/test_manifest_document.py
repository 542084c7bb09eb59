"""The typed manifest (filter/outputs/manifest_document.py): the JSON it writes, and the checks
that a stored document is a manifest."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filter import load_catalogue, plan, read_manifest, split
from filter.apply.columns import COUNT_SEPARATOR
from filter.outputs.manifest import FileRecord, build_manifest, manifest_text
from filter.outputs.manifest_document import (
    FormatSections,
    InputFormat,
    InputRecord,
    Manifest,
    OutputFormat,
    QuarantinedRecord,
    parse_manifest,
)
from tests import manifests
from tests.conftest import KEY, MINI_CATALOGUE

#: The top-level keys of a manifest, in the order vtx has always written them.
COMMON_KEYS = ["schema_version", "vtx_version", "run_id", "created_at", "destination",
               "catalogue", "scenario", "origin", "keys", "inputs", "files", "columns",
               "class_counts", "rows", "detections", "counterpart"]


@pytest.fixture(scope="module")
def after_sales(batch):
    return plan(batch.schema, load_catalogue(MINI_CATALOGUE), "after-sales")


def _records(prefix: str, rows: list[int]) -> list[FileRecord]:
    return [FileRecord(Path(f"/in/{prefix}-{n}.parquet"), r, 10 * r + 1, f"{n:064x}")
            for n, r in enumerate(rows)]


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                max_size=12)
counts = st.integers(min_value=0, max_value=2**53)
quarantine = st.builds(QuarantinedRecord, file=names, input=names, message_index=counts,
                       byte_offset=counts, bytes=counts, sha256=st.just("a" * 64), reason=names)
sections = st.one_of(
    st.none(),
    st.builds(
        lambda layout, records, entries, streams: FormatSections(
            input_format=InputFormat("protobuf", "vtx.telemetry.v1.Envelope", "delimited",
                                     "shipped", layout,
                                     "fleet" if layout == "key_value" else None),
            quarantined=tuple(records), quarantined_records=len(records),
            entries={"entries": entries[0], "exported": entries[1], "detected": 0}
            if layout == "key_value" else None,
            output_format=OutputFormat("protobuf", "vtx.telemetry.v1.Envelope", "delimited")
            if streams else None),
        st.sampled_from(["plain", "key_value"]), st.lists(quarantine, max_size=3),
        st.tuples(counts, counts), st.booleans()),
)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(destination=st.sampled_from(["export", "onshore"]),
       input_rows=st.lists(counts, max_size=4), part_rows=st.lists(counts, max_size=4),
       detections=st.dictionaries(
           st.tuples(st.sampled_from(["Vehicle.Service.Notes", "value_string"]),
                     st.sampled_from(["vin", "media", "moved", "batch_vin"])), counts),
       extra=sections, origin=st.sampled_from([None, "test-fleet"]))
def test_a_built_manifest_round_trips_through_its_json(after_sales, destination, input_rows,
                                                       part_rows, detections, extra,
                                                       origin) -> None:
    manifest = build_manifest(
        destination=destination, plan=replace(after_sales, origin=origin), run_id="r" * 32,
        inputs=_records("in", input_rows), files=_records("part", part_rows),
        counterpart=Path("/out/other"), key_id="0123456789abcdef",
        detections={f"{f}{COUNT_SEPARATOR}{d}": n for (f, d), n in detections.items()},
        extra=extra,
    )
    text = manifest_text(manifest)
    parsed = parse_manifest(text)
    assert parsed == manifest
    assert manifest_text(parsed) == text  # the same bytes: what a signature signs
    document = json.loads(text)
    assert list(document)[:len(COMMON_KEYS)] == COMMON_KEYS
    if destination == "export":  # nothing derived from onshore content leaves the country
        assert "quarantined" not in document
        assert all(list(i) == ["rows"] for i in document["inputs"])


def test_a_published_manifest_is_read_as_the_split_built_it(batch_file, tmp_path) -> None:
    result = split(batch_file, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                   catalogue=MINI_CATALOGUE)
    for directory, built in ((tmp_path / "e", result.export_manifest),
                             (tmp_path / "o", result.onshore_manifest)):
        assert read_manifest(directory) == built
        assert manifest_text(built).decode() == manifests.manifest_text(directory)
    assert result.export_manifest.inputs == (InputRecord(rows=120),)
    (record,) = result.onshore_manifest.inputs
    assert record.path == str(batch_file) and record.rows == 120


@pytest.fixture(scope="module")
def document(tmp_path_factory, batch) -> dict[str, Any]:
    """A published onshore manifest of a protobuf-free split, as JSON."""
    root = tmp_path_factory.mktemp("doc")
    batch.write_parquet(root / "in.parquet")
    split(root / "in.parquet", root / "e", root / "o", "after-sales", key=KEY,
          catalogue=MINI_CATALOGUE)
    return json.loads(manifests.manifest_text(root / "o"))


def _edited(document: dict[str, Any], change) -> dict[str, Any]:
    edited = copy.deepcopy(document)
    change(edited)
    return edited


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.pop("rows"), "rows is missing or not a count"),
    (lambda m: m.update(rows=-1), "rows is missing or not a count"),
    (lambda m: m.update(rows=True), "rows is missing or not a count"),
    (lambda m: m.update(rows=120.0), "rows is missing or not a count"),
    (lambda m: m.update(run_id=7), "run_id is missing or not a string"),
    (lambda m: m.update(origin=1), "origin is missing or not a string or null"),
    (lambda m: m.update(destination="abroad"),
     "destination is 'abroad', neither 'export' nor 'onshore'"),
    (lambda m: m["catalogue"].pop("sha256"), "catalogue.sha256 is missing or not a string"),
    (lambda m: m["keys"].update(vehicle_id=None), "keys.vehicle_id is missing or not a string"),
    (lambda m: m["files"][0].pop("sha256"), "files[0].sha256 is missing or not a string"),
    (lambda m: m["files"].append(m["files"][0]),
     "files[1].name 'part-00000.parquet' is not a plain, unique file name"),
    (lambda m: m["files"][0].update(name="_manifest.json"), "is not a plain, unique file name"),
    (lambda m: m["inputs"][0].pop("sha256"), "inputs[0].sha256 is missing or not a string"),
    (lambda m: m["columns"].append("vin"), "] is not an object"),
    (lambda m: m["class_counts"].update(location="3"), "class_counts.location is missing or "
     "not a count"),
    (lambda m: m["detections"][0]["hits"].update(vin=-1), "detections[0].hits.vin"),
    (lambda m: m.update(note="31.2304,121.4737"), "note is not a key vtx writes"),
    (lambda m: m["columns"][0].update(value="LSVAU2180N2183294"),
     "columns[0].value is not a key vtx writes"),
    (lambda m: m.update(entries={"entries": 3}), "entries.exported is missing or not a count"),
    (lambda m: m.update(input_format={"format": "protobuf", "message": "M",
                                      "framing": "delimited", "descriptor_set": "shipped",
                                      "layout": "key_value"}),
     "input_format.namespace is missing or not a string"),
])
def test_a_document_that_is_not_a_manifest_is_refused_naming_the_field(document, change,
                                                                       message) -> None:
    assert Manifest.from_json(document).to_json() == document
    with pytest.raises(ValueError) as refused:
        Manifest.from_json(_edited(document, change))
    assert message in str(refused.value)
    assert "LSVAU2180N2183294" not in str(refused.value)  # a key's name, never its value
    assert "31.2304" not in str(refused.value)


def test_what_is_not_an_object_or_json_is_refused() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        Manifest.from_json([1, 2])
    with pytest.raises(ValueError):
        parse_manifest(b"{not json")
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_manifest("[" * 100_000 + "]" * 100_000)


def test_older_schema_versions_parse(document) -> None:
    # Version 1: an export's inputs kept their path, size and digest; the oldest had no key id.
    v1 = _edited(document, lambda m: m.update(schema_version=1, destination="export"))
    for key in ("key_id", "key_id_method"):
        del v1["keys"][key]
    manifest = Manifest.from_json(v1)
    assert manifest.schema_version == 1 and manifest.keys.key_id is None
    assert manifest.inputs[0].path is not None
    assert manifest.to_json() == v1 and list(manifest.to_json()["keys"]) == list(v1["keys"])
    v2 = Manifest.from_json(_edited(document, lambda m: m.update(schema_version=2)))
    assert replace(v2, schema_version=3) == Manifest.from_json(document)


def test_read_manifest_names_what_is_malformed(batch_file, tmp_path) -> None:
    split(batch_file, tmp_path / "e", tmp_path / "o", "rnd", key=KEY, catalogue=MINI_CATALOGUE)
    manifests.edit(tmp_path / "e", lambda m: m.update(note="x"))
    with pytest.raises(ValueError, match=r"e: the manifest is malformed: note is not a key"):
        read_manifest(tmp_path / "e")
