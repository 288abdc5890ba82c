"""Reconciliation, round two (issue 18, items 4-7), on DynamoDB Local with fake clocks: stuck orders of a scene
that is not reconciled are still re-driven; a shard's stamp moved back by a late commit is no false stock drift;
a late credit whose batch died before its tally brings its hour back; a child opened long ago is checked without
a catch-up over its whole age, and a pass's findings are readable while it runs.

Each test runs at its own fake hour years ahead (`far_hour_clock`), so the partitions it reads hold only its own
data. Expected figures come from the test's own arithmetic (the amounts it granted), never from the code's helpers.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import clock
from chalicelib.reconcile import runner
from chalicelib.rewards import crediting, ids
from chalicelib.settings import settings
from tests.rewards_support import (
    Campaign,
    call,
    chalice_client,
    deliver_credits,
    distributed,
    far_hour_clock,
    order_id_of,
    order_item,
    purge_credits,
    uid,
    wallet_id_of,
    wallet_item,
)

HOUR_MS = 3600 * 1000
MINUTE_MS = 60 * 1000


@pytest.fixture
def fake_now(monkeypatch):
    return far_hour_clock(monkeypatch)


def open_campaign(client: Any, opens_ms: int, *, reconcile: bool = True, shard_count: int = 2,
                  total: int = 1_000_000) -> Campaign:
    """An activity whose `formal` child opened at `opens_ms` (open 800 days) and one stock-controlled cash scene."""
    activity_id, scene_id = uid("act"), uid("scene")
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}", {
        "name": "round two", "children": [{"sub_activity_id": "formal", "purpose": "formal",
                                           "starts_at_ms": opens_ms, "ends_at_ms": opens_ms + 800 * 24 * HOUR_MS}]})
    assert status == 200, body
    put_scene(client, activity_id, scene_id, reconcile=reconcile, shard_count=shard_count, total=total)
    return Campaign(activity_id, "formal", scene_id, "cash", 10_000)


def put_scene(client: Any, activity_id: str, scene_id: str, *, reconcile: bool, shard_count: int = 2,
              total: int = 1_000_000) -> None:
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/{scene_id}", {
        "award_type": "cash", "order_cap": 10_000, "total": total, "shard_count": shard_count,
        "reconcile": reconcile})
    assert status == 200, body


def grant(client: Any, campaign: Campaign, act_id: str, amount: int, rain_id: str = "r1") -> dict:
    body = {**campaign.grant_body(act_id, rain_id=rain_id, amount=amount), "open_time_ms": clock.now_ms()}
    status, answer = call(client, "POST", "/v1/grants", body)
    assert status == 202, answer
    return answer


def report_of(hour: str, campaign: Campaign, pass_no: int) -> dict:
    return next(r for r in runner.reports(hour) if r.get("activity_id") == campaign.activity_id
                and r["pass"] == pass_no)


def kinds_of(report: dict) -> dict[str, list[str]]:
    return {kind: [item["id"] for item in entry["items"]] for kind, entry in report["discrepancies"].items()}


# --- item 4: a scene with reconcile off still has its stuck orders re-driven --------------------------------


def test_redrive__scene_not_reconciled_order_lost_before_its_enqueue__order_credited(fake_now):
    fake, hour_start = fake_now
    client = chalice_client()
    # GIVEN a scene with `reconcile: false`, and an order whose credit message was lost (the process died
    # between the grant transaction and the enqueue)
    campaign = open_campaign(client, hour_start - HOUR_MS, reconcile=False)
    hour = clock.hour_of(fake.ms)
    grant(client, campaign, "u1", 700)
    purge_credits()

    # WHEN the hour's first pass runs past the SLA with the credit queue empty, then the credit worker runs
    fake.ms = hour_start + HOUR_MS + 10 * MINUTE_MS
    assert runner.run(hour, 1, runner.Budget(None)).status == "done"
    deliver_credits()

    # THEN the order is credited and the wallet holds its 700
    assert order_item(campaign, order_id_of(campaign, "u1")).status == 8
    assert int(wallet_item(wallet_id_of(campaign, "u1")).balance) == 700


def test_report__reconcile_switched_off_after_the_grant__order_still_reported_by_its_pinned_flag(fake_now):
    fake, hour_start = fake_now
    client = chalice_client()
    # GIVEN an order granted while its scene was reconciled, its credit message lost
    campaign = open_campaign(client, hour_start - HOUR_MS, reconcile=True)
    hour = clock.hour_of(fake.ms)
    grant(client, campaign, "u1", 900)
    purge_credits()
    # AND an operator then switches the scene's reconciliation off
    put_scene(client, campaign.activity_id, campaign.scene_id, reconcile=False)

    # WHEN the hour's second pass runs (the order still stuck: its re-driven message is lost too)
    fake.ms = hour_start + 2 * HOUR_MS + 10 * MINUTE_MS
    assert runner.run(hour, 2, runner.Budget(None)).status == "done"
    purge_credits()

    # THEN the report counts the order and lists it as missing its credit (the flag pinned on the order decides)
    report = report_of(hour, campaign, 2)
    assert (report["orders"], report["orders_amount"]) == (1, 900)
    order_key = f"{ids.child_ns(campaign.activity_id, 'formal')}#{order_id_of(campaign, 'u1')}"
    assert kinds_of(report) == {"missing_credit": [order_key]}


# --- item 5: a shard's stamp moved back into the earlier hour by a late commit -------------------------------


def stock_kinds(report: dict) -> dict[str, list[dict]]:
    return {kind: entry["items"] for kind, entry in report["discrepancies"].items()
            if kind in ("stock_drift", "over_budget", "shard_over_cap")}


def reordered_across_the_hour(client: Any, fake: Any, hour_start: int, shard_count: int = 1) -> tuple[Campaign, str]:
    """A grant that read its clock at hh:59:59.9 commits after one of the next hour (read at hh+1:00:00.1): the
    shard's stamp ends in the earlier hour though it counts both. Returns the campaign and the earlier hour."""
    campaign = open_campaign(client, hour_start - HOUR_MS, shard_count=shard_count)
    boundary = hour_start + HOUR_MS
    fake.ms = boundary + 100
    grant(client, campaign, "u-next-hour", 500)
    fake.ms = boundary - 100
    grant(client, campaign, "u-hh59", 300)
    deliver_credits()
    return campaign, clock.hour_of(boundary - 100)


