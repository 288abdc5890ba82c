"""Drivers for the live-push tests: a fake `@connections`, the handlers with API Gateway's WebSocket events, the
`live` queue drained through the real worker, and a local stack's WebSocket side in-process with a real client.

The client side here (`Receiver`) parses frames on its own (one object, or a JSON array of them) and keeps
what a careful client keeps: the highest contiguous seq, every seq received in order, and any gap seen.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from chalicelib.live import gateway
from rewardgate_ops.lambda_events import LocalLambdaContext, websocket_event
from tests.sqs_support import take_messages


class FakeConnections:
    """`@connections` as a dict: posts recorded per connection; chosen connections answer Gone."""

    def __init__(self) -> None:
        self.posts: dict[str, list[str]] = defaultdict(list)
        self.gone: set[str] = set()
        self.failing: set[str] = set()
        self.closed: list[str] = []
        self.lock = threading.Lock()

    def post(self, connection_id: str, text: str) -> None:
        if connection_id in self.gone:
            raise gateway.Gone(connection_id)
        if connection_id in self.failing:
            raise gateway.PostFailed(f"{connection_id}: LimitExceededException")
        with self.lock:
            self.posts[connection_id].append(text)

    def close(self, connection_id: str) -> None:
        self.closed.append(connection_id)

    def messages(self, connection_id: str) -> list[dict[str, Any]]:
        """Every message posted to a connection, frames unpacked, in order."""
        return [m for text in self.posts[connection_id] for m in unpack(text)]

    def events(self, connection_id: str) -> list[int]:
        return [m["seq"] for m in self.messages(connection_id) if m["op"] == "event"]


def unpack(text: str) -> list[dict[str, Any]]:
    """The messages of one frame: a JSON object, or a JSON array of them."""
    value = json.loads(text)
    return value if isinstance(value, list) else [value]


def ws_handler(name: str) -> Any:
    """The wrapped handler API Gateway's Lambda would call (`app.on_ws_connect`, ...)."""
    import app

    return getattr(app, name)


def connect(connection_id: str, auth_body: str | None, **query: str) -> dict[str, Any]:
    """Drive `$connect` with API Gateway's CONNECT event."""
    params = dict(query)
    if auth_body is not None:
        params["auth_body"] = auth_body
    event = websocket_event("$connect", connection_id, query=params or None, headers={"Host": "ws.example"})
    return ws_handler("on_ws_connect")(event, LocalLambdaContext("websocket_connect", 29))


def message(connection_id: str, body: Any) -> dict[str, Any]:
    """Drive `$default` with API Gateway's MESSAGE event (`body` as given, or JSON of a dict)."""
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    event = websocket_event("$default", connection_id, body=text)
    return ws_handler("on_ws_message")(event, LocalLambdaContext("websocket_message", 29))


def disconnect(connection_id: str) -> dict[str, Any]:
    """Drive `$disconnect` with API Gateway's DISCONNECT event."""
    event = websocket_event("$disconnect", connection_id, close_code=1001, close_reason="going away")
    return ws_handler("on_ws_disconnect")(event, LocalLambdaContext("websocket_disconnect", 29))


def new_connection_id() -> str:
    return uuid.uuid4().hex[:14] + "="


def drain_live(max_rounds: int = 50) -> int:
    """Deliver the `live` queue through the real worker until it is empty (delayed messages included)."""
    import boto3

    from chalicelib.clients import queue_url, sqs
    from chalicelib.queues import LIVE
    from chalicelib.routes.live import live_push
    from rewardgate_ops.lambda_events import deliver_batch

    url = queue_url(LIVE.name)
    arn = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    delivered = 0
    for _ in range(max_rounds):
        got = deliver_batch(sqs(), url, arn, live_push, LIVE.batch_size, timeout_s=30, function_name="live_push",
                            failure_visibility_s=0)
        delivered += got.received
        if got.received:
            continue
        attributes = boto3.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
                                          "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        if not any(int(v) for v in attributes.values()):
            return delivered
        time.sleep(0.2)  # a delayed message (a retry's back-off) becomes visible
    return delivered


def purge_live() -> None:
    """Drop what is visible on the `live` queue (what other tests left)."""
    from chalicelib.clients import queue_url
    from chalicelib.queues import LIVE

    take_messages(queue_url(LIVE.name))


