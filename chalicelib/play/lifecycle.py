"""A game's life: what a start finds in the room, when a game has expired, what a batch may hold. Pure.

One running game per room. A start by the app already running the room's game gets that game back;
another app gets 7002. A game whose heartbeat deadline passed is over, whether or not anything has
recorded that yet: every read checks the deadline, so correctness never waits for the sweeper. After an
end the room cools down for `RG_PLAY_ROOM_COOLDOWN_S` (7001); an expired game ended at its deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.errors import DuplicateGameIds, TooManyGameIds

GAME_SK = "game"
ROOM_SK = "room"
RUNNING = "RUNNING"
ENDING = "ENDING"  # closed to new events; the end event's seq not yet taken (see games.end_game)
ENDED = "ENDED"
MAX_BATCH = 200

CREATE = "create"
EXISTING = "existing"
BUSY = "busy"
COOLING = "cooling"
EXPIRE = "expire"
FINISH = "finish"


def game_pk(game_id: str) -> str:
    """Hash key of a game's item in the games table."""
    return f"game#{game_id}"


def room_pk(room_id: int) -> str:
    """Hash key of a room's item in the games table."""
    return f"room#{room_id}"


@dataclass(frozen=True)
class Game:
    """One game session."""

    game_id: str
    app_id: int
    room_id: int
    anchor_id: int
    open_id: str
    uname: str
    uface: str
    sandbox: bool
    status: str
    started_at_ms: int
    hb_deadline_ms: int
    next_seq: int = 0
    last_alloc_ms: int = 0
    ended_at_ms: int | None = None
    end_reason: str | None = None
    end_seq: int | None = None

    def expired(self, now_ms: int) -> bool:
        """Running on paper, but its heartbeat deadline has passed."""
        return self.status == RUNNING and self.hb_deadline_ms < now_ms

    def running(self, now_ms: int) -> bool:
        """Running and alive."""
        return self.status == RUNNING and self.hb_deadline_ms >= now_ms

    def needs_ending(self, now_ms: int) -> bool:
        """An end someone must do or finish: the deadline passed, or an end stopped half-way."""
        return self.expired(now_ms) or self.status == ENDING


@dataclass(frozen=True)
class Room:
    """Which game a room holds."""

    room_id: int
    game_id: str | None
    app_id: int | None
    status: str | None
    cooldown_until_ms: int = 0


@dataclass(frozen=True)
class StartDecision:
    """What a start must do: create a game, return `game_id`, refuse (busy, cooling), or first expire it or
    finish its half-done end."""

    kind: str
    game_id: str | None = None
    cooldown_until_ms: int = 0


def decide_start(room: Room | None, game: Game | None, app_id: int, now_ms: int) -> StartDecision:
    """What a start by `app_id` finds in the room at `now_ms` (`game`: the room's game, if it points to one)."""
    if room is None or room.game_id is None:
        return StartDecision(CREATE)
    if room.status == RUNNING and game is not None and game.status == ENDING:
        return StartDecision(FINISH, game.game_id)
    if room.status == RUNNING and game is not None and game.status == RUNNING:
        if game.expired(now_ms):
            return StartDecision(EXPIRE, game.game_id)
        if game.app_id == app_id:
            return StartDecision(EXISTING, game.game_id)
        return StartDecision(BUSY, game.game_id)
    if room.cooldown_until_ms > now_ms:
        return StartDecision(COOLING, room.game_id, room.cooldown_until_ms)
    return StartDecision(CREATE)


def check_batch(game_ids: Sequence[str]) -> None:
    """A batch heartbeat names at most 200 games, each once (7004, 7005)."""
    if len(game_ids) > MAX_BATCH:
        raise TooManyGameIds(f"game_ids holds {len(game_ids)} ids; at most {MAX_BATCH}")
    if len(set(game_ids)) != len(game_ids):
        seen: set[str] = set()
        repeated = sorted({g for g in game_ids if g in seen or seen.add(g)})  # type: ignore[func-returns-value]
        raise DuplicateGameIds(f"game_ids repeats {', '.join(repeated[:5])}")
