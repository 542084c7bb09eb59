"""Files vtx reads and writes itself: regular files only, links followed only where named.

In: paths of inputs, key files, catalogues and descriptor sets; input arguments as a user
types them (paths or glob patterns); the files vtx writes outside its staging directories.
Out:
- `open_regular` / `read_regular`: a file opened (or read whole) only if it is a regular file,
  checked on the opened descriptor, so a FIFO or a device (``/dev/zero``) is refused at once
  instead of blocking or reading forever; with ``follow_links=False`` a symbolic link is
  refused too.
- `argument_paths`: what one input argument names. An argument that exists as a path is that
  path, glob characters and all (``b[1].parquet`` is the file of that name); one that does not
  is expanded as a glob pattern by vtx, once, and its matches are then used as literal paths.
  A match reached through a symbolic link in the part the pattern matched is refused.
- `entry_kind`: what a directory walk found (file, directory, link, special file), for the
  readers' walks, which refuse links and special files where they would read them.
- `write_new` and `replace_file`: a file written only where vtx created it (``O_CREAT |
  O_EXCL | O_NOFOLLOW``, a random temporary name in the target's directory, renamed into
  place), so a link planted at the name is never written through.
May fail: `OSError` with a `strerror` saying what the file is (callers turn it into their own
error naming the file), `InputError` from `argument_paths`.

The rule for links: a path the user names (an argument, ``--key-file``, ``--catalogue``) may
be a link, and is followed (mounted secrets are links); what vtx finds by itself inside an
input directory or by a pattern may not, so a link planted there (say, to the key file) is
never read.
"""

from __future__ import annotations

import errno
import glob
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Literal

from filter.errors import InputError, read_failed

_GLOB_CHARS = frozenset("*?[")
#: What a directory walk can find; "special" is anything but a file, directory or link.
EntryKind = Literal["file", "directory", "link", "special"]


def describe_mode(mode: int) -> str:
    """A few words for what a non-regular file is (for messages)."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _not_regular(path: str | Path, mode: int) -> OSError:
    return OSError(errno.EINVAL, f"not a regular file ({describe_mode(mode)})", str(path))


def open_regular(path: str | Path, *, follow_links: bool = True) -> BinaryIO:
    """`path` opened for binary reading, if it is a regular file (else `OSError`).

    The path is checked before it is opened (so no device is even opened) and the descriptor
    after (so a file swapped in between is caught); it is opened non-blocking, so a FIFO
    cannot stall the open. ``follow_links=False`` refuses a symbolic link as the last
    component (``O_NOFOLLOW``).
    """
    mode = (os.stat if follow_links else os.lstat)(path).st_mode
    if stat.S_ISLNK(mode):
        raise OSError(errno.ELOOP, "is a symbolic link, which vtx does not follow here", str(path))
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links:
            raise OSError(
                errno.ELOOP, "is a symbolic link, which vtx does not follow here", str(path)
            ) from None
        raise
    try:
        opened = os.fstat(fd).st_mode
        if not stat.S_ISREG(opened):
            raise _not_regular(path, opened)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0)  # type: ignore[return-value]
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, *, follow_links: bool = True) -> bytes:
    """The content of `path`, if it is a regular file (see `open_regular`)."""
    with open_regular(path, follow_links=follow_links) as fh:
        return fh.read()


def entry_kind(path: str | Path) -> EntryKind:
    """What `path` itself is, its last component's link not followed."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "directory"
    return "file" if stat.S_ISREG(mode) else "special"


def found_link(path: Path, where: str) -> InputError:
    """The error for a symbolic link vtx found itself (in a directory walk or a pattern)."""
    return InputError(
        f"{path}: is a symbolic link {where}; vtx does not follow links it finds "
        "itself (give the file it points to as an input)"
    )


def found_special(path: Path, where: str) -> InputError:
    """The error for a FIFO, device or socket where vtx would read a file."""
    try:
        what = describe_mode(os.lstat(path).st_mode)
    except OSError:
        what = "not a regular file"
    return InputError(
        f"{path}: is {what} {where}; vtx reads regular files only"
        if what.startswith("a ")
        else f"{path}: {what} {where}"
    )


def check_named(path: Path) -> Literal["file", "directory"]:
    """What an input the user named is (links followed): a file or a directory; anything else
    (a FIFO, a device, a socket) is refused with an `InputError`."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise read_failed(exc, path) from None
    if stat.S_ISDIR(mode):
        return "directory"
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is {describe_mode(mode)}; vtx reads regular files only")
    return "file"


def argument_paths(item: str | Path) -> tuple[list[Path], bool]:
    """The paths one input argument names, and whether they came from a pattern.

    An existing path is itself, whatever characters it holds. Otherwise an argument with glob
    characters (``*``, ``?``, ``[``) is expanded once by vtx (``**`` spans directories; hidden
    names only where the pattern spells the dot), its matches sorted; each match must be
    reached without a symbolic link in the components the pattern matched (the literal
    directories before the first wildcard may be links: the user named them). A pattern
    matching nothing, and a path that does not exist, are `InputError`s.
    """
    text = str(item)
    path = Path(text)
    if os.path.lexists(path):
        return [path], False
    if not _GLOB_CHARS & set(text):
        raise InputError(f"{path}: no such file or directory")
    matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
    if not matches:
        raise InputError(f"{text}: pattern matches no files")
    fixed = _literal_depth(text)
    for match in matches:
        parts = match.parts
        for depth in range(fixed + 1, len(parts) + 1):
            step = Path(*parts[:depth])
            if os.path.islink(step):
                raise found_link(step, f"matched by pattern {text!r}")
    return matches, True


def _literal_depth(pattern: str) -> int:
    """How many leading components of `pattern` hold no glob character (the root counts)."""
    parts = Path(pattern).parts
    for depth, part in enumerate(parts):
        if _GLOB_CHARS & set(part):
            return depth
    return len(parts)


def write_new(path: Path, write: Callable[[BinaryIO], object], *, mode: int = 0o666) -> None:
    """Create `path`, which must not exist (not even as a link), and fill it with `write`.

    ``O_CREAT | O_EXCL | O_NOFOLLOW``: the file is vtx's own, never a planted link's target.
    `mode` is narrowed by the umask. On failure the file is removed.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def replace_file(target: Path, write: Callable[[BinaryIO], object], *, mode: int = 0o666) -> None:
    """Write `target` whole or not at all: into a new file of a random hidden name beside it
    (`write_new`), then renamed over it. A link at `target` is replaced, not written through;
    a link at any temporary name cannot be planted in advance (the name is random and
    created exclusively)."""
    partial = target.with_name(f".{target.name}.vtx-partial-{secrets.token_hex(8)}")
    write_new(partial, write, mode=mode)
    try:
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
