"""Live events from the platform: deduplicated by msg_id, appended to the room's running game, settled.

Events whose marker exists are answered from it (duplicate, or conflict if the content differs) before
anything is written. For each chunk of the others (at most 100 transaction items): one allocation of
consecutive seqs, then one transaction that, per event, puts the dedupe marker `msg#{room}#{msg_id}`,
the stream item at its seq and, for a gift that counts, the settlement entry and the ADD on its hour
counter. A cancelled chunk is retried event by event with the same seqs; an event whose marker appeared
meanwhile (a redelivery racing its original) is a duplicate, and its seq gets a skip item at once so
that no reader waits for it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.dynamo import cancellation_codes, connection, with_retries
from chalicelib.edge.fields import validated
from chalicelib.errors import InvalidField, SandboxOnly, StorageUnavailable
from chalicelib.live.notify import notify
from chalicelib.play import apps, games, settlement, stream
from chalicelib.play.config import play_settings
from chalicelib.play.lifecycle import RUNNING
from chalicelib.play.models import DATA_MODELS, SEND_GIFT, SEQ_SKIPPED, IngestResult, LiveEventIn
from chalicelib.play.tables import PlayGuardItem, PlaySettlementItem, PlayStreamItem

MAX_TX_ITEMS = 100
APPEND_ATTEMPTS = 5
MAX_DATA_BYTES = 16 * 1024
MARKER_SK = "m"
APPENDED, DUPLICATE, NO_GAME, CONFLICT = "appended", "duplicate", "no_game", "conflict"


@dataclass(frozen=True)
class Incoming:
    """A validated live message."""

    cmd: str
    data: dict[str, Any]
    msg_id: str
    content_hash: str
    gift: settlement.Gift | None


def _incoming(room_id: int, event: LiveEventIn, test: bool, where: str) -> Incoming:
    data = validated(DATA_MODELS[event.cmd], event.data, prefix=f"{where}data")
    if data.room_id is not None and data.room_id != room_id:
        raise InvalidField(f"{where}data.room_id", f"is {data.room_id} but the event was posted to room {room_id}")
    try:
        raw = json.dumps(event.data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a number JSON cannot hold (1e400 parses as infinity): the stream must stay JSON
        raise InvalidField(f"{where}data", "must hold only finite numbers") from None
    if len(raw.encode()) > MAX_DATA_BYTES:
        raise InvalidField(f"{where}data", f"must be at most {MAX_DATA_BYTES} bytes of JSON")
    content_hash = hashlib.sha256(f"{event.cmd}\n{int(test)}\n{raw}".encode()).hexdigest()
    gift = None
    if event.cmd == SEND_GIFT:
        gift = settlement.Gift(msg_id=data.msg_id, gift_id=data.gift_id, gift_num=data.gift_num, price=data.price,
                               paid=data.paid)
    return Incoming(cmd=event.cmd, data=event.data, msg_id=data.msg_id, content_hash=content_hash, gift=gift)


def parse_events(room_id: int, events: Sequence[LiveEventIn], test: bool, prefix: str = "") -> list[Incoming]:
    """Check each message's data against its cmd and fingerprint it; one `InvalidField` naming every invalid
    field of every message otherwise. `prefix` names the list in those fields (`events` gives
    `events[3].data.price`); without it (the single form) they read `data.price`."""
    found: list[dict[str, str]] = []
    parsed: list[Incoming] = []
    for index, event in enumerate(events):
        try:
            parsed.append(_incoming(room_id, event, test, f"{prefix}[{index}]." if prefix else ""))
        except InvalidField as error:
            found += error.details["errors"]
    if found:
        raise InvalidField(found[0]["field"], found[0]["problem"], found)
    return parsed


def marker_pk(room_id: int, msg_id: str) -> str:
    """Hash key of a live event's dedupe marker."""
    return f"msg#{room_id}#{msg_id}"


