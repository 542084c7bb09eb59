"""`filter.jit`: kernels load from numba's cache without the registry refresh, and still
compile, and give the same results, when they are not in the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from filter import jit

KERNELS = '''
import numpy as np
from filter.jit import kernel

@kernel(inline="always")
def _square(x):
    return x * x

@kernel()
def squares(values):  # allocates its result: needs numba's runtime (NRT)
    out = np.empty(len(values), np.float64)
    for i in range(len(values)):
        out[i] = _square(values[i])
    return out, np.int64(len(values))
'''

RUN = '''
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from numba.core import caching
numba_load = caching.Cache.load_overload
import kernels
from numba import njit
from numba.core.registry import cpu_target

out, n = kernels.squares(np.arange(5, dtype=np.float64))
refreshed = bool(cpu_target.target_context._registries)
own_load = "load_overload" in vars(kernels.squares._cache)
numba_load_kept = caching.Cache.load_overload is numba_load
uncached = njit(lambda a: a.sum() + 1)  # not cached: compiled here, after the load
print(json.dumps({
    "squares": out.tolist(), "n": int(n), "hits": sum(kernels.squares.stats.cache_hits.values()),
    "refreshed_by_load": refreshed, "compiled": float(uncached(out)),
    "own_load": own_load, "numba_load_kept": numba_load_kept,
}))
'''


def _run(tmp_path: Path) -> dict[str, object]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_cached_kernels_load_without_the_refresh_and_compiling_still_works(
    tmp_path: Path,
) -> None:
    assert jit.LOADS_WITHOUT_REFRESH  # the numba this runs on has the parts it needs
    (tmp_path / "kernels.py").write_text(textwrap.dedent(KERNELS))
    first = _run(tmp_path)  # compiles and writes the cache
    second = _run(tmp_path)  # loads it
    assert first["hits"] == 0 and second["hits"] == 1
    assert second["refreshed_by_load"] is False  # the load alone installed no registry
    # Only vtx's kernels load this way: numba's own class is left as it was.
    assert second["own_load"] is True and second["numba_load_kept"] is True
    for run in (first, second):
        assert run["squares"] == [0.0, 1.0, 4.0, 9.0, 16.0] and run["n"] == 5
        assert run["compiled"] == 31.0  # a fresh compile after the load: refreshed itself
