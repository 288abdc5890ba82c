"""The connection registry's adapter (PynamoDB): register (within a game's slots), look up, move cursors,
count frames, remove."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

from pynamodb.exceptions import DeleteError, DoesNotExist, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from chalicelib import clock, deadline
from chalicelib.dynamo import cancellation_codes, connection, error_code, is_transient, with_retries
from chalicelib.errors import StorageUnavailable
from chalicelib.live.config import CONNECTION_LIFE_MS, live_settings
from chalicelib.live.tables import (
    CONNECTION_SK,
    LiveConnectionItem,
    connection_pk,
    members_pk,
    slot_sk,
    slots_pk,
)

# Kept a while past API Gateway's 2-hour limit, in case `$disconnect` never comes.
EXPIRES_AFTER_MS = CONNECTION_LIFE_MS + 10 * 60 * 1000
MAX_SLOT_RETRIES = 50  # conflicting slot attempts one $connect makes before answering "retry"


@dataclass(frozen=True)
class Connection:
    """One registered connection and its cursor."""

    connection_id: str
    game_id: str
    app_id: int
    connected_at_ms: int
    sent_seq: int
    acked_seq: int
    gen: int
    slot: int | None = None


def _from_item(connection_id: str, item: LiveConnectionItem) -> Connection:
    return Connection(connection_id=connection_id, game_id=item.game_id or "", app_id=int(item.app_id or 0),
                      connected_at_ms=int(item.connected_at_ms or 0), sent_seq=int(item.sent_seq or 0),
                      acked_seq=int(item.acked_seq or 0), gen=int(item.gen or 0),
                      slot=None if item.slot is None else int(item.slot))


def _slot_holders(game_id: str, now_ms: int) -> set[str]:
    """The game's slots taken now (unexpired), by range key (strongly consistent)."""
    now = clock.utc_datetime(now_ms)
    return with_retries(lambda: {i.sk for i in LiveConnectionItem.query(slots_pk(game_id), consistent_read=True)
                                 if i.expires_at is None or i.expires_at >= now})


def _put_together(claim: LiveConnectionItem, free: Condition, items: list[LiveConnectionItem]) -> None:
    """The slot under its condition and the other items, in one transaction (one request; botocore's own
    retries reuse its token)."""
    with TransactWrite(connection=connection(), client_request_token=uuid.uuid4().hex) as tx:
        tx.save(claim, condition=free)
        for item in items:
            tx.save(item)


def register(connection_id: str, game_id: str, app_id: int, after_seq: int, now_ms: int,
             max_connections: int | None = None) -> Connection | None:
    """Take a free slot of the game and put the connection and its member entry with it, in one transaction;
    None when all `max_connections` slots (default `RG_LIVE_MAX_CONNECTIONS_PER_GAME`) are taken. A repeat of
    the same `$connect` returns the connection.

    Racing connects try the free slots in random orders; a slot another transaction holds at that instant
    (TransactionConflict) is tried again after the others, a taken one (condition failed) is dropped.
    """
    if max_connections is None:
        max_connections = live_settings().max_connections_per_game
    existing = get(connection_id)
    if existing is not None and existing.game_id == game_id:
        return existing
    expires = clock.utc_datetime(now_ms + EXPIRES_AFTER_MS)
    taken = _slot_holders(game_id, now_ms)
    candidates = [k for k in range(max_connections) if slot_sk(k) not in taken]
    random.shuffle(candidates)
    retries = 0
    while candidates:
        if deadline.expired():
            raise deadline.DeadlineExceeded("deadline reached while taking a connection slot")
        slot = candidates.pop(0)
        row = LiveConnectionItem(connection_pk(connection_id), CONNECTION_SK, game_id=game_id, app_id=app_id,
                                 connected_at_ms=now_ms, sent_seq=after_seq, acked_seq=after_seq, gen=0, slot=slot,
                                 expires_at=expires)
        member = LiveConnectionItem(members_pk(game_id), connection_id, connected_at_ms=now_ms, expires_at=expires)
        claim = LiveConnectionItem(slots_pk(game_id), slot_sk(slot), holder=connection_id, connected_at_ms=now_ms,
                                   expires_at=expires)
        free = LiveConnectionItem.pk.does_not_exist() | (LiveConnectionItem.expires_at < clock.utc_datetime(now_ms))
        try:
            _put_together(claim, free, [member, row])
        except TransactWriteError as exc:
            if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                continue  # another connection took this slot: try the next free one
            if not is_transient(exc) or retries >= MAX_SLOT_RETRIES:
                if is_transient(exc):
                    raise StorageUnavailable("connection slots kept conflicting; retry") from exc
                raise
            retries += 1
            candidates.append(slot)  # held by a racing transaction that may yet fail: after the others
            time.sleep(random.uniform(0, 0.02))
            continue
        return _from_item(connection_id, row)
    return None


