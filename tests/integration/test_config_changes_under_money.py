"""Configuration changed under money (review findings F1-F3, moved from tests/review): an operator's admin PUT must
never turn orders already won into oversold coupons, second orders or stranded balances.

Orders and balances are counted from the ledger and wallet items (scans and reads), never from the code's answers.
Runs on DynamoDB Local and moto (tests/conftest.py `aws_stack`).
"""

from __future__ import annotations

from typing import Any

from chalicelib import clock
from tests.conftest import uid
from tests.rewards_support import (
    Campaign,
    call,
    deliver_credits,
    make_campaign,
    orders_of,
    payout_mode,
    purge_credits,
    wallet_id_of,
    wallet_item,
)

MIN = 60_000
HOUR = 60 * MIN
COUPON = {"award_type": "coupon", "template_id": "tpl1", "order_cap": 5, "total": 10, "shard_count": 1}
CASH = {"award_type": "cash", "order_cap": 10_000, "total": 1_000_000, "shard_count": 1}


def _activity(client: Any, activity_id: str) -> dict[str, Any]:
    status, body = call(client, "GET", f"/v1/admin/activities/{activity_id}")
    assert status == 200, body
    return body


# --- F1: a scene's award type is immutable -----------------------------------------------------------------


def test_scene_put__award_type_changed_coupon_to_cash__refused_and_coupons_within_coupon_cap_and_stock(client):
    # GIVEN a coupon scene: template tpl1, at most 5 pieces an order, 10 pieces in stock, none granted yet
    campaign = make_campaign(client, award_type="coupon", total=10, shard_count=1, order_cap=5)
    path = f"/v1/admin/activities/{campaign.activity_id}/scenes/{campaign.scene_id}"
    status, body = call(client, "PUT", path, COUPON)
    assert status == 200, body
    before = _activity(client, campaign.activity_id)["scenes"]
    won_before_change = clock.now_ms() - 60_000
    # WHEN the operator tries to turn the scene into a cash scene (10 000 fen an order, a 1 000 000 fen budget)
    status, body = call(client, "PUT", path, CASH)
    # THEN it is refused naming the field, and the scene (terms, caps, version) is unchanged
    assert status == 409, body
    assert (body["code"], body["field"], body["current"], body["requested"]) == (
        "award_type_immutable", "award_type", "coupon", "cash")
    assert _activity(client, campaign.activity_id)["scenes"] == before
    # AND coupon grants sent afterwards (4 late ones won before the attempt, one of 9 000 pieces won now)
    answers = [call(client, "POST", "/v1/grants", campaign.grant_body(f"late{n}", amount=5,
                                                                          open_time_ms=won_before_change))
               for n in range(4)]
    answers.append(call(client, "POST", "/v1/grants", campaign.grant_body("now0", amount=9_000,
                                                                              open_time_ms=clock.now_ms())))
    print("answers:", [(s, b.get("asset"), b.get("amount"), b.get("code")) for s, b in answers])
    # stay within the coupon cap and the coupon stock, counted from the ledger
    coupons = [(o.asset, int(o.amount)) for o in orders_of(campaign) if o.asset.startswith("coupon:")]
    print("coupon orders in the ledger:", coupons)
    assert max((amount for _, amount in coupons), default=0) <= COUPON["order_cap"], coupons
    assert sum(amount for _, amount in coupons) <= COUPON["total"], coupons
    assert [(s, b.get("code")) for s, b in answers] == [
        (202, None), (202, None), (409, "sold_out"), (409, "sold_out"), (422, "amount_over_cap")]
    assert len(orders_of(campaign)) == 2  # the stock of 10 holds two orders of 5, the other two sold out


def test_scene_put__template_changed__same_unit_accepted(client):
    # GIVEN a coupon scene on template tpl1
    campaign = make_campaign(client, award_type="coupon", total=10, shard_count=1, order_cap=5)
    path = f"/v1/admin/activities/{campaign.activity_id}/scenes/{campaign.scene_id}"
    # WHEN the operator moves it to template tpl2 (still pieces)
    status, body = call(client, "PUT", path, {**COUPON, "template_id": "tpl2"})
    # THEN the change is accepted (the terms history keeps former grants on tpl1)
    assert status == 200, body
    assert (body["award_type"], body["template_id"]) == ("coupon", "tpl2")


# --- F2: an open time a grant or its retry may still name keeps its child ------------------------------------


def _windows(gray_end_ms: int, now_ms: int, formal_end_ms: int | None = None) -> list[dict]:
    return [{"sub_activity_id": "gray", "purpose": "gray_rehearsal", "starts_at_ms": now_ms - 2 * HOUR,
             "ends_at_ms": gray_end_ms},
            {"sub_activity_id": "formal", "purpose": "formal", "starts_at_ms": gray_end_ms,
             "ends_at_ms": formal_end_ms or now_ms + 24 * HOUR}]


