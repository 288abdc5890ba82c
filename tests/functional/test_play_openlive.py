"""The open-live API (`/v2/app/*`) through the real handlers, driven by an independent client.

Every Bilibili code the issue lists is provoked here (`test_error_codes__...`), each answered with HTTP 200
and the envelope; the game lifecycle (one game per room, heartbeats, expiry checked on every read, the
sweeper, cooldown, idempotent end) runs on a simulated clock.
"""

from __future__ import annotations

import json

import pytest

from chalicelib.play import codes, games, security
from chalicelib.play.keys import play_keys
from tests.openlive_client import bili_headers
from tests.play_support import (
    clock_at,
    danmaku,
    dumps,
    envelope_codes,
    gift,
    install_play_key,
    make_anchor,
    make_app,
    new_id,
    open_live,
    post_events,
    raw_call,
    start_game,
)
from tests.rewards_support import call

T0 = 1_900_000_000_000  # a fixed instant for tests on the simulated clock


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


def test_game__start_heartbeat_events_end__events_in_order_then_interaction_end(client):
    # GIVEN a play app and a streamer's identity code
    app, anchor = make_app(client), make_anchor(client, uname="Anchor A")
    play = open_live(client, app)
    # WHEN the play starts a game with the code
    started = play.start(anchor.code)
    # THEN it gets Bilibili's answer: the game, a signed auth_body for the push side, the anchor as the app sees it
    assert started["code"] == 0 and started["message"] == "ok" and len(started["request_id"]) == 32
    data = started["data"]
    game_id = data["game_info"]["game_id"]
    assert data["anchor_info"]["room_id"] == anchor.room_id and data["anchor_info"]["uid"] == anchor.anchor_id
    assert data["anchor_info"]["uname"] == "Anchor A"
    assert data["anchor_info"]["open_id"] == codes.open_id(play_keys(), app.app_id, anchor.anchor_id)
    assert str(anchor.anchor_id) not in data["anchor_info"]["open_id"]
    claims = games.verify_auth_body(data["websocket_info"]["auth_body"])
    assert (claims["game_id"], claims["app_id"], claims["room_id"]) == (game_id, app.app_id, anchor.room_id)
    assert data["websocket_info"]["wss_link"]
    # WHEN the play heartbeats, the platform pushes live messages, and the play pulls them
    assert play.heartbeat(game_id)["code"] == 0
    sent = [gift(), danmaku("hi"), gift(price=100, num=5)]
    status, pushed = post_events(client, anchor.room_id, sent)
    assert status == 200, pushed
    page = play.events(game_id)
    # THEN they come back in order with seq 1, 2, 3 and their data as pushed
    assert page["code"] == 0
    assert [(e["seq"], e["cmd"], e["data"]["msg_id"]) for e in page["data"]["events"]] == [
        (i + 1, m["cmd"], m["data"]["msg_id"]) for i, m in enumerate(sent)]
    assert page["data"]["events"][2]["data"] == sent[2]["data"]
    assert page["data"]["next_seq"] == 4 and page["data"]["game_status"] == "RUNNING"
    # AND pulling after the last seq gives nothing new
    assert play.events(game_id, after_seq=3)["data"] == {"events": [], "next_seq": 4, "game_status": "RUNNING"}
    # WHEN the play ends the game, twice
    assert envelope_codes([play.end(game_id), play.end(game_id)]) == [0, 0]
    # THEN the stream ends with exactly one LIVE_OPEN_PLATFORM_INTERACTION_END, and no event is appended after it
    post_events(client, anchor.room_id, [danmaku("too late")])
    tail = play.events(game_id, after_seq=3)["data"]
    assert [(e["seq"], e["cmd"]) for e in tail["events"]] == [(4, "LIVE_OPEN_PLATFORM_INTERACTION_END")]
    assert tail["events"][0]["data"]["game_id"] == game_id and tail["game_status"] == "ENDED"
    assert all(status == 200 for _, status, _ in play.calls)


