"""The bare protobuf parse loops that ``vtx split`` on a protobuf stream is timed against.

In: ``python -m benchmarks.protobuf_parse METHOD INPUT REPORT`` where METHOD is

* ``bare-parse`` -- read INPUT in 16 MiB blocks, frame it (varint length prefixes) and
  ``Envelope.FromString`` every message, doing nothing else with it: the cheapest pass that
  decodes every byte, and so the floor of any protobuf split;
* ``fromstring`` -- frame the whole file into a list of ``bytes`` first (untimed by the loop
  clock), then time only the ``FromString`` loop over that list: the bare FromString loop;

INPUT a varint-length-delimited stream of ``vtx.telemetry.v1.Envelope`` messages (as
:mod:`benchmarks.generate_protobuf` writes it) and REPORT a path. The message class is built
from vtx's shipped descriptor set (``proto/vtx/telemetry/v1/telemetry.binpb``) with
``google.protobuf`` alone: the child imports neither vtx nor Polars, so its start-up and
memory are the parse's own.
Out: REPORT, a JSON object ``{"method", "messages", "bytes", "load_s", "frame_s", "loop_s",
"protobuf", "backend"}``: the messages parsed, the seconds spent building the message class,
framing into a list (``fromstring`` only; 0 for ``bare-parse``) and in the timed loop
(``bare-parse``: reading, framing and parsing; ``fromstring``: parsing alone).
May fail: ``DecodeError`` on bytes that do not parse, ``ValueError`` on a truncated stream.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import __version__, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import api_implementation
from google.protobuf.message import Message

#: vtx's shipped descriptor set, relative to the repository root.
SHIPPED_DESCRIPTORS = (
    Path(__file__).resolve().parent.parent / "proto/vtx/telemetry/v1/telemetry.binpb"
)
ENVELOPE = "vtx.telemetry.v1.Envelope"
BLOCK_BYTES = 16 << 20


def message_class(
    name: str = ENVELOPE, descriptor_set: Path = SHIPPED_DESCRIPTORS
) -> type[Message]:
    """Build the class of message type ``name`` from a ``FileDescriptorSet`` file."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode the varint at ``buf[pos]``: (value, position after it); (-1, pos) if cut off."""
    result, shift, end = 0, 0, len(buf)
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint longer than 10 bytes")
    return -1, pos


def iter_messages(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Yield the messages of a varint-length-delimited stream, reading it a block at a time.

    Memory stays at about two blocks whatever the file size. A length prefix or message cut
    by the end of a block is carried over to the next.
    """
    with path.open("rb") as fh:
        rest = b""
        while block := fh.read(block_bytes):
            buf = rest + block if rest else block
            pos, end = 0, len(buf)
            while pos < end:
                byte = buf[pos]
                if byte < 0x80:  # a one-byte length prefix
                    length, start = byte, pos + 1
                elif pos + 1 < end and buf[pos + 1] < 0x80:  # two bytes: 128 B to 16 kB
                    length, start = (byte & 0x7F) | (buf[pos + 1] << 7), pos + 2
                else:
                    length, start = _varint(buf, pos)
                    if length < 0:
                        break
                stop = start + length
                if stop > end:
                    break
                yield buf[start:stop]
                pos = stop
            rest = buf[pos:]
        if rest:
            raise ValueError(f"{path}: the stream ends inside a message ({len(rest)} bytes left)")


def bare_parse(path: Path, parse: Callable[[bytes], Any]) -> tuple[int, float, float]:
    """Read, frame and parse every message; return (messages, frame_s = 0, loop_s).

    The framing of :func:`iter_messages`, inlined: resuming a generator once per message
    costs about a fifth of a parse, and this loop is the floor.
    """
    count = 0
    started = time.perf_counter()
    with path.open("rb") as fh:
        rest = b""
        while block := fh.read(BLOCK_BYTES):
            buf = rest + block if rest else block
            pos, end = 0, len(buf)
            while pos < end:
                byte = buf[pos]
                if byte < 0x80:
                    length, start = byte, pos + 1
                elif pos + 1 < end and buf[pos + 1] < 0x80:
                    length, start = (byte & 0x7F) | (buf[pos + 1] << 7), pos + 2
                else:
                    length, start = _varint(buf, pos)
                    if length < 0:
                        break
                stop = start + length
                if stop > end:
                    break
                parse(buf[start:stop])
                count += 1
                pos = stop
            rest = buf[pos:]
    if rest:
        raise ValueError(f"{path}: the stream ends inside a message ({len(rest)} bytes left)")
    return count, 0.0, time.perf_counter() - started


def fromstring_loop(path: Path, parse: Callable[[bytes], Any]) -> tuple[int, float, float]:
    """Frame every message into a list, then time parsing them; return (n, frame_s, loop_s)."""
    started = time.perf_counter()
    frames = list(iter_messages(path))
    framed = time.perf_counter()
    for data in frames:
        parse(data)
    return len(frames), framed - started, time.perf_counter() - framed


METHODS: dict[str, Callable[[Path, Callable[[bytes], Any]], tuple[int, float, float]]] = {
    "bare-parse": bare_parse,
    "fromstring": fromstring_loop,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry point: ``METHOD INPUT REPORT``; writes the report, prints nothing."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] not in METHODS:
        print(
            f"usage: python -m benchmarks.protobuf_parse {{{','.join(METHODS)}}} INPUT REPORT",
            file=sys.stderr,
        )
        return 2
    method, src, report = args[0], Path(args[1]), Path(args[2])
    started = time.perf_counter()
    parse = message_class().FromString
    load_s = time.perf_counter() - started
    messages, frame_s, loop_s = METHODS[method](src, parse)
    record = {
        "method": method,
        "messages": messages,
        "bytes": src.stat().st_size,
        "load_s": load_s,
        "frame_s": frame_s,
        "loop_s": loop_s,
        "protobuf": __version__,
        "backend": api_implementation.Type(),
    }
    report.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
