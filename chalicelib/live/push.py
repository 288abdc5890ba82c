"""Pushing a game's stored events to the WebSocket connections that follow it.

**Order comes from a cursor per connection, not from the queue.** Each connection item holds `sent_seq`:
every seq up to it has been posted to that connection. A push reads the game's stream (strongly consistent,
stopping before any seq not yet written) after the cursor, posts frames in seq order, then moves the cursor
forward with a conditional write. So every frame starts at most one past what the connection already got,
whichever worker sends it, however often SQS delivers the message, in whatever order: two workers racing on
one connection send duplicates (the client drops seqs it has), never a gap. A FIFO queue grouped by game
would give order too, but only while one worker at a time serves a game: one slow or failing connection
would hold up the whole group (FIFO blocks a group behind its failed message), fan-out could not be spread
over workers, retries could not be delayed per connection, and resume would still need a cursor. The cursor
costs one conditional write per connection and push (not per event: several events share a push).

**Store before push**: only the stream is read, and events reach it before anything is sent to the queue.
**Nothing is lost**: a connection that is gone (`GoneException`) is removed, and the stream, kept at least
24 h, is its offline inbox: the client reconnects and sends `resume`; `/v2/app/events` still pulls.
**A slow or dead connection delays no other**: posts to different connections run in parallel with a short
timeout; a failed one is retried later in a message of its own (backing off), a far-behind one is caught up
in a message of its own, and a fan-out over more than `RG_LIVE_CHUNK` connections is split into messages,
one per chunk, spread over the workers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from chalicelib import clock, deadline
from chalicelib.live import connections, gateway, notify, protocol
from chalicelib.live.config import live_settings
from chalicelib.live.connections import Connection
from chalicelib.live.notify import PushMessage
from chalicelib.observability import logger
from chalicelib.play import stream

READ_LIMIT = 500  # events read per round (one stream query, shared by the connections of a push)
LAG_SPLIT = 200  # a connection this far behind the head is caught up in a message of its own
MAX_ATTEMPTS = 6  # a connection whose posts keep failing is retried this often (1, 2, 4, 8, 16 s apart)
# API Gateway answers Gone for a connection whose `$connect` has not completed yet: not a reason to drop it.
GONE_GRACE_MS = 10_000
PARALLEL = 16

DONE, GONE, RETRY, SUPERSEDED = "done", "gone", "retry", "superseded"


class PushIncomplete(Exception):
    """Follow-up push messages could not be sent; the message that asked for them must be redelivered."""


@dataclass
class Report:
    """What one push did."""

    connections: int = 0
    frames: int = 0
    events: int = 0
    gone: int = 0
    retried: int = 0
    abandoned: int = 0
    stale: int = 0
    chunks: int = 0
    split: int = 0
    deferred: int = 0

    def merge(self, other: Report) -> None:
        """Add another report's counts to this one."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class _Outcome:
    kind: str
    sent_seq: int
    frames: int = 0
    events: int = 0


@dataclass
class _Round:
    pending: list[Connection] = field(default_factory=list)
    retry: list[Connection] = field(default_factory=list)


def handle(message: PushMessage, deadline_ms: int) -> Report:
    """Serve one push message (a fan-out, or a list of connections) before `deadline_ms`."""
    if message.connections is None:
        return fan_out(message.game_id, message.head, deadline_ms)
    return push(message.game_id, message.connections, message.head, deadline_ms, attempt=message.attempt)


def _send(messages: list[PushMessage]) -> None:
    if messages and notify.send(messages):
        raise PushIncomplete(f"{len(messages)} follow-up push message(s) could not all be sent")


def fan_out(game_id: str, head: int | None, deadline_ms: int) -> Report:
    """Push to every connection following the game: here if they fit one chunk, else one message per chunk."""
    ids = connections.members(game_id)
    chunk = live_settings().chunk
    if len(ids) <= chunk:
        return push(game_id, ids, head, deadline_ms)
    groups = [ids[i:i + chunk] for i in range(0, len(ids), chunk)]
    _send([PushMessage(game_id, head, group) for group in groups])
    return Report(chunks=len(groups))


