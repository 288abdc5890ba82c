"""The WebSocket handlers driven with API Gateway's own event shapes, and the push worker over the real `live`
queue, against a fake `@connections` that answers Gone for chosen connections (DynamoDB Local + moto)."""

from __future__ import annotations

import json

import pytest

from chalicelib import clock, process_state
from chalicelib.live import connections, gateway, notify, protocol, push
from chalicelib.play import codes, games, keys
from tests.live_support import (
    FakeConnections,
    connect,
    disconnect,
    drain_live,
    install_fake_connections,
    message,
    new_connection_id,
    purge_live,
    unpack,
)
from tests.play_support import danmaku, gift, ingest_direct, install_play_key, make_anchor, make_app, open_live


@pytest.fixture
def fake(monkeypatch) -> FakeConnections:
    return install_fake_connections(monkeypatch)


@pytest.fixture(scope="module")
def game(client):
    install_play_key()

    def start() -> dict:
        app = make_app(client, sandbox=True)
        anchor = make_anchor(client)
        answer = open_live(client, app).start(anchor.code)
        assert answer["code"] == 0, answer
        data = answer["data"]
        return {"game_id": data["game_info"]["game_id"], "auth_body": data["websocket_info"]["auth_body"],
                "room_id": anchor.room_id, "app_id": app.app_id}

    return start


def danmakus(room_id: int, n: int, prefix: str = "m") -> None:
    results = ingest_direct(room_id, [danmaku(f"{prefix}{i}") for i in range(n)], test=True)
    assert {r.status for r in results} == {"appended"}


# --- $connect ------------------------------------------------------------------------------------------


def test_connect__missing_forged_or_expired_auth_body__401_and_no_row(game, fake):
    g = game()
    expired = codes.sign_game_token(keys.play_keys(), g["game_id"], g["app_id"], g["room_id"], clock.now_ms() - 1)
    forged = g["auth_body"][:-6] + ("AAAAAA" if not g["auth_body"].endswith("AAAAAA") else "BBBBBB")
    other_key = codes.PlayKeys.from_master(b"x" * 32)
    foreign = codes.sign_game_token(other_key, g["game_id"], g["app_id"], g["room_id"], clock.now_ms() + 60_000)
    for token in (None, "", expired, forged, foreign, "v1.e30.AAAA"):
        # WHEN a client connects with it
        connection_id = new_connection_id()
        answer = connect(connection_id, token)
        # THEN the handshake is refused, the body names the problem, and nothing is written
        assert answer["statusCode"] == 401, (token, answer)
        assert "auth_body" in json.loads(answer["body"])["message"]
        assert connections.get(connection_id) is None
    assert connections.members(g["game_id"]) == []
    assert drain_live() == 0 and fake.posts == {}


# "²" passes `str.isdigit` and not `int`: a 500 before
@pytest.mark.parametrize("after_seq", ["-1", "²", "\u0663"])
def test_connect__bad_after_seq__400_and_no_row(game, fake, after_seq):
    g = game()
    connection_id = new_connection_id()
    answer = connect(connection_id, g["auth_body"], after_seq=after_seq)
    assert answer["statusCode"] == 400 and "after_seq" in answer["body"]
    assert connections.get(connection_id) is None


def test_connect__valid__registered_and_the_offline_inbox_is_pushed_in_order(game, fake):
    # GIVEN a game that already holds 5 events (nobody connected yet)
    g = game()
    danmakus(g["room_id"], 5)
    # WHEN a client connects with the game's auth_body
    connection_id = new_connection_id()
    assert connect(connection_id, g["auth_body"]) == {"statusCode": 200}
    row = connections.get(connection_id)
    assert row is not None and (row.game_id, row.app_id, row.sent_seq) == (g["game_id"], g["app_id"], 0)
    assert connections.members(g["game_id"]) == [connection_id]
    drain_live()
    # THEN it is pushed seq 1..5 (one frame: a batch), and its cursor is at 5
    assert fake.events(connection_id) == [1, 2, 3, 4, 5]
    assert len(fake.posts[connection_id]) == 1
    assert connections.get(connection_id).sent_seq == 5


