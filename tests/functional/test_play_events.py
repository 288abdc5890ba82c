"""Live events from the platform: routed to the running game, deduplicated, validated, test-only for sandboxes."""

from __future__ import annotations

import json

import pytest

from tests.play_support import (
    danmaku,
    gift,
    install_play_key,
    make_anchor,
    make_app,
    new_id,
    open_live,
    post_events,
    start_game,
)
from tests.problems import invalid, problem
from tests.rewards_support import call


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


def test_events__no_game_in_the_room__no_game_and_nothing_kept(client):
    room_id = new_id()
    status, body = post_events(client, room_id, [danmaku()])
    assert status == 200 and [r["status"] for r in body["results"]] == ["no_game"]


def test_event__single_form__appended_with_game_and_seq(client):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    message = gift()
    status, body = call(client, "POST", f"/v1/play/rooms/{anchor.room_id}/events", message)
    assert status == 200
    assert body == {"msg_id": message["data"]["msg_id"], "status": "appended", "game_id": game_id, "seq": 1,
                    "settled": True}


def test_events__redelivered_same_content__duplicate_with_the_original_seq_appended_once(client):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    first = danmaku("once")
    post_events(client, anchor.room_id, [first])
    # WHEN the platform redelivers it, alone and inside a batch, and the batch repeats it too
    _, alone = post_events(client, anchor.room_id, [first])
    _, batch = post_events(client, anchor.room_id, [danmaku("new"), first, first])
    # THEN each repeat is a duplicate naming the original seq, and the stream holds it once
    assert alone["results"][0] == {"msg_id": first["data"]["msg_id"], "status": "duplicate", "game_id": game_id,
                                   "seq": 1, "settled": False}
    assert [(r["status"], r["seq"]) for r in batch["results"]] == [("appended", 2), ("duplicate", 1),
                                                                    ("duplicate", 1)]
    events = open_live(client, app).all_events(game_id)
    assert [(e["seq"], e["data"]["msg"]) for e in events] == [(1, "once"), (2, "new")]


def test_event__same_msg_id_other_content__409_live_event_conflict_nothing_appended(client):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    original = danmaku("original")
    post_events(client, anchor.room_id, [original])
    forged = {"cmd": original["cmd"], "data": {**original["data"], "msg": "changed"}}
    status, body = call(client, "POST", f"/v1/play/rooms/{anchor.room_id}/events", forged)
    assert (status, body) == (409, problem("live_event_conflict", f"msg_id {original['data']['msg_id']} was received "
                                           "with different content", msg_id=original["data"]["msg_id"],
                                           game_id=game_id, seq=1))
    assert [e["data"]["msg"] for e in open_live(client, app).all_events(game_id)] == ["original"]


def test_events__test_event_for_a_live_apps_game__409_sandbox_only_nothing_appended(client):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    status, body = post_events(client, anchor.room_id, [gift()], test=True)
    assert (status, body["code"], body["app_id"]) == (409, "sandbox_only", app.app_id)
    assert open_live(client, app).all_events(game_id) == []


def test_events__test_event_for_a_sandbox_game__appended_and_settled(client):
    app, anchor = make_app(client, sandbox=True), make_anchor(client)
    game_id = start_game(client, app, anchor)
    status, body = post_events(client, anchor.room_id, [gift()], test=True)
    assert status == 200 and body["results"][0]["status"] == "appended" and body["results"][0]["settled"]
    assert len(open_live(client, app).all_events(game_id)) == 1


@pytest.mark.parametrize(("event", "fields"), [
    ({"cmd": "LIVE_OPEN_PLATFORM_SEND_GIFT", "data": {"msg_id": "m", "gift_id": 0, "gift_num": 1}},
     ["events[1].data.open_id", "events[1].data.uname", "events[1].data.gift_id", "events[1].data.gift_name",
      "events[1].data.price", "events[1].data.paid"]),
    ({"cmd": "LIVE_OPEN_PLATFORM_TELEPORT", "data": {"msg_id": "m"}}, ["events[1].cmd"]),
    ({"cmd": "LIVE_OPEN_PLATFORM_DM", "data": {"open_id": "o", "uname": "u", "msg": "m"}},
     ["events[1].data.msg_id"]),
])
def test_events__invalid_message__400_naming_every_field_and_nothing_appended(client, event, fields):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    status, body = post_events(client, anchor.room_id, [danmaku("valid"), event])
    assert (status, body["code"]) == (400, "invalid_field")
    assert [f["field"] for f in body["errors"]] == fields
    assert open_live(client, app).all_events(game_id) == []


