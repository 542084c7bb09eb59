"""Read-ahead helpers: `mapped_ahead` keeps order, bounds the work in flight, raises failures
where they belong and stops when its consumer does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter.prefetch import mapped_ahead, prefetched


class _Running:
    """Counts the calls running at once, and the most seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.calls: list[int] = []

    def __call__(self, item: int) -> int:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.calls.append(item)
        time.sleep(0.001 * (item % 3))  # later items may finish first
        with self.lock:
            self.now -= 1
        return item * item


@settings(max_examples=25, deadline=None)
@given(items=st.lists(st.integers(0, 100), max_size=12), ahead=st.integers(0, 3))
def test_property_results_come_in_order(items: list[int], ahead: int) -> None:
    running = _Running()
    assert list(mapped_ahead(running, items, ahead)) == [i * i for i in items]
    assert running.most <= ahead + 1


def test_items_are_drawn_no_further_ahead_than_asked() -> None:
    drawn: list[int] = []

    def items() -> Iterator[int]:
        for i in range(100):
            drawn.append(i)
            yield i

    results = mapped_ahead(lambda i: i, items(), ahead=1)
    assert next(results) == 0
    assert len(drawn) == 2  # the one returned and the one mapped meanwhile
    assert next(results) == 1
    assert len(drawn) == 3


def test_a_failure_is_raised_at_its_place_after_the_results_before_it() -> None:
    def square_or_fail(item: int) -> int:
        if item == 3:
            raise ValueError("item 3 is bad")
        return item * item

    got: list[int] = []
    with pytest.raises(ValueError, match="item 3 is bad"):
        for result in mapped_ahead(square_or_fail, range(10), ahead=2):
            got.append(result)
    assert got == [0, 1, 4]


def test_a_consumer_that_stops_stops_the_mapping() -> None:
    running = _Running()
    results = mapped_ahead(running, range(1000), ahead=2)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()  # waits for the calls under way; starts no more
    started = len(running.calls)
    time.sleep(0.05)
    assert len(running.calls) == started <= 3 + 2
    assert running.now == 0


def test_prefetched_keeps_order_and_raises_at_the_failing_item() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise OSError("disk gone")

    got: list[int] = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