# --- a real WebSocket client -------------------------------------------------------------------------


@dataclass
class Receiver:
    """A client's view of one connection: messages in arrival order, and what a seq-deduping client keeps."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    last_seq: int = 0
    seqs: list[int] = field(default_factory=list)  # accepted, in order
    duplicates: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (expected, got)
    ended: bool = False

    def take(self, text: str) -> None:
        for m in unpack(text):
            self.messages.append(m)
            if m.get("op") == "end":
                self.ended = True
            if m.get("op") != "event":
                continue
            if m["seq"] <= self.last_seq:
                self.duplicates += 1
            elif m["seq"] == self.last_seq + 1:
                self.seqs.append(m["seq"])
                self.last_seq = m["seq"]
            else:
                self.gaps.append((self.last_seq + 1, m["seq"]))


class WsClient:
    """A `websockets` client connection with a receiving thread feeding a `Receiver`."""

    def __init__(self, url: str, receiver: Receiver | None = None) -> None:
        from websockets.sync.client import connect as ws_connect

        self.receiver = receiver or Receiver()
        self.conn = ws_connect(url, open_timeout=10, close_timeout=2, legacy=True)
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for text in self.conn:
                with self.cond:
                    self.receiver.take(text)
                    self.cond.notify_all()
        except ConnectionClosed:
            pass

    def send(self, value: dict[str, Any]) -> None:
        self.conn.send(json.dumps(value))

    def wait_for(self, predicate: Any, timeout_s: float = 20) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate(self.receiver):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def close(self) -> None:
        self.conn.close()
        self.thread.join(timeout=5)


@contextmanager
def local_websocket_stack(frame_bytes: int | None = None) -> Iterator[dict[str, Any]]:
    """The local stack's API process in-process: REST + WebSocket API + `@connections`, and the `live_push`
    worker polling its queue (the event-source loop), as `rewardgate local up` runs them."""
    import os

    import app
    from chalicelib import process_state
    from chalicelib.clients import sqs
    from rewardgate_ops.event_source import start_worker_thread, worker_for
    from rewardgate_ops.local_api import make_server
    from rewardgate_ops.local_ws import WebSocketGateway, app_handlers
    from rewardgate_ops.services import free_port

    ws = WebSocketGateway(app_handlers(app.app))
    ws.start("127.0.0.1", 0)
    port = free_port()
    server = make_server(app.app, "127.0.0.1", port, ws_gateway=ws)
    http = threading.Thread(target=server.server.serve_forever, daemon=True)
    http.start()
    saved = {k: os.environ.get(k) for k in ("RG_LIVE_CONNECTIONS_URL", "RG_PLAY_WSS_LINKS", "RG_LIVE_MAX_FRAME_BYTES")}
    os.environ["RG_LIVE_CONNECTIONS_URL"] = f"http://127.0.0.1:{port}"
    os.environ["RG_PLAY_WSS_LINKS"] = f"ws://127.0.0.1:{ws.port}"
    if frame_bytes:
        os.environ["RG_LIVE_MAX_FRAME_BYTES"] = str(frame_bytes)
    process_state.reset()
    purge_live()
    stop = threading.Event()
    config = next(e for e in app.app.event_sources if e.name == "live_push")
    worker = worker_for(config, sqs())
    worker.poll_wait_s = 1
    thread = start_worker_thread(worker, sqs(), stop)
    try:
        yield {"api": f"http://127.0.0.1:{port}", "ws": f"ws://127.0.0.1:{ws.port}", "gateway": ws}
    finally:
        stop.set()
        thread.join(timeout=10)
        ws.stop()
        server.server.shutdown()
        server.server.server_close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        process_state.reset()


def install_fake_connections(monkeypatch: Any) -> FakeConnections:
    """Posts and closes to WebSocket connections recorded by a `FakeConnections` instead of sent; a new
    connection's first push not delayed (no handshake to wait for under a simulated clock); the live tables
    purged."""
    from chalicelib.live import gateway
    from chalicelib.routes import live as live_routes

    fake = FakeConnections()
    monkeypatch.setattr(gateway, "post", fake.post)
    monkeypatch.setattr(gateway, "close", fake.close)
    monkeypatch.setattr(live_routes, "CONNECT_PUSH_DELAY_S", 0)
    purge_live()
    return fake