def push(game_id: str, connection_ids: list[str], head: int | None, deadline_ms: int, attempt: int = 0,
         max_events: int | None = None) -> Report:
    """Post each connection the events after its cursor, oldest first, and move its cursor.

    `max_events` bounds what this call posts (a WebSocket handler's replay): once reached, the rest is handed
    to the `live` queue's worker in one message, which carries on from the cursor, in order.
    """
    report = Report()
    if not connection_ids:
        return report
    rows = connections.get_many(connection_ids)
    for missing in [c for c in dict.fromkeys(connection_ids) if c not in rows]:
        connections.drop_member(game_id, missing)  # its connection item is gone: a half-removed connection
        report.stale += 1
    following = [rows[c] for c in dict.fromkeys(connection_ids) if c in rows and rows[c].game_id == game_id]
    report.connections = len(following)
    if head is not None and len(following) > 1:
        behind = [c for c in following if c.sent_seq < head - LAG_SPLIT]
        if behind:
            _send([PushMessage(game_id, head, [c.connection_id]) for c in behind])
            report.split = len(behind)
            following = [c for c in following if c.sent_seq >= head - LAG_SPLIT]
    state = _Round(pending=following)
    while state.pending:
        spent = max_events is not None and report.events >= max_events
        if spent or clock.now_ms() >= deadline_ms:
            _send([PushMessage(game_id, head, [c.connection_id for c in state.pending])])
            report.deferred += len(state.pending)
            break
        limit = READ_LIMIT if max_events is None else min(READ_LIMIT, max_events - report.events)
        state = _round(game_id, state, head, report, limit)
    _retry_later(game_id, head, state.retry, attempt, report)
    return report


def _round(game_id: str, state: _Round, head: int | None, report: Report, limit: int = READ_LIMIT) -> _Round:
    low = min(c.sent_seq for c in state.pending)
    page = stream.read(game_id, low, limit, clock.now_ms(), allocated=head)
    if not page.events:
        return _Round(retry=state.retry)
    jobs = [(c, [e for e in page.events if e.seq > c.sent_seq]) for c in state.pending]
    if len(jobs) == 1:
        outcomes = [_push_one(game_id, *jobs[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(jobs))) as pool:
            outcomes = list(pool.map(deadline.carried(lambda job: _push_one(game_id, *job)), jobs))
    more = len(page.events) == limit
    after = _Round(retry=list(state.retry))
    for conn, outcome in zip(state.pending, outcomes, strict=True):
        report.frames += outcome.frames
        report.events += outcome.events
        if outcome.kind == GONE:
            report.gone += 1
        elif outcome.kind == RETRY:
            after.retry.append(replace(conn, sent_seq=outcome.sent_seq))
        elif outcome.kind == DONE and more:
            after.pending.append(replace(conn, sent_seq=outcome.sent_seq))
    return after


def _push_one(game_id: str, conn: Connection, events: list[stream.StreamEvent]) -> _Outcome:
    """Post one connection its frames in order; stop at the first failure. Never raises for a post."""
    if not events:
        return _Outcome(DONE, conn.sent_seq)
    sent, frames, count = conn.sent_seq, 0, 0
    kind = DONE
    for frame in protocol.frames(game_id, events, live_settings().max_frame_bytes):
        try:
            gateway.post(conn.connection_id, frame.text)
        except gateway.Gone:
            if clock.now_ms() - conn.connected_at_ms < GONE_GRACE_MS:
                kind = RETRY  # its $connect may not have completed yet
            else:
                connections.remove(conn.connection_id, conn.game_id, conn.slot)
                logger.info("live connection gone: removed", extra={"connection_id": conn.connection_id,
                                                                    "game_id": game_id, "sent_seq": sent})
                return _Outcome(GONE, sent, frames, count)
            break
        except gateway.PostFailed as exc:
            logger.warning("live post failed; retrying later", extra={"connection_id": conn.connection_id,
                                                                      "game_id": game_id, "detail": str(exc)})
            kind = RETRY
            break
        sent, frames, count = frame.last_seq, frames + 1, count + frame.events
    if sent > conn.sent_seq and not connections.advance(conn, sent) and kind == DONE:
        kind = SUPERSEDED  # a resume moved the cursor under a new gen: that push carries on
    return _Outcome(kind, sent, frames, count)


def _retry_later(game_id: str, head: int | None, failed: list[Connection], attempt: int, report: Report) -> None:
    if not failed:
        return
    if attempt + 1 >= MAX_ATTEMPTS:
        report.abandoned += len(failed)
        logger.warning("live push abandoned after retries; the client catches up on its next ping or resume",
                       extra={"game_id": game_id, "connections": [c.connection_id for c in failed]})
        return
    delay = 2 ** attempt
    _send([replace(PushMessage(game_id, head, [c.connection_id], attempt + 1), delay_s=delay) for c in failed])
    report.retried += len(failed)