@dataclass
class _Planned:
    index: int
    event: Incoming
    settled: settlement.Settled | None = None
    seq: int = 0

    @property
    def items(self) -> int:
        # marker, stream item, and for a settled gift its entry and (at most) one counter shard ADD
        return 4 if self.settled else 2


def _markers(room_id: int, events: Sequence[Incoming]) -> dict[str, PlayGuardItem]:
    keys = [(marker_pk(room_id, e.msg_id), MARKER_SK) for e in events]
    found = with_retries(lambda: list(PlayGuardItem.batch_get(keys, consistent_read=True)))
    return {item.pk: item for item in found}


def _known(room_id: int, event: Incoming, marker: PlayGuardItem) -> IngestResult:
    status = DUPLICATE if marker.content_hash == event.content_hash else CONFLICT
    return IngestResult(msg_id=event.msg_id, status=status, game_id=marker.game_id, seq=int(marker.seq or 0),
                        settled=False)


def _no_game(room_id: int, pending: Sequence[tuple[int, Incoming]], results: list[IngestResult | None]) -> None:
    markers = _markers(room_id, [e for _, e in pending]) if pending else {}
    for index, event in pending:
        marker = markers.get(marker_pk(room_id, event.msg_id))
        results[index] = _known(room_id, event, marker) if marker else IngestResult(msg_id=event.msg_id,
                                                                                     status=NO_GAME)


@dataclass
class _CounterDelta:
    """What one transaction adds to one hour counter shard."""

    app_id: int
    hour: str
    gifts: int = 0
    revenue: int = 0
    developer_share: int = 0
    versions: set[int] | None = None


def _tx_items(room_id: int, game_id: str, app: apps.PlayApp, planned: _Planned, at_ms: int, test: bool,
              counters: dict[str, _CounterDelta]) -> list[tuple[str, Any, Any]]:
    """The puts one event needs; its counter ADD is accumulated into `counters` (one update per shard)."""
    event = planned.event
    hour = clock.hour_of(at_ms)
    ops: list[tuple[str, Any, Any]] = []
    settled_pk = None
    if planned.settled is not None:
        settled_pk = settlement.entry_pk(app.app_id, hour, settlement.bucket_of(event.msg_id,
                                                                                 play_settings().buckets))
    ops.append(("save", PlayGuardItem(
        marker_pk(room_id, event.msg_id), MARKER_SK, app_id=app.app_id, game_id=game_id, seq=planned.seq,
        content_hash=event.content_hash, at_ms=at_ms,
        expires_at=clock.utc_datetime(at_ms + play_settings().dedupe_ttl_days * 86_400_000)),
        PlayGuardItem.pk.does_not_exist()))
    ops.append(("save", stream.event_item(game_id, planned.seq, event.cmd, event.data, at_ms,
                                          msg_id=event.msg_id, test=test, settled=settled_pk),
                PlayStreamItem.seq.does_not_exist()))
    if planned.settled is not None and settled_pk is not None:
        s = planned.settled
        ops.append(("save", PlaySettlementItem(
            settled_pk, settlement.entry_sk(s.msg_id), app_id=app.app_id, msg_id=s.msg_id,
            day=settlement.day_of(at_ms), hour=hour, gift_id=s.gift_id, gift_num=s.gift_num, price=s.price,
            revenue=s.revenue, developer_share=s.developer_share, share_bp=s.share_bp,
            ratio_version=s.ratio_version, game_id=game_id, seq=planned.seq, room_id=room_id, at_ms=at_ms,
            test=test or None),
            PlaySettlementItem.sk.does_not_exist()))
        delta = counters.setdefault(settled_pk, _CounterDelta(app.app_id, hour, versions=set()))
        delta.gifts += 1
        delta.revenue += s.revenue
        delta.developer_share += s.developer_share
        assert delta.versions is not None
        delta.versions.add(s.ratio_version)
    return ops


