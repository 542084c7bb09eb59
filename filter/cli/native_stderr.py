"""Keep native libraries' panic reports off stderr, so an error stays one line.

In: the process's stderr (file descriptor 2) while a command runs.
Out: the same bytes, in order, on the real stderr, except the report a Rust library prints
when it panics ("thread '…' panicked at …" and the backtrace that follows): vtx turns such a
panic into its own one-line error, and the report would otherwise stand before it. Lines are
dropped from a panic report up to the next ``vtx: `` line.
May fail: nothing; where descriptors cannot be redirected, stderr is left as it is.

Only when stderr is not a terminal (scripts, CI, pipes) and not under ``--debug`` /
``VTX_DEBUG=1``: on a terminal vtx draws a progress bar and a person can read a backtrace.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_PANIC = re.compile(rb"^thread '[^']*'( \(\d+\))? panicked at ")
_OURS = b"vtx: "
_SENTINEL = b"\x00vtx-stderr-drained\x00\n"


@contextmanager
def native_panics_filtered(*, enabled: bool = True) -> Iterator[None]:
    """Filter panic reports out of fd 2 for the duration of the block."""
    if not enabled or os.environ.get("VTX_DEBUG") == "1" or _is_terminal():
        yield
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:
        yield
        return
    drained = threading.Event()
    forwarder = threading.Thread(
        target=_forward, args=(read_end, real, drained), name="vtx-stderr", daemon=True
    )
    forwarder.start()
    try:
        yield
    finally:
        with suppress(OSError, ValueError):
            sys.stderr.flush()
            # Child processes (Ray's) may hold the pipe open: wait for our own bytes only.
            os.write(2, _SENTINEL)
            drained.wait(timeout=5)
        os.dup2(real, 2)
        os.close(real)


def _is_terminal() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return True


def _forward(read_end: int, real: int, drained: threading.Event) -> None:
    dropping = False
    blanks = 0  # empty lines held back: a panic report starts with one
    pending = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = []
        for line in lines:
            if line + b"\n" == _SENTINEL:
                # Everything before the sentinel is out before the caller takes fd 2 back and
                # closes `real`; after it, nothing more may be written there.
                _write(real, b"".join(out))
                drained.set()
                _discard(read_end)
                return
            if not line and not dropping:
                blanks += 1
                continue
            if _PANIC.match(line):
                dropping, blanks = True, 0
            elif line.startswith(_OURS):
                dropping = False
            if not dropping:
                out.append(b"\n" * blanks + line + b"\n")
                blanks = 0
        _write(real, b"".join(out))
    if (pending or blanks) and not dropping:
        _write(real, b"\n" * blanks + pending)
    drained.set()
    os.close(read_end)


def _discard(read_end: int) -> None:
    """Read and drop what child processes still holding the pipe write, until they close it."""
    with suppress(OSError):
        while os.read(read_end, 65536):
            pass
    os.close(read_end)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    with suppress(OSError):
        while view:
            view = view[os.write(fd, view):]