def test_connect__after_seq__starts_after_it(game, fake):
    g = game()
    danmakus(g["room_id"], 6)
    connection_id = new_connection_id()
    assert connect(connection_id, g["auth_body"], after_seq="4")["statusCode"] == 200
    drain_live()
    assert fake.events(connection_id) == [5, 6]


# --- $default: ping, ack, resume, refusals -------------------------------------------------------------


def connected(g: dict, fake: FakeConnections) -> str:
    connection_id = new_connection_id()
    assert connect(connection_id, g["auth_body"])["statusCode"] == 200
    drain_live()
    fake.posts[connection_id].clear()
    return connection_id


def test_message__ping__pong_with_cursor_and_reconnect_advice(game, fake):
    g = game()
    danmakus(g["room_id"], 3)
    connection_id = connected(g, fake)
    assert message(connection_id, {"op": "ping"}) == {"statusCode": 200}
    pong = unpack(fake.posts[connection_id][0])[0]
    assert pong["op"] == "pong" and (pong["sent_seq"], pong["acked_seq"]) == (3, 0)
    assert 6_600 <= pong["reconnect_in_s"] <= 6_900 and pong["ping_every_s"] == 300


def test_message__ping_of_a_connection_that_missed_a_push__catches_it_up(game, fake):
    # GIVEN a connection whose push message was lost (the queue was purged)
    g = game()
    connection_id = connected(g, fake)
    danmakus(g["room_id"], 4)
    purge_live()
    # WHEN the client pings
    message(connection_id, {"op": "ping"})
    # THEN the pong comes, then the 4 events it missed
    ops = [m["op"] for text in fake.posts[connection_id] for m in unpack(text)]
    assert ops[0] == "pong" and fake.events(connection_id) == [1, 2, 3, 4]


def test_message__ack__recorded_and_an_ack_ahead_is_refused(game, fake):
    g = game()
    danmakus(g["room_id"], 3)
    connection_id = connected(g, fake)
    message(connection_id, {"op": "ack", "seq": 2})
    assert connections.get(connection_id).acked_seq == 2
    message(connection_id, {"op": "ack", "seq": 1})  # cumulative: never moves back
    message(connection_id, {"op": "ack", "seq": 9})
    assert connections.get(connection_id).acked_seq == 2
    assert unpack(fake.posts[connection_id][-1])[0] == {
        "op": "error", "code": "seq_ahead", "message": "ack 9 is beyond the last seq sent to this connection (3)"}


def test_message__resume__replays_after_it_then_live(game, fake):
    g = game()
    danmakus(g["room_id"], 6)
    connection_id = connected(g, fake)
    # WHEN the client resumes after seq 2
    message(connection_id, {"op": "resume", "after_seq": 2})
    # THEN seq 3..6 are replayed at once (by the handler itself), and later events follow live
    assert fake.events(connection_id) == [3, 4, 5, 6]
    danmakus(g["room_id"], 2, "later")
    drain_live()
    assert fake.events(connection_id) == [3, 4, 5, 6, 7, 8]
    assert connections.get(connection_id).gen == 1


def test_message__resume_beyond_the_stream__refused_and_cursor_unchanged(game, fake):
    g = game()
    danmakus(g["room_id"], 2)
    connection_id = connected(g, fake)
    message(connection_id, {"op": "resume", "after_seq": 50})
    assert unpack(fake.posts[connection_id][-1])[0] == {
        "op": "error", "code": "seq_ahead", "message": "after_seq 50 is beyond the game's last seq (2)"}
    assert (connections.get(connection_id).sent_seq, connections.get(connection_id).gen) == (2, 0)


@pytest.mark.parametrize(("body", "code", "text"), [
    ("not json", "bad_frame", "the frame is not JSON"),
    ("[1]", "bad_frame", "the frame must be a JSON object"),
    ('{"seq": 1}', "invalid_field", "op: is missing"),
    ('{"op": "subscribe"}', "unknown_op", 'op "subscribe" is not one of ack, resume, ping'),
    ('{"op": "ack"}', "invalid_field", "seq: is missing"),
    ('{"op": "ack", "seq": true}', "invalid_field", "seq: must be an integer >= 0"),
    ('{"op": "resume", "after_seq": -3}', "invalid_field", "after_seq: must be an integer >= 0"),
    ("x" * 5000, "bad_frame", "a client frame must be at most 4096 bytes"),
])
def test_message__bad_frame__error_naming_it_and_nothing_changed(game, fake, body, code, text):
    g = game()
    danmakus(g["room_id"], 1)
    connection_id = connected(g, fake)
    before = connections.get(connection_id)
    message(connection_id, body)
    assert unpack(fake.posts[connection_id][-1])[0] == {"op": "error", "code": code, "message": text}
    assert connections.get(connection_id) == before


