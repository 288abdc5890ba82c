"""Per-scene grant rate limits: a token bucket per scene in each API instance.

A shared (DynamoDB) limiter would cost a write per grant on a hot key, the very thing sharding avoids.
Instead each instance admits `rate / RG_API_INSTANCES` grants per second with a one-second burst, so the
fleet admits about the configured rate only while about RG_API_INSTANCES instances run (the default, 1,
lets every instance admit the whole rate; see docs/explanation/capacity.md). This bounds load, not money: stock
and budget are enforced by the counter shards, never here.
"""

from __future__ import annotations

import math
import threading
import time

from chalicelib.errors import RateLimited
from chalicelib.settings import settings

_buckets: dict[str, list[float]] = {}
_lock = threading.Lock()


def acquire(key: str, rate_per_s: int) -> None:
    """Take one grant from `key`'s bucket; `RateLimited` when it is empty. A rate of 0 means unlimited."""
    if rate_per_s <= 0:
        return
    rate = rate_per_s / settings().api_instances
    now = time.monotonic()
    with _lock:
        tokens, last = _buckets.get(key, [rate, now])
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1:
            _buckets[key] = [tokens, now]
            raise RateLimited(
                f"grant rate limit of {rate_per_s}/s reached", retry_after_s=max(1, math.ceil((1 - tokens) / rate))
            )
        _buckets[key] = [tokens - 1, now]


def reset() -> None:
    """Forget every bucket (tests)."""
    with _lock:
        _buckets.clear()
