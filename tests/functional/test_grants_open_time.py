"""A grant's `open_time_ms` (when the reward was won) chooses its child activity, so a retry of the identical body
at any later moment — even after the child's window has closed — maps to the same order.

On DynamoDB Local and moto SQS through the Chalice test client; the server's clock is moved with `clock.now_ms`.
"""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.rewards import tokens
from tests.conftest import uid
from tests.problems import problem
from tests.rewards_support import HOUR_MS, Campaign, call, order_id_of, orders_of, stock_shards

HORIZON_MS = 86_400 * 1000  # RG_GRANT_RETRY_HORIZON_S's default
AHEAD_MS = 300 * 1000


@pytest.fixture
def boundary() -> int:
    """The instant child A closes and child B opens (a whole second, an hour from the real clock)."""
    return (clock.now_ms() // 1000) * 1000 + HOUR_MS


@pytest.fixture
def campaign(client, boundary) -> Campaign:
    """GIVEN an activity with children A = [boundary - 2 h, boundary) | B = [boundary, boundary + 24 h)."""
    activity_id, scene_id = uid("act"), uid("scene")
    children = [
        {"sub_activity_id": "A", "purpose": "gray_rehearsal", "starts_at_ms": boundary - 2 * HOUR_MS,
         "ends_at_ms": boundary},
        {"sub_activity_id": "B", "purpose": "formal", "starts_at_ms": boundary, "ends_at_ms": boundary + 24 * HOUR_MS},
    ]
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}", {"children": children})
    assert status == 200, body
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/{scene_id}",
                        {"award_type": "cash", "order_cap": 500, "total": 10_000, "shard_count": 4})
    assert status == 200, body
    return Campaign(activity_id, "A", scene_id, "cash", 500)


def public_keys(client) -> dict:
    status, body = call(client, "GET", "/v1/keys/reward-token")
    assert status == 200
    return {k["kid"]: tokens.load_public_key(k["public_key"]) for k in body["keys"]}


def at(monkeypatch: pytest.MonkeyPatch, ms: int) -> None:
    """Set the server's clock."""
    monkeypatch.setattr(clock, "now_ms", lambda: ms)


def consumed(campaign: Campaign, child: str) -> int:
    return sum(int(s.consumed) for s in stock_shards(campaign, child))


def order_ids(campaign: Campaign, child: str) -> list[str]:
    return sorted(o.order_id for o in orders_of(campaign, child))


def test_grant__identical_retry_after_the_child_boundary__200_original_order_stock_consumed_once(
        client, campaign, boundary, monkeypatch):
    # GIVEN a grant at A's last second
    won = boundary - 1000
    at(monkeypatch, won)
    body = {**campaign.grant_body("u1", amount=300), "open_time_ms": won}
    first = call(client, "POST", "/v1/grants", body)
    # WHEN the identical body is retried after the boundary (its first answer was lost)
    at(monkeypatch, boundary + 5000)
    again = call(client, "POST", "/v1/grants", body)
    # THEN the retry answers 200 with the original result
    assert first[0] == 202 and first[1]["sub_activity_id"] == "A"
    assert again == (200, first[1])
    # AND there is one order, in A, and stock was consumed once, in A
    assert order_ids(campaign, "A") == [order_id_of(campaign, "u1")] and order_ids(campaign, "B") == []
    assert (consumed(campaign, "A"), consumed(campaign, "B")) == (300, 0)


def test_grant_batch__identical_retry_after_the_child_boundary__200_original_order_stock_consumed_once(
        client, campaign, boundary, monkeypatch):
    # GIVEN a batch granted at A's last second
    won = boundary - 1000
    at(monkeypatch, won)
    batch = {"grants": [{**campaign.grant_body(u, amount=100), "open_time_ms": won} for u in ("u1", "u2")]}
    first = call(client, "POST", "/v1/grants/batch", batch)
    # WHEN the identical batch is retried after the boundary
    at(monkeypatch, boundary + 5000)
    again = call(client, "POST", "/v1/grants/batch", batch)
    # THEN every item answers 200 with its original order
    assert [r["status"] for r in first[1]["results"]] == [202, 202]
    assert again[0] == 200 and [r["status"] for r in again[1]["results"]] == [200, 200]
    assert [r["body"] for r in again[1]["results"]] == [r["body"] for r in first[1]["results"]]
    # AND the orders and their stock are A's, once
    assert order_ids(campaign, "A") == sorted(order_id_of(campaign, u) for u in ("u1", "u2"))
    assert order_ids(campaign, "B") == []
    assert (consumed(campaign, "A"), consumed(campaign, "B")) == (200, 0)


def test_grant__won_in_a_but_first_arriving_after_a_closed__granted_in_a_with_a_stock(
        client, campaign, boundary, monkeypatch):
    # GIVEN a reward won in A's last second whose first attempt arrives after A closed (within the horizon)
    won = boundary - 1000
    at(monkeypatch, boundary + 10 * 60 * 1000)
    status, body = call(client, "POST", "/v1/grants", {**campaign.grant_body("u1", amount=250), "open_time_ms": won})
    # THEN it is granted in A: A's window is judged at the time the reward was won, and the stock is A's
    assert (status, body["sub_activity_id"], body["created_at_ms"]) == (202, "A", boundary + 10 * 60 * 1000)
    assert order_ids(campaign, "A") == [order_id_of(campaign, "u1")] and order_ids(campaign, "B") == []
    assert (consumed(campaign, "A"), consumed(campaign, "B")) == (250, 0)
    # AND its token states when the reward was won
    assert tokens.verify(body["token"], public_keys(client))["open_time_ms"] == won