def _counter_ops(counters: dict[str, _CounterDelta]) -> list[tuple[str, Any, Any]]:
    """One ADD per hour counter shard: a transaction may touch an item only once."""
    return [("update", PlaySettlementItem(pk, settlement.COUNTER_SK), [
        PlaySettlementItem.gifts.add(d.gifts), PlaySettlementItem.revenue.add(d.revenue),
        PlaySettlementItem.developer_share.add(d.developer_share),
        PlaySettlementItem.ratio_versions.add(d.versions or set()),
        PlaySettlementItem.app_id.set(d.app_id), PlaySettlementItem.hour.set(d.hour),
    ]) for pk, d in sorted(counters.items())]


def _event_ops(room_id: int, game_id: str, app: apps.PlayApp, planned: Sequence[_Planned], at_ms: int,
               test: bool) -> list[tuple[str, Any, Any]]:
    counters: dict[str, _CounterDelta] = {}
    ops = [op for p in planned for op in _tx_items(room_id, game_id, app, p, at_ms, test, counters)]
    return ops + _counter_ops(counters)


def _commit(ops: list[tuple[str, Any, Any]]) -> None:
    token = uuid.uuid4().hex

    def attempt() -> None:
        with TransactWrite(connection=connection(), client_request_token=token) as tx:
            for kind, item, extra in ops:
                if kind == "save":
                    tx.save(item, condition=extra)
                else:
                    tx.update(item, actions=extra)

    with_retries(attempt)


def _chunks(planned: list[_Planned]) -> list[list[_Planned]]:
    chunks: list[list[_Planned]] = [[]]
    size = 0
    for p in planned:
        if size + p.items > MAX_TX_ITEMS:
            chunks.append([])
            size = 0
        chunks[-1].append(p)
        size += p.items
    return [c for c in chunks if c]


def _append_one(room_id: int, game_id: str, app: apps.PlayApp, p: _Planned, at_ms: int, test: bool,
                allocated_at_ms: int) -> IngestResult:
    """Append one event at its already allocated seq (re-allocating if a reader filled it meanwhile)."""
    for _ in range(APPEND_ATTEMPTS):
        if clock.now_ms() - allocated_at_ms > stream.WRITE_DEADLINE_MS:
            # Too late to write this seq (a reader may fill it): take a fresh one.
            try:
                p.seq = stream.allocate(game_id, 1, at_ms)
            except stream.NotAccepting:
                return IngestResult(msg_id=p.event.msg_id, status=NO_GAME)  # the game ended meanwhile
            allocated_at_ms = clock.now_ms()
        try:
            _commit(_event_ops(room_id, game_id, app, [p], at_ms, test))
            return IngestResult(msg_id=p.event.msg_id, status=APPENDED, game_id=game_id, seq=p.seq,
                                settled=p.settled is not None)
        except TransactWriteError as exc:
            codes = cancellation_codes(exc)
            # Puts are sent before updates: [0] marker, [1] stream item, [2] entry, [3] counter.
            if codes[:1] == ["ConditionalCheckFailed"] or codes[2:3] == ["ConditionalCheckFailed"]:
                stream.put_if_absent(stream.event_item(game_id, p.seq, SEQ_SKIPPED, {}, clock.now_ms(),
                                                       kind=stream.SKIP))
                marker = _markers(room_id, [p.event]).get(marker_pk(room_id, p.event.msg_id))
                if marker is None:
                    raise StorageUnavailable("settlement entry exists without its marker") from exc
                return _known(room_id, p.event, marker)
            if codes[1:2] == ["ConditionalCheckFailed"]:
                allocated_at_ms = 0  # a reader filled our seq: re-allocate
                continue
            raise
    raise StorageUnavailable("the event could not be appended; retry")


