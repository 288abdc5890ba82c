"""The platform's two callback endpoints: public, signed by the platform, answered `success`.

In AWS these routes run in their own function (`callback_handler`, `chalicelib.routes.callback_function`)
whose role can store and enqueue callback events and read tp app credentials, and touch nothing of the
rewards; `app.py` registers them too, so the API's definition (and the local server) has them.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib import errors as e
from chalicelib.callbacks import gateway
from chalicelib.callbacks.models import CallbackEnvelope
from chalicelib.edge.registry import PUBLIC, Reply, operation
from chalicelib.http import current_request

bp = Blueprint(__name__)

# Platforms post JSON under any of these (or with no Content-Type, which Chalice treats as JSON);
# without listing them Chalice answers 415 before the view runs.
CALLBACK_CONTENT_TYPES = ("application/json", "text/plain")

SUCCESS = Reply("the bare text `success` (not JSON): stored, or a duplicate of a stored callback",
                {"type": "string", "const": "success"}, "text/plain")
CALLBACK_ERRORS = (e.InvalidJson, e.InvalidField, e.PayloadTooLarge, e.CallbackRejected, e.StorageUnavailable)


def _success() -> Response:
    # The platform compares the body with the bare string `success`; JSON-quoting it counts as failure.
    return Response(body="success", status_code=200, headers={"Content-Type": "text/plain"})


def _callback(tp_app_id: str, channel: str) -> Response:
    gateway.receive(tp_app_id, channel, current_request().raw_body)
    return _success()


def _callback_operation(channel: str, summary: str) -> Any:
    return operation(
        bp, "POST", f"/callbacks/{{tp_app_id}}/{channel}", summary=summary, access=PUBLIC, tags=("callbacks",),
        body=CallbackEnvelope, parse_body=False, content_types=CALLBACK_CONTENT_TYPES,
        # An unknown tp app id gets the same rejection as a forged callback (no enumeration).
        path_params={"tp_app_id": None}, responses={200: SUCCESS}, errors=CALLBACK_ERRORS,
        operation_id=f"{channel}_callback")


@_callback_operation("auth", "Authorization events and component ticket pushes")
def auth_callback(tp_app_id: str) -> Response:
    """Authorization events and component ticket pushes (signed and encrypted by the platform)."""
    return _callback(tp_app_id, "auth")


@_callback_operation("events", "Message and event pushes")
def events_callback(tp_app_id: str) -> Response:
    """Message and event pushes: reviews, capability applications, ... (signed and encrypted by the platform)."""
    return _callback(tp_app_id, "events")