def test_message__unregistered_connection__not_connected_and_closed(fake):
    connection_id = new_connection_id()
    message(connection_id, {"op": "ping"})
    assert unpack(fake.posts[connection_id][0])[0]["code"] == "not_connected"
    assert fake.closed == [connection_id]


def test_disconnect__removes_the_connection_and_its_member_entry(game, fake):
    g = game()
    connection_id = connected(g, fake)
    disconnect(connection_id)
    assert connections.get(connection_id) is None and connections.members(g["game_id"]) == []


# --- the push worker -----------------------------------------------------------------------------------


def test_push__gone_connection_removed__the_others_get_everything(game, fake, monkeypatch):
    # GIVEN three connections of one game, one of which API Gateway answers Gone (its $disconnect was lost)
    g = game()
    ids = [connected(g, fake) for _ in range(3)]
    monkeypatch.setattr(push, "GONE_GRACE_MS", 0)  # connected long ago, as far as the grace goes
    fake.gone.add(ids[1])
    # WHEN events arrive
    danmakus(g["room_id"], 7)
    drain_live()
    # THEN the other two receive all of them and the gone one is removed (its events stay in the stream)
    assert fake.events(ids[0]) == fake.events(ids[2]) == list(range(1, 8))
    assert connections.get(ids[1]) is None and sorted(connections.members(g["game_id"])) == sorted([ids[0], ids[2]])


def test_push__gone_right_after_connect__kept_and_retried(game, fake):
    # GIVEN a connection whose handshake has not completed (API Gateway answers Gone for a few ms)
    g = game()
    danmakus(g["room_id"], 2)
    connection_id = new_connection_id()
    fake.gone.add(connection_id)
    connect(connection_id, g["auth_body"])
    report = push.push(g["game_id"], [connection_id], None, clock.now_ms() + 10_000)
    # THEN it is not removed: a retry is queued
    assert (report.gone, report.retried) == (0, 1) and connections.get(connection_id) is not None
    fake.gone.clear()
    drain_live()
    assert fake.events(connection_id) == [1, 2]


def test_push__failing_connection__retried_alone_while_others_proceed(game, fake):
    g = game()
    ok, bad = connected(g, fake), connected(g, fake)
    fake.failing.add(bad)
    danmakus(g["room_id"], 3)
    report = push.handle(notify.PushMessage(g["game_id"], 3), clock.now_ms() + 10_000)
    assert fake.events(ok) == [1, 2, 3] and fake.events(bad) == []
    assert report.retried == 1 and connections.get(bad).sent_seq == 0
    fake.failing.clear()
    drain_live()
    assert fake.events(bad) == [1, 2, 3]


def test_push__more_connections_than_a_chunk__one_message_per_chunk__all_served(game, fake, monkeypatch):
    monkeypatch.setenv("RG_LIVE_CHUNK", "2")
    process_state.reset()
    try:
        g = game()
        ids = [connected(g, fake) for _ in range(5)]
        danmakus(g["room_id"], 4)
        purge_live()
        report = push.fan_out(g["game_id"], 4, clock.now_ms() + 10_000)
        assert report.chunks == 3 and fake.events(ids[0]) == []
        drain_live()
        assert all(fake.events(c) == [1, 2, 3, 4] for c in ids)
    finally:
        monkeypatch.delenv("RG_LIVE_CHUNK")
        process_state.reset()


