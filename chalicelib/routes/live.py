"""Live push's edge: the WebSocket API's `$connect`, `$default` and `$disconnect` handlers, and the push worker.

The handlers are plain functions here and are registered on the app by `register(app)`, called from app.py:
Chalice wraps WebSocket handlers (Lambda event -> `WebsocketEvent`, `websocket_api` configured, a
`{"statusCode"}` answer) only when they are registered on the app itself; a blueprint's would stay raw
functions. The Lambda handler string Chalice generates is `app.<function name>`, so app.py binds the three
wrapped handlers to these same names.

The `live_push` worker serves the `live` queue (chalicelib/live/push.py); it is on the blueprint like every
other worker.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import defaultdict
from typing import Any

from chalice import Blueprint, Chalice

from chalicelib import clock
from chalicelib import deadline as deadline_scope
from chalicelib.errors import RewardgateError
from chalicelib.live import connections, gateway, protocol, push
from chalicelib.live.config import live_settings
from chalicelib.live.notify import PushMessage, send
from chalicelib.observability import count, logger, metric_scope
from chalicelib.play import bans, games, security
from chalicelib.play.codes import InvalidGameToken
from chalicelib.play.lifecycle import RUNNING
from chalicelib.queues import LIVE

bp = Blueprint(__name__)

OK = {"statusCode": 200}
# A push made by a WebSocket handler (resume, ping) stops this long before the function's time is up and
# hands the rest to the worker.
HANDLER_MARGIN_MS = 3000
# The first push to a new connection waits this long: API Gateway completes the handshake only after
# `$connect` answers, and answers Gone to a post made before.
CONNECT_PUSH_DELAY_S = 1


def _deadline_ms(context: Any, default_ms: int = 10_000) -> int:
    remaining = context.get_remaining_time_in_millis() if hasattr(context, "get_remaining_time_in_millis") \
        else default_ms
    return clock.now_ms() + max(0, remaining - HANDLER_MARGIN_MS)


def _access(route: str, connection_id: str, started: float, status: int, **extra: Any) -> None:
    logger.info("websocket", extra={"ws": {"route": route, "connection_id": connection_id, "status": status,
                                           "latency_ms": round((time.monotonic() - started) * 1000, 2), **extra}})


def _refuse(connection_id: str, started: float, status: int, message: str, code: str | None = None) -> dict[str, Any]:
    count("LiveConnectRefused")
    code = code or ("unauthorized" if status == 401 else "invalid_field")
    _access("$connect", connection_id, started, status, problem=code)
    return {"statusCode": status, "body": json.dumps({"code": code, "message": message})}


def on_ws_connect(event: Any) -> dict[str, Any]:
    """`$connect`: a valid, unexpired `auth_body` registers the connection for its game; anything else is refused
    (401, nothing written). `after_seq` (optional) starts the connection after that seq instead of at seq 1."""
    started = time.monotonic()
    with metric_scope(), deadline_scope.bounded(getattr(event, "context", None)):
        try:
            return _connect(event, started)
        except RewardgateError as error:
            logger.warning("websocket connect failed", extra={"connection_id": event.connection_id,
                                                              "problem": error.code})
            _access("$connect", event.connection_id, started, 503, problem=error.code)
            return {"statusCode": 503, "body": json.dumps({"code": "unavailable",
                                                           "message": "the service is unavailable; retry"})}


def _connect(event: Any, started: float) -> dict[str, Any]:
    """Refuse or register one connection (the handler's body, under its deadline)."""
    query = event.to_dict().get("queryStringParameters") or {}
    token = query.get("auth_body")
    if not token:
        return _refuse(event.connection_id, started, 401, "auth_body is missing")
    after = query.get("after_seq", "0")
    if not (after.isascii() and after.isdigit()) or len(after) > 15:  # not "²", which int refuses
        return _refuse(event.connection_id, started, 400, "after_seq must be an integer >= 0")
    try:
        claims = games.verify_auth_body(token)
    except InvalidGameToken:
        return _refuse(event.connection_id, started, 401, "auth_body is forged or expired: call /v2/app/start "
                                                           "for a fresh one")
    now_ms = clock.now_ms()
    game = games.get_game(claims["game_id"])
    if game is None or game.status != RUNNING or game.expired(now_ms):
        return _refuse(event.connection_id, started, 403, f"game {claims['game_id']} has ended: pull its events "
                       "with /v2/app/events", code="game_ended")
    if bans.banned(security.ban_state(game.app_id), now_ms):
        return _refuse(event.connection_id, started, 403, f"app {game.app_id} is banned (security centre)",
                       code="app_banned")
    cap = live_settings().max_connections_per_game
    conn = connections.register(event.connection_id, game.game_id, game.app_id, int(after), now_ms, cap)
    if conn is None:
        return _refuse(event.connection_id, started, 429, f"game {game.game_id} already has {cap} connections "
                       "(the limit)", code="too_many_connections")
    # Whatever the game already holds (the offline inbox) follows once the handshake has completed.
    send([PushMessage(conn.game_id, None, [conn.connection_id], delay_s=CONNECT_PUSH_DELAY_S)])
    count("LiveConnections")
    _access("$connect", event.connection_id, started, 200, game_id=conn.game_id, app_id=conn.app_id)
    return OK


def _post(connection_id: str, text: str) -> None:
    try:
        gateway.post(connection_id, text)
    except (gateway.Gone, gateway.PostFailed):
        logger.info("websocket answer not delivered", extra={"connection_id": connection_id})


def _head(game_id: str) -> int:
    game = games.get_game(game_id)
    return game.next_seq if game is not None else 0


def _serve(connection_id: str, body: Any, context: Any) -> str:
    """What one client frame does; returns the op (for the access line)."""
    try:
        op = protocol.parse(body)
    except protocol.ProtocolError as error:
        _post(connection_id, protocol.error_frame(error.code, error.message))
        return f"refused:{error.code}"
    conn = connections.get(connection_id)
    if conn is None:
        _post(connection_id, protocol.error_frame(protocol.NOT_CONNECTED, "this connection is no longer registered: "
                                                  "connect again with a fresh auth_body and resume"))
        with contextlib.suppress(gateway.PostFailed):
            gateway.close(connection_id)
        return f"{op.op}:not_connected"
    if op.op == protocol.ACK:
        assert op.seq is not None
        if op.seq > conn.sent_seq:
            _post(connection_id, protocol.error_frame(
                protocol.SEQ_AHEAD, f"ack {op.seq} is beyond the last seq sent to this connection ({conn.sent_seq})"))
            return "ack:refused"
        connections.ack(connection_id, op.seq)
        return "ack"
    settings = live_settings()
    if not connections.admit_frame(connection_id, clock.now_ms(), settings.frames_per_minute):
        _post(connection_id, protocol.error_frame(protocol.RATE_LIMITED, f"at most {settings.frames_per_minute} "
                                                  "resume or ping frames a minute per connection; retry later"))
        return f"{op.op}:rate_limited"
    head = _head(conn.game_id)
    if op.op == protocol.RESUME:
        assert op.seq is not None
        if op.seq > head:
            _post(connection_id, protocol.error_frame(
                protocol.SEQ_AHEAD, f"after_seq {op.seq} is beyond the game's last seq ({head})"))
            return "resume:refused"
        if connections.resume(connection_id, op.seq) is not None:
            push.push(conn.game_id, [connection_id], head, _deadline_ms(context),
                      max_events=settings.replay_max_events)
        return "resume"
    _post(connection_id, protocol.pong_frame(conn.sent_seq, conn.acked_seq, conn.connected_at_ms, clock.now_ms()))
    if conn.sent_seq < head:  # a push this connection missed (a lost queue message): catch up now
        push.push(conn.game_id, [connection_id], head, _deadline_ms(context), max_events=settings.replay_max_events)
    return "ping"


def on_ws_message(event: Any) -> dict[str, Any]:
    """`$default`: one client frame (`ack`, `resume`, `ping`); answers go back as frames over `@connections`."""
    started = time.monotonic()
    with metric_scope(), deadline_scope.bounded(getattr(event, "context", None)):
        try:
            op = _serve(event.connection_id, event.body if isinstance(event.body, str) else None,
                        getattr(event, "context", None))
            _access("$default", event.connection_id, started, 200, op=op)
        except RewardgateError as error:
            logger.warning("websocket frame failed", extra={"connection_id": event.connection_id,
                                                            "problem": error.code})
            _post(event.connection_id, protocol.error_frame("unavailable", "the service is unavailable; retry"))
            _access("$default", event.connection_id, started, 503, problem=error.code)
    return OK


def on_ws_disconnect(event: Any) -> dict[str, Any]:
    """`$disconnect`: forget the connection (its game's stream keeps everything for a later resume)."""
    started = time.monotonic()
    connections.remove(event.connection_id, None)
    _access("$disconnect", event.connection_id, started, 200)
    return OK


def register(app: Chalice) -> tuple[Any, Any, Any]:
    """Register the WebSocket handlers on `app`; returns the wrapped `(on_ws_connect, on_ws_message,
    on_ws_disconnect)` for app.py to bind under those names (Chalice's Lambda handler strings)."""
    app.experimental_feature_flags.update({"WEBSOCKETS"})
    return (app.on_ws_connect()(on_ws_connect), app.on_ws_message()(on_ws_message),
            app.on_ws_disconnect()(on_ws_disconnect))


@bp.on_sqs_message(queue=LIVE.name, batch_size=LIVE.batch_size, name="live_push")
def live_push(event: Any) -> dict[str, Any]:
    """Serve push messages; a game's several fan-outs in one batch are served once (with the highest head)."""
    raw = event.to_dict() if hasattr(event, "to_dict") else event
    deadline = _deadline_ms(getattr(event, "context", None), default_ms=25_000)
    groups: dict[tuple[str, tuple[str, ...] | None], list[tuple[str, PushMessage]]] = defaultdict(list)
    for record in raw.get("Records", []):
        try:
            message = PushMessage.parse(record["body"])
        except (ValueError, KeyError, TypeError):
            logger.error("not a live push message: dropped", extra={"message_id": record.get("messageId")})
            continue
        key = (message.game_id, None if message.connections is None else tuple(message.connections))
        groups[key].append((record["messageId"], message))
    failures: list[dict[str, str]] = []
    with metric_scope(), deadline_scope.bounded(getattr(event, "context", None)):
        for (game_id, ids), members in groups.items():
            heads = [m.head for _, m in members]
            head = None if None in heads else max(h for h in heads if h is not None)
            message = PushMessage(game_id, head, None if ids is None else list(ids),
                                  attempt=max(m.attempt for _, m in members))
            try:
                report = push.handle(message, deadline)
            except Exception:
                logger.exception("live push failed; the message comes back", extra={"game_id": game_id})
                failures += [{"itemIdentifier": message_id} for message_id, _ in members]
                continue
            count("LiveEventsPushed", report.events)
            count("LiveFramesPosted", report.frames)
            count("LiveConnectionsGone", report.gone)
            count("LivePushRetried", report.retried)
            count("LivePushAbandoned", report.abandoned)
    return {"batchItemFailures": failures}
