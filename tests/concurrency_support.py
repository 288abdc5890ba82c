"""Real concurrency for the tests that claim it: threads released at the same instant."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_together(count: int, work: Callable[[int], T]) -> list[T]:
    """Run `work(i)` for i in 0..count-1 in `count` threads released at the same instant; their results in order."""
    barrier = threading.Barrier(count)

    def go(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(go, range(count)))