def test_push__redelivered_and_racing_messages__duplicates_only_never_a_gap(game, fake):
    # GIVEN a connection, and the same push message delivered five times (SQS at-least-once, Lambda retries)
    g = game()
    connection_id = connected(g, fake)
    danmakus(g["room_id"], 10)
    purge_live()
    notify.send([notify.PushMessage(g["game_id"], 10, [connection_id])] * 5)
    drain_live()
    # THEN the client, deduping on seq, sees 1..10 once, and every frame started at most one past what it had
    seen = 0
    for text in fake.posts[connection_id]:
        seqs = [m["seq"] for m in unpack(text) if m["op"] == "event"]
        assert seqs[0] <= seen + 1, (seqs, seen)
        seen = max(seen, seqs[-1])
    assert seen == 10 and sorted(set(fake.events(connection_id))) == list(range(1, 11))


def test_push__frames_batched_within_the_frame_limit(game, fake, monkeypatch):
    monkeypatch.setenv("RG_LIVE_MAX_FRAME_BYTES", "2048")
    process_state.reset()
    try:
        g = game()
        connection_id = connected(g, fake)
        ingest_direct(g["room_id"], [gift(msg_id=f"big{i}", padding="x" * 300) for i in range(20)], test=True)
        drain_live()
        frames = fake.posts[connection_id]
        assert all(len(f.encode()) <= 2048 for f in frames) and 5 <= len(frames) < 20
        assert fake.events(connection_id) == list(range(1, 21))
    finally:
        monkeypatch.delenv("RG_LIVE_MAX_FRAME_BYTES")
        process_state.reset()


def test_push__game_end__end_event_then_end_op(game, fake):
    g = game()
    connection_id = connected(g, fake)
    danmakus(g["room_id"], 1)
    games.end(g["app_id"], g["game_id"], clock.now_ms())
    drain_live()
    messages = fake.messages(connection_id)
    assert [(m["op"], m.get("seq"), m.get("cmd")) for m in messages] == [
        ("event", 1, "LIVE_OPEN_PLATFORM_DM"), ("event", 2, "LIVE_OPEN_PLATFORM_INTERACTION_END"), ("end", None, None)]
    assert messages[-1] == protocol.end_message(g["game_id"])


def test_push__poison_message__dropped_not_retried(fake):
    from chalicelib.clients import queue_url, sqs
    from chalicelib.queues import LIVE

    sqs().send_message(QueueUrl=queue_url(LIVE.name), MessageBody="not json")
    assert drain_live() == 1


# --- deadlines -----------------------------------------------------------------------------------------


def test_connect__storage_unavailable__503_refused_within_the_deadline(game, fake, monkeypatch):
    # GIVEN a valid auth_body, and a database that cannot register the connection
    from chalicelib.errors import StorageUnavailable

    g = game()
    seen: list[float] = []

    def failing_register(*_args, **_kwargs):
        from chalicelib import deadline

        seen.append(deadline.remaining_s())
        raise StorageUnavailable("database unavailable after retries")

    monkeypatch.setattr(connections, "register", failing_register)
    # WHEN the client connects
    answer = connect(new_connection_id(), g["auth_body"])
    # THEN the handshake is refused with a retryable 503 (no internal cause in the body), not a crashed handler
    assert answer["statusCode"] == 503
    assert json.loads(answer["body"]) == {"code": "unavailable", "message": "the service is unavailable; retry"}
    # AND the registration ran under the connect function's deadline
    assert len(seen) == 1 and 0 < seen[0] < 29


def test_push__parallel_posts__each_thread_keeps_the_invocation_deadline(game, fake, monkeypatch):
    # GIVEN three connections of one game (pushed in parallel threads)
    import math

    from chalicelib import deadline

    g = game()
    ids = [connected(g, fake) for _ in range(3)]
    remaining: list[float] = []
    post = fake.post

    def timed_post(connection_id: str, text: str) -> None:
        remaining.append(deadline.remaining_s())
        post(connection_id, text)

    monkeypatch.setattr(gateway, "post", timed_post)
    # WHEN events are pushed by the worker
    danmakus(g["room_id"], 4)
    drain_live()
    # THEN every connection got them, and every post (in whichever thread) ran under the worker's deadline
    assert [fake.events(c) for c in ids] == [[1, 2, 3, 4]] * 3
    assert remaining and all(math.isfinite(r) and r > 0 for r in remaining), remaining
