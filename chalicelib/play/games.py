"""Games in rooms: start (one per room), heartbeats, end, expiry, and the sweeper.

Every effect is a conditional write on the room or game item: a start puts the game and claims the
room in one transaction conditioned on the room revision it read, so two concurrent starts yield one
game; an end moves the game to ENDED, takes the stream's last seq for the end event and frees the room
(with a cooldown) in one transaction. A game past its heartbeat deadline is ended by whoever sees it
first: the next start, heartbeat or pull in its room, or the sweeper.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.dynamo import cancellation_codes, connection, error_code, with_retries
from chalicelib.errors import (
    GameNotRunning,
    HeartbeatExpired,
    InvalidIdentityCode,
    OpenLiveError,
    RoomBusy,
    RoomCoolingDown,
    StorageUnavailable,
)
from chalicelib.live.notify import notify
from chalicelib.observability import logger
from chalicelib.play import anchors, codes, lifecycle, stream
from chalicelib.play.apps import PlayApp
from chalicelib.play.config import play_settings
from chalicelib.play.keys import play_keys
from chalicelib.play.lifecycle import ENDED, ENDING, GAME_SK, ROOM_SK, RUNNING, Game, Room, game_pk, room_pk
from chalicelib.play.models import INTERACTION_END
from chalicelib.play.tables import PlayGameItem
from chalicelib.settings import settings

START_ATTEMPTS = 6
RUNNING_BUCKETS = 16
END_BY_CLIENT = "end"
END_BY_TIMEOUT = "heartbeat_timeout"


def _timeout_ms() -> int:
    return play_settings().heartbeat_timeout_s * 1000


def game_from_item(item: PlayGameItem) -> Game:
    """A game from its item."""
    return Game(
        game_id=item.game_id, app_id=int(item.app_id), room_id=int(item.room_id), anchor_id=int(item.anchor_id),
        open_id=item.open_id or "", uname=item.uname or "", uface=item.uface or "", sandbox=bool(item.sandbox),
        status=item.status, started_at_ms=int(item.started_at_ms), hb_deadline_ms=int(item.hb_deadline_ms),
        next_seq=int(item.next_seq or 0), last_alloc_ms=int(item.last_alloc_ms or 0),
        ended_at_ms=None if item.ended_at_ms is None else int(item.ended_at_ms), end_reason=item.end_reason,
        end_seq=None if item.end_seq is None else int(item.end_seq),
    )


def get_game(game_id: str) -> Game | None:
    """A game by id (strongly consistent), or None."""
    try:
        return game_from_item(with_retries(lambda: PlayGameItem.get(game_pk(game_id), GAME_SK, consistent_read=True)))
    except DoesNotExist:
        return None


def get_room(room_id: int) -> tuple[Room, int] | None:
    """A room and its revision (strongly consistent), or None when no game ever ran there."""
    try:
        item = with_retries(lambda: PlayGameItem.get(room_pk(room_id), ROOM_SK, consistent_read=True))
    except DoesNotExist:
        return None
    room = Room(room_id=room_id, game_id=item.game_id, app_id=None if item.app_id is None else int(item.app_id),
                status=item.status, cooldown_until_ms=int(item.cooldown_until_ms or 0))
    return room, int(item.rev or 0)


def owned_game(app_id: int, game_id: str) -> Game:
    """The app's game; `GameNotRunning` (7000) for an unknown game or another app's (no oracle)."""
    game = get_game(game_id)
    if game is None or game.app_id != app_id:
        raise GameNotRunning("no such game for this app")
    return game


# --- start -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """A start's outcome: the game and whether this call created it."""

    game: Game
    created: bool

    def data(self, now_ms: int) -> dict[str, Any]:
        """The `data` of the start answer, as Bilibili's open-live API shapes it."""
        game = self.game
        expires = now_ms + play_settings().auth_ttl_s * 1000
        auth_body = codes.sign_game_token(play_keys(), game.game_id, game.app_id, game.room_id, expires)
        return {
            "game_info": {"game_id": game.game_id},
            "websocket_info": {"auth_body": auth_body, "wss_link": list(play_settings().wss_links)},
            "anchor_info": {"room_id": game.room_id, "uname": game.uname, "uface": game.uface,
                            "uid": game.anchor_id, "open_id": game.open_id},
        }


def _new_game(app: PlayApp, anchor: anchors.Anchor, now_ms: int) -> PlayGameItem:
    game_id = str(uuid.uuid4())
    return PlayGameItem(
        game_pk(game_id), GAME_SK, game_id=game_id, app_id=app.app_id, room_id=anchor.room_id,
        anchor_id=anchor.anchor_id, open_id=codes.open_id(play_keys(), app.app_id, anchor.anchor_id),
        uname=anchor.uname, uface="", sandbox=app.sandbox, status=RUNNING, started_at_ms=now_ms,
        hb_deadline_ms=now_ms + _timeout_ms(), next_seq=0, last_alloc_ms=now_ms, first_seq_by_hour={},
        running_bucket=str(uuid.UUID(game_id).int % RUNNING_BUCKETS), updated_at_ms=now_ms,
    )


