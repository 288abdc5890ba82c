"""Issue 24 item 4: a signature nonce is remembered for twice the signature window, as promised, and no longer.

DynamoDB's TTL deletes lazily (within days on AWS; DynamoDB Local never), so the put-if-absent itself must
treat an expired nonce item as absent.
"""

from __future__ import annotations

import pytest

from chalicelib.play import config as play_config
from tests.play_support import clock_at, direct_client, install_play_key, make_app

WINDOW_S = 5
T0 = 1_970_000_000_000


@pytest.fixture
def short_window(monkeypatch):
    monkeypatch.setenv("RG_PLAY_SIGNATURE_WINDOW_S", str(WINDOW_S))
    play_config.reset()
    yield WINDOW_S
    monkeypatch.delenv("RG_PLAY_SIGNATURE_WINDOW_S")
    play_config.reset()


def test_nonce__reused_after_twice_the_window__accepted_and_refused_within_it(client, monkeypatch, short_window):
    install_play_key()
    app = make_app(client)
    with clock_at(monkeypatch, T0) as now:
        play = direct_client(app)
        # GIVEN a call signed with nonce "n-1" (fresh requests each time: only the nonce repeats)
        assert play.heartbeat("no-such-game")["code"] == 7000
        first = play.request("/v2/app/heartbeat", {"game_id": "no-such-game"}, nonce="n-1")
        # WHEN the same nonce comes back just inside twice the window, THEN it is a replay (4004)
        now[0] = T0 + 2 * WINDOW_S * 1000 - 1000
        inside = play.request("/v2/app/heartbeat", {"game_id": "no-such-game"}, nonce="n-1")
        # AND once twice the window has passed, THEN the nonce is free again (the call is served: 7000)
        now[0] = T0 + 2 * WINDOW_S * 1000 + 1000
        after = play.request("/v2/app/heartbeat", {"game_id": "no-such-game"}, nonce="n-1")
        # AND that new use is remembered in its turn
        again = play.request("/v2/app/heartbeat", {"game_id": "no-such-game"}, nonce="n-1")
    assert [first["code"], inside["code"], after["code"], again["code"]] == [7000, 4004, 7000, 4004]
