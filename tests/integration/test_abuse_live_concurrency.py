"""Issue 24 item 2 under real concurrency on DynamoDB Local: one auth_body, many `$connect`s released together,
never more connections than the per-game cap. Figures are printed."""

from __future__ import annotations

import json
from collections import Counter

from chalicelib.live import config as live_config
from chalicelib.live import connections, gateway
from chalicelib.live.tables import LiveConnectionItem, slots_pk
from chalicelib.routes import live as live_routes
from rewardgate_ops.lambda_events import LocalLambdaContext, websocket_event
from tests.concurrency_support import run_together
from tests.live_support import FakeConnections, disconnect, new_connection_id, ws_handler
from tests.play_support import install_play_key, make_anchor, make_app, open_live

CAP = 10
CLIENTS = 40


def connect(connection_id: str, auth_body: str) -> dict:
    """`$connect` with a generous Lambda timeout: on a loaded machine 40 racing connects on DynamoDB Local take
    far longer than on AWS, and what is measured here is the cap, not the latency."""
    event = websocket_event("$connect", connection_id, query={"auth_body": auth_body}, headers={"Host": "ws.example"})
    return ws_handler("on_ws_connect")(event, LocalLambdaContext("websocket_connect", 600))




def test_connect__forty_racing_connects_on_one_auth_body__exactly_the_cap_registered(client, monkeypatch):
    monkeypatch.setenv("RG_LIVE_MAX_CONNECTIONS_PER_GAME", str(CAP))
    live_config.reset()
    fake = FakeConnections()
    monkeypatch.setattr(gateway, "post", fake.post)
    monkeypatch.setattr(live_routes, "send", lambda messages: [])  # the inbox push is not what is measured
    try:
        install_play_key()
        app, anchor = make_app(client, sandbox=True), make_anchor(client)
        started = open_live(client, app).start(anchor.code)["data"]
        game_id, auth_body = started["game_info"]["game_id"], started["websocket_info"]["auth_body"]
        ids = [new_connection_id() for _ in range(CLIENTS)]
        # WHEN 40 clients connect with the same auth_body at the same instant
        answers = run_together(CLIENTS, lambda i: connect(ids[i], auth_body))
        statuses = Counter(a["statusCode"] for a in answers)
        accepted = [ids[i] for i, a in enumerate(answers) if a["statusCode"] == 200]
        members = connections.members(game_id)
        slots = [i.holder for i in LiveConnectionItem.query(slots_pk(game_id), consistent_read=True)]
        print(f"racing $connects={CLIENTS} cap={CAP} accepted={statuses[200]} refused(429)={statuses[429]} "
              f"members={len(members)} slots={len(slots)}")
        # THEN exactly the cap is registered, every other one refused with 429, and slots match members one to one
        assert statuses == Counter({200: CAP, 429: CLIENTS - CAP})
        assert json.loads(next(a for a in answers if a["statusCode"] == 429)["body"])["code"] == "too_many_connections"
        assert sorted(members) == sorted(accepted) == sorted(slots)
        # AND when five of them disconnect and 20 more race for the freed slots, exactly five get in
        for connection_id in accepted[:5]:
            disconnect(connection_id)
        more = [new_connection_id() for _ in range(20)]
        second = run_together(20, lambda i: connect(more[i], auth_body))
        assert Counter(a["statusCode"] for a in second) == Counter({200: 5, 429: 15})
        assert len(connections.members(game_id)) == CAP
    finally:
        live_config.reset()