def test_event__data_room_id_of_another_room__400(client):
    anchor = make_anchor(client)
    message = danmaku()
    message["data"]["room_id"] = anchor.room_id + 1
    status, body = call(client, "POST", f"/v1/play/rooms/{anchor.room_id}/events", message)
    assert (status, body) == (400, invalid(("data.room_id", f"is {anchor.room_id + 1} but the event was posted to "
                                                            f"room {anchor.room_id}")))


def test_events__more_than_100__400(client):
    status, body = post_events(client, new_id(), [danmaku() for _ in range(101)])
    assert (status, body) == (400, invalid(("events", "must have at most 100 items")))


def test_events__gift_of_another_app_kind__appended_not_settled(client):
    app, anchor = make_app(client), make_anchor(client)
    start_game(client, app, anchor)
    _, body = post_events(client, anchor.room_id, [gift(gift_id=1), gift(paid=False)])
    assert [(r["status"], r["settled"]) for r in body["results"]] == [("appended", False), ("appended", False)]


def test_events__batch_of_gifts_sharing_counter_shards__one_transaction_for_the_whole_batch(client, monkeypatch):
    # GIVEN 25 settled gifts in one push: with 8 counter shards, several share a shard
    from botocore.client import BaseClient

    app, anchor = make_app(client), make_anchor(client)
    start_game(client, app, anchor)
    calls = []
    original = BaseClient._make_api_call

    def counting(self, operation, params):
        if operation == "TransactWriteItems":
            calls.append(len(params["TransactItems"]))
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    status, body = post_events(client, anchor.room_id, [gift(price=100 + i) for i in range(25)])
    # THEN they are appended and settled by one transaction (each shard's ADD once), not one per gift
    assert status == 200 and {r["status"] for r in body["results"]} == {"appended"}
    assert len(calls) == 1 and 75 < calls[0] <= 100, calls


def test_events__invalid_fields_in_several_messages__one_400_naming_every_one(client):
    bad_price, no_msg = gift(price=-1), danmaku()
    del no_msg["data"]["msg_id"]
    status, body = post_events(client, new_id(), [danmaku(), bad_price, no_msg])
    assert (status, body) == (400, invalid(("events[1].data.price", "must be at least 0"),
                                           ("events[1].data.r_price", "must be at least 0"),
                                           ("events[2].data.msg_id", "is required")))


@pytest.mark.parametrize(("raw", "expected"), [
    # a number beyond a double's range parses as infinity: it could never be served back as JSON
    (b'{"cmd":"LIVE_OPEN_PLATFORM_DM","data":{"msg_id":"m","open_id":"o","uname":"u","msg":"m","x":1e400}}',
     invalid(("data", "must hold only finite numbers"))),
    (b'{"cmd":"LIVE_OPEN_PLATFORM_DM","data":{"msg_id":"m","open_id":"o","uname":"u","msg":"m","x":NaN}}',
     problem("invalid_json", "request body is not valid JSON")),
    (b"{}", invalid(("cmd", "is required"), ("data", "is required"))),
    (b'{"events":[],"cmd":"LIVE_OPEN_PLATFORM_DM"}',
     invalid(("events", "must have at least 1 items"), ("cmd", "is not a known field"))),
    (b"[1]", problem("invalid_json", "request body must be a JSON object")),
])
def test_events__body_not_a_live_message__400_and_nothing_appended(client, raw, expected):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    response = client.http.post(f"/v1/play/rooms/{anchor.room_id}/events", body=raw,
                                headers={"Content-Type": "application/json"})
    assert (response.status_code, json.loads(response.body)) == (400, expected)
    assert open_live(client, app).all_events(game_id) == []
