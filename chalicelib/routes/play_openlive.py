"""The open-live edge: `/v2/app/*`, signed like Bilibili's, answered with Bilibili's envelope and codes.

Each route is an operation of the one contract (`access=PUBLIC`: each request carries its own signature;
`problems=False`, `parse_body=False`): the pipeline (`chalicelib.play.openlive.call`) checks the media
types, the signature and the body in Bilibili's order, so that every refusal is its code in the envelope
at HTTP 200, as the platform answers. The routes accept any Content-Type so that a wrong one is answered
4011 in the envelope instead of a bare 415; an error raised at the edge is rendered in the envelope too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from chalice import Blueprint, Response
from pydantic import BaseModel

from chalicelib.edge.registry import PUBLIC, Reply, operation
from chalicelib.errors import RewardgateError
from chalicelib.http import JSON, current, current_request
from chalicelib.play import openlive
from chalicelib.play.models import (
    BatchHeartbeatAnswer,
    BatchHeartbeatBody,
    EndBody,
    EventsAnswer,
    EventsBody,
    HeartbeatBody,
    OpenLiveAnswer,
    StartAnswer,
    StartBody,
)

bp = Blueprint(__name__)

ANY_CONTENT = ("*/*",)
COMMON_CODES = ("4000 a body field missing or malformed, 4001 app_id not the key's app, 4002 signature, "
                "4003 timestamp, 4004 nonce replayed, 4009 rate limited or banned, 4011 Content-Type, "
                "4012 Content-MD5, 4013 Accept")


def _request_id() -> str:
    context = current()
    return context.request_id if context is not None else ""


def _response(answer: openlive.Answer) -> Response:
    return Response(body=json.dumps(answer.body, ensure_ascii=False, separators=(",", ":")),
                    status_code=answer.status, headers={"Content-Type": JSON})


def _serve(api: str) -> Response:
    request = current_request()
    return _response(openlive.call(api, request.headers, request.raw_body, request_id=_request_id()))


def _envelope(api: str) -> Callable[[RewardgateError], Response]:
    """The registry's `on_error` for this API: an error raised at the edge, in Bilibili's envelope."""
    return lambda error: _response(openlive.refusal(error, api, _request_id()))


@dataclass(frozen=True)
class OpenLiveApi:
    """One `/v2/app/{name}` route: what the contract says of it."""

    name: str
    summary: str
    description: str
    body: type[BaseModel]
    answer: type[OpenLiveAnswer]
    codes: str


APIS = (
    OpenLiveApi("start", "Start (or find) a game", "Start (or find) the app's game in the room of an identity code.",
                StartBody, StartAnswer, "7001 the room is cooling down, 7002 another app's game runs in the room, "
                                        "7007 unknown or refreshed identity code"),
    OpenLiveApi("heartbeat", "Keep a game alive",
                "Keep a game alive (every 20-60 s; a game without one for 60 s is ended).", HeartbeatBody,
                OpenLiveAnswer, "7000 not a running game of this app, 7003 the heartbeat expired and the game ended"),
    OpenLiveApi("batchHeartbeat", "Keep up to 200 games alive",
                "Keep up to 200 games alive; `failed_game_ids` lists those that are not running.", BatchHeartbeatBody,
                BatchHeartbeatAnswer, "7004 more than 200 ids, 7005 an id repeated"),
    OpenLiveApi("end", "End a game", "End a game (idempotent).", EndBody, OpenLiveAnswer,
                "7000 not a running game of this app (clients treat 7000 and 7003 on end as success)"),
    OpenLiveApi("events", "Pull a game's events",
                "Pull a game's events after a seq, oldest first (the offline inbox of the pushed stream).", EventsBody,
                EventsAnswer, "7000 not a game of this app, 7003 the heartbeat expired and the game ended"),
)


def _declare(api: OpenLiveApi) -> None:
    def view() -> Response:
        return _serve(api.name)

    view.__name__ = f"open_live_{api.name}"
    view.__doc__ = (f"{api.description}\n\nSigned with the app's access key (`x-bili-*` headers and "
                    "`Authorization`: README \"Interactive play\").")
    operation(bp, "POST", f"/v2/app/{api.name}", summary=api.summary, access=PUBLIC, tags=("open-live",),
              body=api.body, parse_body=False, problems=False, content_types=ANY_CONTENT,
              responses={200: Reply(f"Bilibili's envelope: code 0 ok; {COMMON_CODES}; {api.codes}", api.answer),
                         503: Reply("code 5000: a backing service failed; retry", OpenLiveAnswer),
                         500: Reply("code 5000: internal error", OpenLiveAnswer)},
              on_error=_envelope(api.name))(view)


for _api in APIS:
    _declare(_api)
