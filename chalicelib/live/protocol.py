"""The push protocol: JSON text frames over a WebSocket, decided here without any I/O.

Client → server (one JSON object per frame):
- `{"op": "ack", "seq": N}`: cumulative, every event up to N received (recorded; `pong` reports it);
- `{"op": "resume", "after_seq": N}`: replay everything after N, then continue live;
- `{"op": "ping"}`: answered by `pong`; keeps the connection from API Gateway's 10-minute idle close.
`resume` and `ping` count against `RG_LIVE_FRAMES_PER_MINUTE` per connection (over it: an `error` frame
`rate_limited`, nothing done), and a resume replays at most `RG_LIVE_REPLAY_MAX_EVENTS` events at once; the rest
follows by the normal push, in order.

Server → client: `{"op": "event", "game_id", "seq", "cmd", "data"}` in seq order; `{"op": "end", "game_id"}`
right after the game's LIVE_OPEN_PLATFORM_INTERACTION_END event; `{"op": "pong", ...}`;
`{"op": "error", "code", "message"}`. When several messages are due at once they travel as one frame
holding a JSON array of them, in order, each frame at most `max_bytes` (API Gateway's 32 KB frame limit):
fewer `post_to_connection` calls, the same messages.

A client that keeps the highest seq it has seen and ignores events at or below it sees each event exactly
once and no gap: every frame the server sends starts at most one past what that connection has already
been sent (the cursor invariant in `chalicelib.live.push`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.live.config import CONNECTION_LIFE_MS, IDLE_TIMEOUT_MS

ACK, RESUME, PING = "ack", "resume", "ping"
CLIENT_OPS = (ACK, RESUME, PING)
MAX_CLIENT_FRAME = 4096
INTERACTION_END = "LIVE_OPEN_PLATFORM_INTERACTION_END"
# Reconnect this long before API Gateway's 2-hour limit closes the connection, and ping at least this often.
RECONNECT_MARGIN_MS = 5 * 60 * 1000
PING_EVERY_S = IDLE_TIMEOUT_MS // 2000

# error codes of `{"op": "error"}`
BAD_FRAME = "bad_frame"
UNKNOWN_OP = "unknown_op"
INVALID_FIELD = "invalid_field"
SEQ_AHEAD = "seq_ahead"
NOT_CONNECTED = "not_connected"
RATE_LIMITED = "rate_limited"


class StreamEntry(Protocol):
    """What a frame is built from (`chalicelib.play.stream.StreamEvent`)."""

    seq: int
    cmd: str
    data: dict[str, Any]


class ProtocolError(Exception):
    """A client frame the server cannot act on; answered with an `error` frame, nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ClientOp:
    """One parsed client operation: `seq` is the ack's seq or the resume's after_seq."""

    op: str
    seq: int | None = None


def _non_negative(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    if value is None:
        raise ProtocolError(INVALID_FIELD, f"{field}: is missing")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(INVALID_FIELD, f"{field}: must be an integer >= 0")
    return value


def parse(text: str | bytes | None) -> ClientOp:
    """The operation a client frame asks for; `ProtocolError` naming what is wrong otherwise."""
    if not isinstance(text, str):
        raise ProtocolError(BAD_FRAME, "frames must be JSON text")
    if len(text.encode()) > MAX_CLIENT_FRAME:
        raise ProtocolError(BAD_FRAME, f"a client frame must be at most {MAX_CLIENT_FRAME} bytes")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(BAD_FRAME, "the frame is not JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError(BAD_FRAME, "the frame must be a JSON object")
    op = body.get("op")
    if op is None:
        raise ProtocolError(INVALID_FIELD, "op: is missing")
    if op not in CLIENT_OPS:
        raise ProtocolError(UNKNOWN_OP, f"op {json.dumps(op)[:40]} is not one of {', '.join(CLIENT_OPS)}")
    if op == ACK:
        return ClientOp(ACK, _non_negative(body, "seq"))
    if op == RESUME:
        return ClientOp(RESUME, _non_negative(body, "after_seq"))
    return ClientOp(PING)


def dumps(message: Any) -> str:
    """Compact JSON text (UTF-8 as is: the frame limit counts bytes)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def error_frame(code: str, message: str) -> str:
    """An `error` frame."""
    return dumps({"op": "error", "code": code, "message": message})


def reconnect_advice(connected_at_ms: int, now_ms: int) -> dict[str, int]:
    """When to reconnect (and resume) before API Gateway's 2-hour limit, and how often to ping."""
    left = connected_at_ms + CONNECTION_LIFE_MS - RECONNECT_MARGIN_MS - now_ms
    return {"reconnect_in_s": max(0, left // 1000), "ping_every_s": PING_EVERY_S}


def pong_frame(sent_seq: int, acked_seq: int, connected_at_ms: int, now_ms: int) -> str:
    """The answer to a ping: what this connection has been sent and has acked, and the reconnect advice."""
    return dumps({"op": "pong", "sent_seq": sent_seq, "acked_seq": acked_seq,
                  **reconnect_advice(connected_at_ms, now_ms)})


def event_message(game_id: str, event: StreamEntry) -> dict[str, Any]:
    """The `event` message of one stream entry."""
    return {"op": "event", "game_id": game_id, "seq": event.seq, "cmd": event.cmd, "data": event.data}


def end_message(game_id: str) -> dict[str, Any]:
    """The `end` message, sent right after the game's end event."""
    return {"op": "end", "game_id": game_id}


@dataclass(frozen=True)
class Frame:
    """One WebSocket message to post: its text, and the last seq it carries."""

    text: str
    last_seq: int
    events: int


def frames(game_id: str, events: Sequence[StreamEntry], max_bytes: int) -> list[Frame]:
    """The frames that carry `events` (consecutive seqs, oldest first), each at most `max_bytes` when possible.

    Consecutive messages share a frame (a JSON array) while it fits; one message alone is sent as an object.
    A single message larger than `max_bytes` goes alone (ingest caps an event's data at 16 KB, well below).
    """
    items: list[tuple[str, int, int]] = []  # (message text, seq it belongs to, 1 for an event message)
    for event in events:
        items.append((dumps(event_message(game_id, event)), event.seq, 1))
        if event.cmd == INTERACTION_END:
            items.append((dumps(end_message(game_id)), event.seq, 0))
    packed: list[Frame] = []
    group: list[tuple[str, int, int]] = []
    size = 0
    for item in items:
        length = len(item[0].encode())
        # an array of n messages: their bytes, n - 1 commas, two brackets
        if group and size + length + len(group) + 2 > max_bytes:
            packed.append(_frame(group))
            group, size = [], 0
        group.append(item)
        size += length
    if group:
        packed.append(_frame(group))
    return packed


def _frame(group: list[tuple[str, int, int]]) -> Frame:
    text = group[0][0] if len(group) == 1 else "[" + ",".join(t for t, _, _ in group) + "]"
    return Frame(text, group[-1][1], sum(e for _, _, e in group))
