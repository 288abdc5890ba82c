"""A game's event stream: append-only, `seq` 1, 2, 3, ... with no gap and no repeat, kept >= 24 h.

This module is the stream's whole API; the push side (issue 13) reuses it as is:
- `allocate(game_id, count, now_ms)` reserves the next `count` seqs (one `UpdateItem ADD` on the game
  item, only while the game runs and its heartbeat deadline has not passed);
- `event_item(...)` is the put-if-absent an appender writes at an allocated seq, inside its own
  transaction (with the dedupe marker and, for a settled gift, the settlement entry);
- `read(game, after_seq, limit, now_ms)` returns the events after `after_seq`, oldest first, stopping
  before the first seq not written yet, so a reader never skips an event still being written;
- `scan_from(game_id, seq)` iterates the stored items (reconciliation).

**Reading never writes.** A reader that finds a seq missing reports it as what it is, from the game item
(read once per read) and the stored neighbours, without writing anything:
- its event outlived the stream's TTL (`RG_PLAY_STREAM_TTL_HOURS`) and DynamoDB deleted it: the seq was
  allocated by the end of the last hour (`first_seq_by_hour`) whose first seq is at or below it, and that
  time plus the writers' deadline and the TTL has passed: delivered as `RG_SEQ_EXPIRED` (data `{}`);
- its writer died between allocation and its transaction: older than `FILL_AFTER_MS` and not expired:
  delivered as `RG_SEQ_SKIPPED`. A writer gives up its seq `WRITE_DEADLINE_MS` after allocating it, and its
  last transaction ends within its function's bounded call time (well under `FILL_AFTER_MS -
  WRITE_DEADLINE_MS`), so no event lands in a seq a reader already reported skipped;
- it is the game's end seq (the end was recorded on the game, its event lost): the end event is built from
  the game item, which holds everything it says.
Younger holes make the reader wait (stop there). So every seq is seen once, in order, by every reader, and a
read costs only reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.play.config import play_settings
from chalicelib.play.lifecycle import ENDED, GAME_SK, RUNNING, game_pk
from chalicelib.play.models import INTERACTION_END, SEQ_SKIPPED
from chalicelib.play.tables import PlayGameItem, PlayStreamItem

EVENT = "event"
END = "end"
SKIP = "skip"
WRITE_DEADLINE_MS = 20_000
FILL_AFTER_MS = 60_000
SEQ_EXPIRED = "RG_SEQ_EXPIRED"
WAIT = "wait"


class NotAccepting(Exception):
    """The game takes no more events: it has ended, or its heartbeat deadline has passed."""

    def __init__(self, game_id: str) -> None:
        super().__init__(game_id)
        self.game_id = game_id


@dataclass(frozen=True)
class StreamEvent:
    """One stored stream entry."""

    seq: int
    kind: str
    cmd: str
    data: dict[str, Any]
    at_ms: int
    msg_id: str | None = None
    test: bool = False
    settled: str | None = None

    def wire(self) -> dict[str, Any]:
        """What a client receives: `{seq, cmd, data}`."""
        return {"seq": self.seq, "cmd": self.cmd, "data": self.data}


@dataclass(frozen=True)
class Page:
    """A read's answer: the events, and the seq of the next event not yet returned."""

    events: list[StreamEvent]
    next_seq: int


def expires_at(at_ms: int) -> Any:
    """The TTL of a stream item written at `at_ms`."""
    return clock.utc_datetime(at_ms + play_settings().stream_ttl_hours * 3600 * 1000)


def allocate(game_id: str, count: int, now_ms: int) -> int:
    """Reserve `count` consecutive seqs; returns the first. `NotAccepting` unless the game runs and is alive."""
    item = PlayGameItem(game_pk(game_id), GAME_SK)
    try:
        with_retries(lambda: item.update(
            actions=[PlayGameItem.next_seq.add(count), PlayGameItem.last_alloc_ms.set(now_ms)],
            condition=(PlayGameItem.status == RUNNING) & (PlayGameItem.hb_deadline_ms >= now_ms),
        ))
    except UpdateError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            raise NotAccepting(game_id) from exc
        raise
    first = int(item.next_seq) - count + 1
    hour = clock.hour_of(now_ms)
    if hour not in (item.first_seq_by_hour.as_dict() if item.first_seq_by_hour else {}):
        _mark_hour(game_id, hour, first)
    return first


def _mark_hour(game_id: str, hour: str, first: int) -> None:
    """Record the first seq allocated in an hour (the smallest, whatever order racing writers arrive in).

    Allocation order is seq order, so every event of that hour has a seq at or above it: reconciliation
    scans a game's hour from there. One extra write per game and hour.
    """
    path = PlayGameItem.first_seq_by_hour[hour]  # type: ignore[index]
    try:
        with_retries(lambda: PlayGameItem(game_pk(game_id), GAME_SK).update(
            actions=[path.set(first)], condition=path.does_not_exist() | (path > first)))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


