"""The callback gateway's edge: the two platform endpoints, the events worker, the sweeper, the read API."""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice import Blueprint, Rate, Response

from chalicelib import clock
from chalicelib.batch import process_sqs_batch
from chalicelib.callbacks import apply, gateway, reads, sweeper
from chalicelib.errors import NotFound, PoisonMessage, UnknownTpApp
from chalicelib.http import api, json_response
from chalicelib.queues import EVENTS
from chalicelib.secrets import get_tp_app
from chalicelib.validate import path_ident

bp = Blueprint(__name__)

# Platforms post JSON under any of these (or with no Content-Type, which Chalice treats as JSON);
# without listing them Chalice answers 415 before the view runs.
CALLBACK_CONTENT_TYPES = ["application/json", "text/plain"]
SWEEP_EVERY_MINUTES = 3
EVENT_ID = re.compile(r"[0-9a-f]{64}")


def _success() -> Response:
    # The platform compares the body with the bare string `success`; JSON-quoting it counts as failure.
    return Response(body="success", status_code=200, headers={"Content-Type": "text/plain"})


def _callback(tp_app_id: str, channel: str) -> Response:
    gateway.receive(tp_app_id, channel, bp.current_request.raw_body)
    return _success()


@bp.route("/callbacks/{tp_app_id}/auth", methods=["POST"], content_types=CALLBACK_CONTENT_TYPES)
@api
def auth_callback(tp_app_id: str) -> Response:
    """Authorization events and component ticket pushes."""
    return _callback(tp_app_id, "auth")


@bp.route("/callbacks/{tp_app_id}/events", methods=["POST"], content_types=CALLBACK_CONTENT_TYPES)
@api
def events_callback(tp_app_id: str) -> Response:
    """Message and event pushes (reviews, capability applications, ...)."""
    return _callback(tp_app_id, "events")


def _known_tp_app(tp_app_id: str) -> str:
    path_ident(tp_app_id, "tp_app_id")
    if get_tp_app(tp_app_id) is None:
        raise UnknownTpApp("no tp app with this id is configured")
    return tp_app_id


@bp.route("/v1/tp-apps/{tp_app_id}/apps/{app_id}", methods=["GET"])
@api
def get_app_state(tp_app_id: str, app_id: str) -> Response:
    """An authorized app's authorization and review state."""
    _known_tp_app(tp_app_id)
    path_ident(app_id, "app_id")
    state = reads.app_state(tp_app_id, app_id)
    if state is None:
        raise NotFound("no state for this app", app_id=app_id)
    return json_response(state)


@bp.route("/v1/tp-apps/{tp_app_id}/events", methods=["GET"])
@api
def list_events(tp_app_id: str) -> Response:
    """The tp app's stored callbacks, newest first (`type`, `limit`, `cursor`)."""
    _known_tp_app(tp_app_id)
    return json_response(reads.list_events(tp_app_id, bp.current_request.query_params))


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
    return process_sqs_batch(event, _apply_record, getattr(event, "context", None))


@bp.schedule(Rate(SWEEP_EVERY_MINUTES, unit=Rate.MINUTES))
def sweep_received_events(event: Any) -> dict:
    """Re-enqueue events left RECEIVED past the SLA (lost sends, crashes between store and send)."""
    result = sweeper.sweep(clock.now_ms())
    return result.__dict__

