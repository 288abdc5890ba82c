"""Identity codes: one per anchor, bound to the anchor's room, the same until refreshed.

The code is derived from (anchor id, generation) under the play key and never stored; the table holds
its HMAC (`code#{hmac}`), which is what a start resolves. A refresh moves the anchor to the next
generation and puts the new code item in one transaction; a code item resolves only while its generation
is the anchor's, so the old code answers 7007 at once (running games go on: they no longer need the code).
"""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.dynamo import cancellation_codes, connection, with_retries
from chalicelib.errors import AnchorNotFound, CodeRoomConflict, ConfigConflict
from chalicelib.play import codes
from chalicelib.play.keys import play_keys
from chalicelib.play.models import CodeView
from chalicelib.play.tables import PlayConfigItem

CODE_SK = "code"
ATTEMPTS = 5


def _anchor_pk(anchor_id: int) -> str:
    return f"anchor#{anchor_id}"


def _code_pk(lookup: str) -> str:
    return f"code#{lookup}"


@dataclass(frozen=True)
class Anchor:
    """A streamer as identity codes know them."""

    anchor_id: int
    room_id: int
    uname: str
    generation: int


def _get(pk: str) -> PlayConfigItem | None:
    try:
        return with_retries(lambda: PlayConfigItem.get(pk, CODE_SK, consistent_read=True))
    except DoesNotExist:
        return None


def _view(anchor: Anchor) -> CodeView:
    code = codes.identity_code(play_keys(), anchor.anchor_id, anchor.generation)
    return CodeView(anchor_id=anchor.anchor_id, room_id=anchor.room_id, code=code, generation=anchor.generation)


def _anchor(item: PlayConfigItem) -> Anchor:
    return Anchor(anchor_id=int(item.anchor_id), room_id=int(item.room_id), uname=item.uname or "",
                  generation=int(item.generation))


def _code_item(anchor: Anchor, now_ms: int) -> PlayConfigItem:
    lookup = codes.code_lookup(play_keys(), codes.identity_code(play_keys(), anchor.anchor_id, anchor.generation))
    return PlayConfigItem(_code_pk(lookup), CODE_SK, anchor_id=anchor.anchor_id, room_id=anchor.room_id,
                          generation=anchor.generation, updated_at_ms=now_ms)


def issue_code(anchor_id: int, room_id: int, uname: str | None) -> CodeView:
    """The anchor's code for its room: created on first call, the same afterwards until refreshed."""
    for _ in range(ATTEMPTS):
        item = _get(_anchor_pk(anchor_id))
        now_ms = clock.now_ms()
        if item is not None:
            anchor = _anchor(item)
            if anchor.room_id != room_id:
                raise CodeRoomConflict(f"anchor {anchor_id}'s code is bound to room {anchor.room_id}",
                                       anchor_id=anchor_id, room_id=anchor.room_id)
            if uname is not None and uname != anchor.uname:
                actions = [PlayConfigItem.uname.set(uname), PlayConfigItem.updated_at_ms.set(now_ms)]
                with_retries(lambda a=actions: PlayConfigItem(_anchor_pk(anchor_id), CODE_SK).update(actions=a))
                anchor = Anchor(anchor.anchor_id, anchor.room_id, uname, anchor.generation)
            return _view(anchor)
        anchor = Anchor(anchor_id=anchor_id, room_id=room_id, uname=uname or "", generation=1)
        try:
            def create(a: Anchor = anchor, at: int = now_ms) -> None:
                with TransactWrite(connection=connection()) as tx:
                    tx.save(PlayConfigItem(_anchor_pk(anchor_id), CODE_SK, anchor_id=anchor_id, room_id=room_id,
                                           uname=a.uname, generation=1, updated_at_ms=at),
                            condition=PlayConfigItem.pk.does_not_exist())
                    tx.save(_code_item(a, at))

            with_retries(create)
            return _view(anchor)
        except TransactWriteError as exc:
            if "ConditionalCheckFailed" not in cancellation_codes(exc):
                raise
            # Another request created the anchor first: read it again.
    raise ConfigConflict("the anchor changed concurrently; retry", anchor_id=anchor_id)


def refresh_code(anchor_id: int) -> CodeView:
    """A new code for the anchor; the previous one stops resolving in the same transaction."""
    for _ in range(ATTEMPTS):
        item = _get(_anchor_pk(anchor_id))
        if item is None:
            raise AnchorNotFound(f"anchor {anchor_id} has no identity code yet", anchor_id=anchor_id)
        old = _anchor(item)
        new = Anchor(old.anchor_id, old.room_id, old.uname, old.generation + 1)
        now_ms = clock.now_ms()
        try:
            def swap(o: Anchor = old, n: Anchor = new, at: int = now_ms) -> None:
                with TransactWrite(connection=connection()) as tx:
                    tx.update(PlayConfigItem(_anchor_pk(anchor_id), CODE_SK),
                              actions=[PlayConfigItem.generation.set(n.generation),
                                       PlayConfigItem.updated_at_ms.set(at)],
                              condition=PlayConfigItem.generation == o.generation)
                    tx.save(_code_item(n, at))

            with_retries(swap)
            return _view(new)
        except TransactWriteError as exc:
            if "ConditionalCheckFailed" not in cancellation_codes(exc):
                raise
    raise ConfigConflict("the anchor changed concurrently; retry", anchor_id=anchor_id)


def get_code(anchor_id: int) -> CodeView:
    """The anchor's current code; `AnchorNotFound` if it has none."""
    item = _get(_anchor_pk(anchor_id))
    if item is None:
        raise AnchorNotFound(f"anchor {anchor_id} has no identity code yet", anchor_id=anchor_id)
    return _view(_anchor(item))


def resolve(code: str) -> Anchor | None:
    """The anchor a code belongs to now, or None (unknown, malformed or refreshed)."""
    normalized = codes.normalize_code(code)
    if normalized is None:
        return None
    item = _get(_code_pk(codes.code_lookup(play_keys(), normalized)))
    if item is None:
        return None
    anchor_item = _get(_anchor_pk(int(item.anchor_id)))
    if anchor_item is None or int(anchor_item.generation) != int(item.generation):
        return None
    return _anchor(anchor_item)
