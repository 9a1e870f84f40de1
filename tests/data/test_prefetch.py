"""The prefetch thread: same items in the same order as a plain loop, errors re-raised in
the consumer (never a silent hang), and a consumer that stops early stops the thread."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from dcbench.data.prefetch import Prefetcher


def test_items_arrive_prepared_and_in_order() -> None:
    got = list(Prefetcher(range(20), lambda i: torch.full((2,), float(i) * 2), "cpu"))
    assert [float(t[0]) for t in got] == [2.0 * i for i in range(20)]


def test_an_error_in_the_thread_is_raised_in_the_consumer() -> None:
    def prepare(i: int) -> int:
        if i == 3:
            raise OSError("bad worker")
        return i

    seen = []
    with pytest.raises(OSError, match="bad worker"):
        for item in Prefetcher(range(10), prepare):
            seen.append(item)
    assert seen == [0, 1, 2]


def test_stopping_early_ends_the_thread() -> None:
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    before = threading.active_count()
    for item in Prefetcher(endless(), lambda i: i, depth=2):
        if item == 5:
            break
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
