"""Have the C library's allocator keep freed memory for reuse, for a command's process.

In: nothing (the process's C library). Out: nothing; where the C library is not glibc (no
`mallopt`), or refuses, the allocator is left as it is.

Why: a split allocates and frees the same large arrays batch after batch (NumPy and Numba
allocate through malloc). By default glibc hands a freed block of 128 KiB to 32 MiB back to
the kernel (an mmap'd block at once; the heap's top past 128 KiB), and the next batch takes
the memory back a page at a time: on 1M key/value messages some 200,000 page faults, over a
second of system time. Kept, the next batch reuses it: half the page faults, about 0.5
CPU-seconds less per 1M messages, and no higher peak (the memory reused is memory the peak
held anyway). Only for vtx's own commands: a pipeline that imports `filter` keeps its
allocator as it set it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3

#: Blocks up to this size come from the heap, where freed ones are reused (glibc's largest).
_MMAP_THRESHOLD = 32 * 1024 * 1024
#: The heap keeps this much free memory at its top instead of trimming it.
_TRIM_THRESHOLD = 1024 * 1024 * 1024
#: The heap grows by at least this much at a time.
_TOP_PAD = 64 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set glibc's thresholds so that freed memory stays for reuse; whether it took."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
                (_M_TOP_PAD, _TOP_PAD))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
