"""Issue 24 item 5: reading a stream (a pull, a resume, a push) never writes to it; a missing seq is reported as
what it is: `RG_SEQ_EXPIRED` (its event outlived the stream's TTL and was deleted) or `RG_SEQ_SKIPPED` (its
writer died before writing it)."""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.play import stream
from chalicelib.play.lifecycle import GAME_SK, game_pk
from chalicelib.play.tables import PlayGameItem, PlayStreamItem
from tests.play_support import (
    clock_at,
    danmaku,
    direct_client,
    install_play_key,
    make_anchor,
    make_app,
    post_events,
    start_game,
)

T0 = 1_980_000_000_000
HOUR_MS = 3600 * 1000


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


def seqs_and_cmds(answer: dict) -> list[tuple[int, str]]:
    return [(e["seq"], e["cmd"]) for e in answer["data"]["events"]]


def stored_seqs(game_id: str) -> list[tuple[int, str]]:
    return [(e.seq, e.cmd) for e in stream.scan_from(game_id, 1)]


def keep_alive(game_id: str) -> None:
    """Push the game's heartbeat deadline far ahead (a play heartbeating for two days)."""
    PlayGameItem(game_pk(game_id), GAME_SK).update(actions=[PlayGameItem.hb_deadline_ms.set(T0 + 100 * HOUR_MS)])


def test_read__events_expired_before_younger_ones__reported_expired_and_nothing_written(client, monkeypatch):
    with clock_at(monkeypatch, T0) as now:
        app, anchor = make_app(client), make_anchor(client)
        game_id = start_game(client, app, anchor)
        keep_alive(game_id)
        play = direct_client(app)
        # GIVEN seq 1..3 stored at T0 and seq 4..5 stored 47 hours later
        post_events(client, anchor.room_id, [danmaku(f"old {i}") for i in range(3)])
        now[0] = T0 + 47 * HOUR_MS
        post_events(client, anchor.room_id, [danmaku(f"new {i}") for i in range(2)])
        # AND the stream's TTL (48 h) has deleted seq 1..3
        for seq in (1, 2, 3):
            PlayStreamItem(game_id, seq).delete()
        now[0] = T0 + 50 * HOUR_MS
        # WHEN the play pulls from the start
        answer = play.events(game_id)
    # THEN the three are reported expired, the two stored follow, and the read wrote nothing
    assert seqs_and_cmds(answer) == [(1, "RG_SEQ_EXPIRED"), (2, "RG_SEQ_EXPIRED"), (3, "RG_SEQ_EXPIRED"),
                                     (4, "LIVE_OPEN_PLATFORM_DM"), (5, "LIVE_OPEN_PLATFORM_DM")]
    assert answer["data"]["next_seq"] == 6
    assert stored_seqs(game_id) == [(4, "LIVE_OPEN_PLATFORM_DM"), (5, "LIVE_OPEN_PLATFORM_DM")]


def test_read__dead_writer_hole__reported_skipped_and_nothing_written(client, monkeypatch):
    with clock_at(monkeypatch, T0) as now:
        app, anchor = make_app(client), make_anchor(client)
        game_id = start_game(client, app, anchor)
        keep_alive(game_id)
        play = direct_client(app)
        # GIVEN seq 1 taken by a writer that died, and seq 2 written after it
        assert stream.allocate(game_id, 1, clock.now_ms()) == 1
        post_events(client, anchor.room_id, [danmaku("after the hole")])
        # WHEN the hole is older than every writer's deadline and 20 plays pull
        now[0] += stream.FILL_AFTER_MS + 1
        answers = [play.events(game_id) for _ in range(20)]
    # THEN each sees seq 1 as skipped and seq 2, and the stream holds only what its writers wrote
    assert {tuple(seqs_and_cmds(a)) for a in answers} == {((1, "RG_SEQ_SKIPPED"), (2, "LIVE_OPEN_PLATFORM_DM"))}
    assert stored_seqs(game_id) == [(2, "LIVE_OPEN_PLATFORM_DM")]


def test_read__end_event_lost__reported_from_the_game_and_nothing_written(client):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    play = direct_client(app)
    post_events(client, anchor.room_id, [danmaku()])
    assert play.end(game_id)["code"] == 0
    PlayStreamItem(game_id, 2).delete()  # as if the function died between the end and its event
    tail = play.events(game_id, after_seq=1)
    assert seqs_and_cmds(tail) == [(2, "LIVE_OPEN_PLATFORM_INTERACTION_END")]
    assert stored_seqs(game_id) == [(1, "LIVE_OPEN_PLATFORM_DM")]
