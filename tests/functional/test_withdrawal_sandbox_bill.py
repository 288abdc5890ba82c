"""Sandbox money is never paid out (review finding F4).

A sandbox app's test gifts (the debug tool's, `test: true`) close into a bill credited in `play-bills-sandbox`.
Before the fix the wallet route withdrew that wallet like any other, so the payout provider paid real fen for
gifts nobody paid for. Now a withdrawal naming an activity that is not payable (the sandbox bill activity, any
internal activity not marked payable) is refused with 400 `invalid_field` naming `activity_id`, before anything
is credited, debited or sent to the provider. Checked through the real routes and the fake provider's own
ledger; the live bill wallet stays withdrawable (tests/functional/test_play_bills_internal.py).
"""

from __future__ import annotations

import pytest

from chalicelib.play import bill_keys, bills
from chalicelib.play.settlement import bill_closes_at_ms, day_start_ms
from tests.play_support import clock_at, gift, install_play_key, make_anchor, make_app, post_events, start_game
from tests.problems import problem
from tests.rewards_support import call, deliver_credits, ledger_sums, payout_record, purge_credits

NOT_PAYABLE = ("activity_id: play-bills-sandbox holds money that is not payable "
               "(sandbox or internal credits are never paid out)")


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
    # THEN it is refused with a 400 naming activity_id
    assert (status, body) == (400, problem("invalid_field", NOT_PAYABLE, field="activity_id"))
    # AND the provider paid nothing for test gifts
    paid = payout_record(request_id)
    print("provider's record:", paid)
    assert paid.status == "UNKNOWN", f"the provider paid real money for sandbox gifts: {paid}"
    # AND nothing was written: the balance is whole, the ledger holds the bill's credit and no withdrawal
    status, wallet = call(client, "GET", f"/v1/wallets/play-app-{app.app_id}?activity_id=play-bills-sandbox")
    assert (status, wallet["balance"]) == (200, 200)
    sums = ledger_sums(bill_keys.bill_wallet_id("play-bills-sandbox", app.app_id))
    assert (sums.credits, sums.withdrawals, sums.refunds, sums.entries) == (200, 0, 0, 1)
    status, body = call(client, "GET", f"/v1/wallets/play-app-{app.app_id}/withdrawals/{request_id}"
                                       "?activity_id=play-bills-sandbox")
    assert (status, body["code"]) == (404, "withdrawal_not_found")