def ingest(room_id: int, events: Sequence[Incoming], test: bool, now_ms: int | None = None) -> list[IngestResult]:
    """Receive live messages for a room, in order; each gets appended, duplicate, no_game or conflict."""
    now_ms = clock.now_ms() if now_ms is None else now_ms
    results: list[IngestResult | None] = [None] * len(events)
    first_index: dict[str, int] = {}
    fresh: list[tuple[int, Incoming]] = []
    for index, event in enumerate(events):
        if event.msg_id in first_index:
            earlier = events[first_index[event.msg_id]]
            status = DUPLICATE if earlier.content_hash == event.content_hash else CONFLICT
            results[index] = IngestResult(msg_id=event.msg_id, status=status)  # filled in below
            continue
        first_index[event.msg_id] = index
        fresh.append((index, event))

    room = games.get_room(room_id)
    if room is None or room[0].status != RUNNING or room[0].app_id is None or room[0].game_id is None:
        _no_game(room_id, fresh, results)
        return _finish(events, results, first_index)
    app = apps.get_app(room[0].app_id)
    if test and not app.sandbox:
        raise SandboxOnly(f"room {room_id}'s game belongs to live app {app.app_id}; test events go to sandbox "
                          "apps' games only", app_id=app.app_id)
    # The room names its running game; the allocation below is conditioned on that game running and alive.
    game_id = room[0].game_id
    # A redelivery is answered from its marker without taking a seq; only a redelivery racing its original
    # gets past this and costs a skipped seq.
    markers = _markers(room_id, [e for _, e in fresh]) if fresh else {}
    unseen = []
    for index, event in fresh:
        marker = markers.get(marker_pk(room_id, event.msg_id))
        if marker is not None:
            results[index] = _known(room_id, event, marker)
        else:
            unseen.append((index, event))
    planned = [_Planned(index, event, settlement.decide(event.gift, app.interactive_gift_ids, app.ratios, now_ms)
                        if event.gift else None) for index, event in unseen]
    pending = list(planned)
    for chunk in _chunks(planned):
        try:
            first = stream.allocate(game_id, len(chunk), now_ms)
        except stream.NotAccepting:
            current = games.get_game(game_id)
            if current is not None and current.needs_ending(clock.now_ms()):
                games.alive(current.app_id, game_id, clock.now_ms())  # ends it (or finishes its end) now
            _no_game(room_id, [(p.index, p.event) for p in pending], results)
            return _finish(events, results, first_index)
        allocated_at = clock.now_ms()
        for offset, p in enumerate(chunk):
            p.seq = first + offset
        try:
            _commit(_event_ops(room_id, game_id, app, chunk, now_ms, test))
            for p in chunk:
                results[p.index] = IngestResult(msg_id=p.event.msg_id, status=APPENDED, game_id=game_id,
                                                seq=p.seq, settled=p.settled is not None)
        except TransactWriteError:
            for p in chunk:
                results[p.index] = _append_one(room_id, game_id, app, p, now_ms, test, allocated_at)
        pending = pending[len(chunk):]
    appended = [r.seq for r in results if r is not None and r.status == APPENDED and r.game_id == game_id]
    if appended:
        notify(game_id, max(appended))  # stored first, then pushed (best effort: the stream is the inbox)
    return _finish(events, results, first_index)


def _finish(events: Sequence[Incoming], results: list[IngestResult | None],
            first_index: dict[str, int]) -> list[IngestResult]:
    """Repeats inside one request answer like their first occurrence (same game and seq)."""
    out: list[IngestResult] = []
    for index, result in enumerate(results):
        assert result is not None
        first = first_index[events[index].msg_id]
        if first != index and result.status == DUPLICATE:
            original = results[first]
            assert original is not None
            status = NO_GAME if original.status == NO_GAME else original.status if original.status == CONFLICT \
                else DUPLICATE
            result = IngestResult(msg_id=result.msg_id, status=status, game_id=original.game_id,
                                  seq=original.seq, settled=False)
        out.append(result)
    return out


def settlement_entry(app_id: int, hour: str, msg_id: str) -> PlaySettlementItem | None:
    """One settlement entry (tests and tools)."""
    pk = settlement.entry_pk(app_id, hour, settlement.bucket_of(msg_id, play_settings().buckets))
    try:
        return with_retries(lambda: PlaySettlementItem.get(pk, settlement.entry_sk(msg_id), consistent_read=True))
    except DoesNotExist:
        return None
