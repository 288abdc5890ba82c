"""Applying stored events to app state: the worker's side of the gateway.

Each aspect update is one put of the aspect's whole new content, conditioned on the stored version
being older in (event time, event id) order (`events.supersedes`, expressed as a DynamoDB condition).
A failed condition means the stored aspect is as new or newer: success, nothing to do. No read comes
first, so there is no read-modify-write race: redelivered, concurrent and out-of-order events
converge on the newest one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pynamodb.exceptions import PutError, PynamoDBException

from chalicelib.callbacks import events, store
from chalicelib.callbacks.tables import AppStateItem
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import PoisonMessage, StorageUnavailable
from chalicelib.observability import logger


def apply_update(tp_app_id: str, update: events.AspectUpdate, event_id: str, event_type: str, now_ms: int) -> bool:
    """Write one aspect if this event supersedes what is stored; True if it was written."""
    item = AppStateItem(
        tp_app_id=tp_app_id, item_key=update.item_key, event_time_ms=update.event_time_ms, event_id=event_id,
        event_type=event_type, data=json.dumps(dict(update.fields), ensure_ascii=False, sort_keys=True),
        updated_at_ms=now_ms,
    )
    # events.supersedes((t, id), stored) as a condition: absent, older time, or same time and lower id.
    newer = (
        AppStateItem.item_key.does_not_exist()
        | (AppStateItem.event_time_ms < update.event_time_ms)
        | ((AppStateItem.event_time_ms == update.event_time_ms) & (AppStateItem.event_id < event_id))
    )
    try:
        with_retries(lambda: item.save(condition=newer))
    except PutError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise StorageUnavailable("could not write app state") from exc
    except PynamoDBException as exc:
        raise StorageUnavailable("could not write app state") from exc
    return True


@dataclass(frozen=True)
class Applied:
    """What the worker did with one event."""

    event_id: str
    outcome: str  # APPLIED, UNKNOWN, MALFORMED, or "already" when an earlier delivery finished it
    items_written: int


def apply_event(event_id: str, now_ms: int) -> Applied:
    """Apply a stored event to app state once, then mark it done; PoisonMessage if it does not exist."""
    record = store.get_event(event_id)
    if record is None:
        raise PoisonMessage("no stored event with this id", event_id=event_id)
    if record.status != store.RECEIVED:
        return Applied(event_id, "already", 0)
    decision = events.interpret(record.tp_app_id, record.payload)
    written = sum(
        apply_update(record.tp_app_id, update, event_id, record.event_type, now_ms) for update in decision.updates
    )
    store.finish(record, decision.outcome, decision.note, now_ms)
    if decision.outcome != events.APPLIED:
        logger.warning("callback event not applied", extra={
            "event_id": event_id, "tp_app_id": record.tp_app_id, "outcome": decision.outcome, "note": decision.note,
        })
    return Applied(event_id, decision.outcome, written)