def _claim(room_id: int, seen_rev: int | None, game: PlayGameItem, now_ms: int) -> bool:
    """Put the game and point the room at it, unless the room changed since it was read."""
    room = PlayGameItem(room_pk(room_id), ROOM_SK, game_id=game.game_id, app_id=game.app_id, status=RUNNING,
                        cooldown_until_ms=0, rev=(seen_rev or 0) + 1, updated_at_ms=now_ms)
    condition = PlayGameItem.pk.does_not_exist() if seen_rev is None else PlayGameItem.rev == seen_rev
    token = uuid.uuid4().hex

    def attempt() -> None:
        with TransactWrite(connection=connection(), client_request_token=token) as tx:
            tx.save(room, condition=condition)
            tx.save(game, condition=PlayGameItem.pk.does_not_exist())

    try:
        with_retries(attempt)
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False
        raise
    return True


def start(app: PlayApp, code: str, now_ms: int) -> Started:
    """Start (or find) the app's game in the room the identity code is bound to."""
    anchor = anchors.resolve(code)
    if anchor is None:
        raise InvalidIdentityCode("identity code is unknown or was refreshed")
    for _ in range(START_ATTEMPTS):
        found = get_room(anchor.room_id)
        room, rev = found if found else (None, None)
        game = get_game(room.game_id) if room is not None and room.game_id else None
        decision = lifecycle.decide_start(room, game, app.app_id, now_ms)
        if decision.kind == lifecycle.EXISTING and game is not None:
            return Started(game, created=False)
        if decision.kind == lifecycle.BUSY:
            raise RoomBusy(f"room {anchor.room_id} is in another app's game")
        if decision.kind == lifecycle.COOLING:
            wait_s = max(1, -(-(decision.cooldown_until_ms - now_ms) // 1000))
            raise RoomCoolingDown(f"room {anchor.room_id} is cooling down after a game; retry in {wait_s} s")
        if decision.kind == lifecycle.EXPIRE and game is not None:
            end_game(game, game.hb_deadline_ms, END_BY_TIMEOUT)
            continue
        if decision.kind == lifecycle.FINISH and game is not None:
            end_game(game, game.ended_at_ms or now_ms, game.end_reason or END_BY_CLIENT)
            continue
        item = _new_game(app, anchor, now_ms)
        if _claim(anchor.room_id, rev, item, now_ms):
            logger.info("play game started", extra={"game_id": item.game_id, "app_id": app.app_id,
                                                    "room_id": anchor.room_id})
            return Started(game_from_item(item), created=True)
    raise StorageUnavailable("the room kept changing; retry the start")


def verify_auth_body(auth_body: str, now_ms: int | None = None) -> dict[str, Any]:
    """The claims (`game_id, app_id, room_id, exp_ms`) of a start's `auth_body`, if valid and unexpired.

    What the push side's `$connect` calls; `codes.InvalidGameToken` otherwise.
    """
    return codes.verify_game_token(play_keys(), auth_body, clock.now_ms() if now_ms is None else now_ms)


# --- heartbeats ----------------------------------------------------------------------------------


def heartbeat(app_id: int, game_id: str, now_ms: int) -> None:
    """Push the game's deadline `RG_PLAY_HEARTBEAT_TIMEOUT_S` ahead; 7003 if it had already expired."""
    item = PlayGameItem(game_pk(game_id), GAME_SK)
    try:
        with_retries(lambda: item.update(
            actions=[PlayGameItem.hb_deadline_ms.set(now_ms + _timeout_ms()), PlayGameItem.updated_at_ms.set(now_ms)],
            condition=(PlayGameItem.app_id == app_id) & (PlayGameItem.status == RUNNING)
            & (PlayGameItem.hb_deadline_ms >= now_ms),
        ))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        game = owned_game(app_id, game_id)
        if game.needs_ending(now_ms):
            game = _complete(game)
        if game.end_reason == END_BY_TIMEOUT:
            raise HeartbeatExpired("the game missed its heartbeat deadline and was ended") from None
        raise GameNotRunning("the game has ended") from None


def batch_heartbeat(app_id: int, game_ids: list[str], now_ms: int) -> list[str]:
    """Heartbeat each game; returns the ids that failed (not the app's, ended, expired)."""
    lifecycle.check_batch(game_ids)
    failed = []
    for game_id in game_ids:
        try:
            heartbeat(app_id, game_id, now_ms)
        except OpenLiveError:
            failed.append(game_id)
    return failed


# --- end -----------------------------------------------------------------------------------------


def end_game(game: Game, ended_at_ms: int, reason: str) -> Game:
    """End a game (idempotent), in two steps that no concurrent append can disturb:

    1. RUNNING -> ENDING (with the end time and reason): allocations need RUNNING, so from here no event
       takes a seq, and the item's `next_seq` is final;
    2. ENDING -> ENDED with `end_seq = next_seq + 1`, and the room freed with its cooldown, in one
       transaction; then the end event is put at `end_seq`.
    A crash after step 1 leaves ENDING, which every start, heartbeat, pull and the sweeper finish; a crash
    before the end event is put leaves a hole that readers fill with that same event.
    """
    try:
        with_retries(lambda: PlayGameItem(game_pk(game.game_id), GAME_SK).update(
            actions=[PlayGameItem.status.set(ENDING), PlayGameItem.ended_at_ms.set(ended_at_ms),
                     PlayGameItem.end_reason.set(reason), PlayGameItem.updated_at_ms.set(clock.now_ms())],
            condition=PlayGameItem.status == RUNNING))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
    current = get_game(game.game_id)
    if current is None:
        raise GameNotRunning("no such game")
    if current.status == ENDING:
        _finish_end(current)
    ended = get_game(game.game_id)
    if ended is None or ended.status != ENDED or ended.end_seq is None or ended.ended_at_ms is None:
        raise StorageUnavailable("the game's end did not complete; retry")
    if stream.put_if_absent(stream.event_item(ended.game_id, ended.end_seq, INTERACTION_END,
                                              stream.end_data(ended.game_id, ended.ended_at_ms), ended.ended_at_ms,
                                              kind=stream.END)):
        notify(ended.game_id, ended.end_seq)  # connections get the end event, then `end`
    return ended


def _finish_end(game: Game) -> None:
    """ENDING -> ENDED: the end event's seq, and the room's cooldown (if the room still names this game)."""
    assert game.ended_at_ms is not None
    n = game.next_seq
    cooldown_until = game.ended_at_ms + play_settings().room_cooldown_s * 1000
    finished = [PlayGameItem.status.set(ENDED), PlayGameItem.end_seq.set(n + 1), PlayGameItem.next_seq.set(n + 1),
                PlayGameItem.running_bucket.remove(), PlayGameItem.updated_at_ms.set(clock.now_ms())]
    condition = (PlayGameItem.status == ENDING) & (PlayGameItem.next_seq == n)

    def both() -> None:
        with TransactWrite(connection=connection(), client_request_token=token) as tx:
            tx.update(PlayGameItem(game_pk(game.game_id), GAME_SK), actions=finished, condition=condition)
            tx.update(PlayGameItem(room_pk(game.room_id), ROOM_SK), actions=[
                PlayGameItem.status.set(ENDED), PlayGameItem.cooldown_until_ms.set(cooldown_until),
                PlayGameItem.rev.add(1), PlayGameItem.updated_at_ms.set(clock.now_ms()),
            ], condition=PlayGameItem.game_id == game.game_id)

    token = uuid.uuid4().hex
    try:
        with_retries(both)
    except TransactWriteError as exc:
        codes_ = cancellation_codes(exc)
        if codes_[:1] == ["ConditionalCheckFailed"]:
            return  # another caller finished it
        if codes_[1:2] != ["ConditionalCheckFailed"]:
            raise
        # The room names another game (it was taken over): finish the game alone.
        try:
            with_retries(lambda: PlayGameItem(game_pk(game.game_id), GAME_SK).update(
                actions=finished, condition=condition))
        except UpdateError as update_exc:
            if error_code(update_exc) != "ConditionalCheckFailedException":
                raise


def end(app_id: int, game_id: str, now_ms: int) -> Game:
    """The app ends its game; ending an ended game is a success (the end event is written if missing)."""
    game = owned_game(app_id, game_id)
    if game.needs_ending(now_ms):
        return _complete(game)
    return end_game(game, now_ms, END_BY_CLIENT)


def alive(app_id: int, game_id: str, now_ms: int) -> Game:
    """The app's game after the on-read expiry check (an expired one is ended here and returned ENDED)."""
    game = owned_game(app_id, game_id)
    if game.needs_ending(now_ms):
        return _complete(game)
    return game


def _complete(game: Game) -> Game:
    """End an expired game at its deadline, or finish an end that stopped half-way."""
    if game.status == ENDING:
        return end_game(game, game.ended_at_ms or game.hb_deadline_ms, game.end_reason or END_BY_CLIENT)
    return end_game(game, game.hb_deadline_ms, END_BY_TIMEOUT)


# --- the sweeper -------------------------------------------------------------------------------


def sweep(now_ms: int | None = None) -> int:
    """End every running game past its heartbeat deadline (and finish half-done ends); returns how many."""
    now_ms = clock.now_ms() if now_ms is None else now_ms
    ended = 0
    for bucket in range(RUNNING_BUCKETS):
        keys = with_retries(lambda b=bucket: [(i.pk, i.sk) for i in PlayGameItem.running.query(str(b))])
        if not keys:
            continue
        items = with_retries(lambda k=keys: list(PlayGameItem.batch_get(k, consistent_read=True)))
        for item in items:
            game = game_from_item(item)
            if game.needs_ending(now_ms):
                try:
                    _complete(game)
                    ended += 1
                except Exception:
                    logger.exception("could not end an expired game", extra={"game_id": game.game_id})
    if ended:
        logger.info("play games expired", extra={"ended": ended, "stage": settings().stage})
    return ended
