"""The memory budget on the protobuf paths (`--memory-budget`, `formats.protobuf.pieces`):
batches cut by bytes and entries, a message too large for a piece refused before it is
decoded, and the output unchanged by where batches are cut."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from google.protobuf.internal.encoder import _VarintBytes

from filter.cli import vtx
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf.descriptors import load_schema
from filter.formats.protobuf.pieces import Pieces
from filter.memory_budget import MemoryBudget, MemoryBudgetExceeded
from tests.conftest import KEY

ENVELOPE = "vtx.telemetry.v1.Envelope"
ROOT = Path(__file__).parent.parent.parent
#: An envelope's VIN (field 3) and created_at (field 2), as bytes.
HEAD = b"\x1a\x11LSV00000000000001" + b"\x12\x06\x08\x80\xde\xc4\xd5\x06"


def empty_entries(path: Path, entries: int, messages: int = 1) -> Path:
    """`messages` envelopes of `entries` empty entries each (2 bytes each on the wire)."""
    body = HEAD + b"\x0a\x00" * entries
    path.write_bytes((_VarintBytes(len(body)) + body) * messages)
    return path


def int_entries(path: Path, messages: int, entries: int, tail: bytes = b"") -> Path:
    """`messages` envelopes of `entries` entries each: keys Soc (2) and Odometer (16,
    exported and withheld under after-sales), integer values, a VIN per ten messages; `tail`
    ends each envelope."""
    out = bytearray()
    for m in range(messages):
        vin = f"LSV{m % 10:014d}".encode()
        body = bytearray(b"\x1a\x11" + vin + b"\x12\x06\x08" + _VarintBytes(1_790_000_000 + m))
        for e in range(entries):
            value = b"\x10" + _VarintBytes((m * entries + e) % 100_000)
            datum = b"\x08" + bytes([2 if e % 2 else 16]) + b"\x12" + bytes([len(value)]) + value
            body += b"\x0a" + bytes([len(datum)]) + datum
        body += tail
        out += _VarintBytes(len(body)) + body
    path.write_bytes(bytes(out))
    return path


def split_args(source: Path, tmp_path: Path, name: str, *extra: str) -> list[str]:
    key = tmp_path / "key"
    if not key.exists():
        key.write_bytes(KEY)
        key.chmod(0o600)
    return ["split", str(source), "--message", ENVELOPE, "--export", str(tmp_path / name / "e"),
            "--onshore", str(tmp_path / name / "o"), "--scenario", "after-sales",
            "--key-file", str(key), "--quiet", *extra]


def test_message_of_too_many_entries_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    # 1.5M empty entries: 3 MB on the wire, some 180 MiB decoded; a piece of 600 MiB is 115.
    source = empty_entries(tmp_path / "hostile.pb", 1_500_000)
    for output in ("parquet", "protobuf"):
        result = CliRunner().invoke(vtx, split_args(
            source, tmp_path, output, "--memory-budget", "600MiB", "--output-format", output))
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"vtx: error: {source}: message 0 at byte 0: ")
        assert "1,500,000 entries" in lines[0] and "600 MiB" in lines[0]
        assert not (tmp_path / output / "e").exists()
        assert not (tmp_path / output / "o").exists()


def test_a_later_message_is_named_by_its_index_and_offset(tmp_path: Path) -> None:
    small = empty_entries(tmp_path / "small.pb", 10, messages=3).read_bytes()
    big = empty_entries(tmp_path / "big.pb", 1_500_000).read_bytes()
    source = tmp_path / "mixed.pb"
    source.write_bytes(small + big)
    result = CliRunner().invoke(vtx, split_args(source, tmp_path, "x", "--memory-budget",
                                                "600MiB"))
    assert result.exit_code == 1
    assert f"{source}: message 3 at byte {len(small)}: " in result.stderr
    assert not (tmp_path / "x" / "e").exists()


def test_the_budget_comes_from_the_environment(tmp_path: Path) -> None:
    source = empty_entries(tmp_path / "hostile.pb", 1_500_000)
    result = CliRunner().invoke(vtx, split_args(source, tmp_path, "x"),
                                env={"VTX_MEMORY_BUDGET": "600MiB"})
    assert result.exit_code == 1 and "message 0 at byte 0" in result.stderr
    fits = CliRunner().invoke(vtx, split_args(source, tmp_path, "y"),
                              env={"VTX_MEMORY_BUDGET": "2GiB"})
    assert fits.exit_code == 0, fits.output


def test_topic_dump_message_too_large_is_refused(tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "0001.pb").write_bytes(HEAD)
    body = HEAD + b"\x0a\x00" * 200_000  # the runtime's parse: some 200 MiB
    (dump / "0002.pb").write_bytes(body)
    result = CliRunner().invoke(vtx, split_args(dump, tmp_path, "x", "--framing", "single",
                                                "--memory-budget", "600MiB"))
    assert result.exit_code == 1, result.output
    assert f"vtx: error: {dump / '0002.pb'}: message 1 at byte 0: " in result.stderr
    assert "200,000 entries" in result.stderr
    assert not (tmp_path / "x" / "e").exists()


def test_hostile_message_never_allocates_what_it_would_need(tmp_path: Path) -> None:
    """16M empty entries (32 MB) would take some 2 GB decoded: refused under an address space
    of 2 GiB, before any of it is allocated, with the one line and nothing published."""
    source = empty_entries(tmp_path / "hostile.pb", 16_000_000)
    limit = 2 << 30

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "filter", *split_args(source, tmp_path, "x", "--memory-budget",
                                                     "600MiB")],
        preexec_fn=cap, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("vtx: warning")]
    assert len(lines) == 1 and "16,000,000 entries" in lines[0], done.stderr
    assert lines[0].startswith(f"vtx: error: {source}: message 0 at byte 0: ")
    assert not (tmp_path / "x" / "e").exists() and not (tmp_path / "x" / "o").exists()


@pytest.fixture(scope="module")
def many_entries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 messages of 1,000 entries: one batch by messages, more than one piece of a
    600 MiB budget by entries."""
    return int_entries(tmp_path_factory.mktemp("budget") / "many.pb", 1200, 1000)


