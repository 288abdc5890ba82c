"""The events table and the events queue: storing each callback once, handing it to the worker.

Adapters only: every decision (what an event means, whether it is fresh) is made elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import PutError, PynamoDBException, UpdateError
from pynamodb.expressions.condition import Condition

from chalicelib import clients
from chalicelib.callbacks.events import UNKNOWN, Summary
from chalicelib.callbacks.tables import EventRecord
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import StorageUnavailable
from chalicelib.observability import logger
from chalicelib.queues import EVENTS
from chalicelib.settings import settings

RECEIVED = "RECEIVED"
# The sparse `unapplied` index is spread over this many partition keys so that a burst of callbacks
# does not pile onto one index partition. Lowering it would strand events in the dropped buckets.
UNAPPLIED_BUCKETS = 8


def event_id_of(encrypt: str) -> str:
    """The event id: sha256 hex of the `Encrypt` field (one id per distinct ciphertext)."""
    return hashlib.sha256(encrypt.encode("utf-8")).hexdigest()


def bucket_of(event_id: str) -> str:
    """Which `unapplied` index bucket an event belongs to (stable, spread by the id's hash)."""
    return str(int(event_id[:8], 16) % UNAPPLIED_BUCKETS)


def list_sort_key(received_at_ms: int, event_id: str) -> str:
    """Sort key of the listing indexes: receive time first (newest-first order), event id as tie-break."""
    return f"{received_at_ms:013d}#{event_id}"


def new_event(event_id: str, tp_app_id: str, channel: str, payload: str, summary: Summary,
              now_ms: int) -> EventRecord:
    """The item for a freshly received, verified event (status RECEIVED, due for the sweeper after the SLA)."""
    config = settings()
    return EventRecord(
        event_id=event_id,
        tp_app_id=tp_app_id,
        event_type=summary.event_type,
        app_id=summary.app_id,
        payload=payload,
        status=RECEIVED,
        channel=channel,
        received_at_ms=now_ms,
        list_sk=list_sort_key(now_ms, event_id),
        tp_app_type=f"{tp_app_id}#{summary.event_type}",
        unapplied_bucket=bucket_of(event_id),
        due_at_ms=now_ms + config.received_sla_s * 1000,
        sweep_attempts=0,
        # Must outlive the timestamp window by far: a replay is refused as stale long before the
        # record that would have caught it as a duplicate expires.
        expires_at=datetime.fromtimestamp(now_ms / 1000, tz=UTC) + timedelta(days=config.event_ttl_days),
    )


def put_if_absent(record: EventRecord) -> bool:
    """Store a new event; False if one with this id already exists. StorageUnavailable on failure."""
    try:
        with_retries(lambda: record.save(condition=EventRecord.event_id.does_not_exist()))
    except PutError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise StorageUnavailable("could not store the event") from exc
    except PynamoDBException as exc:
        raise StorageUnavailable("could not store the event") from exc
    return True


def get_event(event_id: str) -> EventRecord | None:
    """One event by id (strongly consistent), or None."""
    try:
        return with_retries(lambda: EventRecord.get(event_id, consistent_read=True))
    except EventRecord.DoesNotExist:
        return None
    except PynamoDBException as exc:
        raise StorageUnavailable("could not read the event") from exc


def _update_if(record: EventRecord, actions: list, condition: Condition, failure: str) -> bool:
    """Apply `actions` if `condition` holds: True if applied, False if it did not hold."""
    try:
        with_retries(lambda: record.update(actions=actions, condition=condition))
    except UpdateError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise StorageUnavailable(failure) from exc
    return True


def finish(record: EventRecord, status: str, note: str | None, now_ms: int) -> bool:
    """Move a RECEIVED event to its final status and out of the sweeper's index; False if already moved."""
    actions = [
        EventRecord.status.set(status),
        EventRecord.applied_at_ms.set(now_ms),
        EventRecord.unapplied_bucket.remove(),
        EventRecord.due_at_ms.remove(),
    ]
    if note:
        actions.append(EventRecord.note.set(note[:500]))
    return _update_if(record, actions, EventRecord.status == RECEIVED, "could not update the event")


def reopen(record: EventRecord, now_ms: int) -> bool:
    """Move an UNKNOWN event back to RECEIVED (due now, back in the sweeper's index); False if it is not UNKNOWN.

    For events stored before their type had a handler: once reopened they take the normal path (queue,
    worker, sweeper), and the worker's event-time ordering keeps an old event from overwriting newer state.
    """
    actions = [
        EventRecord.status.set(RECEIVED),
        EventRecord.unapplied_bucket.set(bucket_of(record.event_id)),
        EventRecord.due_at_ms.set(now_ms),
        EventRecord.sweep_attempts.set(0),
        EventRecord.applied_at_ms.remove(),
        EventRecord.note.remove(),
    ]
    return _update_if(record, actions, EventRecord.status == UNKNOWN, "could not reopen the event")


@dataclass(frozen=True)
class Overdue:
    """An event the sweeper found past its due time."""

    event_id: str
    due_at_ms: int
    sweep_attempts: int


def overdue(now_ms: int, per_bucket: int) -> Iterator[Overdue]:
    """Events still RECEIVED whose due time has passed, at most `per_bucket` from each bucket."""
    for bucket in range(UNAPPLIED_BUCKETS):
        # A fresh query per attempt: a retried, half-consumed result iterator would skip items.
        items = with_retries(lambda b=str(bucket): list(
            EventRecord.unapplied.query(b, EventRecord.due_at_ms <= now_ms, limit=per_bucket)
        ))
        for item in items:
            yield Overdue(item.event_id, int(item.due_at_ms), int(item.sweep_attempts or 0))


def reschedule(found: Overdue, next_due_ms: int) -> bool:
    """Claim an overdue event for one re-enqueue by moving its due time; False if it changed meanwhile."""
    record = EventRecord(event_id=found.event_id)
    # Conditioned on the due time we read, two sweepers running at once cannot both claim it, and an
    # event the worker finished in between (no due time any more) is left alone.
    condition = (EventRecord.status == RECEIVED) & (EventRecord.due_at_ms == found.due_at_ms)
    actions = [EventRecord.due_at_ms.set(next_due_ms), EventRecord.sweep_attempts.set(found.sweep_attempts + 1)]
    return _update_if(record, actions, condition, "could not reschedule the event")


def query_events(tp_app_id: str, event_type: str | None, limit: int,
                 start_key: Mapping[str, Any] | None) -> tuple[list[EventRecord], dict[str, Any] | None]:
    """A page of a tp app's events, newest first, and the key to continue after (None on the last page)."""
    index, hash_value = (
        (EventRecord.by_tp_app, tp_app_id) if event_type is None
        else (EventRecord.by_tp_app_type, f"{tp_app_id}#{event_type}")
    )
    # One item more than asked tells whether a next page exists, so the last page carries no cursor
    # (DynamoDB's own LastEvaluatedKey would point at an empty page whenever the page is exactly full).
    items = with_retries(lambda: list(index.query(
        hash_value, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start_key,
    )))
    if len(items) <= limit:
        return items, None
    last = items[limit - 1]
    hash_name = "tp_app_id" if event_type is None else "tp_app_type"
    next_key = {"event_id": {"S": last.event_id}, hash_name: {"S": hash_value}, "list_sk": {"S": last.list_sk}}
    return items[:limit], next_key


# --- the events queue ------------------------------------------------------------------------


def _events_queue_url() -> str:
    return clients.queue_url(EVENTS.name)


def enqueue(event_id: str) -> None:
    """Hand one event to the worker (raises the SQS error if the send fails)."""
    clients.sqs().send_message(QueueUrl=_events_queue_url(), MessageBody=json.dumps({"event_id": event_id}))


def enqueue_many(event_ids: Iterable[str]) -> list[str]:
    """Hand events to the worker in batches of ten; return the ids SQS did not accept."""
    ids = list(event_ids)
    failed: list[str] = []
    for start in range(0, len(ids), 10):
        chunk = ids[start:start + 10]
        entries = [{"Id": str(i), "MessageBody": json.dumps({"event_id": e})} for i, e in enumerate(chunk)]
        try:
            answer = clients.sqs().send_message_batch(QueueUrl=_events_queue_url(), Entries=entries)
        except Exception:
            logger.exception("events queue batch send failed", extra={"count": len(chunk)})
            failed.extend(chunk)
            continue
        failed.extend(chunk[int(entry["Id"])] for entry in answer.get("Failed", []))
    return failed
