"""Reconciliation that never stalls, on DynamoDB Local: the stock checkpoint's catch-up over idle hours, a pass
resumed across tiny budgets, and old unfinished passes beside newer ones.

DynamoDB calls are counted through botocore's event hooks on every client rewardgate uses (not through the
code's own helpers). Each test runs at its own fake hour years ahead, so the partitions it reads hold only its
own data.
"""

from __future__ import annotations

import random
import types
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chalicelib import clock, dynamo
from chalicelib import settings as settings_module
from chalicelib.reconcile import hours, runner
from chalicelib.rewards import ids
from chalicelib.rewards.tables import CounterItem
from chalicelib.settings import settings
from tests.rewards_support import (
    Campaign,
    call,
    chalice_client,
    deliver_credits,
    far_hour_clock,
)

HOUR_MS = 3600 * 1000
MINUTE_MS = 60 * 1000
WEEK_HOURS = 7 * 24
READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


class CallLog:
    """Every DynamoDB call made while attached, from botocore."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, model, params, **_) -> None:
        self.calls.append((model.name, params))

    def reads(self, since: int = 0) -> int:
        return sum(1 for name, _ in self.calls[since:] if name in READS)

    def hour_index_partitions(self, since: int = 0) -> list[str]:
        """The `{hour}#{bucket}` partitions of the orders' hour index that were queried."""
        found = []
        for name, params in self.calls[since:]:
            if name == "Query" and params.get("IndexName") == "by_hour" and "ledger" in params.get("TableName", ""):
                found.append(params["ExpressionAttributeValues"][":0"]["S"])
        return found

    def by_table(self, since: int = 0) -> Counter:
        return Counter(params.get("TableName", "?").rsplit("-", 1)[-1] for name, params in self.calls[since:]
                       if name in READS)


@contextmanager
def dynamodb_calls() -> Iterator[CallLog]:
    log = CallLog()
    clients = {id(c): c for c in [m._get_connection().connection.client for m in dynamo.all_models()]
               + [dynamo.connection().client]}
    for client in clients.values():
        client.meta.events.register("before-parameter-build.dynamodb", log)
    try:
        yield log
    finally:
        for client in clients.values():
            client.meta.events.unregister("before-parameter-build.dynamodb", log)



@pytest.fixture
def fake_now(monkeypatch):
    return far_hour_clock(monkeypatch)


@pytest.fixture
def hour_buckets_256(monkeypatch):
    monkeypatch.setenv("RG_HOUR_BUCKETS", "256")
    settings_module.reset_settings()
    yield
    monkeypatch.undo()  # back to the suite's bucket count
    settings_module.reset_settings()


def open_campaign(client, opens_ms: int, total: int = 1_000_000) -> Campaign:
    """An activity whose `formal` child opened at `opens_ms` and stays open for 600 days; one cash scene with stock."""
    activity_id, scene_id = f"act{random.getrandbits(48):012x}", f"scene{random.getrandbits(48):012x}"
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}", {
        "name": "catch-up", "children": [{"sub_activity_id": "formal", "purpose": "formal",
                                          "starts_at_ms": opens_ms, "ends_at_ms": opens_ms + 600 * 24 * HOUR_MS}]})
    assert status == 200, body
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/{scene_id}",
                        {"award_type": "cash", "order_cap": 10_000, "total": total, "shard_count": 4})
    assert status == 200, body
    return Campaign(activity_id, "formal", scene_id, "cash", 10_000)


def grant(client, campaign: Campaign, users: int, rain: str) -> int:
    """`users` grants through the API, all credited; returns their sum (the independent model of the orders)."""
    amounts = [100 + 7 * i for i in range(users)]
    for i, amount in enumerate(amounts):
        status, answer = call(client, "POST", "/v1/grants", campaign.grant_body(f"u{i}", rain_id=rain, amount=amount))
        assert status == 202, answer
    deliver_credits(batch_size=10)
    return sum(amounts)


def ns_of(campaign: Campaign) -> str:
    return ids.child_ns(campaign.activity_id, campaign.sub_activity_id)