def test_batches_cut_by_entries_give_the_same_rows(many_entries: Path) -> None:
    schema = load_schema(None, ENVELOPE)
    small = MemoryBudget.of("600MiB")
    whole = list(protobuf_batches.iter_batches(schema, many_entries, "delimited",
                                               batch_size=50_000, budget=MemoryBudget.of("4GiB")))
    cut = list(protobuf_batches.iter_batches(schema, many_entries, "delimited",
                                             batch_size=50_000, budget=small))
    assert len(whole) == 1 and len(cut) > 1
    for batch in cut:
        need = Pieces.need(batch.messages, batch.rows.height, int(batch.raw().lengths.sum()))
        assert need <= small.piece_limit
    assert pl.concat([b.rows for b in cut]).equals(whole[0].rows)
    assert sum(b.messages for b in cut) == 1200


@pytest.mark.parametrize("output", ["parquet", "protobuf"])
def test_split_under_a_small_budget_is_the_same_split(
    many_entries: Path, tmp_path: Path, output: str
) -> None:
    for name, budget in (("big", "4GiB"), ("small", "600MiB")):
        result = CliRunner().invoke(vtx, split_args(
            many_entries, tmp_path, name, "--memory-budget", budget, "--output-format", output))
        assert result.exit_code == 0, result.output
    for side in ("e", "o"):
        big = sorted((tmp_path / "big" / side).glob("part-*"))
        small = sorted((tmp_path / "small" / side).glob("part-*"))
        assert len(big) == 1 and len(small) > 1
        if output == "protobuf":  # a message out per message in: the same bytes, in order
            assert b"".join(p.read_bytes() for p in small) == big[0].read_bytes()
        else:
            assert pl.concat([pl.read_parquet(p) for p in small]).equals(
                pl.read_parquet(big[0]))


def test_a_message_too_large_is_refused_by_the_python_api(tmp_path: Path) -> None:
    schema = load_schema(None, ENVELOPE)
    source = empty_entries(tmp_path / "hostile.pb", 1_500_000)
    with pytest.raises(MemoryBudgetExceeded, match="message 0 at byte 0"):
        list(protobuf_batches.iter_batches(schema, source, "delimited",
                                           budget=MemoryBudget.of("600MiB")))
    with pytest.raises(MemoryBudgetExceeded, match="message 0 at byte 0"):  # the runtime's
        list(protobuf_batches.iter_batches(schema, source, "delimited", decoder="plain",
                                           budget=MemoryBudget.of("600MiB")))


def test_messages_the_runtime_reads_are_parsed_a_piece_at_a_time(tmp_path: Path) -> None:
    """Envelopes with a field the descriptor does not know go to the protobuf runtime: under a
    small budget in chunks (`kv_batches._plain_chunks`), the same rows as in one."""
    # Field 99 (a varint) in each envelope: unknown to the schema.
    source = int_entries(tmp_path / "unknown.pb", 400, 300, tail=b"\x98\x06\x01")
    small = MemoryBudget.of("600MiB")
    assert Pieces.plain_need(400, 400 * 300, source.stat().st_size) > small.piece_limit
    schema = load_schema(None, ENVELOPE)
    rows = [pl.concat([b.rows for b in protobuf_batches.iter_batches(
        schema, source, "delimited", batch_size=50_000, budget=budget)])
        for budget in (MemoryBudget.of("4GiB"), small)]
    assert rows[0].height == 400 * 301  # an entry row each, and the envelope's own (-1)
    assert rows[1].equals(rows[0])


def test_verify_reads_protobuf_parts_within_the_budget(tmp_path: Path) -> None:
    """A side's part of 1.2M entries (split under 4 GiB, one batch) is more than a piece of
    600 MiB: `vtx verify --memory-budget 600MiB` refuses it in one line, exit 1, before
    decoding it; the parts of a split under 600 MiB verify under it."""
    source = int_entries(tmp_path / "more.pb", 1200, 2000)
    for name, budget in (("big", "4GiB"), ("small", "600MiB")):
        result = CliRunner().invoke(vtx, split_args(
            source, tmp_path, name, "--memory-budget", budget, "--output-format", "protobuf"))
        assert result.exit_code == 0, result.output

    def verify(name: str, budget: str):
        return CliRunner().invoke(vtx, ["verify", str(tmp_path / name / "e"), "--onshore",
                                        str(tmp_path / name / "o"), "--memory-budget", budget])

    assert verify("big", "4GiB").exit_code == 0
    refused = verify("big", "600MiB")
    assert refused.exit_code == 1, refused.output
    lines = refused.stderr.strip().splitlines()
    part = tmp_path / "big" / "e" / "part-00000-00000.pb"
    assert len(lines) == 1 and lines[0].startswith(f"vtx: error: {part}: 1,200 messages: ")
    assert "1,200,000 entries" in lines[0] and "600 MiB" in lines[0]
    fits = verify("small", "600MiB")
    assert fits.exit_code == 0, fits.output
