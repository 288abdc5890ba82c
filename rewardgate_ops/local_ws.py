"""The local stack's WebSocket API: API Gateway's part, emulated, in front of the same Chalice handlers.

`chalice local` has no WebSocket support, so the local API server process runs this beside it:

- a WebSocket server (the `websockets` library's threaded server) on its own port: each upgrade request is
  handed to the app's `$connect` handler as API Gateway's CONNECT event (query string, headers, a fresh
  connection id) *before* the handshake completes; a non-2xx answer refuses the handshake with that status
  and nothing else happens. Each text frame then goes to `$default` as a MESSAGE event (the handler's
  answer is not sent back: as in API Gateway without route responses, answers travel over
  `@connections`); a binary frame closes the connection with 1003, as API Gateway does; the close goes to
  `$disconnect`. A handler that raises gets the client API Gateway's `{"message": "Internal server error"}`.
- the `@connections` management API (`POST` / `DELETE` / `GET /@connections/{id}`), served by the local API
  server's HTTP port (`mount` it): a post to an open connection sends a text frame; to an unknown, closed or
  not yet open one (its `$connect` still running) it answers 410 `GoneException`, as API Gateway does.
  `RG_LIVE_CONNECTIONS_URL` points boto3's `apigatewaymanagementapi` client at it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from rewardgate_ops.lambda_events import LocalLambdaContext, websocket_event

log = logging.getLogger("rewardgate_ops.local")

Handler = Callable[[dict[str, Any], Any], Any]
ROUTES = ("$connect", "$default", "$disconnect")
HANDLER_TIMEOUT_S = 29
# API Gateway's own limits: frames and client messages.
MAX_MESSAGE_BYTES = 128 * 1024


def new_connection_id() -> str:
    """A connection id shaped like API Gateway's (base64 of 10 random bytes)."""
    return base64.b64encode(os.urandom(10)).decode()


@dataclass(frozen=True)
class ManagementAnswer:
    """An `@connections` answer: HTTP status, headers and body."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


def _gone(connection_id: str) -> ManagementAnswer:
    body = json.dumps({"message": f"connection {connection_id} is gone"}).encode()
    return ManagementAnswer(410, body, (("Content-Type", "application/json"), ("x-amzn-ErrorType", "GoneException")))


class WebSocketGateway:
    """One emulated WebSocket API: a WebSocket server plus its `@connections` endpoint."""

    def __init__(self, handlers: dict[str, Handler], stage: str = "local") -> None:
        missing = [r for r in ROUTES if r not in handlers]
        if missing:
            raise ValueError(f"the app has no WebSocket handler for {', '.join(missing)}")
        self.handlers = handlers
        self.stage = stage
        self._open: dict[str, tuple[ServerConnection, int]] = {}
        self._lock = threading.Lock()
        self._server: Server | None = None
        self.port = 0

    # --- the WebSocket side -------------------------------------------------------------------------

    def start(self, host: str, port: int) -> threading.Thread:
        """Listen on host:port (0: any free port) in a daemon thread; returns the thread."""
        self._server = serve(self._session, host, port, process_request=self._connect,
                             max_size=MAX_MESSAGE_BYTES, compression=None)
        self.port = self._server.socket.getsockname()[1]
        thread = threading.Thread(target=self._server.serve_forever, name="websocket-api", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.shutdown()

    def _invoke(self, route: str, event: dict[str, Any]) -> Any:
        name = {"$connect": "websocket_connect", "$default": "websocket_message"}.get(route, "websocket_disconnect")
        return self.handlers[route](event, LocalLambdaContext(name, HANDLER_TIMEOUT_S))

    def _connect(self, connection: ServerConnection, request: Any) -> Any:
        """`$connect`, before the handshake completes: refuse with the handler's status, or let it proceed."""
        from urllib.parse import parse_qsl, urlsplit

        connection_id = new_connection_id()
        connection.rg_connection_id = connection_id  # type: ignore[attr-defined]
        connection.rg_connected_at = int(time.time() * 1000)  # type: ignore[attr-defined]
        query = dict(parse_qsl(urlsplit(request.path).query, keep_blank_values=True))
        headers = {k: v for k, v in request.headers.raw_items()}
        event = websocket_event("$connect", connection_id, stage=self.stage, query=query or None, headers=headers,
                                domain=headers.get("Host", "127.0.0.1"),
                                connected_at_ms=connection.rg_connected_at)  # type: ignore[attr-defined]
        try:
            answer = self._invoke("$connect", event) or {}
        except Exception:
            log.exception("$connect handler failed")
            return connection.respond(500, "Internal server error\n")
        status = int(answer.get("statusCode", 200)) if isinstance(answer, dict) else 200
        if not 200 <= status < 300:
            body = answer.get("body") or "Forbidden"
            return connection.respond(status, body if body.endswith("\n") else body + "\n")
        return None

    def _session(self, connection: ServerConnection) -> None:
        """An open connection: each text frame to `$default`; the close to `$disconnect`."""
        connection_id: str = connection.rg_connection_id  # type: ignore[attr-defined]
        connected_at: int = connection.rg_connected_at  # type: ignore[attr-defined]
        with self._lock:
            self._open[connection_id] = (connection, connected_at)
        code, reason = 1000, ""
        try:
            for message in connection:
                if not isinstance(message, str):
                    code, reason = 1003, "binary frames are not supported"
                    connection.close(code, reason)
                    break
                event = websocket_event("$default", connection_id, stage=self.stage, body=message,
                                        connected_at_ms=connected_at)
                try:
                    self._invoke("$default", event)
                except Exception:
                    log.exception("$default handler failed")
                    connection.send(json.dumps({"message": "Internal server error", "connectionId": connection_id}))
        except ConnectionClosed as closed:
            if closed.rcvd is not None:
                code, reason = closed.rcvd.code, closed.rcvd.reason
        finally:
            with self._lock:
                self._open.pop(connection_id, None)
            try:
                self._invoke("$disconnect", websocket_event("$disconnect", connection_id, stage=self.stage,
                                                            connected_at_ms=connected_at, close_code=code,
                                                            close_reason=reason))
            except Exception:
                log.exception("$disconnect handler failed")

    # --- the @connections side ----------------------------------------------------------------------

    def open_connections(self) -> int:
        """How many connections are open now."""
        with self._lock:
            return len(self._open)

    def manage(self, method: str, connection_id: str, body: bytes) -> ManagementAnswer:
        """One `@connections` call: POST (send a text frame), DELETE (close), GET (describe)."""
        with self._lock:
            found = self._open.get(connection_id)
        if found is None:
            return _gone(connection_id)
        connection, connected_at = found
        try:
            if method == "POST":
                connection.send(body.decode())
                return ManagementAnswer(200)
            if method == "DELETE":
                connection.close(1000, "closed by the server")
                return ManagementAnswer(204)
        except ConnectionClosed:
            return _gone(connection_id)
        if method == "GET":
            at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(connected_at / 1000))
            return ManagementAnswer(200, json.dumps({"connectedAt": at, "lastActiveAt": at,
                                                     "identity": {"sourceIp": "127.0.0.1"}}).encode(),
                                    (("Content-Type", "application/json"),))
        return ManagementAnswer(405, b'{"message":"method not allowed"}', (("Content-Type", "application/json"),))


def app_handlers(app: Any) -> dict[str, Handler]:
    """The Lambda entry points of an app's WebSocket handlers (what API Gateway would invoke)."""
    from rewardgate_ops.event_source import resolve_handler

    return {route: resolve_handler(config.handler_string) for route, config in app.websocket_handlers.items()}
