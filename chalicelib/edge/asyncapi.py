"""The AsyncAPI 3.0 document of the live push protocol (`docs/asyncapi.json`, written by `make openapi`).

The protocol is `chalicelib.live.protocol`: JSON text frames over a WebSocket (API Gateway's WebSocket API
in AWS, the local stack's WebSocket server locally). Its frames are built from plain dicts there; the models
below state them for clients, and the contract test checks both ways that they cannot drift: every frame
the protocol code builds validates against these schemas, every documented client frame is parsed by the
code to its operation, and the error codes are those the code sends.

Bilibili's binary long connection (16-byte packet headers, op 7 AUTH / op 5 messages) is not served by
rewardgate yet (docs/explanation/architecture.md), so it has no channel here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from chalicelib import __version__
from chalicelib.live import protocol
from chalicelib.live.config import API_FRAME_BYTES

ASYNCAPI_VERSION = "3.0.0"
REF = "#/components/schemas/{model}"
# The codes of `{"op": "error"}` frames: the protocol's own (`rate_limited`: resume and ping over
# RG_LIVE_FRAMES_PER_MINUTE), and `unavailable` (routes/live.py, a backing failure).
ERROR_CODES = (protocol.BAD_FRAME, protocol.UNKNOWN_OP, protocol.INVALID_FIELD, protocol.SEQ_AHEAD,
               protocol.NOT_CONNECTED, protocol.RATE_LIMITED, "unavailable")
GAME_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ack(_Frame):
    """Cumulative acknowledgement: every event up to `seq` was received (reported back in `pong.acked_seq`)."""

    op: Literal["ack"]
    seq: int = Field(ge=0, description="the highest seq received")


class Resume(_Frame):
    """Replay every event after `after_seq`, then continue live (after a reconnect, or on a gap)."""

    op: Literal["resume"]
    after_seq: int = Field(ge=0, description="the highest seq already held (0: from the start)")


class Ping(_Frame):
    """Keep the connection open (API Gateway closes one idle for 10 minutes); answered by `pong`."""

    op: Literal["ping"]


class Event(_Frame):
    """One live event of the game, in seq order; a client keeps the highest seq it saw and ignores the rest."""

    op: Literal["event"]
    game_id: str
    seq: int = Field(ge=1, description="the event's position in the game's stream, from 1, without gaps")
    cmd: str = Field(description="`LIVE_OPEN_PLATFORM_DM`, `_SEND_GIFT`, `_GUARD`, `_SUPER_CHAT`, "
                                 "`_SUPER_CHAT_DEL`, `_LIKE`, `_INTERACTION_END`")
    data: dict[str, Any] = Field(description="the message's data, as Bilibili's open-live messages carry it")


class End(_Frame):
    """The game ended: sent right after its `LIVE_OPEN_PLATFORM_INTERACTION_END` event; nothing follows."""

    op: Literal["end"]
    game_id: str


class Pong(_Frame):
    """The answer to `ping`: what this connection was sent and acked, and when to reconnect and ping."""

    op: Literal["pong"]
    sent_seq: int = Field(ge=0)
    acked_seq: int = Field(ge=0)
    reconnect_in_s: int = Field(ge=0, description="reconnect (and resume) within this many seconds: API "
                                                  "Gateway closes every connection after 2 hours")
    ping_every_s: int = Field(ge=1)


class Error(_Frame):
    """A client frame the server could not act on (nothing changed), or a backing failure (`unavailable`)."""

    op: Literal["error"]
    code: Literal[ERROR_CODES]  # type: ignore[valid-type]
    message: str


CLIENT = (Ack, Resume, Ping)
SERVER = (Event, End, Pong, Error)
EXAMPLES: dict[type[_Frame], dict[str, Any]] = {
    Ack: {"op": "ack", "seq": 42},
    Resume: {"op": "resume", "after_seq": 41},
    Ping: {"op": "ping"},
    Event: {"op": "event", "game_id": GAME_ID, "seq": 42, "cmd": "LIVE_OPEN_PLATFORM_DM",
            "data": {"msg_id": "m-1001", "open_id": "a1b2c3d4-open-id", "uname": "viewer", "msg": "hello",
                     "dm_type": 0}},
    End: {"op": "end", "game_id": GAME_ID},
    Pong: {"op": "pong", "sent_seq": 42, "acked_seq": 41, "reconnect_in_s": 6900, "ping_every_s": 300},
    Error: {"op": "error", "code": "seq_ahead", "message": "ack 50 is beyond the last seq sent to this "
                                                           "connection (42)"},
}


def _message(model: type[_Frame]) -> dict[str, Any]:
    return {"name": model.__name__.lower(), "title": model.__name__, "summary": (model.__doc__ or "").strip(),
            "contentType": "application/json", "payload": {"$ref": REF.format(model=model.__name__)},
            "examples": [{"name": model.__name__.lower(), "payload": EXAMPLES[model]}]}


def build() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the live push protocol."""
    _, found = models_json_schema([(m, "validation") for m in (*CLIENT, *SERVER)], ref_template=REF)
    schemas = dict(sorted(found["$defs"].items()))
    schemas["Batch"] = {"type": "array", "minItems": 2, "items": {"oneOf": [{"$ref": REF.format(model="Event")},
                                                                           {"$ref": REF.format(model="End")}]},
                        "description": "several due messages in one frame, in order (each frame at most "
                                       f"{API_FRAME_BYTES} bytes)"}
    messages = {model.__name__.lower(): _message(model) for model in (*CLIENT, *SERVER)}
    messages["batch"] = {"name": "batch", "title": "Batch", "contentType": "application/json",
                         "summary": "Consecutive `event`/`end` messages due at once, as one JSON array frame.",
                         "payload": {"$ref": REF.format(model="Batch")},
                         "examples": [{"name": "batch", "payload": [
                             {**EXAMPLES[Event], "seq": 43, "cmd": "LIVE_OPEN_PLATFORM_INTERACTION_END",
                              "data": {"game_id": GAME_ID, "timestamp": 1796716800}}, EXAMPLES[End]]}]}
    ref = "#/channels/live/messages/{name}"
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "rewardgate live push",
            "version": __version__,
            "description": "A game's live events pushed over a WebSocket, in order, with resume. Connect with the "
                           "`auth_body` that `POST /v2/app/start` answered (`data.websocket_info`) to one of its "
                           "`wss_link`s. Client frames are JSON text objects of at most "
                           f"{protocol.MAX_CLIENT_FRAME} bytes; server frames are one JSON message or an array "
                           f"of them, each frame at most {API_FRAME_BYTES} bytes.",
        },
        "servers": {
            "local": {"host": "127.0.0.1:8003", "protocol": "ws", "description": "the local stack (make run)"},
            "aws": {"host": "{api_id}.execute-api.{region}.amazonaws.com", "pathname": "/{stage}", "protocol": "wss",
                    "description": "API Gateway's WebSocket API of a deployed stage",
                    "variables": {"api_id": {"default": "api-id"}, "region": {"default": "us-east-1"},
                                  "stage": {"default": "api"}}},
        },
        "defaultContentType": "application/json",
        "channels": {
            "live": {
                "address": "/",
                "title": "A game's live events",
                "description": "One connection per game and client. A refused `auth_body` closes the handshake "
                               "(401); `after_seq` starts after that seq instead of at seq 1.",
                "messages": messages,
                "bindings": {"ws": {"bindingVersion": "0.1.0", "query": {
                    "type": "object", "required": ["auth_body"],
                    "properties": {"auth_body": {"type": "string", "description": "data.websocket_info.auth_body"},
                                   "after_seq": {"type": "string", "pattern": "^[0-9]+$",
                                                 "description": "resume after this seq (default 0)"}}}}},
            },
        },
        "operations": {
            "sendEvents": {"action": "send", "channel": {"$ref": "#/channels/live"},
                           "summary": "The server pushes events, the end of the game, and answers",
                           "messages": [{"$ref": ref.format(name=m.__name__.lower())} for m in SERVER]
                           + [{"$ref": ref.format(name="batch")}]},
            "receiveClientFrames": {"action": "receive", "channel": {"$ref": "#/channels/live"},
                                    "summary": "The client acknowledges, resumes and pings",
                                    "messages": [{"$ref": ref.format(name=m.__name__.lower())} for m in CLIENT]},
        },
        "components": {"schemas": schemas},
    }
