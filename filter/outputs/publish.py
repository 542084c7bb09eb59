"""Atomic publishing of an output directory.

In: a target directory path and whether an existing, non-empty target may be replaced.
Out: a `StagedOutput`: a hidden sibling directory (same file system, so the final rename is
atomic) that the writers fill; `publish()` fsyncs it and renames it into place, `discard()`
removes it. Readers therefore see a complete directory with its manifest, or none.
May fail: `OutputError` for a non-empty target without overwrite, a target that is a file, or a
file-system error (disk full, permissions) while staging or publishing.

A caller may also let a non-empty target be replaced on a condition (`replace_if`), checked
again just before the rename: how a re-run completes a half-published pair
(`filter.outputs.half_pair`).

A run that is killed leaves only its staging directory behind; the next run on the same target
removes staging directories whose owning process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from filter.errors import OutputError, output_failed

_STAGING = ".vtx-staging-"
_RETIRED = ".vtx-retired-"
_HOST = socket.gethostname().replace("-", "_") or "host"


@dataclass(frozen=True)
class StagedOutput:
    """A target directory and the staging directory that will replace it."""

    target: Path
    staging: Path
    replace: bool
    # Without `replace`: a non-empty target may still be replaced while this holds.
    replace_if: Callable[[Path], bool] | None = None

    def publish(self) -> None:
        """Make the staged directory the target, atomically per directory."""
        try:
            _fsync_tree(self.staging)
            retired: Path | None = None
            if self.target.exists() and any(self.target.iterdir()):
                if not self.replace:
                    if self.replace_if is None:  # filled by someone else since we checked
                        raise OutputError(f"{self.target}: target appeared and is not empty",
                                          hint="use --overwrite")
                    if not self.replace_if(self.target):
                        raise OutputError(f"{self.target}: target changed while this run was "
                                          "writing; nothing published", hint="use --overwrite")
                retired = self.target.with_name(
                    f".{self.target.name}{_RETIRED}{self.staging.name.split(_STAGING)[-1]}"
                )
                os.rename(self.target, retired)
            os.rename(self.staging, self.target)
            _fsync_dir(self.target.parent)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                # Another run published between our check and our rename; rename(2) refuses
                # to replace a non-empty directory, so theirs stands whole.
                raise OutputError(
                    f"{self.target}: target appeared and is not empty", hint="use --overwrite"
                ) from None
            raise output_failed(exc, self.target, "publish") from None
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)

    def discard(self) -> None:
        """Remove the staging directory and everything in it."""
        shutil.rmtree(self.staging, ignore_errors=True)


def stage(target: str | Path, run_id: str, *, overwrite: bool) -> StagedOutput:
    """Check `target` may be written, clear stale staging beside it, and create a staging dir."""
    return stage_all([target], run_id, overwrite=overwrite)[0]


def stage_all(
    targets: list[str | Path], run_id: str, *, overwrite: bool,
    replace_if: Mapping[Path, Callable[[Path], bool]] | None = None,
) -> list[StagedOutput]:
    """`stage` for several targets, each step for all of them before the next: every target
    checked, then the stale staging beside each cleared, then the staging dirs created. So a
    refused target leaves nothing behind, and once any of this run's staging dirs exists, no
    dead run's is left beside any of the targets (a run killed between two targets would
    otherwise leave the second one's for the next run to find).

    `replace_if`, by absolute target: a condition under which that target may be replaced
    without `overwrite`; the caller has checked it holds, the publisher checks it again."""
    conditions = dict(replace_if or {})
    checked = [_writable(Path(t).absolute(), overwrite or Path(t).absolute() in conditions)
               for t in targets]
    for target in checked:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(target.parent, target.name)
        except OSError as exc:
            raise _cannot_create(target, exc) from None
    # The owner is in the name, so no marker file ends up in the published output.
    staged = [StagedOutput(
        target, target.parent / f".{target.name}{_STAGING}{_HOST}-{os.getpid()}-{run_id}",
        replace=overwrite, replace_if=None if overwrite else conditions.get(target))
        for target in checked]
    for made, output in enumerate(staged):
        try:
            output.staging.mkdir()
        except OSError as exc:
            for earlier in staged[:made]:
                earlier.discard()
            raise _cannot_create(output.target, exc) from None
    return staged


def _writable(target: Path, overwrite: bool) -> Path:
    """`target`, if it may be written: absent, an empty directory, or replaced (`overwrite`).

    A target that is a symbolic link is refused: publishing renames the staged directory onto
    the target's name, which cannot replace a link, so the second side of a pair would fail
    after the first was published (and vtx writes through no link it did not make).
    """
    if target.is_symlink():
        raise OutputError(
            f"{target}: is a symbolic link", hint="give the directory it points to instead"
        )
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise OutputError(f"{target}: target is not empty", hint="use --overwrite to replace it")
    return target


def _cannot_create(target: Path, exc: OSError) -> OutputError:
    return output_failed(exc, target, "create output")


def _remove_stale(parent: Path, name: str) -> None:
    """Remove staging and retired directories of `name` left by runs that no longer exist."""
    for entry in parent.glob(f".{glob.escape(name)}.vtx-*"):
        if entry.is_symlink() or not entry.is_dir():  # not ours: a link is never followed
            continue
        marker = _STAGING if _STAGING in entry.name else _RETIRED
        if marker in entry.name and _owner_alive(entry.name.split(marker, 1)[1]):
            # A concurrent run is still writing there, or is swapping its output in: a retired
            # directory is the old output until that run's rename succeeds, so it must stay.
            continue
        shutil.rmtree(entry, ignore_errors=True)


def _owner_alive(owner: str) -> bool:
    """Whether the run named by a staging suffix (``host-pid-runid``) may still be running."""
    try:
        host, pid, _run = owner.rsplit("-", 2)
        pid_number = int(pid)
    except ValueError:
        return True  # not a name we wrote: leave it alone
    if host != _HOST:
        return True  # another machine's run on a shared file system: never touch it
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
