"""Protobuf input on the Ray engine (filter/engines/ray.py): the local protobuf split's result."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from filter import InputError, UnclassifiedFieldsError, read_manifest
from filter.cli import vtx
from filter.engines.request import SplitResult
from filter.engines.run import split_protobuf
from filter.formats.protobuf.descriptors import ProtoSchema, load_schema
from tests.conftest import KEY
from tests.engines.test_protobuf_split import TEST_SET, record_stream
from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")

from filter.engines.ray import RayEngine  # noqa: E402  (after the skip: needs ray)

#: `filter.split_protobuf` on the Ray engine (a local cluster the fixture starts).
split_ray_protobuf = functools.partial(split_protobuf, engine=RayEngine())

PAYLOAD = {"message": "testfleet.Payload", "descriptor_set": TEST_SET}
RECORD = {"message": "vtx.telemetry.v1.Record"}


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the module."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def payload() -> ProtoSchema:
    return load_schema(TEST_SET, "testfleet.Payload")


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three messages a batch, so a file makes several pairs of parts (both engines read it)."""
    monkeypatch.setattr("filter.engines.protobuf.BATCH_MESSAGES", 3)


def kv_inputs(payload: ProtoSchema, root: Path) -> list[Path]:
    """Two delimited streams and a topic dump of single-message files."""
    root.mkdir()
    streams = []
    for n, count in enumerate((7, 4)):
        stream = root / f"kv-{n}.bin"
        stream.write_bytes(delimited(*(make_payload(payload, f"LSV{n}{i % 3}")
                                       for i in range(count))))
        streams.append(stream)
    dump = root / "topic"
    dump.mkdir()
    for i in range(5):
        (dump / f"{i:04d}.bin").write_bytes(make_payload(payload, f"LSVD{i % 2}"))
    return [*streams, dump]


def both(inputs: list[Path], root: Path, **options) -> tuple[SplitResult, SplitResult]:
    """The same split, local and on Ray, published under `root`/local and `root`/ray."""
    results = []
    for engine, run in (("local", split_protobuf), ("ray", split_ray_protobuf)):
        results.append(run(inputs, root / engine / "e", root / engine / "o", "after-sales",
                           key=KEY, **options))
    return results[0], results[1]


def parts(root: Path, side: str) -> dict[str, pl.DataFrame]:
    return {p.name: pl.read_parquet(p) for p in sorted((root / side).glob("part-*.parquet"))}


def assert_same_outputs(local: SplitResult, on_ray: SplitResult, root: Path, order: list[str]
                        ) -> None:
    for side in ("e", "o"):
        ours, theirs = parts(root / "ray", side), parts(root / "local", side)
        assert list(ours) == list(theirs)  # the same part names, batch for batch
        assert len(ours) > 3
        for name, frame in ours.items():
            assert frame.columns == theirs[name].columns
            assert_frame_equal(frame, theirs[name])
        # And as multisets of rows (the sort is stable: equal keys keep the parts' order).
        assert_frame_equal(pl.concat(ours.values()).sort(order, maintain_order=True),
                           pl.concat(theirs.values()).sort(order, maintain_order=True))
    for side in ("export", "onshore"):
        mine, want = getattr(on_ray, f"{side}_manifest"), getattr(local, f"{side}_manifest")
        for field in ("rows", "class_counts", "columns", "detections", "inputs", "files",
                      "keys"):
            assert getattr(mine, field) == getattr(want, field), field
        # The input format's sections: its format, the quarantine (its records onshore only),
        # the entries.
        assert mine.extra == want.extra


def test_key_value_streams_give_the_local_result(payload, tmp_path: Path) -> None:
    inputs = kv_inputs(payload, tmp_path / "in")
    local, on_ray = both(inputs, tmp_path, **PAYLOAD)
    assert_same_outputs(local, on_ray, tmp_path, ["vehicle_token", "message_index", "entry_index"])
    assert on_ray.export_manifest.extra.entries["entries"] == 5 * (7 + 4 + 5)
    assert [i.rows for i in on_ray.export_manifest.inputs] == [7, 4, 5]


def test_plain_records_give_the_local_result(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    inputs = [record_stream(tmp_path / "in" / f"r{n}.bin", count) for n, count in
              enumerate((8, 5))]
    local, on_ray = both(inputs, tmp_path, **RECORD)
    assert_same_outputs(local, on_ray, tmp_path, ["vehicle_token", "timestamp"])
    assert on_ray.export_manifest.rows == 13
    assert on_ray.export_manifest.extra.input_format.layout == "plain"


def test_bad_record_fails_the_run_and_publishes_nothing(payload, tmp_path: Path) -> None:
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), b"\x0a\xff\xff"))
    with pytest.raises(InputError, match=r"kv\.bin: message 1 at byte \d+: does not parse"):
        split_ray_protobuf(stream, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                           **PAYLOAD)
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()
    assert not [p for p in tmp_path.iterdir() if ".vtx-" in p.name]


