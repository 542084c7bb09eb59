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

`mapped_ahead` is the same idea for a costly function of each item: the next item is mapped
in a second thread while the consumer waits for (or handles) the current one's result. Its
function must be safe to run on two items at once.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

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


def mapped_ahead(function: Callable[[T], R], items: Iterable[T], ahead: int = 1) -> Iterator[R]:
    """`function` of each of `items`, in order: while the consumer waits for one result,
    the next `ahead` items are mapped in threads of their own (items are drawn in the
    consumer's thread). A failure is raised where its item's result would come; the items
    being mapped then are finished (or cancelled, if not started) before it is raised."""
    with ThreadPoolExecutor(max_workers=ahead + 1, thread_name_prefix="vtx-map") as pool:
        waiting: deque[Future[R]] = deque()
        try:
            for item in items:
                waiting.append(pool.submit(function, item))
                while len(waiting) > ahead:
                    yield waiting.popleft().result()
            while waiting:
                yield waiting.popleft().result()
        finally:
            for future in waiting:
                future.cancel()
