"""Replaying events kept as UNKNOWN, once a handler for their type has been deployed.

An event type the worker did not know is stored, marked UNKNOWN and never retried (no error loop). After
its handler ships, `replay_unknown` reopens that type's UNKNOWN events and hands them to the worker
again: nothing the platform sent before the deploy is lost. Safe to repeat and to run while callbacks
arrive: reopening is conditioned on UNKNOWN, and applying is idempotent and ordered by event time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib import clock
from chalicelib.callbacks import events, store

PAGE = 100


@dataclass(frozen=True)
class Replayed:
    """What one replay did: events looked at, reopened, and those whose send failed (the sweeper sends them)."""

    examined: int
    reopened: int
    send_failed: int

    def body(self) -> dict[str, int]:
        """The JSON summary."""
        return {"examined": self.examined, "reopened": self.reopened, "send_failed": self.send_failed}


def replay_unknown(tp_app_id: str, event_type: str, limit: int,
                   on_examined: Callable[[int], None] | None = None) -> Replayed:
    """Reopen and re-enqueue up to `limit` of a tp app's UNKNOWN events of `event_type`, newest first.

    `on_examined(n)` is told after each page how many more events were looked at (a progress bar).
    """
    now_ms = clock.now_ms()
    examined = 0
    reopened: list[str] = []
    start_key = None
    while len(reopened) < limit:
        page, start_key = store.query_events(tp_app_id, event_type, PAGE, start_key)
        for record in page:
            examined += 1
            if record.status == events.UNKNOWN and store.reopen(record, now_ms):
                reopened.append(record.event_id)
                if len(reopened) == limit:
                    break
        if on_examined is not None:
            on_examined(len(page))
        if start_key is None:
            break
    # An id whose send fails stays RECEIVED and due now: the events sweeper re-enqueues it.
    failed = store.enqueue_many(reopened)
    return Replayed(examined=examined, reopened=len(reopened), send_failed=len(failed))