def get(connection_id: str) -> Connection | None:
    """A connection (strongly consistent), or None when it is not (or no longer) registered."""
    try:
        item = with_retries(lambda: LiveConnectionItem.get(connection_pk(connection_id), CONNECTION_SK,
                                                           consistent_read=True))
    except DoesNotExist:
        return None
    return _from_item(connection_id, item)


def get_many(connection_ids: list[str]) -> dict[str, Connection]:
    """The registered connections among `connection_ids` (strongly consistent), by id."""
    keys = [(connection_pk(c), CONNECTION_SK) for c in dict.fromkeys(connection_ids)]
    found = with_retries(lambda: list(LiveConnectionItem.batch_get(keys, consistent_read=True)))
    return {item.pk[2:]: _from_item(item.pk[2:], item) for item in found}


def members(game_id: str) -> list[str]:
    """The ids of the connections following a game (strongly consistent)."""
    return with_retries(lambda: [i.sk for i in LiveConnectionItem.query(members_pk(game_id), consistent_read=True)])


def advance(conn: Connection, sent_seq: int) -> bool:
    """Move the cursor to `sent_seq` unless a resume (gen) or a further push already moved it; True if moved."""
    try:
        with_retries(lambda: LiveConnectionItem(connection_pk(conn.connection_id), CONNECTION_SK).update(
            actions=[LiveConnectionItem.sent_seq.set(sent_seq)],
            condition=(LiveConnectionItem.gen == conn.gen) & (LiveConnectionItem.sent_seq < sent_seq)))
    except UpdateError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def resume(connection_id: str, after_seq: int) -> Connection | None:
    """Move the cursor back (or forward) to `after_seq` under a new gen; None if the connection is gone."""
    item = LiveConnectionItem(connection_pk(connection_id), CONNECTION_SK)
    try:
        with_retries(lambda: item.update(
            actions=[LiveConnectionItem.sent_seq.set(after_seq), LiveConnectionItem.gen.add(1)],
            condition=LiveConnectionItem.pk.exists()))
    except UpdateError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise
    return _from_item(connection_id, item)


def ack(connection_id: str, seq: int) -> None:
    """Record a cumulative ack (never moves back)."""
    try:
        with_retries(lambda: LiveConnectionItem(connection_pk(connection_id), CONNECTION_SK).update(
            actions=[LiveConnectionItem.acked_seq.set(seq)],
            condition=LiveConnectionItem.pk.exists() & (LiveConnectionItem.acked_seq < seq)))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


def admit_frame(connection_id: str, now_ms: int, per_minute: int) -> bool:
    """Count one `resume` or `ping` frame in the connection's current minute; False when the minute's
    `per_minute` frames are used up (or the connection is gone). One conditional write."""
    window = now_ms // 60_000
    item = LiveConnectionItem(connection_pk(connection_id), CONNECTION_SK)
    same_window = (LiveConnectionItem.pk.exists() & (LiveConnectionItem.win == window)
                   & (LiveConnectionItem.win_n < per_minute))
    new_window = LiveConnectionItem.pk.exists() & (LiveConnectionItem.win.does_not_exist()
                                                   | (LiveConnectionItem.win != window))
    for actions, condition in (([LiveConnectionItem.win_n.add(1)], same_window),
                               ([LiveConnectionItem.win.set(window), LiveConnectionItem.win_n.set(1)], new_window)):
        try:
            with_retries(lambda a=actions, c=condition: item.update(actions=a, condition=c))
        except UpdateError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                continue
            raise
        return True
    return False


def remove(connection_id: str, game_id: str | None, slot: int | None = None) -> None:
    """Delete a connection, its member entry and free its slot (idempotent)."""
    if game_id is None or slot is None:
        found = get(connection_id)
        if found is not None:
            game_id, slot = found.game_id, found.slot
    # The member entry first: a connection item left alone is harmless (no fan-out finds it), a member entry
    # left alone is dropped by the next push that finds no connection item behind it.
    if game_id:
        with_retries(lambda: LiveConnectionItem(members_pk(game_id), connection_id).delete())
        if slot is not None:
            _free_slot(game_id, slot, connection_id)
    with_retries(lambda: LiveConnectionItem(connection_pk(connection_id), CONNECTION_SK).delete())


def _free_slot(game_id: str, slot: int, connection_id: str) -> None:
    """Free a slot if this connection still holds it (an expired slot may have been taken by another)."""
    try:
        with_retries(lambda: LiveConnectionItem(slots_pk(game_id), slot_sk(slot)).delete(
            condition=LiveConnectionItem.holder == connection_id))
    except DeleteError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


def drop_member(game_id: str, connection_id: str) -> None:
    """Delete a member entry whose connection item is gone (a half-removed connection)."""
    with_retries(lambda: LiveConnectionItem(members_pk(game_id), connection_id).delete())
