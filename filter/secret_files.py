"""Key files others can read: a warning naming the file and its mode.

In: the path of a secret a run reads (the token key, the manifest signing key).
Out: `warn_if_exposed`: an `ExposedKeyWarning` (Python's `warnings`, so a pipeline sees it in
its own logs; the CLI prints it as one ``vtx: warning:`` line) when the file's mode lets its
group or others read or write it. The recommended mode is 0600 (`vtx keygen` writes its
signing key so).
May fail: nothing (a file that cannot be examined is left to the reader's own error).

A warning, not a refusal: a key in a secrets mount (Kubernetes, Docker) is often 0644 by the
mount's default while only the service's user can reach the mount, and a refusal there would
only teach operators to override it.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

#: Mode bits of a secret file that let anyone but its owner read or change it.
_EXPOSED = stat.S_IRWXG | stat.S_IRWXO
RECOMMENDED_MODE = 0o600


class ExposedKeyWarning(UserWarning):
    """A key file whose group or others may read or write it."""


def warn_if_exposed(path: str | Path, what: str) -> None:
    """Warn (`ExposedKeyWarning`) when the `what` file `path` is open to group or others."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & _EXPOSED:
        who = " and ".join(name for name, bits in (("group", stat.S_IRWXG),
                                                   ("others", stat.S_IRWXO)) if mode & bits)
        warnings.warn(ExposedKeyWarning(
            f"{path}: {what} file is open to {who} (mode {mode:04o}); "
            f"keep it mode {RECOMMENDED_MODE:04o} (chmod {RECOMMENDED_MODE:o} FILE)"),
            stacklevel=3)
