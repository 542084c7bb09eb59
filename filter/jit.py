"""How vtx compiles its kernels: numba's `njit`, cached on disk, without the GIL, and loaded
from that cache without numba's registry refresh.

In: the kernel modules (`formats.protobuf.wire`, `formats.protobuf.kv_decoder`,
`formats.protobuf.envelope_splice`, `formats.parquet.hybrid_encoding`,
`formats.parquet.plain_values`, `apply.decoded_routes`) decorate their compiled functions
with `kernel` instead of `numba.njit`.
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
the refresh fails, numba's own load runs instead. Only vtx's kernels load this way (their own
caches are changed, not numba's class): other numba code in a pipeline's process is left as
numba made it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import Any

from numba import njit
from numba.core import caching
from numba.core.runtime import rtsys


def _load_overload(self: caching.Cache, sig: Any, target_context: Any) -> Any:
    """`Cache.load_overload` without the registry refresh: the runtime only."""
    try:
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)
    except Exception:  # anything unforeseen: numba's own load (with its refresh) decides
        return caching.Cache.load_overload(self, sig, target_context)


#: Whether numba's cache has the parts `_load_overload` calls (else kernels load as numba
#: loads them).
LOADS_WITHOUT_REFRESH = all(
    hasattr(caching.Cache, name) for name in ("_load_overload", "_guard_against_spurious_io_errors")
) and hasattr(rtsys, "initialize")


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """`numba.njit` as vtx's kernels use it: cached, without the GIL, plus `options`
    (``inline="always"`` for helpers); loaded from the cache by `_load_overload`."""
    compile_cached = njit(cache=True, nogil=True, **options)

    def compiled(function: Callable[..., Any]) -> Any:
        dispatcher = compile_cached(function)
        cache = getattr(dispatcher, "_cache", None)
        if LOADS_WITHOUT_REFRESH and isinstance(cache, caching.Cache):
            cache.load_overload = MethodType(_load_overload, cache)  # type: ignore[method-assign]
        return dispatcher

    return compiled
