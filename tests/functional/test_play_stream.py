"""The event stream's recovery paths: a writer that died after taking a seq, a writer too slow for its seq,
an end event lost before it was written. In each, readers never skip an event and every seq is seen once."""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.play import games, ingest, stream
from chalicelib.play.tables import PlayStreamItem
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

T0 = 1_960_000_000_000


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


def seqs_and_cmds(answer: dict) -> list[tuple[int, str]]:
    return [(e["seq"], e["cmd"]) for e in answer["data"]["events"]]


def test_writer_died_after_taking_a_seq__readers_wait_then_fill_it_with_a_skip(client, monkeypatch):
    with clock_at(monkeypatch, T0) as now:
        app, anchor = make_app(client), make_anchor(client)
        game_id = start_game(client, app, anchor)
        play = direct_client(app)
        # GIVEN seq 1 taken by a writer that died before its transaction, and seq 2 written after it
        assert stream.allocate(game_id, 1, clock.now_ms()) == 1
        post_events(client, anchor.room_id, [danmaku("after the hole")])
        # WHEN a play pulls at once: it must not skip seq 1, which may still be written
        first = play.events(game_id)
        assert seqs_and_cmds(first) == [] and first["data"]["next_seq"] == 1
        # AND once the hole is older than the writers' deadline, a pull fills it and goes on
        now[0] += 30_000
        assert play.heartbeat(game_id)["code"] == 0
        now[0] += stream.FILL_AFTER_MS - 30_000 + 1
        later = play.events(game_id)
    assert seqs_and_cmds(later) == [(1, "RG_SEQ_SKIPPED"), (2, "LIVE_OPEN_PLATFORM_DM")]
    assert later["data"]["events"][0]["data"] == {} and later["data"]["next_seq"] == 3


def test_writer_too_slow_for_its_seq__takes_a_new_one__event_appended_once(client, monkeypatch):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    original = ingest._commit
    filled = []

    def slow_commit(ops):
        # A reader fills the writer's seq just before the writer's first transaction lands.
        seq = next(item.seq for kind, item, _ in ops if isinstance(item, PlayStreamItem))
        if not filled:
            filled.append(seq)
            stream.put_if_absent(stream.event_item(game_id, seq, "RG_SEQ_SKIPPED", {}, clock.now_ms(), kind="skip"))
        return original(ops)

    monkeypatch.setattr(ingest, "_commit", slow_commit)
    message = danmaku("slow")
    status, body = post_events(client, anchor.room_id, [message])
    assert status == 200 and body["results"][0]["status"] == "appended" and body["results"][0]["seq"] == 2
    stored = [(e.seq, e.cmd, e.msg_id) for e in stream.scan_from(game_id, 1)]
    assert stored == [(1, "RG_SEQ_SKIPPED", None), (2, "LIVE_OPEN_PLATFORM_DM", message["data"]["msg_id"])]


def test_end_event_lost_before_it_was_written__the_next_read_writes_it(client):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    post_events(client, anchor.room_id, [danmaku()])
    play = direct_client(app)
    assert play.end(game_id)["code"] == 0
    ended = games.get_game(game_id)
    PlayStreamItem(game_id, ended.end_seq).delete()  # as if the function died between the end and its event
    tail = play.events(game_id, after_seq=1)
    assert seqs_and_cmds(tail) == [(2, "LIVE_OPEN_PLATFORM_INTERACTION_END")]
    assert tail["data"]["events"][0]["data"] == {"game_id": game_id, "timestamp": ended.ended_at_ms // 1000}


def test_end_stopped_after_closing_the_game__heartbeat_start_and_sweeper_finish_it(client):
    from chalicelib.play.lifecycle import ENDING, game_pk
    from chalicelib.play.tables import PlayGameItem

    app = make_app(client)
    play = direct_client(app)
    anchors_ = [make_anchor(client) for _ in range(3)]
    stuck = [start_game(client, app, a) for a in anchors_]
    for game_id in stuck:
        # GIVEN an end that died after step 1 (the game closed to events, its end seq not taken)
        PlayGameItem(game_pk(game_id), "game").update(actions=[
            PlayGameItem.status.set(ENDING), PlayGameItem.ended_at_ms.set(clock.now_ms()),
            PlayGameItem.end_reason.set("end")])
    # WHEN a heartbeat, a start in the room and the sweeper find them
    assert play.heartbeat(stuck[0])["code"] == 7000
    assert play.start(anchors_[1].code)["code"] == 7001  # finished, then the room cools down
    assert games.sweep() >= 1
    # THEN each is ENDED with the end event as its last seq
    for game_id in stuck:
        assert games.get_game(game_id).status == "ENDED"
        assert [e.cmd for e in stream.scan_from(game_id, 1)] == ["LIVE_OPEN_PLATFORM_INTERACTION_END"]
    # AND an event pushed to the room meanwhile was refused, not appended after the end
    assert post_events(client, anchors_[2].room_id, [danmaku()])[1]["results"][0]["status"] == "no_game"
