"""Push messages on the `live` queue: what the play slice calls once events are stored, and what workers chain.

A message names a game and, optionally, the connections to push (none: every connection following the game,
the fan-out) with the stream's head when known. Sending is best effort and never fails the caller: the events
are already stored, and a connection that missed this message catches up on the next one, on its next `ping`
or `resume`, or by pulling (`/v2/app/events`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.clients import queue_url, sqs
from chalicelib.observability import count, logger
from chalicelib.queues import LIVE

MAX_DELAY_S = 900  # SQS's per-message delay limit


@dataclass(frozen=True)
class PushMessage:
    """Push the events of `game_id` after each connection's cursor (up to `head` if known)."""

    game_id: str
    head: int | None = None
    connections: list[str] | None = None  # None: every connection of the game (fan-out)
    attempt: int = 0
    delay_s: int = field(default=0, compare=False)

    def body(self) -> str:
        """The SQS message body."""
        return json.dumps({"v": 1, "game_id": self.game_id, "head": self.head, "connections": self.connections,
                           "attempt": self.attempt}, separators=(",", ":"))

    @classmethod
    def parse(cls, body: str) -> PushMessage:
        """A message from its body; ValueError for one that is not a push message."""
        value = json.loads(body)
        if not isinstance(value, dict) or value.get("v") != 1 or not isinstance(value.get("game_id"), str):
            raise ValueError("not a live push message")
        connections = value.get("connections")
        if connections is not None and not (isinstance(connections, list)
                                            and all(isinstance(c, str) for c in connections)):
            raise ValueError("connections must be a list of ids")
        head = value.get("head")
        return cls(game_id=value["game_id"], head=head if isinstance(head, int) else None,
                   connections=connections, attempt=int(value.get("attempt") or 0))


def send(messages: list[PushMessage]) -> int:
    """Send messages (SendMessageBatch, ten a call); returns how many could not be sent (logged, counted)."""
    failed = 0
    for start in range(0, len(messages), 10):
        chunk = messages[start:start + 10]
        entries = [{"Id": str(i), "MessageBody": m.body(), **({"DelaySeconds": min(m.delay_s, MAX_DELAY_S)}
                                                               if m.delay_s else {})}
                   for i, m in enumerate(chunk)]
        try:
            answer = sqs().send_message_batch(QueueUrl=queue_url(LIVE.name), Entries=entries)
            failed += len(answer.get("Failed", []))
        except (BotoCoreError, ClientError):
            logger.exception("live push messages could not be sent", extra={"messages": len(chunk)})
            failed += len(chunk)
    if failed:
        count("LivePushSendFailed", failed)
    return failed


def notify(game_id: str, head: int | None) -> None:
    """Events up to `head` are stored in `game_id`'s stream: push them to every connection following it."""
    send([PushMessage(game_id, head)])
