"""Read ahead: produce the next items of an iterator in a background thread.

In: an iterator whose items are expensive to produce (decoded batches of messages) and a
consumer that spends its own time on each (splitting and writing it).
Out: the same items, in the same order; the producer works on item k+1 while the consumer
handles item k, so on two cores the two costs overlap instead of adding up. At most `depth`
items wait in the queue, so memory stays bounded.
May fail: whatever the iterator raises is raised to the consumer, at the place in the
sequence where it happened. If the consumer stops early (an error, a `break`), the producer
is told to stop and the iterator is closed in the producer's thread.

The producer runs Python code only between calls into native code that drops the GIL (numba's
`nogil` functions, NumPy, Arrow, Polars), which is where the overlap comes from.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """`items`, each produced in a background thread while the previous one is consumed."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    break
            else:
                offer(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name="vtx-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        producer.join()
