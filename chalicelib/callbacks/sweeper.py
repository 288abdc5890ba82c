"""Re-enqueue events left RECEIVED past their due time (a lost send, a crash between store and send).

The gateway answers `success` once the event is stored, even when the send to the queue fails; this
sweeper is what makes that safe. It reads only the sparse `unapplied` index (one range query per
bucket), never scans. An event that stays unapplied is retried with a doubling interval, so a record
that keeps failing costs a message an hour, not one every run.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.callbacks import store
from chalicelib.observability import logger
from chalicelib.settings import settings

MAX_BACKOFF_S = 3600
PER_BUCKET = 200  # bounds one run's work; anything left over is still overdue at the next run
WARN_AFTER_ATTEMPTS = 3


def next_due_ms(now_ms: int, attempts_so_far: int, sla_s: int) -> int:
    """When to look at an event again after re-enqueueing it for the (attempts_so_far + 1)-th time."""
    wait_s = min(MAX_BACKOFF_S, sla_s * 2 ** min(attempts_so_far, 16))
    return now_ms + wait_s * 1000


@dataclass(frozen=True)
class SweepResult:
    """What one sweeper run did."""

    overdue: int
    enqueued: int
    send_failed: int


def sweep(now_ms: int) -> SweepResult:
    """Find overdue RECEIVED events, claim each for one more try, and send their ids to the queue."""
    sla_s = settings().received_sla_s
    claimed: list[str] = []
    seen = 0
    for found in store.overdue(now_ms, PER_BUCKET):
        seen += 1
        if not store.reschedule(found, next_due_ms(now_ms, found.sweep_attempts, sla_s)):
            continue  # finished or claimed by someone else since the query
        claimed.append(found.event_id)
        if found.sweep_attempts + 1 >= WARN_AFTER_ATTEMPTS:
            logger.warning("callback event still unapplied", extra={
                "event_id": found.event_id, "sweep_attempts": found.sweep_attempts + 1,
            })
    failed = store.enqueue_many(claimed)
    if failed:
        # Already rescheduled: they are due again after the backoff, so nothing is lost.
        logger.warning("sweeper could not enqueue events", extra={"count": len(failed)})
    result = SweepResult(overdue=seen, enqueued=len(claimed) - len(failed), send_failed=len(failed))
    if seen:
        logger.info("sweeper run", extra=result.__dict__)
    return result