def test_stock_check__grant_of_hh59_commits_after_one_of_the_next_hour_scene_idle__no_stock_drift(fake_now):
    fake, hour_start = fake_now
    client = chalice_client()
    # GIVEN the two grants reordered across the hour boundary on a one-shard scene, and nothing after them
    campaign, hour = reordered_across_the_hour(client, fake, hour_start)

    # WHEN the earlier hour's first pass runs (the scene idle since)
    fake.ms = clock.hour_start_ms(hour) + HOUR_MS + 6 * MINUTE_MS
    assert runner.run(hour, 1, runner.Budget(None)).status == "done"

    # THEN it reports no stock drift (the counter's 800 holds an order of the next hour, not a drift)
    report = report_of(hour, campaign, 1)
    assert report["orders_amount"] == 300
    assert stock_kinds(report) == {}, report


def test_stock_check__reordered_grants_and_a_real_drift_scene_idle__second_pass_reports_exactly_the_drift(fake_now):
    fake, hour_start = fake_now
    client = chalice_client()
    # GIVEN the two grants reordered across the hour boundary, and 7 units consumed without an order (a real drift)
    campaign, hour = reordered_across_the_hour(client, fake, hour_start)
    counter_id = ids.stock_counter_id(ids.child_ns(campaign.activity_id, "formal"), campaign.scene_id)
    from chalicelib.rewards.tables import CounterItem

    CounterItem(*ids.shard_key(counter_id, 0)).update(actions=[CounterItem.consumed.add(7)])

    # WHEN the schedule runs as it does: the earlier hour's pass 1, the next hour's pass 1, the earlier hour's pass 2
    start = clock.hour_start_ms(hour)
    for at_ms, run_hour, pass_no in ((start + HOUR_MS + 6 * MINUTE_MS, hour, 1),
                                     (start + 2 * HOUR_MS + 6 * MINUTE_MS, runner.next_hour(hour), 1),
                                     (start + 2 * HOUR_MS + 7 * MINUTE_MS, hour, 2)):
        fake.ms = at_ms
        assert runner.run(run_hour, pass_no, runner.Budget(None)).status == "done"

    # THEN the last pass compares the counter (807) with every order it can hold (300 + 500): a drift of exactly 7
    drift = stock_kinds(report_of(hour, campaign, 2))
    assert [(d["consumed"], d["orders"], d["delta"]) for d in drift.get("stock_drift", [])] == [(807, 800, 7)], drift


# --- item 6: a late credit whose batch dies before its tally brings its hour back ---------------------------


