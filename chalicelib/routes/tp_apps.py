"""The tp apps' read API (app state, stored events), the events worker and the received-events sweeper."""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice import Blueprint, Rate, Response

from chalicelib import clock, deadline
from chalicelib import errors as e
from chalicelib.batch import process_sqs_batch
from chalicelib.callbacks import apply, reads, sweeper
from chalicelib.callbacks.models import AppStateView, EventPage, EventsQuery
from chalicelib.callbacks.redact import redact
from chalicelib.edge.registry import READ, operation
from chalicelib.errors import PoisonMessage
from chalicelib.http import json_response
from chalicelib.queues import EVENTS
from chalicelib.secrets import get_tp_app

bp = Blueprint(__name__)

SWEEP_EVERY_MINUTES = 3
EVENT_ID = re.compile(r"[0-9a-f]{64}")


def _known_tp_app(tp_app_id: str) -> str:
    if get_tp_app(tp_app_id) is None:
        raise e.UnknownTpApp("no tp app with this id is configured")
    return tp_app_id


@operation(bp, "GET", "/v1/tp-apps/{tp_app_id}/apps/{app_id}", summary="An authorized app's state", access=READ,
           tags=("callbacks",), responses={200: AppStateView}, errors=(e.UnknownTpApp, e.NotFound))
def get_app_state(tp_app_id: str, app_id: str) -> Response:
    """An authorized app's authorization, profile and review state."""
    _known_tp_app(tp_app_id)
    state = reads.app_state(tp_app_id, app_id)
    if state is None:
        raise e.NotFound("no state for this app", app_id=app_id)
    return json_response(redact(state))


@operation(bp, "GET", "/v1/tp-apps/{tp_app_id}/events", summary="A tp app's stored callbacks", access=READ,
           tags=("callbacks",), query=EventsQuery, responses={200: EventPage}, errors=(e.UnknownTpApp,))
def list_events(tp_app_id: str, query: EventsQuery) -> Response:
    """The tp app's stored callbacks, newest first (`type`, `limit`, `cursor`); credentials redacted."""
    _known_tp_app(tp_app_id)
    return json_response(redact(reads.list_events(tp_app_id, query.type, query.limit, query.cursor)))


def _apply_record(record: SQSRecord) -> apply.Applied:
    try:
        event_id = record.json_body["event_id"]
    except (ValueError, TypeError, KeyError) as exc:
        raise PoisonMessage("events queue message is not {\"event_id\": ...}") from exc
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        raise PoisonMessage("events queue message carries no valid event id")
    return apply.apply_event(event_id, clock.now_ms())


@bp.on_sqs_message(queue=EVENTS.name, batch_size=EVENTS.batch_size)
def apply_callback_events(event: Any) -> dict:
    """Apply each queued event to app state; failed records are reported for redelivery."""
    context = getattr(event, "context", None)
    with deadline.bounded(context):
        return process_sqs_batch(event, _apply_record, context)


@bp.schedule(Rate(SWEEP_EVERY_MINUTES, unit=Rate.MINUTES))
def sweep_received_events(event: Any) -> dict:
    """Re-enqueue events left RECEIVED past the SLA (lost sends, crashes between store and send)."""
    with deadline.bounded(getattr(event, "context", None)):
        result = sweeper.sweep(clock.now_ms())
    return result.__dict__

