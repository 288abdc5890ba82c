"""What a start finds in a room, and the batch heartbeat's limits (chalicelib.play.lifecycle)."""

from __future__ import annotations

import pytest

from chalicelib.errors import DuplicateGameIds, TooManyGameIds
from chalicelib.play import lifecycle as lc


def game(app_id: int = 1, status: str = lc.RUNNING, deadline: int = 1_000) -> lc.Game:
    return lc.Game(game_id="g", app_id=app_id, room_id=9, anchor_id=5, open_id="o", uname="u", uface="",
                   sandbox=False, status=status, started_at_ms=0, hb_deadline_ms=deadline)


RUNNING_ROOM = lc.Room(room_id=9, game_id="g", app_id=1, status=lc.RUNNING)


@pytest.mark.parametrize(("room", "the_game", "app_id", "now", "kind"), [
    (None, None, 1, 0, lc.CREATE),
    (RUNNING_ROOM, game(), 1, 500, lc.EXISTING),
    (RUNNING_ROOM, game(), 2, 500, lc.BUSY),
    (RUNNING_ROOM, game(), 1, 1_000, lc.EXISTING),  # the deadline itself is still alive
    (RUNNING_ROOM, game(), 2, 1_001, lc.EXPIRE),
    (lc.Room(9, "g", 1, lc.ENDED, cooldown_until_ms=2_000), game(status=lc.ENDED), 1, 1_999, lc.COOLING),
    (lc.Room(9, "g", 1, lc.ENDED, cooldown_until_ms=2_000), game(status=lc.ENDED), 2, 2_000, lc.CREATE),
    (RUNNING_ROOM, game(status=lc.ENDING), 2, 500, lc.FINISH),  # an end stopped half-way: finish it first
])
def test_decide_start(room, the_game, app_id, now, kind):
    assert lc.decide_start(room, the_game, app_id, now).kind == kind


def test_check_batch__200_distinct__fine_201__7004_repeat__7005():
    lc.check_batch([str(i) for i in range(200)])
    with pytest.raises(TooManyGameIds):
        lc.check_batch([str(i) for i in range(201)])
    with pytest.raises(DuplicateGameIds, match="b"):
        lc.check_batch(["a", "b", "c", "b"])


def test_game_expired_running__at_and_after_the_deadline():
    assert game().running(1_000) and not game().expired(1_000)
    assert game().expired(1_001) and not game().running(1_001)
    assert not game(status=lc.ENDED).expired(5_000)
    assert game(status=lc.ENDING).needs_ending(0) and game().needs_ending(1_001) and not game().needs_ending(1_000)
