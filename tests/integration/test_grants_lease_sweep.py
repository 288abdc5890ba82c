"""The dead-lease sweep after a reconciler outage of many hours (issue 18, item 10), on DynamoDB Local with a fake
clock: a lease left by a dead grant batch is returned however long the outage lasted, the sweep's work is the
counters reserved from since their last clean sweep (never the outage's length), and a lease it cannot account
for (its journal gone) is kept, never handed back blind.
"""

from __future__ import annotations

import json

import pytest

from chalicelib import clock, faults
from chalicelib.faults import InjectedCrash
from chalicelib.rewards import grants, ids, reservations
from chalicelib.rewards.orders import parse_grant
from chalicelib.rewards.tables import CounterItem
from tests.integration.test_rewards_reservations import consumed, leases, raw_shards
from tests.rewards_support import HOUR_MS, Campaign, dies_after_reserving, make_campaign, ns_of, purge_credits


def dead_batch(campaign: Campaign, monkeypatch, amounts: list[int]) -> None:
    """A grant batch whose process dies right after reserving its units (nothing written, nothing settled)."""
    dies_after_reserving(monkeypatch)
    requests = [parse_grant(campaign.grant_body("u1", rain_id=f"r{i}", amount=a)) for i, a in enumerate(amounts)]
    with faults.armed("grant.after_reservation"), pytest.raises(InjectedCrash):
        grants.grant_many(requests)
    monkeypatch.undo()


def visited(monkeypatch) -> list[str]:
    """The counters the sweep examines (a spy on return_dead, which still runs)."""
    seen: list[str] = []
    real = reservations.return_dead

    def spy(counter_id, shard_count, now_ms):
        seen.append(counter_id)
        return real(counter_id, shard_count, now_ms)

    monkeypatch.setattr(reservations, "return_dead", spy)
    return seen


@pytest.mark.parametrize("outage_hours", [4, 30, 24 * 6])
def test_lease_sweep__reconciler_down_for_hours__dead_lease_returned_once_then_counter_not_revisited(
        client, monkeypatch, outage_hours):
    # GIVEN a process that died holding 3 x 9 fen of a scene's budget
    campaign = make_campaign(client, total=500, shard_count=2, order_cap=10)
    purge_credits()
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    start = clock.now_ms()
    dead_batch(campaign, monkeypatch, [9, 9, 9])
    assert consumed(raw_shards(campaign, 2)) == 27

    # WHEN the sweep first runs after an outage of `outage_hours` hours
    later = start + outage_hours * HOUR_MS
    seen = visited(monkeypatch)
    returned = [r for r in reservations.return_expired(later) if r.counter_id == counter]
    # THEN the 27 fen are back on the shards, once
    assert [(r.reserved, r.used, r.returned) for r in returned] == [(27, 0, 27)]
    assert consumed(raw_shards(campaign, 2)) == 0 and leases(raw_shards(campaign, 2)) == 0
    assert seen.count(counter) == 1
    # AND the next sweep, an hour later, has nothing new from this counter: it does not examine it again
    seen.clear()
    assert [r for r in reservations.return_expired(later + HOUR_MS) if r.counter_id == counter] == []
    print(f"outage {outage_hours} h: counters examined by the next sweep: {len(seen)}, this one among them: "
          f"{counter in seen}")
    assert counter not in seen


def test_lease_sweep__lease_still_live_at_a_sweep__examined_again_until_returned(client, monkeypatch):
    # GIVEN a dead process's lease, and a sweep that runs before the lease is past its expiry and grace
    campaign = make_campaign(client, total=500, shard_count=1, order_cap=10)
    purge_credits()
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    start = clock.now_ms()
    dead_batch(campaign, monkeypatch, [5, 5])
    assert [r for r in reservations.return_expired(start + 60_000) if r.counter_id == counter] == []
    # WHEN the sweep runs again 10 hours later
    returned = [r for r in reservations.return_expired(start + 10 * HOUR_MS) if r.counter_id == counter]
    # THEN the lease the first sweep had to leave is returned
    assert [(r.reserved, r.returned) for r in returned] == [(10, 10)]
    assert consumed(raw_shards(campaign, 1)) == 0


def test_lease_sweep__journal_expired_before_the_sweep__lease_kept_and_reported_never_returned_blind(
        client, monkeypatch, capsys):
    # GIVEN a dead process's lease of 2 x 7 fen whose journal (the list of its orders) is gone (TTL after an
    # outage longer than the journal's 7 days)
    campaign = make_campaign(client, total=500, shard_count=1, order_cap=10)
    purge_credits()
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    start = clock.now_ms()
    dead_batch(campaign, monkeypatch, [7, 7])
    (rid,) = [name.removeprefix("lease_") for name in raw_shards(campaign, 1)[0] if name.startswith("lease_")]
    CounterItem(f"resv#{rid}", reservations.JOURNAL_SK).delete()
    capsys.readouterr()
    # WHEN the sweep runs 8 days later
    returned = [r for r in reservations.return_expired(start + 8 * 24 * HOUR_MS) if r.counter_id == counter]
    # THEN nothing is handed back (its orders cannot be counted: returning would risk selling them twice)
    assert returned == [] and consumed(raw_shards(campaign, 1)) == 14 and leases(raw_shards(campaign, 1)) == 1
    # AND it is reported for an operator, with its figures
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "reservation_unaccountable" in line]
    assert [(e["counter_id"], e["reservation"], e["reserved"]) for e in logged] == [(counter, rid, 14)]


def test_lease_sweep__counter_registered_again_while_the_sweep_runs__entry_kept_and_next_lease_returned(
        client, monkeypatch):
    # GIVEN a counter whose dead lease the sweep returns, long after it was taken
    campaign = make_campaign(client, total=500, shard_count=1, order_cap=10)
    purge_credits()
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    start = clock.now_ms()
    dead_batch(campaign, monkeypatch, [3])
    later = start + 5 * HOUR_MS
    # AND a grant process that registers the counter for a later hour right after the sweep read the registry
    real_read = reservations._registered_counters

    def read_then_register():
        entries = real_read()
        reservations._registered.clear()
        reservations.register(counter, 1, later)
        return entries

    monkeypatch.setattr(reservations, "_registered_counters", read_then_register)
    assert [(r.returned) for r in reservations.return_expired(later) if r.counter_id == counter] == [3]
    monkeypatch.undo()
    # WHEN that process then dies holding a lease of its own hour, and the sweep runs hours later
    monkeypatch.setattr(clock, "now_ms", lambda: later)
    dead_batch(campaign, monkeypatch, [4])
    returned = [r for r in reservations.return_expired(later + 3 * HOUR_MS) if r.counter_id == counter]
    # THEN the entry had survived the first sweep's clean-up, and the second lease is returned too
    assert [(r.reserved, r.returned) for r in returned] == [(4, 4)]
    assert consumed(raw_shards(campaign, 1)) == 0