@pytest.mark.parametrize(("offset_ms", "label"), [(-HORIZON_MS - 1, "older than the horizon"),
                                                  (AHEAD_MS + 1, "too far ahead")])
def test_grant__open_time_outside_the_accepted_window__422_naming_field_and_window_nothing_written(
        client, campaign, boundary, monkeypatch, offset_ms, label):
    now = boundary + 1000
    at(monkeypatch, now)
    body = {**campaign.grant_body("u1"), "open_time_ms": now + offset_ms}
    status, answer = call(client, "POST", "/v1/grants", body)
    earliest, latest = now - HORIZON_MS, now + AHEAD_MS
    assert (status, answer) == (422, problem(
        "open_time_out_of_range",
        f"open_time_ms {now + offset_ms} is outside the accepted window [{earliest}, {latest}]: at most 86400 s "
        f"before the server's time and 300 s after it",
        field="open_time_ms", open_time_ms=now + offset_ms, earliest_ms=earliest, latest_ms=latest)), label
    assert order_ids(campaign, "A") == order_ids(campaign, "B") == []
    assert consumed(campaign, "A") == consumed(campaign, "B") == 0


def test_grant__open_time_in_no_child_window__404_outside_activity_window_at_that_time(
        client, campaign, boundary, monkeypatch):
    at(monkeypatch, boundary + 1000)
    before_a = boundary - 2 * HOUR_MS - 1
    status, answer = call(client, "POST", "/v1/grants", {**campaign.grant_body("u1"), "open_time_ms": before_a})
    assert (status, answer) == (404, problem(
        "outside_activity_window", f"activity {campaign.activity_id} has no child activity open at {before_a}",
        activity_id=campaign.activity_id))
    assert order_ids(campaign, "A") == order_ids(campaign, "B") == []


def test_grant__same_order_id_other_open_time_in_the_same_child__409_order_conflict_nothing_changed(
        client, campaign, boundary, monkeypatch):
    at(monkeypatch, boundary - 5000)
    first = call(client, "POST", "/v1/grants",
                 {**campaign.grant_body("u1", amount=120), "open_time_ms": boundary - 9000})
    at(monkeypatch, boundary + 5000)
    status, answer = call(client, "POST", "/v1/grants",
                          {**campaign.grant_body("u1", amount=120), "open_time_ms": boundary - 8000})
    oid = order_id_of(campaign, "u1")
    assert first[0] == 202
    assert (status, answer) == (409, problem("order_conflict", f"order {oid} exists with different content",
                                             order_id=oid, existing_amount=120))
    assert order_ids(campaign, "A") == [oid] and order_ids(campaign, "B") == []
    assert (consumed(campaign, "A"), consumed(campaign, "B")) == (120, 0)


def test_grant__repeat_without_open_time_inside_the_same_child__400_invalid_field_nothing_changed(
        client, campaign, boundary, monkeypatch):
    # GIVEN a grant that named its open_time_ms
    at(monkeypatch, boundary - 60_000)
    first = call(client, "POST", "/v1/grants",
                 {**campaign.grant_body("u1", amount=120), "open_time_ms": boundary - 70_000})
    # WHEN a repeat without it arrives while the same child is still open
    at(monkeypatch, boundary - 30_000)
    body = {k: v for k, v in campaign.grant_body("u1", amount=120).items() if k != "open_time_ms"}
    again = call(client, "POST", "/v1/grants", body)
    # THEN it is refused naming open_time_ms (required on every grant), and the first order alone holds stock
    assert first[0] == 202
    assert again == (400, problem("invalid_field", "open_time_ms: is required", field="open_time_ms"))
    assert consumed(campaign, "A") == 120 and order_ids(campaign, "A") == [order_id_of(campaign, "u1")]


def test_grant_batch__one_item_open_time_out_of_range__that_item_422_the_others_granted(
        client, campaign, boundary, monkeypatch):
    now = boundary + 1000
    at(monkeypatch, now)
    batch = {"grants": [{**campaign.grant_body("u1", amount=100), "open_time_ms": boundary - 1000},
                        {**campaign.grant_body("u2", amount=100), "open_time_ms": now - HORIZON_MS - 1}]}
    status, answer = call(client, "POST", "/v1/grants/batch", batch)
    results = answer["results"]
    assert status == 200 and [(r["index"], r["status"]) for r in results] == [(0, 202), (1, 422)]
    assert results[0]["body"]["sub_activity_id"] == "A"
    assert (results[1]["body"]["code"], results[1]["body"]["field"]) == ("open_time_out_of_range", "open_time_ms")
    assert order_ids(campaign, "A") == [order_id_of(campaign, "u1")] and order_ids(campaign, "B") == []
    assert consumed(campaign, "A") == 100
