"""Live push on the local stack's WebSocket side, with a real WebSocket client (`websockets`).

The local API process runs in-process (REST, the emulated WebSocket API and `@connections`), with the
`live_push` worker polling its queue as the local stack's event-source loop does; events are injected over
HTTP (`POST /v1/play/rooms/{room}/events`, the platform's route), so each event travels ingest -> stream ->
queue -> worker -> `@connections` -> socket. A client keeps what it accepted in order and records any gap.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus

from chalicelib import clock
from chalicelib.live import connections
from chalicelib.play import codes, keys
from tests.live_support import WsClient, local_websocket_stack
from tests.play_support import danmaku, gift, install_play_key, make_anchor, make_app, open_live


@pytest.fixture(scope="module")
def stack(client):
    install_play_key()
    with local_websocket_stack() as running:
        yield running


def start(client) -> tuple[dict, int]:
    """A sandbox app's game; returns the start's data and the room."""
    app = make_app(client, sandbox=True)
    anchor = make_anchor(client)
    answer = open_live(client, app).start(anchor.code)
    assert answer["code"] == 0, answer
    return answer["data"], anchor.room_id


def inject(api: str, room_id: int, messages: list[dict]) -> list[dict]:
    """The platform's push over HTTP; returns the per-message results."""
    body = json.dumps({"events": messages, "test": True}).encode()
    request = urllib.request.Request(f"{api}/v1/play/rooms/{room_id}/events", body,
                                     {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        results = json.loads(response.read())["results"]
    assert {r["status"] for r in results} == {"appended"}, results
    return results


def wait_until(predicate, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def url(data: dict, **query: object) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"{data['websocket_info']['wss_link'][0]}?auth_body={data['websocket_info']['auth_body']}{extra}"


def test_ws__injected_events__arrive_live_in_order_without_gap(client, stack):
    # GIVEN a running game and a client connected with its auth_body (the link /v2/app/start answered)
    data, room = start(client)
    assert data["websocket_info"]["wss_link"] == [stack["ws"]]
    ws = WsClient(url(data))
    # WHEN the platform pushes 30 live messages in three requests
    for batch in range(3):
        inject(stack["api"], room, [gift(msg_id=f"g{batch}-{i}") if i % 3 == 0 else danmaku(f"m{batch}-{i}")
                                    for i in range(10)])
    # THEN the client receives seq 1..30 in order: no gap, and the data as injected
    assert ws.wait_for(lambda r: r.last_seq >= 30), ws.receiver.seqs
    ws.close()
    assert ws.receiver.seqs == list(range(1, 31)) and ws.receiver.gaps == []
    events = [m for m in ws.receiver.messages if m["op"] == "event"]
    assert events[0]["cmd"] == "LIVE_OPEN_PLATFORM_SEND_GIFT" and events[0]["data"]["msg_id"] == "g0-0"
    assert events[1]["data"]["msg"] == "m0-1" and {e["game_id"] for e in events} == {data["game_info"]["game_id"]}
    print(f"received={len(ws.receiver.seqs)} duplicates={ws.receiver.duplicates}")


def test_ws__disconnect_mid_stream_then_resume__no_gap_no_loss(client, stack):
    # GIVEN a client that received 10 events and then lost its connection
    data, room = start(client)
    first = WsClient(url(data))
    inject(stack["api"], room, [danmaku(f"a{i}") for i in range(10)])
    assert first.wait_for(lambda r: r.last_seq >= 10)
    first.close()
    kept = first.receiver.last_seq
    # WHEN 15 more events arrive while it is away, and it reconnects and resumes after what it kept
    inject(stack["api"], room, [danmaku(f"b{i}") for i in range(15)])
    second = WsClient(url(data), first.receiver)
    second.send({"op": "resume", "after_seq": kept})
    # THEN it has seq 1..25 exactly once each, in order, with no gap
    assert second.wait_for(lambda r: r.last_seq >= 25), second.receiver.seqs
    inject(stack["api"], room, [danmaku("live again")])
    assert second.wait_for(lambda r: r.last_seq >= 26)
    second.close()
    assert second.receiver.seqs == list(range(1, 27)) and second.receiver.gaps == []
    print(f"duplicates dropped by the client={second.receiver.duplicates}")


def test_ws__ten_connections_on_one_game__each_receives_everything(client, stack):
    # GIVEN ten connections following one game (the developer's server, overlays, a second region)
    data, room = start(client)
    clients = [WsClient(url(data)) for _ in range(10)]
    game_id = data["game_info"]["game_id"]
    assert len(connections.members(game_id)) == 10
    # WHEN 20 events are pushed
    inject(stack["api"], room, [danmaku(f"x{i}") for i in range(20)])
    # THEN every connection receives all 20, in order
    for ws in clients:
        assert ws.wait_for(lambda r: r.last_seq >= 20), ws.receiver.seqs
        ws.close()
    assert all(ws.receiver.seqs == list(range(1, 21)) and not ws.receiver.gaps for ws in clients)


def test_ws__gone_connection__removed_while_the_others_continue(client, stack, monkeypatch):
    # GIVEN two live clients and a third connection whose $disconnect never came (API Gateway answers Gone)
    data, room = start(client)
    game_id = data["game_info"]["game_id"]
    live = [WsClient(url(data)) for _ in range(2)]
    connections.register("vanished0000=", game_id, 1, 0, clock.now_ms() - 60_000)
    assert "vanished0000=" in connections.members(game_id)
    # WHEN events are pushed
    inject(stack["api"], room, [danmaku(f"y{i}") for i in range(12)])
    # THEN the live clients receive everything and the gone connection is removed
    for ws in live:
        assert ws.wait_for(lambda r: r.last_seq >= 12)
        ws.close()
    assert all(ws.receiver.seqs == list(range(1, 13)) for ws in live)
    assert wait_until(lambda: connections.get("vanished0000=") is None)
    assert "vanished0000=" not in connections.members(game_id)


def test_ws__expired_forged_or_missing_auth_body__refused_and_nothing_written(client, stack):
    # GIVEN a game, and an auth_body for it that expired a second ago
    data, _ = start(client)
    game_id = data["game_info"]["game_id"]
    claims = json.loads(codes._unb64(data["websocket_info"]["auth_body"].split(".")[1]))
    expired = codes.sign_game_token(keys.play_keys(), game_id, claims["app_id"], claims["room_id"],
                                    clock.now_ms() - 1000)
    link = data["websocket_info"]["wss_link"][0]
    # WHEN clients connect with it, with a forged one, and with none
    for bad in (f"{link}?auth_body={expired}", f"{link}?auth_body={expired[:-4]}AAAA", link):
        with pytest.raises(InvalidStatus) as refused:
            WsClient(bad)
        # THEN each handshake is refused with 401 and no connection is registered
        assert refused.value.response.status_code == 401
        assert b"auth_body" in refused.value.response.body
    assert connections.members(game_id) == []


def test_ws__game_end__end_event_then_end_op(client, stack):
    # GIVEN a connected client and one event
    data, room = start(client)
    app_id = json.loads(codes._unb64(data["websocket_info"]["auth_body"].split(".")[1]))["app_id"]
    ws = WsClient(url(data))
    inject(stack["api"], room, [danmaku("bye")])
    assert ws.wait_for(lambda r: r.last_seq >= 1)
    # WHEN the game ends
    from chalicelib.play import games

    games.end(app_id, data["game_info"]["game_id"], clock.now_ms())
    # THEN the client gets LIVE_OPEN_PLATFORM_INTERACTION_END at seq 2, then {"op": "end"}
    assert ws.wait_for(lambda r: r.ended)
    ws.close()
    tail = [(m["op"], m.get("cmd")) for m in ws.receiver.messages[-2:]]
    assert tail == [("event", "LIVE_OPEN_PLATFORM_INTERACTION_END"), ("end", None)]
    assert ws.receiver.seqs == [1, 2]
