"""The `@connections` adapter: post to, or close, a WebSocket connection held by API Gateway.

A boto3 `apigatewaymanagementapi` client, built lazily for `RG_LIVE_CONNECTIONS_URL` (in AWS the WebSocket
API's `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`, set by the deploy template; locally the
local stack's emulation). Chalice's `app.websocket_api.send` wraps the same call, but it builds its endpoint
as `https://{domain}/{stage}` only (the local emulation speaks plain HTTP) and its client keeps boto3's
default timeouts (60 s) and retries: one slow post would hold up every other connection of a push. Here a
post has a short timeout and one retry, and a failure is that connection's alone.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.live.config import live_settings
from chalicelib.settings import settings

_lock = threading.Lock()
_client: Any = None


class Gone(Exception):
    """The connection is closed (API Gateway's GoneException, HTTP 410)."""


class PostFailed(Exception):
    """A post did not go through (throttled, timed out, API Gateway unavailable); worth a later retry."""


def client() -> Any:
    """The shared `apigatewaymanagementapi` client (built on first use)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                timeout = live_settings().post_timeout_s
                _client = boto3.session.Session().client(
                    "apigatewaymanagementapi", region_name=settings().region,
                    endpoint_url=live_settings().connections_url,
                    config=Config(connect_timeout=timeout, read_timeout=timeout, max_pool_connections=64,
                                  retries={"mode": "standard", "max_attempts": 2}))
    return _client


def reset() -> None:
    """Forget the client (after the endpoint moved: tests, the local stack)."""
    global _client
    with _lock:
        _client = None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def post(connection_id: str, text: str) -> None:
    """Send one text message to a connection; `Gone` if it is closed, `PostFailed` for anything transient."""
    try:
        client().post_to_connection(ConnectionId=connection_id, Data=text.encode())
    except ClientError as exc:
        if _code(exc) == "GoneException" or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 410:
            raise Gone(connection_id) from exc
        raise PostFailed(f"{connection_id}: {_code(exc) or 'error'}") from exc
    except BotoCoreError as exc:
        raise PostFailed(f"{connection_id}: {type(exc).__name__}") from exc


def close(connection_id: str) -> None:
    """Close a connection (a closed one is fine)."""
    try:
        client().delete_connection(ConnectionId=connection_id)
    except ClientError as exc:
        if _code(exc) != "GoneException":
            raise PostFailed(f"{connection_id}: {_code(exc) or 'error'}") from exc
    except BotoCoreError as exc:
        raise PostFailed(f"{connection_id}: {type(exc).__name__}") from exc
