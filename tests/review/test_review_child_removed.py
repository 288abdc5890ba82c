"""An activity re-PUT without one of its children strands that child's money: the wallet routes find a wallet only
through a child the activity still lists, so the users' credited balances there can no longer be read or withdrawn
(400 naming sub_activity_id), and nothing refused the edit or reported the stranded balances.

Checked through the real routes; balances read from the wallet item itself.
"""

from __future__ import annotations

from chalicelib import clock
from tests.rewards_support import (
    call,
    deliver_credits,
    make_campaign,
    payout_mode,
    purge_credits,
    wallet_id_of,
    wallet_item,
)

HOUR = 3_600_000


def test_activity_put__child_with_balances_dropped__users_still_withdraw_their_money(client):
    purge_credits()
    now = clock.now_ms()
    # GIVEN a user credited 500 fen in the activity's formal child
    campaign = make_campaign(client, total=100_000, order_cap=1000)
    status, body = call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=500))
    assert status == 202, body
    deliver_credits()
    assert int(wallet_item(wallet_id_of(campaign, "u1")).balance) == 500
    # WHEN an operator re-PUTs the activity with a new child in place of the formal one (the PUT replaces the list)
    status, put = call(client, "PUT", f"/v1/admin/activities/{campaign.activity_id}", {
        "name": "test campaign", "children": [{"sub_activity_id": "encore", "purpose": "formal",
                                                "starts_at_ms": now + HOUR, "ends_at_ms": now + 48 * HOUR}]})
    print("activity PUT:", status, put)
    # AND the user withdraws the 500 fen they hold in the formal child
    with payout_mode("ok"):
        status, answer = call(client, "POST", "/v1/wallets/u1/withdrawals", {
            "activity_id": campaign.activity_id, "sub_activity_id": "formal", "request_id": "wd-stranded",
            "amount": 500})
    print("withdrawal:", status, answer)
    # THEN the money is not stranded: either the edit was refused or the withdrawal is paid
    assert status == 200, answer
    assert int(wallet_item(wallet_id_of(campaign, "u1")).balance) == 0
