"""Issue 24 item 7: the signed API does not sign its path (Bilibili's scheme), so a body must be valid for exactly
one API: a request signed for one operation and sent to another is refused (4000, naming the field), never served.

Bodies refuse fields the API does not take, and the pull (`events`, rewardgate's own extension) requires its
`after_seq`, so no body of one API is a valid body of another."""

from __future__ import annotations

import itertools
import json

from tests.openlive_client import bili_headers
from tests.play_support import install_play_key, make_anchor, make_app, raw_call, start_game

APIS = ("start", "heartbeat", "batchHeartbeat", "end", "events")


def test_signed_request__sent_to_another_api__refused_naming_the_field_and_nothing_done(client):
    install_play_key()
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    # GIVEN one genuine body for each API, as the SDKs send them
    bodies = {"start": {"code": anchor.code, "app_id": app.app_id}, "heartbeat": {"game_id": game_id},
              "batchHeartbeat": {"game_ids": [game_id]}, "end": {"app_id": app.app_id, "game_id": game_id},
              "events": {"game_id": game_id, "after_seq": 0}}
    answers = {}
    # WHEN each, correctly signed (fresh nonce), is sent to every other API
    for signed_for, sent_to in itertools.permutations(APIS, 2):
        raw = json.dumps(bodies[signed_for]).encode()
        _, answer = raw_call(client, f"/v2/app/{sent_to}", raw, bili_headers(app.key.access_key_id,
                                                                           app.key.access_key_secret, raw))
        answers[(signed_for, sent_to)] = answer
    # THEN every one is refused as a bad request naming what does not belong (or is missing)
    served = {pair: a["code"] for pair, a in answers.items() if a["code"] != 4000}
    assert served == {}
    assert answers[("heartbeat", "events")]["message"] == "invalid parameters: after_seq: Field required"
    assert answers[("end", "heartbeat")]["message"] == "invalid parameters: app_id: Extra inputs are not permitted"
    # AND the game is still running (the end body sent elsewhere ended nothing)
    assert json.loads(client.http.post("/v2/app/heartbeat", headers=bili_headers(
        app.key.access_key_id, app.key.access_key_secret, json.dumps(bodies["heartbeat"]).encode()),
        body=json.dumps(bodies["heartbeat"]).encode()).body)["code"] == 0