def report_for(hour: str, campaign: Campaign, pass_no: int = 1) -> dict:
    return next(r for r in runner.reports(hour) if r.get("activity_id") == campaign.activity_id
                and r["pass"] == pass_no)


def findings(report: dict) -> dict[tuple[str, str], dict]:
    return {(kind, item["id"]): item for kind, entry in report["discrepancies"].items() for item in entry["items"]}


def reconciled_by_the_schedule(idle: list[str]) -> None:
    """Idle hours as the hourly passes leave them: each closed hour's totals recorded, no scene in them."""
    for hour in idle:
        hours.record_hour(hour, {})


def test_stock_catch_up__child_opened_a_week_of_idle_hours_ago_256_buckets__reads_independent_of_the_hours(
        fake_now, hour_buckets_256):
    fake, hour_start = fake_now
    client = chalice_client()
    figures = {}
    for idle_hours in (1, WEEK_HOURS):
        # GIVEN a child that opened `idle_hours` ago, every hour since reconciled by the schedule with nothing in it
        start = hour_start + idle_hours * 10 * HOUR_MS  # each case in hours of its own
        hour = clock.hour_of(start)
        fake.ms = start + 20 * MINUTE_MS
        campaign = open_campaign(client, start - idle_hours * HOUR_MS)
        idle = [runner.next_hour(hour, -back) for back in range(idle_hours, 0, -1)]
        # (and the hour before it opened, which may hold its orders: a grant's open_time_ms may be 300 s ahead)
        reconciled_by_the_schedule([runner.next_hour(idle[0], -1)])
        if idle_hours == 1:
            fake.ms = start + 10 * MINUTE_MS  # the one idle hour reconciled by a real pass, as the schedule does
            assert runner.run(idle[0], 1, runner.Budget(None)).status == "done"
            fake.ms = start + 20 * MINUTE_MS
        else:
            reconciled_by_the_schedule(idle)
        # AND the scene's first orders (no stock checkpoint yet)
        granted = grant(client, campaign, users=5, rain=f"r{idle_hours}")

        # WHEN its hour is reconciled at h+1
        fake.ms = start + HOUR_MS + 6 * MINUTE_MS
        with dynamodb_calls() as log:
            outcome = runner.run(hour, 1, runner.Budget(None))

        # THEN the pass read only its own hour's partitions of the order index, no idle hour's
        assert outcome.status == "done"
        partitions = log.hour_index_partitions()
        assert {p.split("#", 1)[0] for p in partitions} == {hour}, f"read other hours: {len(partitions)} queries"
        assert len(partitions) == settings().hour_buckets
        # AND the stock check compared the counter with the orders and found them equal
        report = report_for(hour, campaign)
        assert report["ok"] is True and report["deferred_checks"] == [], report
        assert report["orders_amount"] == granted
        figures[idle_hours] = (log.reads(), log.by_table())
    print(f"reads of a pass at 256 buckets: 1 idle hour {figures[1][0]}, {WEEK_HOURS} idle hours "
          f"{figures[WEEK_HOURS][0]} (by table {dict(figures[WEEK_HOURS][1])})")
    # AND catching up over a week of idle hours reads no more than over one hour
    assert figures[WEEK_HOURS][0] == figures[1][0]