def test_start__same_app_again__same_game_with_a_fresh_token(client):
    app, anchor = make_app(client), make_anchor(client)
    play = open_live(client, app)
    first, second = play.start(anchor.code), play.start(anchor.code)
    assert first["data"]["game_info"] == second["data"]["game_info"]


def test_refreshed_code__old_code_7007_at_once__running_game_goes_on(client):
    app, anchor = make_app(client), make_anchor(client)
    play = open_live(client, app)
    game_id = start_game(client, app, anchor)
    status, fresh = call(client, "POST", f"/v1/play/anchors/{anchor.anchor_id}/code/refresh")
    assert status == 200 and fresh["code"] != anchor.code and fresh["generation"] == 2
    assert play.start(anchor.code)["code"] == 7007
    assert play.heartbeat(game_id)["code"] == 0
    assert play.start(fresh["code"])["data"]["game_info"]["game_id"] == game_id


def test_heartbeat_deadline__checked_on_read__pull_ends_the_game_heartbeat_7003_room_cools_down(client, monkeypatch):
    with clock_at(monkeypatch, T0) as now:
        app, anchor = make_app(client), make_anchor(client)
        play = open_live(client, app)
        game_id = start_game(client, app, anchor)
        now[0] = T0 + 60_000  # exactly at the deadline: still alive
        assert play.heartbeat(game_id)["code"] == 0
        # WHEN 60 s pass without a heartbeat (and no sweeper runs)
        now[0] = T0 + 120_001
        page = play.events(game_id)["data"]
        # THEN the first read ends the game, at its deadline, with the end event
        assert page["game_status"] == "ENDED"
        assert [e["cmd"] for e in page["events"]] == ["LIVE_OPEN_PLATFORM_INTERACTION_END"]
        assert page["events"][0]["data"]["timestamp"] == (T0 + 120_000) // 1000
        assert play.heartbeat(game_id)["code"] == 7003
        # AND the room cools down for 10 s from the deadline, then takes a new game
        now[0] = T0 + 129_999
        assert play.start(anchor.code)["code"] == 7001
        now[0] = T0 + 130_000
        again = play.start(anchor.code)
        assert again["code"] == 0 and again["data"]["game_info"]["game_id"] != game_id


def test_sweeper__expired_games_ended__running_ones_untouched(client, monkeypatch):
    with clock_at(monkeypatch, T0 + 10**7) as now:
        app = make_app(client)
        expiring, alive = make_anchor(client), make_anchor(client)
        play = open_live(client, app)
        stale, fresh = start_game(client, app, expiring), None
        now[0] += 30_000
        fresh = start_game(client, app, alive)
        now[0] += 30_001
        ended = games.sweep()
        assert ended >= 1
        assert (games.get_game(stale).status, games.get_game(stale).end_reason) == ("ENDED", "heartbeat_timeout")
        assert games.get_game(fresh).status == "RUNNING"
        assert play.heartbeat(fresh)["code"] == 0


def test_batch_heartbeat__own_running_games_succeed__others_listed_as_failed(client):
    app, other = make_app(client), make_app(client)
    mine = [start_game(client, app, make_anchor(client)) for _ in range(2)]
    theirs = start_game(client, other, make_anchor(client))
    answer = open_live(client, app).batch_heartbeat([*mine, theirs, "no-such-game"])
    assert answer["code"] == 0
    assert answer["data"] == {"failed_game_ids": [theirs, "no-such-game"]}


# --- every error code ---------------------------------------------------------------------------------