def test_on_unknown_fail_stops_on_unknown_keys_and_fields(payload, tmp_path: Path) -> None:
    """As the local split: a key number the enum lacks (make_payload's 999) stops the run under
    on_unknown="fail", and so does a plain message carrying a field the schema lacks."""
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload)))
    record = load_schema(None, "vtx.telemetry.v1.Record")
    plain = tmp_path / "r.bin"
    odd = record.message_class(vin="V").SerializeToString() + b"\xa8\x06\x01"  # field 101
    plain.write_bytes(delimited(odd))
    for source, options, named in ((stream, PAYLOAD, r"fleet\.999"),
                                   (plain, RECORD, "unknown_fields")):
        with pytest.raises(UnclassifiedFieldsError, match=named):
            split_ray_protobuf(source, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                               on_unknown="fail", **options)
        assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()
        assert not [p for p in tmp_path.iterdir() if ".vtx-" in p.name]


def test_quarantine_on_ray(payload, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    good = make_payload(payload)
    stream = tmp_path / "in" / "kv.bin"
    stream.write_bytes(delimited(good, b"\x0a\xff\xff", good, good, good) + b"\x40abc")
    local, on_ray = both([stream], tmp_path, **PAYLOAD, on_bad_record="quarantine")
    kept = on_ray.onshore_manifest.extra.quarantined
    assert [(q.message_index, q.bytes) for q in kept] == [(1, 3), (5, 4)]
    assert kept == local.onshore_manifest.extra.quarantined
    for q in kept:
        data = (tmp_path / "ray" / "o" / q.file).read_bytes()
        assert data == (tmp_path / "local" / "o" / q.file).read_bytes()
        assert len(data) == q.bytes
    assert on_ray.export_manifest.inputs[0].rows == 4
    assert on_ray.export_manifest.extra.entries == local.export_manifest.extra.entries
    assert not (tmp_path / "ray" / "e" / "quarantine").exists()


def test_cli_engine_ray_reads_protobuf(payload, tmp_path: Path) -> None:
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), make_payload(payload, "LSV2")))
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    result = CliRunner().invoke(vtx, [
        "split", str(stream), "--export", str(tmp_path / "e"), "--onshore", str(tmp_path / "o"),
        "--scenario", "after-sales", "--key-file", str(key_file), "--engine", "ray",
        "--descriptor-set", str(TEST_SET), "--message", "testfleet.Payload"])
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "e").extra.entries["entries"] == 10


def test_the_driver_signs_protobuf_outputs(tmp_path: Path) -> None:
    from filter.audit.verify import verify_output
    from filter.outputs.signing_keys import generate

    generate(tmp_path / "egress.key", tmp_path / "egress.pub")
    (tmp_path / "in").mkdir()
    stream = record_stream(tmp_path / "in" / "r.bin", 5)
    split_ray_protobuf([stream], tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                       signing_key=tmp_path / "egress.key", **RECORD)
    report = verify_output(tmp_path / "e", tmp_path / "o", public_key=tmp_path / "egress.pub")
    assert report.ok, report.failures


def test_memory_budget_on_ray(tmp_path: Path) -> None:
    """A message too large for a piece of the budget is refused in its task as locally; a
    topic dump's runs of files are cut to fit a piece, the local result still."""
    from tests.engines.test_protobuf_budget import HEAD, empty_entries

    hostile = empty_entries(tmp_path / "hostile.pb", 1_500_000)
    with pytest.raises(InputError, match=r"hostile\.pb: message 0 at byte 0: .*1,500,000 "):
        split_ray_protobuf(hostile, tmp_path / "e", tmp_path / "o", "after-sales", key=KEY,
                           message="vtx.telemetry.v1.Envelope", memory_budget="600MiB")
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()
    dump = tmp_path / "dump"
    dump.mkdir()
    for i in range(8):  # each file's worst case is some 53 MiB: two in a piece of 105
        (dump / f"{i:04d}.pb").write_bytes(HEAD + b"\x0a\x00" * 50_000)
    local, on_ray = both([dump], tmp_path, message="vtx.telemetry.v1.Envelope",
                         framing="single", memory_budget="700MiB")
    assert len(list((tmp_path / "ray" / "e").glob("part-*"))) == 4  # 3 a batch by messages
    assert_same_outputs(local, on_ray, tmp_path, ["message_index", "entry_index"])
