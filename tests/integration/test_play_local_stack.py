"""The try-it path of interactive play on the local stack, over HTTP, with an independent open-live client.

`rewardgate local up` as `make run` starts it; the operator adds a sandbox play app and a streamer's code with
the CLI; the developer's play (tests/openlive_client.py: its own signing, as Bilibili's SDKs do) starts a
game, heartbeats, receives the gifts the debug tool injects, and ends the game; the day's settlement shows
the developer's share.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.integration.test_newcomer_path import stack, wait_until_up  # noqa: F401 - `stack` is a fixture
from tests.openlive_client import HttpTransport, OpenLiveClient

pytestmark = [pytest.mark.slow, pytest.mark.own_stack]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_try_it__cli_and_an_independent_client_over_http__game_events_settlement(stack):  # noqa: F811
    wait_until_up(stack)
    started = stack.output.read_text()
    assert "/v2/app/start" in started and "play-key" in started
    app_id, anchor_id, room_id = 424242, 1001, 7_000_001

    # GIVEN a sandbox play app and a streamer's identity code, made with the CLI
    added = stack.cli("play-app", "add", "--app-id", str(app_id), "--name", "Try it", "--share-bp", "5000",
                      "--gift-ids", "31039", "--sandbox", "--output", "json")
    assert added.returncode == 0, added.stdout + added.stderr
    key = json.loads(added.stdout)
    coded = stack.cli("play", "code", "--anchor-id", str(anchor_id), "--room-id", str(room_id), "--uname",
                      "Streamer", "--output", "json")
    assert coded.returncode == 0, coded.stderr
    code = json.loads(coded.stdout)["code"]

    # WHEN the play starts a game over HTTP with the code and keeps it alive
    play = OpenLiveClient(HttpTransport(stack.api), app_id, key["access_key_id"], key["access_key_secret"])
    start = play.start(code)
    assert start["code"] == 0, start
    game_id = start["data"]["game_info"]["game_id"]
    assert start["data"]["anchor_info"]["room_id"] == room_id and start["data"]["anchor_info"]["uname"] == "Streamer"
    assert play.heartbeat(game_id)["code"] == 0

    # AND the debug tool injects a gift and a danmaku into the room
    for args in (["--cmd", "LIVE_OPEN_PLATFORM_SEND_GIFT", "--gift-id", "31039", "--price", "1000", "--num", "3"],
                 ["--cmd", "LIVE_OPEN_PLATFORM_DM", "--msg", "hello"]):
        sent = stack.cli("simulate", "live-event", "--room-id", str(room_id), *args, "--output", "json")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert json.loads(sent.stdout)["sent"][0]["status"] == "appended"

    # AND the play follows its push over the stack's WebSocket API (the wss_link the start answered), as
    # `rewardgate play watch` does in docs/tutorials/interactive-play.md, then reconnects and resumes after the
    # first event
    websocket = start["data"]["websocket_info"]
    assert websocket["wss_link"][0].startswith("ws://127.0.0.1:")
    watched = stack.cli("play", "watch", "--auth-body", websocket["auth_body"], "--count", "2", "--seconds", "30",
                        "--output", "json")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    pushed = json.loads(watched.stdout)
    assert pushed["url"] == websocket["wss_link"][0]
    assert [(e["seq"], e["cmd"]) for e in pushed["events"]] == [(1, "LIVE_OPEN_PLATFORM_SEND_GIFT"),
                                                                 (2, "LIVE_OPEN_PLATFORM_DM")]
    resumed = stack.cli("play", "watch", "--auth-body", websocket["auth_body"], "--resume-after", "1", "--count",
                        "1", "--seconds", "30", "--output", "json")
    assert [e["seq"] for e in json.loads(resumed.stdout)["events"]] == [2]

    # THEN the play pulls them back in order
    events = play.all_events(game_id)
    assert [(e["seq"], e["cmd"]) for e in events] == [(1, "LIVE_OPEN_PLATFORM_SEND_GIFT"), (2, "LIVE_OPEN_PLATFORM_DM")]
    assert events[0]["data"]["gift_num"] == 3 and events[1]["data"]["msg"] == "hello"

    # AND the day's settlement shows the developer's share (3 x 1 000 at 50 %, platform units)
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    settled = get_json(f"{stack.api}/v1/play-apps/{app_id}/settlement?day={day}")
    assert (settled["gifts"], settled["revenue"], settled["developer_share"], settled["closed"]) == (
        1, 3000, 1500, False)

    # WHEN the play ends the game
    assert play.end(game_id)["code"] == 0
    # THEN the stream ends with the end event, and every call was HTTP 200
    tail = play.all_events(game_id, after_seq=2)
    assert [e["cmd"] for e in tail] == ["LIVE_OPEN_PLATFORM_INTERACTION_END"]
    assert {status for _, status, _ in play.calls} == {200}
