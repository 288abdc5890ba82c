"""The one source of wall-clock time, so tests can move it.

Callers use `clock.now_ms()` (attribute lookup at call time), never `from clock import now_ms`,
so that a test's `monkeypatch.setattr(clock, "now_ms", ...)` reaches them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def hour_of(ms: int) -> str:
    """The UTC hour an instant belongs to, as `YYYYMMDDHH` (the key form used by hour indexes)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m%d%H")


def hour_start_ms(hour: str) -> int:
    """First millisecond of a `YYYYMMDDHH` hour."""
    return int(datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=UTC).timestamp() * 1000)


def utc_datetime(ms: int) -> datetime:
    """A timezone-aware UTC datetime (what PynamoDB's TTL attributes take)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
