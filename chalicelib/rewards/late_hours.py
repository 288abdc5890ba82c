"""Late events: a durable "hour dirty" mark that brings a closed hour back for another last pass.

An hour's last pass (h+2) reads its orders once. A credit of one of its orders that lands after that read (a
re-driven order, a withdrawal forcing old pending orders in, a redelivery hours later) — and a batch tally
written after it — changes what the hour's report should say, and if the crediting batch dies before its tally,
nothing else would ever come back to the hour: its distributed total stays short and its report keeps a stale
`missing_credit`.

So the credit path (`chalicelib.rewards.crediting`), before it credits an order (or writes a batch's tally) of an
hour whose last pass may already have read it, writes `late-hours` / `{hour}` in the counters table (a table the
credit worker already writes; one put, repeated only for another late credit of the hour after MARK_REUSE_MS).
Mark first, then credit: a crash in between costs one needless re-run, never a missed one.

The schedule queries that one partition each invocation (`due`: work bounded by the late events, not by the
hours' age) and re-runs the hour's last pass once the marking batch's Lambda is surely gone (RECHECK_AFTER_MS:
its tally is then completed by reconciliation if it died). A mark is satisfied by a last pass that *started*
after that moment; the schedule then stamps it `checked` (`settle`), so it is skipped until a new late event
re-marks the hour. Marks expire after MARK_TTL_S.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.rewards.config import CLOCK_SKEW_MS, MAX_INVOCATION_MS
from chalicelib.rewards.tables import CounterItem
from chalicelib.settings import settings

HOUR_MS = 3600 * 1000
LATE_PK = "late-hours"
MARK_TTL_S = 14 * 24 * 3600
MARK_REUSE_MS = 60_000  # one process re-marks an hour at most this often
# A mark's batch is surely over (its tally written or its Lambda dead) this long after the mark.
RECHECK_AFTER_MS = MAX_INVOCATION_MS + MARK_REUSE_MS + CLOCK_SKEW_MS

_marked: dict[str, int] = {}
_marked_lock = threading.Lock()


def last_pass_may_have_read(hour: str, now_ms: int) -> bool:
    """Whether the hour's last pass (h+2, from two hours + the grace after the hour's start + 1 h) may already
    have read it, by a reconciler clock up to CLOCK_SKEW_MS ahead of this one."""
    last_pass_from = clock.hour_start_ms(hour) + 2 * HOUR_MS + settings().reconcile_grace_s * 1000
    return now_ms >= last_pass_from - CLOCK_SKEW_MS


def mark_if_late(hour: str, now_ms: int) -> bool:
    """Before a credit or a tally into `hour`: mark the hour dirty if its last pass may have read it. True if
    marked (now or within MARK_REUSE_MS by this process)."""
    if not last_pass_may_have_read(hour, now_ms):
        return False
    with _marked_lock:
        if now_ms - _marked.get(hour, -MARK_REUSE_MS) < MARK_REUSE_MS:
            return True
    item = CounterItem(LATE_PK, hour, updated_at_ms=now_ms, expires_at=clock.utc_datetime(now_ms + MARK_TTL_S * 1000))
    with_retries(item.save)
    with _marked_lock:
        if len(_marked) > 10_000:
            _marked.clear()
        _marked[hour] = now_ms
    return True


@dataclass(frozen=True)
class Mark:
    """An hour marked dirty at `marked_ms` (the latest late event); due for a last pass started from `recheck_ms`."""

    hour: str
    marked_ms: int

    @property
    def recheck_ms(self) -> int:
        return self.marked_ms + RECHECK_AFTER_MS


def due(now_ms: int) -> list[Mark]:
    """The marks not yet satisfied whose batches are surely over, oldest hour first (one query)."""
    items = with_retries(lambda: list(CounterItem.query(LATE_PK, consistent_read=True)))
    marks = []
    for item in items:
        mark = Mark(item.sk, int(item.updated_at_ms or 0))
        checked = int(item.amount or 0)  # the start of the last pass that satisfied it (0: none yet)
        if checked < mark.recheck_ms <= now_ms:
            marks.append(mark)
    return sorted(marks, key=lambda m: m.hour)


def settle(mark: Mark, pass_started_ms: int) -> None:
    """Record that a last pass started at `pass_started_ms` (>= the mark's recheck time) covered the mark, unless
    a newer late event re-marked the hour meanwhile."""
    try:
        with_retries(lambda: CounterItem(LATE_PK, mark.hour).update(
            actions=[CounterItem.amount.set(pass_started_ms)],
            condition=CounterItem.updated_at_ms == mark.marked_ms))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
