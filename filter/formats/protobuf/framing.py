"""Protobuf messages framed: varint-length-delimited streams, single-message files, topic dumps.

In: a protobuf file (a stream of varint-length-delimited messages, or one message per file), or
a directory of single-message files (a topic dump).
Out: `Frame`s (a message's index, byte offset and bytes), the file memory-mapped; with an
`OnBadRecord` callback, what cannot be framed is handed to it as a `BadRecord` instead.
May fail: `InputError` naming the file, the byte offset and the message index: a truncated
varint, a length past the end of the file, a message larger than `MAX_MESSAGE_BYTES` (checked
before anything is allocated); a link, FIFO, device or socket in a topic dump.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from filter.errors import InputError, read_failed
from filter.files import entry_kind, found_link, found_special, open_regular, read_regular

Framing = Literal["delimited", "single"]

#: Largest message accepted; a length prefix above it is refused before any allocation.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Frame:
    """One framed message: its index in the file, byte offset, and bytes."""

    index: int
    offset: int
    data: bytes


def iter_frames(
    path: Path, framing: Framing, *, start: int = 0, first_index: int = 0,
    follow_links: bool = True,
) -> Iterator[Frame]:
    """The messages of one file: varint-delimited, or the whole file as one message.

    The file is memory-mapped, so a large stream costs page cache, not process memory.
    A delimited stream can be framed from byte `start`, where message `first_index` begins.
    Only a regular file is read (`filter.files.open_regular`; ``follow_links=False``: not
    through a symbolic link either).
    """
    try:
        with open_regular(path, follow_links=follow_links) as fh:
            size = os.fstat(fh.fileno()).st_size
            data: bytes | mmap.mmap = (
                mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            )
    except OSError as exc:
        raise read_failed(exc, path) from None
    try:
        yield from _frames(path, data, framing, start, first_index)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _frames(
    path: Path, data: bytes | mmap.mmap, framing: Framing, start: int, first_index: int
) -> Iterator[Frame]:
    if framing == "single":
        _check_size(path, 0, 0, len(data))
        yield Frame(0, 0, bytes(data))
        return
    offset, index, end = start, first_index, len(data)
    while offset < end:
        length, start = _read_varint(path, data, offset, index)
        _check_size(path, offset, index, length)
        if start + length > end:
            raise _FramingError(
                f"{path}: message {index} at byte {offset}: length {length} runs past the end "
                f"of the file ({end - start} bytes left)", index, offset
            )
        yield Frame(index, offset, data[start : start + length])
        offset, index = start + length, index + 1


def iter_directory(directory: Path) -> Iterator[tuple[Path, Frame]]:
    """A topic dump: every regular file of `directory` (sorted) as one message.

    A message's index is its file's position in that order, so indexes are unique in the dump.
    """
    yield from dump_frames(dump_files(directory), 0, None)


def dump_files(directory: Path) -> list[Path]:
    """The message files of a topic dump, in the order they are read.

    Hidden names and subdirectories are left out; a symbolic link (which could point at the
    key file or anything else outside the dump) and a FIFO, device or socket are refused with
    an `InputError`, before any file of the dump is read.
    """
    try:
        entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise read_failed(exc, directory, "directory") from None
    files = []
    for path in entries:
        kind = entry_kind(path)
        if kind == "link":
            raise found_link(path, f"in topic dump {directory}")
        if kind == "special":
            raise found_special(path, f"in topic dump {directory}")
        if kind == "file":
            files.append(path)
    return files


def _read_varint(
    path: Path, data: bytes | mmap.mmap, offset: int, index: int
) -> tuple[int, int]:
    result, shift, pos = 0, 0, offset
    while True:
        if pos >= len(data):
            raise _FramingError(
                f"{path}: message {index} at byte {offset}: truncated length prefix", index, offset
            )
        byte = data[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise _FramingError(f"{path}: message {index} at byte {offset}: bad length prefix "
                                "(varint longer than 10 bytes)", index, offset)


def _check_size(path: Path, offset: int, index: int, length: int) -> None:
    if length > MAX_MESSAGE_BYTES:
        raise _FramingError(
            f"{path}: message {index} at byte {offset}: {length} bytes is larger than the "
            f"{MAX_MESSAGE_BYTES} vtx accepts", index, offset
        )


@dataclass(frozen=True)
class BadRecord:
    """A message that could not be read: where it was, why, and its raw bytes.

    After a framing error (a broken length prefix) nothing later in the file can be framed, so
    `data` is the rest of the file. `data` is only valid during the callback that receives it.
    """

    path: Path
    index: int
    offset: int
    reason: str
    data: memoryview | bytes


OnBadRecord = Callable[[BadRecord], None]


class _FramingError(InputError):
    def __init__(self, message: str, index: int, offset: int) -> None:
        super().__init__(message)
        self.index, self.offset = index, offset


def dump_frames(
    files: list[Path], first_index: int, on_bad: OnBadRecord | None
) -> Iterator[tuple[Path, Frame]]:
    """One message per file; its index is its position in the dump."""
    for ordinal, path in enumerate(files, start=first_index):
        try:
            for frame in iter_frames(path, "single", follow_links=False):
                yield path, Frame(ordinal, frame.offset, frame.data)
        except _FramingError as exc:  # a file too large to be one message
            if on_bad is None:
                raise
            on_bad(BadRecord(path, ordinal, 0, exc.message,
                             read_regular(path, follow_links=False)))


def file_frames(
    source: Path,
    framing: Framing,
    on_bad: OnBadRecord | None,
    *,
    start: int = 0,
    first_index: int = 0,
) -> Iterator[tuple[Path, Frame]]:
    """The frames of one stream file (from byte `start`, message `first_index`); a framing
    error raises, or with `on_bad` hands the rest of the file over as one bad record."""
    try:
        for frame in iter_frames(source, framing, start=start, first_index=first_index):
            yield source, frame
    except _FramingError as exc:
        if on_bad is None:
            raise
        with open_regular(source) as fh:
            fh.seek(exc.offset)
            rest = fh.read()  # what cannot be framed: kept whole for the onshore quarantine
        on_bad(BadRecord(source, exc.index, exc.offset, exc.message, rest))
