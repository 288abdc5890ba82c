"""A grant's `open_time_ms` may be up to 300 s ahead of the server's clock, so an order of a child activity can be
written in the hour before that child opens. The stock checkpoint of the child must count it, whichever order
the hours are reconciled in (the schedule catches up newest first; an operator may run any hour)."""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.reconcile import runner
from tests.rewards_support import call, chalice_client, deliver_credits, far_hour_clock, purge_credits, uid

HOUR_MS = 3600 * 1000
MINUTE_MS = 60 * 1000


@pytest.fixture
def boundary(monkeypatch):
    # An hour no other test uses (its index partitions hold only this test's orders): child "day2" opens at its start.
    fake, opens_ms = far_hour_clock(monkeypatch)
    fake.ms = opens_ms - 2 * MINUTE_MS
    return fake, opens_ms


def stock_findings(reports: list[dict], activity_id: str) -> list[tuple[str, dict]]:
    return [(kind, item) for r in reports if r.get("activity_id") == activity_id
            for kind, entry in r["discrepancies"].items() if kind in ("stock_drift", "over_budget", "shard_over_cap")
            for item in entry["items"]]


def test_reconcile__order_written_before_its_child_opens__stock_checkpoint_counts_it_in_any_hour_order(boundary):
    fake, opens_ms = boundary
    client = chalice_client()
    purge_credits()
    # GIVEN an activity whose child "day2" opens at an hour boundary, and a stock-controlled scene
    activity_id, scene_id = uid("act"), uid("scene")
    children = [
        {"sub_activity_id": "day1", "purpose": "formal", "starts_at_ms": opens_ms - 2 * HOUR_MS,
         "ends_at_ms": opens_ms},
        {"sub_activity_id": "day2", "purpose": "formal", "starts_at_ms": opens_ms,
         "ends_at_ms": opens_ms + 24 * HOUR_MS},
    ]
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}", {"name": "boundary",
                                                                                "children": children})
    assert status == 200, body
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/{scene_id}", {
        "award_type": "cash", "order_cap": 1_000, "total": 100_000, "shard_count": 2, "stock_control": True})
    assert status == 200, body

    def grant(act_id: str, amount: int, open_time_ms: int) -> dict:
        status, answer = call(client, "POST", "/v1/grants", {
            "activity_id": activity_id, "scene_id": scene_id, "act_id": act_id, "rain_id": "r1",
            "award_type": "cash", "stage": "1", "amount": amount, "open_time_ms": open_time_ms})
        assert status == 202, answer
        return answer

    # AND a reward won 100 s after day2 opens, granted 60 s before it by a caller whose clock runs fast (hour h-1)
    fake.ms = opens_ms - MINUTE_MS
    early = grant("u-early", 300, opens_ms + 100_000)
    assert early["sub_activity_id"] == "day2"
    # AND one granted in day2's own first hour (hour h)
    fake.ms = opens_ms + 10 * MINUTE_MS
    assert grant("u-later", 500, fake.ms)["sub_activity_id"] == "day2"
    deliver_credits()
    # WHEN hour h is reconciled before hour h-1 (a catch-up runs newest first), then h-1
    fake.ms = opens_ms + 2 * HOUR_MS + 10 * MINUTE_MS
    first, before = clock.hour_of(opens_ms), clock.hour_of(opens_ms - HOUR_MS)
    for hour in (first, before):
        assert runner.run(hour, runner.pass_for(hour, fake.ms), runner.Budget(None)).status == "done"
    # THEN no stock finding: day2's counter consumed 800 and its orders through h sum to 800
    reports = runner.reports(first) + runner.reports(before)
    assert [r["pass"] for r in reports if r.get("activity_id") == activity_id]
    assert stock_findings(reports, activity_id) == []
