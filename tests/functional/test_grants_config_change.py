"""A configuration change between a grant and its identical retry never makes a second order (issue 18, item 3).

An order's identity comes from the request's immutable fields and the child its `open_time_ms` chooses. What the
order depends on in the scene (award type and template: its asset and wallet; its cap) is pinned when it is
placed: a retry with the same content finds the first order (200, the first result), different content is
`409 order_conflict`. On DynamoDB Local and moto SQS through the Chalice test client; orders are counted by a
scan of the child's ledger (every wallet), not by the grant code.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import clock
from tests.rewards_support import Campaign, call, make_campaign, orders_of, stock_shards

SCENE = {"award_type": "coupon", "template_id": "tpl1", "order_cap": 5, "total": 100, "shard_count": 4}


def consumed(campaign: Campaign) -> int:
    return sum(int(s.consumed) for s in stock_shards(campaign))


def edit_scene(client, campaign: Campaign, **changes: Any) -> None:
    status, body = call(client, "PUT", f"/v1/admin/activities/{campaign.activity_id}/scenes/{campaign.scene_id}",
                        {**SCENE, **changes})
    assert status == 200, body


@pytest.fixture
def campaign(client) -> Campaign:
    """GIVEN a coupon scene (template tpl1, cap 5, 100 pieces over 4 shards) in a child open now."""
    campaign = make_campaign(client, award_type="coupon", total=100, shard_count=4, order_cap=5)
    edit_scene(client, campaign)
    return campaign


@pytest.mark.parametrize("change", [
    {"template_id": "tpl2"},
    {"order_cap": 2},
    {"shard_count": 2},
    {"reconcile": False},
    {"template_id": "tpl2", "order_cap": 2, "shard_count": 7, "reconcile": False},
], ids=["template", "cap_lowered", "shard_count", "reconcile_off", "all_at_once"])
def test_grant__scene_changed_between_grant_and_identical_retry__200_first_order_stock_once(
        client, campaign, change):
    # GIVEN a coupon granted: 3 pieces of template tpl1
    body = campaign.grant_body("u1", amount=3)
    status, first = call(client, "POST", "/v1/grants", body)
    assert status == 202 and first["asset"] == "coupon:tpl1"
    # WHEN an operator edits the scene, then the identical grant is retried (same open_time_ms)
    edit_scene(client, campaign, **change)
    status, again = call(client, "POST", "/v1/grants", body)
    # THEN the retry answers 200 with the first order (its template, its id), and one order of 3 pieces exists
    assert (status, again["order_id"], again["asset"]) == (200, first["order_id"], "coupon:tpl1")
    assert [(o.asset, int(o.amount)) for o in orders_of(campaign)] == [("coupon:tpl1", 3)]
    assert consumed(campaign) == 3


def test_grant_batch__template_changed_between_batch_and_identical_retry__200s_orders_once(client, campaign):
    # GIVEN a batch of 3 coupons granted under template tpl1
    batch = {"grants": [campaign.grant_body(u, amount=2) for u in ("u1", "u2", "u3")]}
    status, first = call(client, "POST", "/v1/grants/batch", batch)
    assert status == 200 and [r["status"] for r in first["results"]] == [202, 202, 202]
    # WHEN the template changes and the identical batch is retried
    edit_scene(client, campaign, template_id="tpl2")
    status, again = call(client, "POST", "/v1/grants/batch", batch)
    # THEN every item is a repeat of its first order, and the stored orders are the 3 of tpl1 only
    assert [(r["status"], r["body"]["order_id"], r["body"]["asset"]) for r in again["results"]] == [
        (200, r["body"]["order_id"], "coupon:tpl1") for r in first["results"]]
    assert sorted((o.act_id, o.asset) for o in orders_of(campaign)) == [
        ("u1", "coupon:tpl1"), ("u2", "coupon:tpl1"), ("u3", "coupon:tpl1")]
    assert consumed(campaign) == 6


def test_grant__template_changed_then_retry_with_other_amount__409_order_conflict_nothing_written(
        client, campaign):
    # GIVEN a coupon of 3 pieces granted under tpl1, then the template changed to tpl2
    body = campaign.grant_body("u1", amount=3)
    assert call(client, "POST", "/v1/grants", body)[0] == 202
    edit_scene(client, campaign, template_id="tpl2")
    # WHEN the same order id arrives with another amount
    status, answer = call(client, "POST", "/v1/grants", {**body, "amount": 4})
    # THEN it is an explicit conflict naming the first amount, and nothing more is written
    assert (status, answer["code"], answer["existing_amount"]) == (409, "order_conflict", 3)
    assert len(orders_of(campaign)) == 1 and consumed(campaign) == 3


def test_grant__cap_lowered_then_new_order_over_it__422_amount_over_cap(client, campaign):
    # GIVEN the cap lowered from 5 to 2 WHEN a new order of 3 arrives THEN it is refused (the cap applies to it)
    edit_scene(client, campaign, order_cap=2)
    status, answer = call(client, "POST", "/v1/grants", campaign.grant_body("u9", amount=3))
    assert (status, answer["code"], answer["order_cap"]) == (422, "amount_over_cap", 2)
    assert orders_of(campaign) == []


def test_grant__won_after_the_template_change_takes_effect__new_template(client, campaign, monkeypatch):
    # GIVEN the template changed to tpl2 now
    edit_scene(client, campaign, template_id="tpl2")
    # WHEN a reward won 10 minutes later is granted (past the change's lead time)
    later = clock.now_ms() + 600_000
    monkeypatch.setattr(clock, "now_ms", lambda: later)
    status, answer = call(client, "POST", "/v1/grants", campaign.grant_body("u2", amount=1, open_time_ms=later))
    # THEN it is a coupon of tpl2: the change applies to rewards won after it
    assert (status, answer["asset"]) == (202, "coupon:tpl2")


def test_grant_batch__orders_of_both_templates_then_process_dies__sweep_counts_each_in_its_wallet(
        client, campaign, monkeypatch):
    from chalicelib.faults import InjectedCrash
    from chalicelib.rewards import grants, ids, reservations
    from chalicelib.rewards.orders import parse_grant
    from tests.rewards_support import ns_of

    # GIVEN the template changed to tpl2 at T (it applies to rewards won from T + the lead)
    changed_at = clock.now_ms()
    monkeypatch.setattr(clock, "now_ms", lambda: changed_at)
    edit_scene(client, campaign, template_id="tpl2", shard_count=1)
    # AND one batch, 100 s later, of a reward won before the change applies (tpl1) and one won after (tpl2)
    now = changed_at + 100_000
    monkeypatch.setattr(clock, "now_ms", lambda: now)
    requests = [parse_grant(campaign.grant_body("u1", amount=4, open_time_ms=changed_at)),
                parse_grant(campaign.grant_body("u2", amount=5, open_time_ms=now + 299_000))]

    # WHEN its process writes both orders and dies before settling its reservation
    def die(*_args, **_kwargs):
        raise InjectedCrash("before settle")

    monkeypatch.setattr(reservations, "settle", die)
    with pytest.raises(InjectedCrash):
        grants.grant_many(requests)
    assert sorted((o.act_id, o.asset) for o in orders_of(campaign)) == [("u1", "coupon:tpl1"), ("u2", "coupon:tpl2")]

    # THEN the dead-lease sweep finds each order in its own template's wallet: 9 used, nothing handed back
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    after = now + reservations.LEASE_MS + reservations.RETURN_GRACE_MS + 1000
    returned = reservations.return_dead(counter, 1, after)
    assert [(r.reserved, r.used, r.returned) for r in returned] == [(9, 9, 0)]
    assert consumed(campaign) == 9 == sum(int(o.amount) for o in orders_of(campaign))
