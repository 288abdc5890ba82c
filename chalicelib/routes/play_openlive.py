"""The open-live edge: `/v2/app/*`, signed like Bilibili's, answered with Bilibili's envelope and codes.

Routes accept any Content-Type so that the pipeline (`chalicelib.play.openlive`) can answer a wrong one
with code 4011 inside the envelope, as the platform does, instead of Chalice's bare 415.
"""

from __future__ import annotations

import json

from chalice import Blueprint, Response

from chalicelib.play import openlive

bp = Blueprint(__name__)

ANY_CONTENT = ["*/*"]


def _serve(api: str) -> Response:
    request = bp.current_request
    answer = openlive.call(api, request.headers, request.raw_body)
    return Response(body=json.dumps(answer.body, ensure_ascii=False, separators=(",", ":")),
                    status_code=answer.status, headers={"Content-Type": "application/json"})


@bp.route("/v2/app/start", methods=["POST"], content_types=ANY_CONTENT)
def start() -> Response:
    """Start (or find) the app's game in the room of an identity code."""
    return _serve("start")


@bp.route("/v2/app/heartbeat", methods=["POST"], content_types=ANY_CONTENT)
def heartbeat() -> Response:
    """Keep a game alive."""
    return _serve("heartbeat")


@bp.route("/v2/app/batchHeartbeat", methods=["POST"], content_types=ANY_CONTENT)
def batch_heartbeat() -> Response:
    """Keep up to 200 games alive."""
    return _serve("batchHeartbeat")


@bp.route("/v2/app/end", methods=["POST"], content_types=ANY_CONTENT)
def end() -> Response:
    """End a game (idempotent)."""
    return _serve("end")


@bp.route("/v2/app/events", methods=["POST"], content_types=ANY_CONTENT)
def events() -> Response:
    """Pull a game's events after a seq, oldest first."""
    return _serve("events")
