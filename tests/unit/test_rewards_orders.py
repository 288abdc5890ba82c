"""Grant requests and the orders they decide (`chalicelib.rewards.orders`), and the credit message format."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chalicelib import clock
from chalicelib.errors import AmountOverCap, AwardTypeMismatch, InvalidField, OpenTimeOutOfRange, PoisonMessage
from chalicelib.rewards import ids, orders
from chalicelib.rewards.config import parse_activity, parse_scene
from chalicelib.rewards.orders import decide_order, parse_grant

H = 3_600_000
T0 = 1_714_536_000_000  # 2024-05-01 04:00:00 UTC
ACTIVITY = parse_activity("act1", {"name": "spring", "children": [
    {"sub_activity_id": "gray", "purpose": "gray_rehearsal", "starts_at_ms": T0 - H, "ends_at_ms": T0},
    {"sub_activity_id": "formal", "purpose": "formal", "starts_at_ms": T0, "ends_at_ms": T0 + 24 * H}]})
CASH_SCENE = parse_scene("act1", "s1", {"award_type": "cash", "order_cap": 500, "total": 10_000,
                                         "bill_text": "rain reward"})
COUPON_SCENE = parse_scene("act1", "s2", {"award_type": "coupon", "template_id": "tpl7", "order_cap": 1,
                                          "total": 100})


def grant_body(**changes) -> dict:
    return {"activity_id": "act1", "scene_id": "s1", "act_id": "user1", "rain_id": "r9", "award_type": "cash",
            "stage": "2", "amount": 300, "open_time_ms": T0, **changes}


def test_decide_order__cash__every_fact_fixed_by_request_child_scene_and_time():
    # GIVEN a valid request at 04:30 UTC, inside the formal window
    at = T0 + H // 2
    request = parse_grant(grant_body())
    # WHEN the order is decided
    order = decide_order(request, ACTIVITY, ACTIVITY.child_at(at), CASH_SCENE, at, hour_buckets=16)
    # THEN it lives in the formal child, with the documented id, wallet, hour and bucket
    assert order.order_id == "user1_s1_r9_cash_2"
    assert order.order_key == "act1/formal#user1_s1_r9_cash_2"
    assert order.wallet_id == "act1/formal#user1#CNY"
    assert (order.amount, order.asset, order.order_cap, order.bill_text) == (300, "CNY", 500, "rain reward")
    assert (order.created_at_ms, order.hour) == (at, "2024050104")
    assert order.hour_bucket == f"2024050104#{ids.bucket_of(order.wallet_id, 16)}"
    assert order.status_name == "ACCEPTED" and order.shard is None


def test_decide_order__one_users_rewards_in_an_hour__share_one_hour_bucket_so_reconciliation_checks_the_wallet_once():
    at = T0 + H // 2
    orders = [decide_order(parse_grant(grant_body(rain_id=f"r{i}")), ACTIVITY, ACTIVITY.child_at(at), CASH_SCENE,
                           at + i, hour_buckets=256) for i in range(20)]
    assert len({o.order_key for o in orders}) == 20
    assert {o.hour_bucket for o in orders} == {ids.wallet_hour_bucket("2024050104", orders[0].wallet_id, 256)}


def test_decide_order__same_request_in_another_child__another_order_and_wallet():
    request = parse_grant(grant_body())
    gray = decide_order(request, ACTIVITY, ACTIVITY.child_at(T0 - 1), CASH_SCENE, T0 - 1, 16)
    formal = decide_order(request, ACTIVITY, ACTIVITY.child_at(T0), CASH_SCENE, T0, 16)
    assert gray.order_id == formal.order_id
    assert gray.order_key != formal.order_key and gray.wallet_id != formal.wallet_id
    assert (gray.sub_activity_id, formal.sub_activity_id) == ("gray", "formal")


def test_decide_order__coupon__wallet_holds_the_template():
    request = parse_grant(grant_body(scene_id="s2", award_type="coupon", amount=1))
    order = decide_order(request, ACTIVITY, ACTIVITY.child_at(T0), COUPON_SCENE, T0, 16)
    assert order.asset == "coupon:tpl7"
    assert order.wallet_id == "act1/formal#user1#coupon:tpl7"


def test_decide_order__amount_at_cap_accepted_above_cap_refused():
    child = ACTIVITY.child_at(T0)
    assert decide_order(parse_grant(grant_body(amount=500)), ACTIVITY, child, CASH_SCENE, T0, 16).amount == 500
    with pytest.raises(AmountOverCap) as refused:
        decide_order(parse_grant(grant_body(amount=501)), ACTIVITY, child, CASH_SCENE, T0, 16)
    assert refused.value.details == {"order_cap": 500}


def test_decide_order__award_type_not_the_scenes__refused():
    with pytest.raises(AwardTypeMismatch) as refused:
        decide_order(parse_grant(grant_body(award_type="coupon")), ACTIVITY, ACTIVITY.child_at(T0), CASH_SCENE, T0,
                     16)
    assert refused.value.details == {"expected": "cash"}


@pytest.mark.parametrize("field", orders.GRANT_FIELDS)
def test_parse_grant__each_required_field_missing__refused_naming_it(field):
    body = grant_body()
    del body[field]
    with pytest.raises(InvalidField) as refused:
        parse_grant(body)
    assert refused.value.details["field"] == field


@pytest.mark.parametrize(("field", "value"), [
    ("activity_id", 7), ("scene_id", ["s1"]), ("act_id", "user_1"), ("act_id", "user#1"), ("act_id", "a/b"),
    ("rain_id", ""), ("rain_id", "r" * 65), ("stage", 2), ("award_type", "points"), ("amount", "300"),
    ("amount", 3.0), ("amount", True), ("amount", 0), ("amount", -5), ("amount", 2**53), ("scene_id", "-s"),
    ("open_time_ms", "1"), ("open_time_ms", 1.5), ("open_time_ms", -1), ("open_time_ms", True),
])
def test_parse_grant__bad_value__refused_naming_the_field(field, value):
    with pytest.raises(InvalidField) as refused:
        parse_grant(grant_body(**{field: value}))
    assert refused.value.details["field"] == field


def test_parse_grant__unknown_field_or_not_an_object__refused():
    with pytest.raises(InvalidField) as refused:
        parse_grant(grant_body(order_id="x"))
    assert refused.value.details["field"] == "order_id"
    with pytest.raises(InvalidField):
        parse_grant([grant_body()])


def test_same_content__only_the_same_key_amount_scene_and_activity():
    order = decide_order(parse_grant(grant_body()), ACTIVITY, ACTIVITY.child_at(T0), CASH_SCENE, T0, 16)
    later = replace(order, created_at_ms=T0 + 5000, hour="2024050105", shard=3)
    assert order.same_content(later)
    assert not order.same_content(replace(order, amount=299))


def test_credit_message__round_trip__carries_every_fact_of_the_order():
    order = replace(decide_order(parse_grant(grant_body()), ACTIVITY, ACTIVITY.child_at(T0), CASH_SCENE, T0, 16),
                    shard=2)
    assert orders.parse_credit_message(orders.credit_message(order)) == order


@pytest.mark.parametrize("body", [
    "not json", "[]", "{}", json.dumps({"v": 2}),
    json.dumps({"v": 1, "order_key": "k"}),
])
def test_parse_credit_message__not_a_credit_message__poison(body):
    with pytest.raises(PoisonMessage):
        orders.parse_credit_message(body)


def test_credit_message__unknown_version__poison():
    order = decide_order(parse_grant(grant_body()), ACTIVITY, ACTIVITY.child_at(T0), CASH_SCENE, T0, 16)
    data = json.loads(orders.credit_message(order))
    data["v"] = 2
    with pytest.raises(PoisonMessage):
        orders.parse_credit_message(json.dumps(data))


def test_hour_of__utc_hours():
    assert clock.hour_of(T0) == "2024050104"
    assert clock.hour_of(T0 - 1) == "2024050103"
    assert clock.hour_start_ms("2024050104") == T0


# --- open_time_ms: when the reward was won --------------------------------------------------------

HORIZON_S = 86_400


@pytest.mark.parametrize(("open_time_ms", "accepted"), [
    (T0 - HORIZON_S * 1000, True), (T0 - HORIZON_S * 1000 - 1, False),
    (T0 + 300_000, True), (T0 + 300_001, False), (T0, True),
])
def test_open_time_of__window_edges__inclusive_horizon_back_and_300_s_ahead(open_time_ms, accepted):
    request = parse_grant(grant_body(open_time_ms=open_time_ms))
    if accepted:
        assert orders.open_time_of(request, T0, HORIZON_S) == open_time_ms
    else:
        with pytest.raises(OpenTimeOutOfRange) as refused:
            orders.open_time_of(request, T0, HORIZON_S)
        assert refused.value.details == {"field": "open_time_ms", "open_time_ms": open_time_ms,
                                         "earliest_ms": T0 - HORIZON_S * 1000, "latest_ms": T0 + 300_000}


def test_open_time_of__internal_request_without_it__the_servers_time():
    # The public edge requires open_time_ms (parse_grant); an internal caller's request may leave it unset.
    internal = replace(parse_grant(grant_body()), open_time_ms=None)
    assert orders.open_time_of(internal, T0 + 17, HORIZON_S) == T0 + 17


def test_decide_order__open_time_given__token_claims_it_created_at_is_the_servers_time():
    won, now = T0 - 1000, T0 + 5000
    request = parse_grant(grant_body(open_time_ms=won))
    order = decide_order(request, ACTIVITY, ACTIVITY.child_at(won), CASH_SCENE, now, 16, won)
    assert (order.sub_activity_id, order.open_time_ms, order.created_at_ms) == ("gray", won, now)
    assert order.token_claims("app")["open_time_ms"] == won


def test_same_content__other_open_time__different_unless_the_repeat_named_none():
    order = decide_order(parse_grant(grant_body()), ACTIVITY, ACTIVITY.child_at(T0), CASH_SCENE, T0, 16, T0)
    other = replace(order, open_time_ms=T0 + 1)
    assert not order.same_content(other)
    assert order.same_content(other, open_time_given=False)


def test_credit_message__sent_before_open_time_was_carried__opened_at_creation():
    order = decide_order(parse_grant(grant_body()), ACTIVITY, ACTIVITY.child_at(T0), CASH_SCENE, T0 + 9, 16, T0)
    assert orders.parse_credit_message(orders.credit_message(order)).open_time_ms == T0
    data = json.loads(orders.credit_message(order))
    del data["open_time_ms"]
    assert orders.parse_credit_message(json.dumps(data)).open_time_ms == T0 + 9
