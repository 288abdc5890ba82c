"""A scene's award type changed (coupon -> cash): orders still decided under the old terms (the change takes effect
`terms_lead_ms` later, and a late grant names an open time before it) are credited in the old asset, but bounded by
the new terms' per-order cap and drawn from the new terms' stock/budget, in another unit.

So coupons are granted beyond the coupon stock and beyond the coupon per-order cap: the fen budget pays for pieces.
Counted from the ledger (a scan of the child's orders), never from the grant code's answers.
"""

from __future__ import annotations

from chalicelib import clock
from tests.rewards_support import call, make_campaign, orders_of

COUPON = {"award_type": "coupon", "template_id": "tpl1", "order_cap": 5, "total": 10, "shard_count": 1}
CASH = {"award_type": "cash", "order_cap": 10_000, "total": 1_000_000, "shard_count": 1}


def test_grant__scene_changed_from_coupon_to_cash__coupons_never_beyond_coupon_cap_or_stock(client):
    # GIVEN a coupon scene: template tpl1, at most 5 pieces an order, 10 pieces in stock, none granted yet
    campaign = make_campaign(client, award_type="coupon", total=10, shard_count=1, order_cap=5)
    status, body = call(client, "PUT", f"/v1/admin/activities/{campaign.activity_id}/scenes/{campaign.scene_id}",
                        COUPON)
    assert status == 200, body
    won_before_change = clock.now_ms() - 60_000
    # WHEN the operator turns the scene into a cash scene (10 000 fen an order, a 1 000 000 fen budget)
    status, body = call(client, "PUT", f"/v1/admin/activities/{campaign.activity_id}/scenes/{campaign.scene_id}",
                        CASH)
    assert status == 200, body
    # AND the upstream then sends coupon grants still under the coupon terms: rewards won a minute before the
    # change (a late delivery inside the retry horizon) and one won now (inside the change's lead)
    answers = []
    for n in range(4):
        answers.append(call(client, "POST", "/v1/grants", campaign.grant_body(
            f"late{n}", amount=5, open_time_ms=won_before_change)))
    answers.append(call(client, "POST", "/v1/grants", campaign.grant_body(
        "now0", amount=9_000, open_time_ms=clock.now_ms())))
    print("answers:", [(s, b.get("asset"), b.get("amount"), b.get("code")) for s, b in answers])
    # THEN no coupon order exceeds the coupon cap it was won under, and the coupons granted stay within the
    # coupon stock (10 pieces)
    coupons = [(o.asset, int(o.amount)) for o in orders_of(campaign) if o.asset.startswith("coupon:")]
    print("coupon orders in the ledger:", coupons)
    assert max((amount for _, amount in coupons), default=0) <= COUPON["order_cap"], coupons
    assert sum(amount for _, amount in coupons) <= COUPON["total"], coupons