def test_activity_put__child_window_moved_after_grant__refused_and_retry_makes_no_second_order(client):
    purge_credits()
    now = clock.now_ms()
    activity_id, scene_id = uid("act"), uid("scene")
    # GIVEN a gray rehearsal that ended 30 minutes ago and the formal child open since then
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}",
                        {"name": "windows", "children": _windows(now - 30 * MIN, now)})
    assert status == 200, body
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/{scene_id}",
                        {"award_type": "cash", "order_cap": 1000, "total": 100_000, "shard_count": 1})
    assert status == 200, body
    campaign = Campaign(activity_id, "formal", scene_id, "cash", 1000)
    # AND a reward of 500 fen won 10 minutes ago (in the formal child), granted and answered 202
    grant = campaign.grant_body("u1", amount=500, open_time_ms=now - 10 * MIN)
    status, first = call(client, "POST", "/v1/grants", grant)
    assert (status, first["sub_activity_id"]) == (202, "formal"), first
    before = _activity(client, activity_id)
    # WHEN an operator extends the gray rehearsal to now (the formal child would start now)
    status, put = call(client, "PUT", f"/v1/admin/activities/{activity_id}",
                       {"name": "windows", "children": _windows(now, now)})
    # THEN the edit is refused naming the child the open time 30 minutes ago belongs to, nothing written
    assert status == 409, put
    assert (put["code"], put["sub_activity_id"], put["at_ms"]) == ("child_window_moved", "formal", now - 30 * MIN)
    assert _activity(client, activity_id) == before
    # AND the upstream's identical retry (its first answer was lost) finds the first order (200: it exists)
    status, again = call(client, "POST", "/v1/grants", grant)
    assert (status, again["order_id"], again["sub_activity_id"]) == (200, first["order_id"], "formal"), again
    deliver_credits()
    # AND there is one order for this reward, 500 fen credited once over both children
    orders = [(o.wallet_id, int(o.amount)) for sub in ("gray", "formal") for o in orders_of(campaign, sub)]
    credited = sum(int(w.balance) for sub in ("gray", "formal")
                   if (w := wallet_item(wallet_id_of(campaign, "u1", sub))) is not None)
    print("orders:", orders, "credited:", credited)
    assert len(orders) == 1, orders
    assert credited == 500


def test_activity_put__boundary_beyond_open_time_lead_moved__accepted(client):
    now = clock.now_ms()
    activity_id = uid("act")
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}",
                        {"name": "windows", "children": _windows(now - 30 * MIN, now)})
    assert status == 200, body
    # WHEN the formal child's end (24 h ahead) moves to 48 h ahead: no grant can name those open times yet
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}",
                        {"name": "windows", "children": _windows(now - 30 * MIN, now, now + 48 * HOUR)})
    # THEN it is accepted and stored
    assert status == 200, body
    assert _activity(client, activity_id)["children"][1]["ends_at_ms"] == now + 48 * HOUR


# --- F3: a started child is never dropped --------------------------------------------------------------------


def test_activity_put__started_child_with_balance_dropped__refused_and_user_withdraws(client):
    purge_credits()
    now = clock.now_ms()
    # GIVEN a user credited 500 fen in the activity's formal child
    campaign = make_campaign(client, total=100_000, order_cap=1000)
    status, body = call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=500))
    assert status == 202, body
    deliver_credits()
    assert int(wallet_item(wallet_id_of(campaign, "u1")).balance) == 500
    before = _activity(client, campaign.activity_id)
    # WHEN an operator re-PUTs the activity with a new child in place of the formal one (the PUT replaces the list)
    status, put = call(client, "PUT", f"/v1/admin/activities/{campaign.activity_id}", {
        "name": "test campaign", "children": [{"sub_activity_id": "encore", "purpose": "formal",
                                                "starts_at_ms": now + HOUR, "ends_at_ms": now + 48 * HOUR}]})
    # THEN the edit is refused naming the started child, nothing written
    assert status == 409, put
    assert (put["code"], put["sub_activity_id"]) == ("started_child_removed", "formal")
    assert _activity(client, campaign.activity_id) == before
    # AND the user withdraws the 500 fen they hold in the formal child
    with payout_mode("ok"):
        status, answer = call(client, "POST", "/v1/wallets/u1/withdrawals", {
            "activity_id": campaign.activity_id, "sub_activity_id": "formal", "request_id": "wd-stranded",
            "amount": 500})
    assert status == 200, answer
    assert int(wallet_item(wallet_id_of(campaign, "u1")).balance) == 0


def test_activity_put__child_not_started_dropped__accepted(client):
    now = clock.now_ms()
    # GIVEN an activity with its formal child open and an encore child starting in two days
    encore = {"sub_activity_id": "encore", "purpose": "formal", "starts_at_ms": now + 48 * HOUR,
              "ends_at_ms": now + 72 * HOUR}
    campaign = make_campaign(client, extra_children=[encore])
    formal = _activity(client, campaign.activity_id)["children"][0]
    # WHEN the operator drops the encore child
    status, body = call(client, "PUT", f"/v1/admin/activities/{campaign.activity_id}",
                        {"name": "test campaign", "children": [formal]})
    # THEN it is accepted: only the formal child remains
    assert status == 200, body
    assert [c["sub_activity_id"] for c in _activity(client, campaign.activity_id)["children"]] == ["formal"]