def test_error_codes__signed_api__each_provoked_answered_http_200_with_its_code(client, monkeypatch):
    with clock_at(monkeypatch, T0 + 2 * 10**7) as now:
        app, other = make_app(client), make_app(client)
        anchor = make_anchor(client)
        play, rival = open_live(client, app), open_live(client, other)
        game_id = start_game(client, app, anchor)
        key = app.key
        body = dumps({"game_id": game_id})
        good = bili_headers(key.access_key_id, key.access_key_secret, body, timestamp=now[0] // 1000)

        def raw(headers: dict, payload: bytes = body, path: str = "/v2/app/heartbeat") -> dict:
            status, answer = raw_call(client, path, payload, headers)
            assert status == 200, answer
            return answer

        found = {
            4000: play.request("/v2/app/start", {"app_id": app.app_id}),
            4001: play.request("/v2/app/start", {"code": anchor.code, "app_id": other.app_id}),
            4002: raw({**bili_headers(key.access_key_id, "not-the-secret", body, timestamp=now[0] // 1000)}),
            4003: play.request("/v2/app/heartbeat", {"game_id": game_id}, timestamp=now[0] // 1000 - 301),
            4011: raw({**good, "Content-Type": "text/plain"}),
            4012: raw(good, payload=dumps({"game_id": game_id + "x"})),
            4013: raw({**good, "Accept": "text/html"}),
            7000: rival.heartbeat(game_id),
            7002: rival.start(anchor.code),
            7004: play.batch_heartbeat([f"g{i}" for i in range(201)]),
            7005: play.batch_heartbeat([game_id, game_id]),
            7007: play.start("ZZZZZZZZZZZZ"),
        }
        replayed = play.request("/v2/app/heartbeat", {"game_id": game_id}, nonce="nonce-42")
        found[4004] = play.request("/v2/app/heartbeat", {"game_id": game_id}, nonce="nonce-42")
        unknown_key = bili_headers(f"rgak-{new_id()}-{'0' * 24}", key.access_key_secret, body,
                                   timestamp=now[0] // 1000)
        assert raw(unknown_key)["code"] == 4002
        missing = {k: v for k, v in good.items() if k != "x-bili-signature-nonce"}
        assert raw(missing)["code"] == 4002
        assert play.end(game_id)["code"] == 0
        found[7001] = play.start(anchor.code)
        now[0] += 11_000
        second = start_game(client, app, anchor)
        now[0] += 61_000
        found[7003] = play.heartbeat(second)

    assert replayed["code"] == 0
    assert {code: answer["code"] for code, answer in found.items()} == {code: code for code in found}
    assert sorted(found) == [4000, 4001, 4002, 4003, 4004, 4011, 4012, 4013, 7000, 7001, 7002, 7003, 7004, 7005,
                             7007]
    for answer in found.values():
        assert set(answer) == {"code", "message", "request_id", "data"} and answer["data"] == {}
    messages = {code: answer["message"] for code, answer in found.items()}
    assert messages[4000] == "invalid parameters: code: Field required"
    assert messages[4011] == "Content-Type must be application/json"
    assert "201 ids" in messages[7004]
    # No message reveals a secret or which part of a forged signature was wrong.
    assert key.access_key_secret not in json.dumps(found)


def test_rate_limit__over_the_limit__4009_ban_doubles_each_offence_unban_lifts_it(client, monkeypatch):
    with clock_at(monkeypatch, T0 + 3 * 10**7) as now:
        app = make_app(client, limits={"events": 2, "ban_base_s": 60, "ban_cap_s": 180})
        play = open_live(client, app)
        game_id = start_game(client, app, make_anchor(client))
        durations = []
        for _ in range(3):
            # WHEN the app pulls three times within one second, its limit being 2/s
            now[0] += 1000
            answers = [play.events(game_id) for _ in range(3)]
            assert envelope_codes(answers) == [0, 0, 4009]
            assert "limited to 2 calls/s" in answers[2]["message"]
            state = security.ban_state(app.app_id)
            durations.append((state.banned_until_ms - now[0]) // 1000)
            # THEN every call of the app is refused until the ban ends, whatever the API
            assert play.heartbeat(game_id)["code"] == 4009
            assert "banned until" in play.heartbeat(game_id)["message"]
            now[0] = state.banned_until_ms - 1
            assert play.events(game_id)["code"] == 4009
            now[0] = state.banned_until_ms
            assert play.events(game_id)["code"] == 0
        # AND the ban doubled with each offence, up to the cap
        assert durations == [60, 120, 180]
        status, view = call(client, "GET", f"/v1/admin/play-apps/{app.app_id}")
        assert status == 200 and view["security"]["offences"] == 3 and view["security"]["banned"] is False
        # WHEN an operator unbans it during a ban
        now[0] += 1000
        assert envelope_codes([play.events(game_id) for _ in range(3)]) == [0, 0, 4009]
        assert security.ban_state(app.app_id).offences == 4
        security.unban(app.app_id)
        # THEN it is served again from the next second on (this second's limit is spent), offences forgotten
        assert play.events(game_id)["code"] == 4009
        now[0] += 1000
        assert play.events(game_id)["code"] == 0
        assert security.ban_state(app.app_id).offences == 0


def test_forged_requests__never_count_against_the_app_they_name(client, monkeypatch):
    with clock_at(monkeypatch, T0 + 4 * 10**7) as now:
        app = make_app(client, limits={"heartbeat": 1})
        game_id = start_game(client, app, make_anchor(client))
        body = dumps({"game_id": game_id})
        forged = [raw_call(client, "/v2/app/heartbeat", body,
                           bili_headers(app.key.access_key_id, "guess", body, timestamp=now[0] // 1000))[1]
                  for _ in range(5)]
        assert envelope_codes(forged) == [4002] * 5
        assert open_live(client, app).heartbeat(game_id)["code"] == 0
        assert security.ban_state(app.app_id).offences == 0


def test_metrics__calls_and_errors_by_code_per_app__emitted(client, capsys):
    app = make_app(client)
    play = open_live(client, app)
    capsys.readouterr()
    play.heartbeat("no-such-game")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    # (the edge's own per-request document, `Requests`, carries no app)
    metrics = {(m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], m.get("code"), m.get("api"), m["app_id"])
               for m in lines if "app_id" in m}
    assert ("PlayCalls", None, "heartbeat", str(app.app_id)) in metrics
    assert ("PlayErrors", "7000", None, str(app.app_id)) in metrics


def test_events_pull__another_apps_game__7000_and_nothing_leaks(client):
    app, other = make_app(client), make_app(client)
    anchor = make_anchor(client)
    game_id = start_game(client, app, anchor)
    post_events(client, anchor.room_id, [danmaku("secret")])
    answer = open_live(client, other).events(game_id)
    assert answer["code"] == 7000 and "secret" not in json.dumps(answer)


def test_metrics__forged_key_id__never_becomes_a_metric_dimension(client, capsys):
    forged_app = new_id()
    body = dumps({"game_id": "g"})
    capsys.readouterr()
    answer = raw_call(client, "/v2/app/heartbeat", body,
                      bili_headers(f"rgak-{forged_app}-{'a' * 24}", "guess", body))[1]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert answer["code"] == 4002
    assert {m.get("app_id") for m in lines} == {"-", None} and str(forged_app) not in json.dumps(lines)


def test_edge_error__raised_around_the_pipeline__answered_in_the_envelope_not_as_a_problem(client, monkeypatch):
    # GIVEN a storage failure that escapes the pipeline (the registry's on_error renders it)
    from chalicelib.errors import StorageUnavailable
    from chalicelib.play import openlive

    def broken(*_args, **_kwargs):
        raise StorageUnavailable("the guard table is throttled")

    monkeypatch.setattr(openlive, "call", broken)
    body = dumps({"game_id": "g"})
    response = client.http.post("/v2/app/heartbeat", body=body, headers=bili_headers("k", "s", body))
    # THEN Bilibili's envelope with code 5000 at 503, its request id the edge's, and no internal cause
    answer = json.loads(response.body)
    assert (response.status_code, response.headers["Content-Type"]) == (503, "application/json")
    assert answer == {"code": 5000, "message": "service unavailable; retry",
                      "request_id": response.headers["X-Request-Id"], "data": {}}
