"""Child activities never mix: the same grant in two consecutive child windows makes two independent
orders, wallets, stock counters and distributed totals."""

from __future__ import annotations

from chalicelib import clock
from tests.conftest import uid
from tests.rewards_support import (
    HOUR_MS,
    Campaign,
    call,
    deliver_credits,
    ledger_sums,
    order_item,
    purge_credits,
    stock_shards,
    wallet_id_of,
    withdrawal_body,
)


def test_children__same_grant_in_each_window__independent_orders_wallets_counters_and_totals(client, monkeypatch):
    # GIVEN an activity whose "gray" child is followed directly by its "formal" child
    # (configured with both windows from the start: a started child cannot be replaced later)
    start = clock.now_ms() - 2 * HOUR_MS
    activity_id, scene_id = uid("act"), uid("scene")
    children = [
        {"sub_activity_id": "gray", "purpose": "gray_rehearsal", "starts_at_ms": start, "ends_at_ms": start + HOUR_MS},
        {"sub_activity_id": "formal", "purpose": "formal", "starts_at_ms": start + HOUR_MS,
         "ends_at_ms": start + 30 * HOUR_MS},
    ]
    status, _ = call(client, "PUT", f"/v1/admin/activities/{activity_id}", {"name": "n", "children": children})
    assert status == 200
    status, _ = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/{scene_id}",
                     {"award_type": "cash", "order_cap": 10_000, "total": 1000, "shard_count": 2})
    assert status == 200
    campaign = Campaign(activity_id, "formal", scene_id, "cash", 10_000, won_ms=start + HOUR_MS // 2)
    purge_credits()
    body = campaign.grant_body("u1", amount=300)

    # WHEN the very same grant is won once in each window (the boundary instant belongs to "formal")
    answers = {}
    for sub, at in (("gray", start + HOUR_MS - 1), ("formal", start + HOUR_MS)):
        monkeypatch.setattr(clock, "now_ms", lambda at=at: at)
        answers[sub] = call(client, "POST", "/v1/grants", {**body, "open_time_ms": at})
    monkeypatch.undo()

    # THEN both are new orders, one per child, each consuming its own child's stock
    assert [(s, b["sub_activity_id"]) for s, b in answers.values()] == [(202, "gray"), (202, "formal")]
    order_id = answers["gray"][1]["order_id"]
    assert answers["formal"][1]["order_id"] == order_id
    assert order_item(campaign, order_id, "gray").wallet_id != order_item(campaign, order_id, "formal").wallet_id
    for sub in ("gray", "formal"):
        assert sum(int(s.consumed) for s in stock_shards(campaign, sub)) == 300
        status, stock = call(client, "GET", f"/v1/activities/{campaign.activity_id}/scenes/{campaign.scene_id}"
                                            f"/stock?sub_activity_id={sub}")
        assert (status, stock["sub_activity_id"], stock["consumed"], stock["remaining"]) == (200, sub, 300, 700)

    # WHEN both are credited THEN each child's wallet holds its own reward, and totals are per child
    deliver_credits()
    for sub in ("gray", "formal"):
        status, wallet = call(client, "GET", f"/v1/wallets/u1?activity_id={campaign.activity_id}"
                                             f"&sub_activity_id={sub}")
        assert (status, wallet["balance"], wallet["total_income"]) == (200, 300, 300)
        assert ledger_sums(wallet_id_of(campaign, "u1", sub)).credits == 300
    status, totals = call(client, "GET", f"/v1/activities/{campaign.activity_id}/totals")
    assert totals["children"] == [
        {"sub_activity_id": "gray", "purpose": "gray_rehearsal", "distributed": {"CNY": {"amount": 300, "rewards": 1}}},
        {"sub_activity_id": "formal", "purpose": "formal", "distributed": {"CNY": {"amount": 300, "rewards": 1}}},
    ]

    # WHEN the user withdraws from the rehearsal child THEN only that child's wallet moves
    request = {**withdrawal_body(campaign, 300), "sub_activity_id": "gray"}
    status, answer = call(client, "POST", "/v1/wallets/u1/withdrawals", request)
    assert (status, answer["balance"]) == (200, 0)
    assert ledger_sums(wallet_id_of(campaign, "u1", "formal")).balance == 300
    # AND without a child named, the wallet shown is the open ("formal") one
    status, wallet = call(client, "GET", f"/v1/wallets/u1?activity_id={campaign.activity_id}")
    assert wallet["balance"] == 300


def test_children__window_not_yet_open__grant_404_and_wallet_read_404(client):
    future = clock.now_ms() + 5 * HOUR_MS
    activity_id = uid("act")
    status, _ = call(client, "PUT", f"/v1/admin/activities/{activity_id}", {"name": "n", "children": [
        {"sub_activity_id": "formal", "purpose": "formal", "starts_at_ms": future, "ends_at_ms": future + HOUR_MS}]})
    assert status == 200
    status, _ = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/s1",
                     {"award_type": "cash", "order_cap": 10, "total": 10})
    assert status == 200
    body = {"activity_id": activity_id, "scene_id": "s1", "act_id": "u1", "rain_id": "r", "award_type": "cash",
            "stage": "1", "amount": 1, "open_time_ms": clock.now_ms()}
    status, answer = call(client, "POST", "/v1/grants", body)
    assert (status, answer["code"]) == (404, "outside_activity_window")
    status, answer = call(client, "GET", f"/v1/wallets/u1?activity_id={activity_id}")
    assert (status, answer["code"]) == (404, "outside_activity_window")
