"""Hours and passes: parsing and naming hours, when an hour is closed, which pass it is due for, and what the
hourly schedule owes. Pure (the clock is passed in); `runner` drives the passes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib import clock
from chalicelib.errors import InvalidField
from chalicelib.settings import settings

HOUR_MS = 3600 * 1000


FIRST_HOUR, LAST_HOUR = datetime(1970, 1, 1, 0), datetime(9999, 12, 30, 23)


def parse_hour(text: str) -> str:
    """An hour from `YYYY-MM-DDTHH` (UTC) or `YYYYMMDDHH`, as `YYYYMMDDHH`; `InvalidField` otherwise."""
    for fmt in ("%Y-%m-%dT%H", "%Y%m%d%H"):
        try:
            moment = datetime.strptime(text, fmt)
        except (TypeError, ValueError):
            continue
        # Hours the store's epoch-millisecond keys and `datetime` (the hours after it) can hold: 0001-01-01T00
        # and 9999-12-31T23 answered 500 before.
        if not FIRST_HOUR <= moment <= LAST_HOUR:
            raise InvalidField("hour", f"must be an hour from {FIRST_HOUR:%Y-%m-%dT%H} to "
                                       f"{LAST_HOUR:%Y-%m-%dT%H} (UTC)")
        return f"{moment:%Y%m%d%H}"
    raise InvalidField("hour", "must be an hour like 2026-11-22T10 (UTC)")


def display_hour(hour: str) -> str:
    """`YYYYMMDDHH` as `YYYY-MM-DDTHH`."""
    return f"{hour[:4]}-{hour[4:6]}-{hour[6:8]}T{hour[8:]}"


def next_hour(hour: str, steps: int = 1) -> str:
    """The hour `steps` after `hour`."""
    return clock.hour_of(clock.hour_start_ms(hour) + steps * HOUR_MS)


def grace_ms() -> int:
    """How long after an hour ends its late writes are still awaited before it is reconciled."""
    return settings().reconcile_grace_s * 1000


def pass_for(hour: str, now_ms: int) -> int:
    """Pass 1 (h+1) until the hour is two hours old, pass 2 (h+2) after; refuses an hour not yet closed."""
    closes = clock.hour_start_ms(hour) + HOUR_MS + grace_ms()
    if now_ms < closes:
        raise InvalidField("hour", f"{display_hour(hour)} is not closed yet; it can be reconciled from "
                                   f"{datetime.fromtimestamp(closes / 1000, tz=UTC):%Y-%m-%dT%H:%M}Z")
    return 1 if now_ms < closes + HOUR_MS else 2


# A pass the schedule could not finish within its hour is continued for this many hours more.
LOOKBACK_HOURS = 6
ON_TIME_RUNS = 2


def due_runs(now_ms: int) -> list[tuple[str, int]]:
    """What the hourly schedule owes now, newest first, if not done yet.

    The last closed hour's first pass and the one before's second pass are on time; then the second pass
    of each of the LOOKBACK_HOURS hours before those. One of these still owed is a pass that did not
    finish in its hour (a long hour, throttling, the schedule down): it is continued, never dropped,
    and counted as behind. (An unfinished first pass is superseded by its hour's second pass.)
    """
    latest_closed = clock.hour_of(now_ms - HOUR_MS - grace_ms())
    return [(latest_closed, 1)] + [(next_hour(latest_closed, -back), 2) for back in range(1, LOOKBACK_HOURS + 2)]


# Hours older than the window that the schedule still owes (an outage longer than the window, a pass unfinished
# when its hour left the window) are run oldest first after the window's passes, at most this many per invocation
# (and only while time is left; the oldest one always advances by at least one step).
BACKLOG_PER_INVOCATION = 24


def oldest_window_hour(now_ms: int) -> str:
    """The oldest hour `due_runs` names."""
    return due_runs(now_ms)[-1][0]


def first_watermark(now_ms: int) -> str:
    """Where a schedule with no recorded watermark (its first deploy) starts: just before its current window,
    never walking back over hours it never owed."""
    return next_hour(oldest_window_hour(now_ms), -1)


def backlog_size(watermark: str, now_ms: int) -> int:
    """How many hours after the watermark lie before the window: last passes owed beyond it."""
    gap_ms = clock.hour_start_ms(oldest_window_hour(now_ms)) - clock.hour_start_ms(watermark)
    return max(0, gap_ms // HOUR_MS - 1)


def backlog(watermark: str, now_ms: int, limit: int = BACKLOG_PER_INVOCATION) -> list[str]:
    """The oldest `limit` hours after the watermark that lie before the window, oldest first."""
    return [next_hour(watermark, step) for step in range(1, min(limit, backlog_size(watermark, now_ms)) + 1)]