def test_schedule__late_credit_after_the_last_pass_batch_died_before_its_tally__hour_rechecked_and_tallied(
        fake_now, monkeypatch):
    fake, hour_start = fake_now
    client = chalice_client()
    # GIVEN an order whose credit message was lost
    campaign = open_campaign(client, hour_start - HOUR_MS)
    hour = clock.hour_of(fake.ms)
    grant(client, campaign, "u1", 640)
    purge_credits()
    # AND the hour's last pass re-drove it and reported it missing its credit
    fake.ms = hour_start + 2 * HOUR_MS + 10 * MINUTE_MS
    assert runner.run(hour, 2, runner.Budget(None)).status == "done"
    assert "missing_credit" in kinds_of(report_of(hour, campaign, 2))
    # AND the credit landed after that pass, by a batch whose process died before its tally
    fake.ms = hour_start + 2 * HOUR_MS + 20 * MINUTE_MS
    with monkeypatch.context() as dead:
        dead.setattr(crediting, "tally", lambda *_args, **_kwargs: None)
        assert deliver_credits().succeeded == 1
    assert int(wallet_item(wallet_id_of(campaign, "u1")).balance) == 640
    assert distributed(campaign) == (0, 0)

    # WHEN the schedule runs on, once that batch's Lambda is surely gone
    fake.ms = hour_start + 2 * HOUR_MS + 40 * MINUTE_MS
    runner.scheduled(runner.Budget(None))

    # THEN the hour was looked at again: its report no longer lists the credited order, the batch's tally was
    # completed, and the distributed total counts the 640
    report = report_of(hour, campaign, 2)
    assert kinds_of(report) == {}, report
    assert report["tallies_completed"] == 1 and report["credited_amount"] == 640
    assert distributed(campaign) == (640, 1)


# --- item 7: catch-up bounded by the counter's own history; findings readable while a pass runs ------------

TWO_YEARS_HOURS = 2 * 365 * 24


def test_stock_catch_up__child_opened_two_years_ago_never_reconciled__pass_plans_a_bounded_catch_up(fake_now):
    fake, hour_start = fake_now
    client = chalice_client()
    buckets = settings().hour_buckets
    # GIVEN a child opened two years ago, none of whose hours was ever reconciled, and a scene granted only now
    campaign = open_campaign(client, hour_start - TWO_YEARS_HOURS * HOUR_MS)
    hour = clock.hour_of(fake.ms)
    granted = [grant(client, campaign, f"u{i}", 100 + i)["amount"] for i in range(3)]
    deliver_credits()

    # WHEN the hour's first pass has run its bucket steps and its planning step
    fake.ms = hour_start + HOUR_MS + 6 * MINUTE_MS
    while (runner.status(hour, 1) or {"step": 0})["step"] <= buckets:
        runner.run(hour, 1, runner.Budget(0))

    # THEN the pass plans at most two hours of catch-up (the hours its counter may hold orders in), not two years
    head = runner.status(hour, 1)
    print(f"steps planned for a child open {TWO_YEARS_HOURS} hours: {head['steps']}")
    assert head["steps"] <= buckets + 1 + 2 * buckets + 1 + 1, head
    # AND, run to its end, it compares the counter with every order: no finding, nothing deferred
    assert runner.run(hour, 1, runner.Budget(None)).status == "done"
    report = report_of(hour, campaign, 1)
    assert report["orders_amount"] == sum(granted)
    assert (report["ok"], report["deferred_checks"]) == (True, []), report


def test_reports__pass_half_done__partial_report_with_the_findings_so_far(fake_now):
    fake, hour_start = fake_now
    client = chalice_client()
    buckets = settings().hour_buckets
    # GIVEN an order whose credit message was lost
    campaign = open_campaign(client, hour_start - HOUR_MS)
    hour = clock.hour_of(fake.ms)
    grant(client, campaign, "u1", 450)
    purge_credits()

    # WHEN the hour's last pass has run only its bucket steps (one step per invocation)
    fake.ms = hour_start + 2 * HOUR_MS + 10 * MINUTE_MS
    for _ in range(buckets):
        assert runner.run(hour, 2, runner.Budget(0)).status == "running"
    purge_credits()

    # THEN the hour's reports already show the pass's findings so far, marked partial with its progress
    report = report_of(hour, campaign, 2)
    order_key = f"{ids.child_ns(campaign.activity_id, 'formal')}#{order_id_of(campaign, 'u1')}"
    assert report["partial"] is True and report["progress"]["step"] == buckets, report
    assert kinds_of(report) == {"missing_credit": [order_key]}
    assert (report["orders"], report["orders_amount"]) == (1, 450)
