"""The connection registry's adapter (PynamoDB): register, look up, move cursors, remove."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.dynamo import connection, error_code, with_retries
from chalicelib.live.config import CONNECTION_LIFE_MS
from chalicelib.live.tables import CONNECTION_SK, LiveConnectionItem, connection_pk, members_pk

# Kept a while past API Gateway's 2-hour limit, in case `$disconnect` never comes.
EXPIRES_AFTER_MS = CONNECTION_LIFE_MS + 10 * 60 * 1000


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


def _from_item(connection_id: str, item: LiveConnectionItem) -> Connection:
    return Connection(connection_id=connection_id, game_id=item.game_id or "", app_id=int(item.app_id or 0),
                      connected_at_ms=int(item.connected_at_ms or 0), sent_seq=int(item.sent_seq or 0),
                      acked_seq=int(item.acked_seq or 0), gen=int(item.gen or 0))


def register(connection_id: str, game_id: str, app_id: int, after_seq: int, now_ms: int) -> Connection:
    """Put the connection and its member entry in one transaction (a repeat of the same `$connect` is harmless)."""
    expires = clock.utc_datetime(now_ms + EXPIRES_AFTER_MS)
    row = LiveConnectionItem(connection_pk(connection_id), CONNECTION_SK, game_id=game_id, app_id=app_id,
                             connected_at_ms=now_ms, sent_seq=after_seq, acked_seq=after_seq, gen=0,
                             expires_at=expires)
    member = LiveConnectionItem(members_pk(game_id), connection_id, connected_at_ms=now_ms, expires_at=expires)
    token = uuid.uuid4().hex

    def put_both() -> None:
        with TransactWrite(connection=connection(), client_request_token=token) as tx:
            tx.save(member)
            tx.save(row)

    with_retries(put_both)
    return _from_item(connection_id, row)


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


def remove(connection_id: str, game_id: str | None) -> None:
    """Delete a connection and its member entry (idempotent)."""
    if game_id is None:
        found = get(connection_id)
        game_id = found.game_id if found else None
    # The member entry first: a connection item left alone is harmless (no fan-out finds it), a member entry
    # left alone is dropped by the next push that finds no connection item behind it.
    if game_id:
        with_retries(lambda: LiveConnectionItem(members_pk(game_id), connection_id).delete())
    with_retries(lambda: LiveConnectionItem(connection_pk(connection_id), CONNECTION_SK).delete())


def drop_member(game_id: str, connection_id: str) -> None:
    """Delete a member entry whose connection item is gone (a half-removed connection)."""
    with_retries(lambda: LiveConnectionItem(members_pk(game_id), connection_id).delete())
