"""`open_time_ms` is required on every public grant (issue 18, item 12): without it the server's time at each
attempt would choose the child, and a retry across a child boundary would issue a second reward.

On DynamoDB Local and moto SQS through the Chalice test client.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import clock
from tests.problems import problem
from tests.rewards_support import Campaign, call, make_campaign, orders_of, stock_shards

MISSING = problem("invalid_field", "open_time_ms: is required", field="open_time_ms")


@pytest.fixture
def campaign(client) -> Campaign:
    return make_campaign(client, total=10_000, shard_count=4, order_cap=500)


def without_open_time(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "open_time_ms"}


def consumed(campaign: Campaign) -> int:
    return sum(int(s.consumed) for s in stock_shards(campaign))


def test_grant__open_time_ms_missing__400_invalid_field_naming_it_nothing_written(client, campaign):
    # WHEN a grant arrives without open_time_ms
    status, answer = call(client, "POST", "/v1/grants", without_open_time(campaign.grant_body("u1")))
    # THEN 400 invalid_field naming open_time_ms, and no order, no stock consumed
    assert (status, answer) == (400, MISSING)
    assert orders_of(campaign) == [] and consumed(campaign) == 0


def test_grant_batch__one_item_without_open_time_ms__that_item_400_the_other_granted(client, campaign):
    # WHEN a batch holds a grant with open_time_ms and one without
    items = [{**campaign.grant_body("u1", amount=30), "open_time_ms": clock.now_ms()},
             without_open_time(campaign.grant_body("u2", amount=40))]
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": items})
    # THEN the batch answers 200 with the second item refused in the per-item shape, and only the first written
    assert status == 200
    results = answer["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 202), (1, 400)]
    assert results[1]["body"] == MISSING
    assert [o.act_id for o in orders_of(campaign)] == ["u1"] and consumed(campaign) == 30