def event_item(game_id: str, seq: int, cmd: str, data: dict[str, Any], at_ms: int, *, kind: str = EVENT,
               msg_id: str | None = None, test: bool = False, settled: str | None = None) -> PlayStreamItem:
    """The stream item an appender puts (condition: `PlayStreamItem.seq.does_not_exist()`)."""
    return PlayStreamItem(game_id, seq, kind=kind, cmd=cmd, data=json.dumps(data, ensure_ascii=False,
                                                                            separators=(",", ":")),
                          msg_id=msg_id, at_ms=at_ms, test=test or None, settled=settled,
                          expires_at=expires_at(at_ms))


def end_data(game_id: str, ended_at_ms: int) -> dict[str, Any]:
    """The data of LIVE_OPEN_PLATFORM_INTERACTION_END (the same whoever writes it)."""
    return {"game_id": game_id, "timestamp": ended_at_ms // 1000}


def put_if_absent(item: PlayStreamItem) -> bool:
    """Write a stream item unless its seq is taken; True if this call wrote it."""
    try:
        with_retries(lambda: item.save(condition=PlayStreamItem.seq.does_not_exist()))
    except PutError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def from_item(item: PlayStreamItem) -> StreamEvent:
    """A stream entry from its item."""
    return StreamEvent(seq=int(item.seq), kind=item.kind, cmd=item.cmd, data=json.loads(item.data),
                       at_ms=int(item.at_ms), msg_id=item.msg_id, test=bool(item.test), settled=item.settled)


def _query(game_id: str, after_seq: int, limit: int) -> list[StreamEvent]:
    return with_retries(lambda: [
        from_item(i) for i in PlayStreamItem.query(game_id, PlayStreamItem.seq > after_seq, limit=limit,
                                                consistent_read=True)])


def _game_item(game_id: str) -> PlayGameItem | None:
    try:
        return with_retries(lambda: PlayGameItem.get(game_pk(game_id), GAME_SK, consistent_read=True))
    except DoesNotExist:
        return None


def _allocated_by_ms(game: PlayGameItem, seq: int) -> int:
    """A time by which `seq` had been allocated: the end of the last hour whose first seq is at or below it.

    Seqs are allocated in time order and each hour records the first seq allocated in it, so a seq allocated
    in hour H has H's first seq at or below it and every later hour's above it.
    """
    hours = game.first_seq_by_hour.as_dict() if game.first_seq_by_hour else {}
    earlier = [hour for hour, first in hours.items() if int(first) <= seq]
    if not earlier:
        return int(game.last_alloc_ms or 0)
    return clock.hour_start_ms(max(earlier)) + 3600 * 1000


def _hole(game: PlayGameItem | None, seq: int, reference_ms: int | None, now_ms: int) -> StreamEvent | str:
    """What a missing seq is (an event to report in its place), or WAIT. Pure: decides from what was read."""
    if game is None or seq > int(game.next_seq or 0):
        return WAIT  # not allocated (yet): the stream simply ends here
    if game.status == ENDED and game.end_seq is not None and seq == int(game.end_seq):
        ended = int(game.ended_at_ms)
        return StreamEvent(seq, END, INTERACTION_END, end_data(game.game_id, ended), ended)
    reference = reference_ms if reference_ms is not None else int(game.last_alloc_ms or 0)
    if now_ms - reference < FILL_AFTER_MS:
        return WAIT  # a writer may still be writing it (or still be recording its hour)
    ttl_ms = play_settings().stream_ttl_hours * 3600 * 1000
    if _allocated_by_ms(game, seq) + WRITE_DEADLINE_MS + ttl_ms <= now_ms:
        return StreamEvent(seq, SKIP, SEQ_EXPIRED, {}, now_ms)
    return StreamEvent(seq, SKIP, SEQ_SKIPPED, {}, now_ms)


def read(game_id: str, after_seq: int, limit: int, now_ms: int, allocated: int | None = None) -> Page:
    """Up to `limit` events after `after_seq`, oldest first, with no seq skipped, and no write.

    `allocated` is the game's `next_seq` if the caller just read the game: a read that reaches it stops
    without reading the game again (the usual case for a client polling at the tail).
    """
    out: list[StreamEvent] = []
    expected = after_seq + 1
    game: PlayGameItem | None = None
    game_read = False
    while len(out) < limit:
        batch = _query(game_id, expected - 1, limit - len(out))
        blocker: StreamEvent | None = None  # the first stored event after a missing seq
        for event in batch:
            if event.seq != expected:
                blocker = event
                break
            out.append(event)
            expected += 1
        if len(out) >= limit or (blocker is None and allocated is not None and expected > allocated):
            break
        if not game_read:
            game, game_read = _game_item(game_id), True
        stop = blocker.seq if blocker is not None else int(game.next_seq or 0) + 1 if game is not None else expected
        while expected < stop and len(out) < limit:
            found = _hole(game, expected, blocker.at_ms if blocker else None, now_ms)
            if not isinstance(found, StreamEvent):
                return Page(events=out, next_seq=expected)
            out.append(found)
            expected += 1
        if blocker is None and expected >= stop:
            break
    return Page(events=out, next_seq=expected)


def scan_from(game_id: str, from_seq: int) -> Iterator[StreamEvent]:
    """Every stored item of the stream from `from_seq` on, in seq order (strongly consistent pages)."""
    last = from_seq - 1
    while True:
        page = _query(game_id, last, 500)
        if not page:
            return
        yield from page
        last = page[-1].seq
