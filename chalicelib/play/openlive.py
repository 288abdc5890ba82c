"""The developer API, compatible with Bilibili's open-live API: `/v2/app/start|heartbeat|batchHeartbeat|end`
and rewardgate's pull delivery `/v2/app/events`.

Every call goes through one pipeline, in this order: Content-Type (4011) and Accept (4013); the signing
headers (4002); the timestamp window (4003); the body's MD5 (4012); the access key and the HMAC
signature, compared in constant time (4002); the nonce, put-if-absent (4004); the security centre's ban
and rate limit (4009); the body (4000); then the operation. Nothing is written before the signature
verifies, and a forged request never counts against the app it names. Every answer is HTTP 200 with
`{code, message, request_id, data}`, except a storage fault (503, code 5000: retry) and a bug (500).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from chalicelib import clock
from chalicelib.errors import (
    OpenLiveBadRequest,
    OpenLiveError,
    OpenLiveInvalidApp,
    RewardgateError,
    SignatureInvalid,
    StorageUnavailable,
    WrongAccept,
    WrongContentType,
)
from chalicelib.observability import logger
from chalicelib.play import apps, games, keys, security, signing, stream
from chalicelib.play.config import play_settings
from chalicelib.play.models import (
    BatchHeartbeatBody,
    EndBody,
    EventsBody,
    HeartbeatBody,
    StartBody,
    parse_open_live,
)

MAX_BODY_BYTES = 64 * 1024
SERVER_ERROR = 5000


@dataclass(frozen=True)
class Answer:
    """An HTTP status and the envelope."""

    status: int
    body: dict[str, Any]


def envelope(code: int, message: str, request_id: str, data: Any = None) -> dict[str, Any]:
    """Bilibili's answer envelope."""
    return {"code": code, "message": message, "request_id": request_id, "data": {} if data is None else data}


def _media_types(value: str) -> list[str]:
    return [part.split(";")[0].strip().lower() for part in value.split(",")]


def _check_media(headers: Mapping[str, str]) -> None:
    if "application/json" not in _media_types(headers.get("content-type") or ""):
        raise WrongContentType("Content-Type must be application/json")
    accept = headers.get("accept")
    if accept and not {"application/json", "application/*", "*/*"} & set(_media_types(accept)):
        raise WrongAccept("Accept must admit application/json")


def _authenticate(headers: Mapping[str, str], raw: bytes, now_ms: int) -> apps.PlayApp:
    request = signing.parse_headers(headers)
    signing.check_timestamp(request, now_ms // 1000, play_settings().signature_window_s)
    signing.check_body(request, raw)
    app_id = keys.app_of_key(request.access_key_id)
    app = apps.find_app(app_id) if app_id is not None else None
    secret = keys.secret_for(request.access_key_id) if app is not None else None
    if app is None or secret is None:
        raise SignatureInvalid("unknown access key")
    signing.check_signature(request, secret)
    security.use_nonce(app.app_id, request.nonce, now_ms)
    return app


def _body(raw: bytes) -> Any:
    if len(raw) > MAX_BODY_BYTES:
        raise OpenLiveBadRequest(f"body exceeds {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise OpenLiveBadRequest("body is not JSON") from None


# --- the operations ------------------------------------------------------------------------------


def _start(app: apps.PlayApp, body: StartBody, now_ms: int) -> dict[str, Any]:
    if body.app_id != app.app_id:
        raise OpenLiveInvalidApp("app_id is not the app of this access key")
    return games.start(app, body.code, now_ms).data(now_ms)


def _heartbeat(app: apps.PlayApp, body: HeartbeatBody, now_ms: int) -> dict[str, Any]:
    games.heartbeat(app.app_id, body.game_id, now_ms)
    return {}


def _batch_heartbeat(app: apps.PlayApp, body: BatchHeartbeatBody, now_ms: int) -> dict[str, Any]:
    return {"failed_game_ids": games.batch_heartbeat(app.app_id, body.game_ids, now_ms)}


def _end(app: apps.PlayApp, body: EndBody, now_ms: int) -> dict[str, Any]:
    if body.app_id != app.app_id:
        raise OpenLiveInvalidApp("app_id is not the app of this access key")
    games.end(app.app_id, body.game_id, now_ms)
    return {}


def _events(app: apps.PlayApp, body: EventsBody, now_ms: int) -> dict[str, Any]:
    game = games.alive(app.app_id, body.game_id, now_ms)
    page = stream.read(game.game_id, body.after_seq, body.limit, now_ms, allocated=game.next_seq)
    return {"events": [e.wire() for e in page.events], "next_seq": page.next_seq, "game_status": game.status}


Operation = Callable[[apps.PlayApp, Any, int], dict[str, Any]]
OPERATIONS: dict[str, tuple[type[BaseModel], Operation]] = {
    "start": (StartBody, _start),
    "heartbeat": (HeartbeatBody, _heartbeat),
    "batchHeartbeat": (BatchHeartbeatBody, _batch_heartbeat),
    "end": (EndBody, _end),
    "events": (EventsBody, _events),
}


def refusal(error: RewardgateError, api: str, request_id: str, app_id: int | None = None) -> Answer:
    """The envelope of a call that did not succeed: a refusal (HTTP 200, its Bilibili code), a storage fault
    (503, code 5000: retry) or anything else (500, code 5000). The edge renders its own errors with it too."""
    if isinstance(error, OpenLiveError):
        logger.info("open-live call refused", extra={"api": api, "code": error.bili_code, "detail": error.message,
                                                     "app_id": app_id, "request_id": request_id})
        security.metric("PlayCalls", app_id, api=api)
        security.metric("PlayErrors", app_id, code=str(error.bili_code))
        return Answer(200, envelope(error.bili_code, error.message, request_id))
    security.metric("PlayErrors", app_id, code=str(SERVER_ERROR))
    if isinstance(error, StorageUnavailable):
        logger.warning("open-live call failed on storage", extra={"api": api, "detail": error.message,
                                                                 "request_id": request_id})
        return Answer(503, envelope(SERVER_ERROR, "service unavailable; retry", request_id))
    logger.error("open-live call failed", extra={"api": api, "problem": error.code, "detail": error.message,
                                                 "request_id": request_id})
    return Answer(500, envelope(SERVER_ERROR, "internal error", request_id))


def call(api: str, headers: Mapping[str, str], raw: bytes | str | None, now_ms: int | None = None,
         request_id: str | None = None) -> Answer:
    """Serve one signed API call; `headers` must be case-insensitive (Chalice's are)."""
    now_ms = clock.now_ms() if now_ms is None else now_ms
    request_id = request_id or uuid.uuid4().hex
    raw_bytes = raw.encode() if isinstance(raw, str) else (raw or b"")
    # Metrics and logs name an app only once its signature verified: a forged key id must not mint metric
    # dimensions (each distinct one is a billed CloudWatch metric).
    app_id: int | None = None
    try:
        _check_media(headers)
        app = _authenticate(headers, raw_bytes, now_ms)
        app_id = app.app_id
        security.admit(app, api, now_ms)
        model, operation = OPERATIONS[api]
        data = operation(app, parse_open_live(model, _body(raw_bytes)), now_ms)
        security.metric("PlayCalls", app.app_id, api=api)
        return Answer(200, envelope(0, "ok", request_id, data))
    except RewardgateError as error:
        return refusal(error, api, request_id, app_id)
    except Exception:
        logger.exception("open-live call failed", extra={"api": api, "request_id": request_id})
        security.metric("PlayErrors", app_id, code=str(SERVER_ERROR))
        return Answer(500, envelope(SERVER_ERROR, "internal error", request_id))
