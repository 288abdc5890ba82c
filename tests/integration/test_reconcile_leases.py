"""A grant batch reserves stock before it writes its orders, so reserved units count as consumed before their
orders exist. A process that dies holding a reservation leaves units that reconciliation's sweep returns only
after the lease and its grace; a pass that compares the counter with the orders before then must not call the
reserved units drift (a false alarm on a money report), and must still report a drift the lease cannot explain."""

from __future__ import annotations

import pytest

from chalicelib import clock, faults
from chalicelib.faults import InjectedCrash
from chalicelib.reconcile import runner
from chalicelib.rewards import grants, reservations
from chalicelib.rewards.orders import parse_grant
from tests.rewards_support import (
    chalice_client,
    deliver_credits,
    dies_after_reserving,
    far_hour_clock,
    make_campaign,
    ns_of,
)

HOUR_MS = 3600 * 1000
MINUTE_MS = 60 * 1000


@pytest.fixture
def hour_clock(monkeypatch):
    return far_hour_clock(monkeypatch)


def stock_report(hour: str, campaign, pass_no: int = 1) -> dict:
    report = next(r for r in runner.reports(hour) if r.get("activity_id") == campaign.activity_id
                  and r["pass"] == pass_no)
    return {"drift": report["discrepancies"].get("stock_drift"),
            "deferred": [d for d in report["deferred_checks"] if d.startswith("stock:")]}


def hour_with_a_dead_reservation_at_its_end(client, fake, hour_start: int, monkeypatch):
    """A scene with a budget over 2 shards; 5 rewards of 7 fen granted and credited in the hour; then, 10 seconds
    before the hour ends, a batch of 10 x 7 fen whose process dies right after reserving. Returns the campaign."""
    campaign = make_campaign(client, now_ms=fake.ms, total=10_000, shard_count=2, order_cap=100)
    granted = grants.grant_many([parse_grant(campaign.grant_body(f"u{i}", amount=7)) for i in range(5)])
    assert all(isinstance(g, grants.Granted) for g in granted)
    deliver_credits()
    fake.ms = hour_start + HOUR_MS - 10_000
    with monkeypatch.context() as patch:
        dies_after_reserving(patch)
        with faults.armed("grant.after_reservation"), pytest.raises(InjectedCrash):
            grants.grant_many([parse_grant(campaign.grant_body(f"late{i}", amount=7)) for i in range(10)])
    return campaign


def test_reconcile__batch_died_holding_a_reservation_before_the_hour_closed__deferred_not_drift(
        hour_clock, monkeypatch):
    fake, hour_start = hour_clock
    hour = clock.hour_of(hour_start)
    client = chalice_client()
    # GIVEN a scene with a budget over 2 shards, 5 rewards of 7 fen granted and credited in the hour
    # AND, 10 seconds before the hour ends, a batch of 10 x 7 fen whose process dies right after reserving
    campaign = hour_with_a_dead_reservation_at_its_end(client, fake, hour_start, monkeypatch)

    # WHEN the hour's first pass runs as soon as it is due, before the dead lease may be returned
    fake.ms = hour_start + HOUR_MS + runner.grace_ms() + 10_000
    assert fake.ms < hour_start + HOUR_MS - 10_000 + reservations.LEASE_MS + reservations.RETURN_GRACE_MS
    assert runner.run(hour, 1, runner.Budget(None)).status == "done"

    # THEN the 70 reserved fen are not reported as drift: the comparison is deferred, and says so
    scene_key = f"{ns_of(campaign)}|{campaign.scene_id}"
    assert stock_report(hour, campaign) == {"drift": None, "deferred": [f"stock:{scene_key}"]}


def test_reconcile__drift_beyond_what_leases_hold__still_reported(hour_clock, monkeypatch):
    fake, hour_start = hour_clock
    hour = clock.hour_of(hour_start)
    client = chalice_client()
    # GIVEN 5 rewards of 7 fen granted in the hour, and a dead reservation of 10 x 7 fen at its end
    campaign = hour_with_a_dead_reservation_at_its_end(client, fake, hour_start, monkeypatch)
    # AND an order deleted from the table (35 - 7 = 28 fen of orders left against 105 consumed: 77 > 70 leased)
    from chalicelib.rewards.tables import LedgerEntry

    victim = next(iter(LedgerEntry.query(granted_wallet(campaign, "u0"))))
    victim.delete()

    # WHEN the schedule's passes run, the lease not returned meanwhile: the hour's first pass (its shards were
    # stamped 10 s before the hour ended, so they may count orders of the next hour: the comparison waits), the next
    # hour's first pass, then the hour's second pass
    for at_ms, run_hour, pass_no in ((hour_start + HOUR_MS + runner.grace_ms() + 10_000, hour, 1),
                                     (hour_start + 2 * HOUR_MS + runner.grace_ms() + 10_000, runner.next_hour(hour), 1),
                                     (hour_start + 2 * HOUR_MS + runner.grace_ms() + 20_000, hour, 2)):
        fake.ms = at_ms
        assert runner.run(run_hour, pass_no, runner.Budget(None)).status == "done"

    # THEN the drift is reported: the lease explains 70 fen of it, not 77
    drift = stock_report(hour, campaign, pass_no=2)["drift"]
    assert drift is not None and [(i["consumed"], i["orders"], i["delta"]) for i in drift["items"]] == [(105, 28, 77)]


def granted_wallet(campaign, act_id: str) -> str:
    from chalicelib.rewards import ids

    return ids.wallet_id(ns_of(campaign), act_id, ids.CASH_ASSET)
