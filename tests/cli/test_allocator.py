"""The CLI's allocator settings: freed memory is reused, not faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import resource, sys
import numpy as np
from filter.cli.allocator import keep_freed_memory
if sys.argv[1] == "kept" and not keep_freed_memory():
    print("unsupported"); raise SystemExit
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def batch():  # a batch's arrays, several MiB each, all freed when it is done
    held = [np.ones(8 << 20, np.uint8) for _ in range(12)]
    del held
batch()
before = faults()
for _ in range(4):
    batch()
print(faults() - before)
"""


def _faults(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def test_kept_memory_is_reused_without_page_faults() -> None:
    kept = _faults("kept")
    if kept == "unsupported":
        pytest.skip("not glibc: the allocator is left as it is")
    # 4 batches of 96 MiB: 98,304 pages to fault in where each came fresh from the kernel
    # (by default glibc trims the heap's free top past 64 MiB at most).
    assert int(kept) < 1000
    assert int(_faults("default")) > 4 * 4096
