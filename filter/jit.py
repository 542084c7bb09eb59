"""How vtx compiles its kernels: numba's `njit`, cached on disk, without the GIL, and loaded
from that cache without numba's registry refresh.

In: the kernel modules (`filter.wire`, `filter.readers.kv_decoder`, `filter.decoded_routes`,
`filter.parquet_encoder`, `filter.envelope_splice`) decorate their compiled functions with
`kernel` instead of `numba.njit`.
Out: numba dispatchers with ``cache=True`` (compiled once per machine, then loaded from the
``__pycache__`` files, or numba's user cache where the package is read-only) and ``nogil=True``
(the split's threads run them side by side).
May fail: nothing of its own; numba's own errors pass through.

Why the cache loads are changed: numba refreshes its target context before it loads a cached
function, which imports and installs every typing and lowering registry it has (arrays,
random numbers, typed containers, ...): about 0.3 s, once per process, before the first kernel
runs. Loading object code needs none of it, only the runtime for arrays (NRT); compiling does,
and numba's compiler refreshes the context itself (`numba.core.compiler.CompilerBase`), so a
cache miss compiles as before. Where numba's internals are not as expected, or a load without
the refresh fails, numba's own load runs instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit
from numba.core import caching
from numba.core.runtime import rtsys

_numba_load_overload = caching.Cache.load_overload


def _load_overload(self: Any, sig: Any, target_context: Any) -> Any:
    """`Cache.load_overload` without the registry refresh: the runtime only."""
    try:
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)
    except Exception:  # anything unforeseen: numba's own load (with its refresh) decides
        return _numba_load_overload(self, sig, target_context)


def _loads_without_refresh() -> bool:
    """Install `_load_overload` if numba's cache has the parts it calls; whether it did."""
    parts = (hasattr(caching.Cache, name)
             for name in ("_load_overload", "_guard_against_spurious_io_errors"))
    if not all(parts) or not hasattr(rtsys, "initialize"):
        return False
    caching.Cache.load_overload = _load_overload
    return True


LOADS_WITHOUT_REFRESH = _loads_without_refresh()


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """`numba.njit` as vtx's kernels use it: cached, without the GIL, plus `options`
    (``inline="always"`` for helpers)."""
    return njit(cache=True, nogil=True, **options)