def test_reconcile__tiny_budget_with_unreconciled_hours_behind_a_checkpoint__resumes_step_by_step_to_the_same_report(
        fake_now):
    fake, hour_start = fake_now
    client = chalice_client()
    # GIVEN a scene with orders in three hours: T (reconciled), T+2 (never reconciled: the schedule was down)
    # and H = T+6; the hours between hold nothing and were never reconciled either
    first = clock.hour_of(hour_start)
    campaign = open_campaign(client, hour_start - 2 * HOUR_MS)
    amounts = grant(client, campaign, users=3, rain="r1")
    fake.ms = hour_start + HOUR_MS + 6 * MINUTE_MS
    assert runner.run(first, 1, runner.Budget(None)).status == "done"
    fake.ms = hour_start + 2 * HOUR_MS + 20 * MINUTE_MS
    amounts += grant(client, campaign, users=4, rain="r2")
    fake.ms = hour_start + 6 * HOUR_MS + 20 * MINUTE_MS
    hour = clock.hour_of(fake.ms)
    amounts += grant(client, campaign, users=2, rain="r3")
    # AND 7 units of stock consumed without an order (a drift the pass must report with exactly that delta)
    counter_id = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    CounterItem(*ids.shard_key(counter_id, 0)).update(actions=[CounterItem.consumed.add(7)])
    fake.ms = hour_start + 7 * HOUR_MS + 6 * MINUTE_MS

    # WHEN every invocation may only start one step
    invocations = []
    with dynamodb_calls() as log:
        while not invocations or invocations[-1][0].status != "done":
            since = len(log.calls)
            outcome = runner.run(hour, 1, runner.Budget(0))
            invocations.append((outcome, log.hour_index_partitions(since)))
            assert len(invocations) <= 20 * settings().hour_buckets, "the pass does not progress"

    # THEN each invocation did one step, reading at most one partition of the order index
    assert all(o.invocation_steps == 1 for o, _ in invocations)
    widest = max(len(parts) for _, parts in invocations)
    print(f"invocations {len(invocations)}, most order-index partitions read by one invocation {widest}")
    assert widest <= 1
    # AND the stock check counted every order, those of the never-reconciled hour included: only the seeded 7 differ
    resumed = report_for(hour, campaign)
    drift = findings(resumed)[("stock_drift", f"{ns_of(campaign)}|{campaign.scene_id}")]
    assert (drift["orders"], drift["consumed"], drift["delta"]) == (amounts, amounts + 7, 7)
    # AND the report equals the one a single unconstrained run produces
    assert runner.run(hour, 1, runner.Budget(None), restart=True).status == "done"
    assert report_for(hour, campaign) == resumed


def test_reconcile_schedule__old_pass_with_a_long_catch_up__newer_passes_still_complete_in_the_same_invocation(
        fake_now):
    fake, hour_start = fake_now
    client = chalice_client()
    # GIVEN the oldest pass the schedule still owes (h+2 of an hour 7 hours back) has a long catch-up ahead:
    # its scene's child opened 10 000 hours (over a year) before, none of those hours was ever reconciled, and its
    # counter was consumed before shards kept their first consumption (`first_at_ms`), so its history is unknown
    old = clock.hour_of(hour_start)
    campaign = open_campaign(client, hour_start - 10_000 * HOUR_MS)
    grant(client, campaign, users=2, rain="r1")
    counter_id = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    for shard in range(4):
        CounterItem(*ids.shard_key(counter_id, shard)).update(actions=[CounterItem.first_at_ms.remove()])
    fake.ms = hour_start + 8 * HOUR_MS + 10 * MINUTE_MS
    due = runner.due_runs(fake.ms)
    assert due[-1] == (old, 2)
    # AND what a pass over an empty hour costs, in DynamoDB calls
    with dynamodb_calls() as log:
        assert runner.run(runner.next_hour(old, 40), 1, runner.Budget(None)).status == "done"
    empty_pass = len(log.calls)

    # WHEN one scheduled invocation runs with time for twice every owed pass's empty cost (each call a "second")
    with dynamodb_calls() as log, pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "time", types.SimpleNamespace(monotonic=lambda: float(len(log.calls))))
        ran = runner.scheduled(runner.Budget(2 * len(due) * empty_pass))

    # THEN every newer pass completed in that invocation
    outcome = {(r.hour, r.pass_no): r for r in ran}
    print(f"budget {2 * len(due) * empty_pass} calls, used {len(log.calls)}; "
          + ", ".join(f"{h}p{p}:{outcome[(h, p)].status if (h, p) in outcome else 'not run'}" for h, p in due))
    assert all((h, p) in outcome and outcome[(h, p)].status == "done" for h, p in due[:-1])
    # AND the old pass made progress too, and is left to continue
    head = runner.status(old, 2)
    assert head is not None and head["step"] > 0
    assert head["status"] == "running"
