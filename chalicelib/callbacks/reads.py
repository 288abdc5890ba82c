"""Reading the gateway's results back: an app's state, a tp app's ticket, the stored events."""

from __future__ import annotations

import json
import re
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException

from chalicelib.callbacks import events, store
from chalicelib.callbacks.tables import AppStateItem, EventRecord
from chalicelib.dynamo import with_retries
from chalicelib.errors import InvalidField, StorageUnavailable
from chalicelib.validate import decode_cursor, encode_cursor

_TYPE_FILTER = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _aspect_json(item: AppStateItem) -> dict[str, Any]:
    return {
        "data": json.loads(item.data),
        "event_type": item.event_type,
        "event_id": item.event_id,
        "event_time_ms": int(item.event_time_ms),
        "event_time": events.iso_time(int(item.event_time_ms)),
    }


def app_state(tp_app_id: str, app_id: str) -> dict[str, Any] | None:
    """An app's authorization, profile and review aspects as JSON, or None if no event changed the app."""
    try:
        items = with_retries(lambda: list(AppStateItem.query(
            tp_app_id, AppStateItem.item_key.startswith(f"{app_id}#"), consistent_read=True,
        )))
    except PynamoDBException as exc:
        raise StorageUnavailable("could not read app state") from exc
    state: dict[str, Any] = {"authorization": None, "profile": None}
    review: dict[str, Any] = {}
    for item in items:
        scope, aspect = events.aspect_of(item.item_key)
        if scope != app_id:
            continue  # unreachable with validated app ids ('#' is refused in them); never mix two apps
        if aspect in (events.AUTHORIZATION, events.PROFILE):
            state[aspect[0]] = _aspect_json(item)
        elif aspect[0] == events.REVIEW and len(aspect) == 2:
            review[aspect[1]] = _aspect_json(item)
        elif aspect[0] == events.REVIEW and len(aspect) == 3:
            review.setdefault(aspect[1], {})[aspect[2]] = _aspect_json(item)
    if not items:
        return None
    return {"tp_app_id": tp_app_id, "app_id": app_id, **state, "review": review}


def current_ticket(tp_app_id: str) -> dict[str, Any] | None:
    """The tp app's newest component ticket (data: `ticket`, `create_time`), or None if none was pushed."""
    try:
        item = with_retries(lambda: AppStateItem.get(tp_app_id, events.TICKET_ITEM_KEY, consistent_read=True))
    except DoesNotExist:
        return None
    except PynamoDBException as exc:
        raise StorageUnavailable("could not read the ticket") from exc
    return _aspect_json(item)


def _event_json(record: EventRecord) -> dict[str, Any]:
    try:
        payload: Any = json.loads(record.payload)
    except (ValueError, RecursionError):
        payload = record.payload
    return {
        "event_id": record.event_id,
        "event_type": record.event_type,
        "app_id": record.app_id,
        "status": record.status,
        "channel": record.channel,
        "note": record.note,
        "received_at_ms": int(record.received_at_ms),
        "received_at": events.iso_time(int(record.received_at_ms)),
        "applied_at_ms": None if record.applied_at_ms is None else int(record.applied_at_ms),
        "payload": payload,
    }


def list_events(tp_app_id: str, event_type: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of a tp app's stored events, newest first: `{"items": [...], "next_cursor": str | None}`."""
    if event_type is not None and not _TYPE_FILTER.fullmatch(event_type):
        raise InvalidField("type", "must be an event type such as AUTHORIZED")
    hash_name, hash_value = ("tp_app_id", tp_app_id) if event_type is None else (
        "tp_app_type", f"{tp_app_id}#{event_type}")
    # The cursor must belong to this very listing (same tp app, same type filter).
    start = decode_cursor(cursor, {"event_id": "", hash_name: hash_value, "list_sk": ""})
    try:
        records, next_key = store.query_events(tp_app_id, event_type, limit, start)
    except PynamoDBException as exc:
        raise StorageUnavailable("could not list events") from exc
    return {"items": [_event_json(r) for r in records], "next_cursor": encode_cursor(next_key)}
