"""Issue 24 items 2 and 3: bounded WebSocket use per game.

- `$connect` refuses an ended game's and a banned app's `auth_body`, and a game's connections are capped;
- `resume` and `ping` are rate-limited per connection, and a resume's replay inside `$default` is bounded per
  frame; the rest reaches the client through the normal push, in order, with no gap.

Handlers driven with API Gateway's own event shapes; `@connections` is a fake that records every post.
"""

from __future__ import annotations

import json

import pytest

from chalicelib import clock
from chalicelib.live import config as live_config
from chalicelib.live import connections
from chalicelib.play import apps, security
from tests.live_support import (
    FakeConnections,
    connect,
    disconnect,
    drain_live,
    install_fake_connections,
    message,
    new_connection_id,
)
from tests.play_support import danmaku, ingest_direct, install_play_key, make_anchor, make_app, open_live


@pytest.fixture
def fake(monkeypatch) -> FakeConnections:
    return install_fake_connections(monkeypatch)


@pytest.fixture
def live_env(monkeypatch):
    """Set RG_LIVE_* variables for one test."""
    def put(**values: int) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"RG_LIVE_{name.upper()}", str(value))
        live_config.reset()

    yield put
    monkeypatch.undo()
    live_config.reset()


@pytest.fixture
def game(client):
    install_play_key()
    app = make_app(client, sandbox=True)
    anchor = make_anchor(client)
    play = open_live(client, app)
    answer = play.start(anchor.code)
    assert answer["code"] == 0, answer
    data = answer["data"]
    return {"game_id": data["game_info"]["game_id"], "auth_body": data["websocket_info"]["auth_body"],
            "room_id": anchor.room_id, "app_id": app.app_id, "play": play}


def body_of(answer: dict) -> dict:
    return json.loads(answer["body"])


# --- $connect --------------------------------------------------------------------------------------


def test_connect__ended_game_auth_body__403_game_ended_and_no_row(game, fake):
    # GIVEN a game its play has ended (its auth_body is still within its signed lifetime)
    assert game["play"].end(game["game_id"])["code"] == 0
    connection_id = new_connection_id()
    # WHEN a client connects with that auth_body
    answer = connect(connection_id, game["auth_body"])
    # THEN it is refused, naming why, and nothing is registered
    assert answer["statusCode"] == 403
    assert body_of(answer) == {"code": "game_ended", "message": f"game {game['game_id']} has ended: "
                                                                "pull its events with /v2/app/events"}
    assert connections.get(connection_id) is None and connections.members(game["game_id"]) == []


def test_connect__banned_app_auth_body__403_app_banned_and_no_row(game, fake):
    # GIVEN the game's app is banned by the security centre
    security.offend(apps.find_app(game["app_id"]), clock.now_ms())
    connection_id = new_connection_id()
    # WHEN a client connects with the game's auth_body
    answer = connect(connection_id, game["auth_body"])
    # THEN it is refused and nothing is registered
    assert answer["statusCode"] == 403 and body_of(answer)["code"] == "app_banned"
    assert connections.get(connection_id) is None and connections.members(game["game_id"]) == []


def test_connect__beyond_the_per_game_cap__429_and_a_freed_slot_is_reused(game, fake, live_env):
    live_env(max_connections_per_game=3)
    ids = [new_connection_id() for _ in range(5)]
    # WHEN five clients connect with one auth_body under a cap of 3
    answers = [connect(c, game["auth_body"]) for c in ids]
    # THEN three are registered and two refused (429), naming the cap
    assert [a["statusCode"] for a in answers] == [200, 200, 200, 429, 429]
    assert body_of(answers[3]) == {"code": "too_many_connections",
                                   "message": f"game {game['game_id']} already has 3 connections (the limit)"}
    assert sorted(connections.members(game["game_id"])) == sorted(ids[:3])
    # AND a repeat of an accepted $connect is harmless (still one slot)
    assert connect(ids[0], game["auth_body"])["statusCode"] == 200
    # AND once one disconnects, one more may connect
    disconnect(ids[1])
    assert connect(ids[3], game["auth_body"])["statusCode"] == 200
    assert connect(ids[4], game["auth_body"])["statusCode"] == 429
    assert sorted(connections.members(game["game_id"])) == sorted([ids[0], ids[2], ids[3]])


# --- $default: resume and ping -----------------------------------------------------------------------


def stored(room_id: int, n: int) -> None:
    for start in range(0, n, 100):
        results = ingest_direct(room_id, [danmaku(f"m{i}") for i in range(start, min(n, start + 100))], test=True)
        assert {r.status for r in results} == {"appended"}


def test_message__resume_storm__rate_limited_and_each_replay_bounded(game, fake, live_env):
    live_env(replay_max_events=50, frames_per_minute=3)
    stored(game["room_id"], 300)
    connection_id = new_connection_id()
    assert connect(connection_id, game["auth_body"])["statusCode"] == 200
    drain_live()
    fake.posts[connection_id].clear()
    # WHEN the client sends ten {"op": "resume", "after_seq": 0} frames in one minute
    for _ in range(10):
        message(connection_id, {"op": "resume", "after_seq": 0})
    inline = fake.events(connection_id)
    errors = [m for m in fake.messages(connection_id) if m["op"] == "error"]
    # THEN only the first three are served, each replaying at most 50 events inside the handler,
    print(f"resume frames=10 events re-sent by the handler={len(inline)} refused={len(errors)}")
    assert len(inline) == 3 * 50
    assert len(errors) == 7 and errors[0]["code"] == "rate_limited"
    assert errors[0]["message"] == "at most 3 resume or ping frames a minute per connection; retry later"
    # AND the rest of the last replay arrives through the normal push: every seq 1..300 in order after it
    before = len(fake.events(connection_id))
    drain_live()
    assert fake.events(connection_id)[before - 50:] == list(range(1, 301))


def test_message__ping_flood__rate_limited_and_the_window_opens_again(game, fake, live_env, monkeypatch):
    live_env(frames_per_minute=2)
    connection_id = new_connection_id()
    assert connect(connection_id, game["auth_body"])["statusCode"] == 200
    drain_live()
    now = [clock.now_ms()]
    monkeypatch.setattr(clock, "now_ms", lambda: now[0])
    # WHEN three pings come within a minute, and one more a minute later
    for _ in range(3):
        message(connection_id, {"op": "ping"})
    now[0] += 60_000
    message(connection_id, {"op": "ping"})
    ops = [m["op"] for m in fake.messages(connection_id)]
    # THEN two pongs, one refusal, then a pong again
    assert ops == ["pong", "pong", "error", "pong"]
