"""In-memory state of the grant paths, no I/O: a batch's bookkeeping of its reserved blocks while it writes their
orders (`BlockBook`), and the shards a process recently found full (`FullHints`).

`chalicelib.rewards.grants` records each order put's outcome in a `BlockBook` and asks which blocks it may
settle; `chalicelib.rewards.reservations` does the I/O and consults the `FullHints` it is given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class BlockBook:
    """What a batch knows about its blocks while it writes their orders: pure bookkeeping, no I/O.

    A block may be settled by its writer (its unused units given back) only when the outcome of every put
    under it is known. Once any put under a block has an indeterminate outcome (the answer lost: timeout,
    throttling, deadline, an exception unwinding mid-put), the order may have landed, so the block is
    *never* settled on this process's knowledge, whatever later puts answer: its lease stays for
    `return_expired`, which counts the orders that actually landed.
    """

    used: list[int]
    in_flight: set[int] = field(default_factory=set)
    indeterminate: set[int] = field(default_factory=set)
    settled: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, blocks: int) -> BlockBook:
        """A book for `blocks` blocks, nothing written yet."""
        return cls(used=[0] * blocks)

    def begin(self, block: int) -> None:
        """A put under `block` is about to be sent: its outcome is unknown until `record`."""
        self.in_flight.add(block)

    def record(self, block: int, *, created: int = 0, known: bool = True) -> None:
        """The put answered: `created` units used by a new order, or an indeterminate answer (`known=False`)."""
        self.in_flight.discard(block)
        self.used[block] += created
        if not known:
            self.indeterminate.add(block)

    def settleable(self, block: int) -> bool:
        """Whether the writer may give back what this block did not use (at most once)."""
        return block not in self.settled and block not in self.in_flight and block not in self.indeterminate

    def mark_settled(self, block: int) -> None:
        """The writer settled (or tried to settle) this block; it is never settled again by the writer."""
        self.settled.add(block)


class FullHints:
    """Shards this process recently found short of room: passed over for `ttl_s()` seconds (thread-safe).

    A hint only orders the attempts: a shard skipped on a hint is still confirmed by a strongly consistent
    read before a grant is declared sold out (`grants`). `ttl_s` is read at each use, so it can be tuned live.
    """

    def __init__(self, ttl_s: Callable[[], float], monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._seen: dict[tuple[str, int], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def saw_full(self, counter_id: str, shard: int, remaining: int) -> None:
        """Record that a shard had only `remaining` units."""
        with self._lock:
            self._seen[(counter_id, shard)] = (self._monotonic(), remaining)

    def hinted_full(self, counter_id: str, shard: int, amount: int) -> bool:
        """Whether the shard was seen too short for `amount` within the hint's lifetime."""
        hint = self._seen.get((counter_id, shard))
        return hint is not None and self._monotonic() - hint[0] < self._ttl_s() and hint[1] < amount
