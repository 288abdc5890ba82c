"""Sandbox money is paid out as real money: a sandbox app's test gifts (the debug tool's, `test: true`) close into
a bill credited in `play-bills-sandbox`, and the wallet route withdraws that wallet like any other, so the payout
provider pays real fen for gifts nobody paid for.

The bill activity keeps sandbox money apart from live money in the ledger, but nothing on the debit side knows it
is not payable. Checked through the real routes and the fake provider's own ledger.
"""

from __future__ import annotations

import pytest

from chalicelib.play import bills
from chalicelib.play.settlement import bill_closes_at_ms, day_start_ms
from tests.play_support import clock_at, gift, install_play_key, make_anchor, make_app, post_events, start_game
from tests.rewards_support import call, deliver_credits, payout_record, purge_credits


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


def test_withdrawal__sandbox_bill_wallet__refused_and_nothing_paid(client, monkeypatch):
    purge_credits()
    day = "2030-08-01"
    with clock_at(monkeypatch, day_start_ms(day) + 3_600_000) as now:
        # GIVEN a sandbox app whose streamer's room received 2 test gifts of 1 000 units (the debug tool)
        app, anchor = make_app(client, sandbox=True, share_bp=10_000), make_anchor(client)
        start_game(client, app, anchor)
        post_events(client, anchor.room_id, [gift(price=1000, num=2)], test=True)
        # AND its day closed: 200 fen credited in the sandbox bill activity
        now[0] = bill_closes_at_ms(day)
        bills.close_due(app_ids=[app.app_id])
        deliver_credits()
        status, wallet = call(client, "GET", f"/v1/wallets/play-app-{app.app_id}?activity_id=play-bills-sandbox")
        assert (status, wallet["balance"]) == (200, 200)
        # WHEN the developer withdraws the sandbox wallet through the wallet route
        request_id = f"wd-sandbox-{app.app_id}"
        status, body = call(client, "POST", f"/v1/wallets/play-app-{app.app_id}/withdrawals",
                            {"activity_id": "play-bills-sandbox", "request_id": request_id, "amount": 200})
        print("withdrawal answer:", status, body)
    # THEN the provider paid nothing for test gifts, and the sandbox balance was not debited
    paid = payout_record(request_id)
    print("provider's record:", paid)
    assert paid.status == "UNKNOWN", f"the provider paid real money for sandbox gifts: {paid}"
    status, wallet = call(client, "GET", f"/v1/wallets/play-app-{app.app_id}?activity_id=play-bills-sandbox")
    assert wallet["balance"] == 200
