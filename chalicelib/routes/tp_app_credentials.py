"""The audited read of one stored callback with its credentials (component ticket, authorization code).

The tp-apps read routes (`read` callers: on-call, dashboards) serve payloads redacted
(chalicelib/callbacks/redact.py). A caller that must see a credential (to replay an authorization by hand,
to check what the platform sent) reads one event here: the route has an access of its own (`credentials`,
the `CallbackCredentialsPolicy` managed policy, attached to no one by default) and every read is written
to the audit log, with the caller's ARN, before anything is served.
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import errors as e
from chalicelib.callbacks import reads, store
from chalicelib.callbacks.models import EventView
from chalicelib.edge.registry import CREDENTIALS, operation
from chalicelib.http import json_response
from chalicelib.secrets import get_tp_app

bp = Blueprint(__name__)


@operation(bp, "GET", "/v1/tp-apps/{tp_app_id}/events/{event_id}/credentials",
           summary="One stored callback, credentials included (audited)", access=CREDENTIALS, tags=("callbacks",),
           responses={200: EventView}, errors=(e.UnknownTpApp, e.NotFound), audit="callback.credentials.read")
def get_event_credentials(tp_app_id: str, event_id: str) -> Response:
    """One stored callback of the tp app exactly as the platform sent it; the read is audited."""
    if get_tp_app(tp_app_id) is None:
        raise e.UnknownTpApp("no tp app with this id is configured")
    record = store.get_event(event_id)
    if record is None or record.tp_app_id != tp_app_id:
        raise e.NotFound("no such event for this tp app", event_id=event_id)
    return json_response(reads._event_json(record))  # the same view as the listing, unredacted
