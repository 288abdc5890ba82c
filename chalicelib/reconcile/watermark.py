"""The schedule's durable "reconciled through" watermark: every hour up to it has had its last pass (h+2) finished.

The hourly schedule owes a fixed window of passes (`passes.due_runs`); an hour that leaves the window unfinished
(a reconciler outage longer than the window, a pass slower than its hours) would otherwise never be run. The
watermark remembers where finished last passes stop: the schedule works forward from it, so its work is bounded by
what is new since the last recorded pass, never by an outage's length (`passes.backlog`).

Stored as `schedule` / `reconciled-through` in the reconciliation table (no TTL). It only moves forward (a
conditional write), so concurrent invocations cannot move it back. With none recorded (the first deploy) it starts
just before the current window (`passes.first_watermark`): hours before the schedule existed are not walked.
"""

from __future__ import annotations

from collections.abc import Callable

from pynamodb.exceptions import PutError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.reconcile.passes import first_watermark, next_hour
from chalicelib.reconcile.tables import ReconItem

PK, SK = "schedule", "reconciled-through"


def read() -> str | None:
    """The recorded watermark hour (`YYYYMMDDHH`), or None before the first record."""
    items = with_retries(lambda: list(ReconItem.query(PK, ReconItem.sk == SK, consistent_read=True)))
    return items[0].body if items else None


def _store(hour: str, previous: str | None) -> None:
    """Record `hour` if the stored watermark is still `previous` (or older); a newer one is left as it is."""
    item = ReconItem(PK, SK, body=hour, updated_at_ms=clock.now_ms())
    condition = ReconItem.sk.does_not_exist() if previous is None else ReconItem.body < hour
    try:
        with_retries(lambda: item.save(condition=condition))
    except PutError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


def current(now_ms: int) -> str:
    """The watermark, recording the first one (just before the current window) if there is none."""
    found = read()
    if found is not None:
        return found
    start = first_watermark(now_ms)
    _store(start, None)
    return read() or start


def advance(watermark: str, through: str, last_pass_done: Callable[[str], bool]) -> str:
    """Move the watermark over each following hour, up to `through`, whose last pass is done; stop at the first
    that is not. Reads one pass head per hour passed, plus one: the work follows what finished since."""
    moved = watermark
    while moved < through and last_pass_done(next_hour(moved)):
        moved = next_hour(moved)
    if moved != watermark:
        _store(moved, watermark)
    return moved
