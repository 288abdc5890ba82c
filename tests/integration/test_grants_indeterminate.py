"""A batch grant whose order put has an indeterminate outcome (the answer is lost: timeout, throttling,
deadline), on DynamoDB Local: its block's reservation is never given back on the process's own knowledge,
only by the dead-lease sweep that counts the orders that landed. Never an oversell.

The independent model: the budget, and the sum of the order items actually stored (a scan), never the
reservation code's own counts.
"""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.deadline import DeadlineExceeded
from chalicelib.errors import SoldOut, StorageUnavailable
from chalicelib.rewards import grants, ids, reservations
from chalicelib.rewards.orders import parse_grant
from chalicelib.rewards.tables import LedgerEntry
from tests.integration.test_rewards_reservations import consumed, leases, raw_shards
from tests.rewards_support import Campaign, make_campaign, ns_of, orders_of, purge_credits


def indeterminate_first_put(monkeypatch, error: type[StorageUnavailable], lands: bool) -> list[str]:
    """The first order put of the test answers `error` (its answer is lost); it lands only if `lands`."""
    real_save = LedgerEntry.save
    hit: list[str] = []

    def save(self, *args, **kwargs):
        if not hit:
            hit.append(self.entry_key)
            if lands:
                real_save(self, *args, **kwargs)
            raise error("the database did not answer in time")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(LedgerEntry, "save", save)
    return hit


def grant_bodies(campaign: Campaign, amounts: list[int]) -> list:
    return [parse_grant(campaign.grant_body("u1", rain_id=f"r{i}", amount=a)) for i, a in enumerate(amounts)]


def stored_total(campaign: Campaign) -> int:
    return sum(int(o.amount) for o in orders_of(campaign))


@pytest.mark.parametrize("error", [StorageUnavailable, DeadlineExceeded])
@pytest.mark.parametrize("lands", [True, False], ids=["write_lands", "write_lost"])
def test_grant_batch__indeterminate_put_then_successful_put_in_same_block__never_oversold(
        client, monkeypatch, error, lands):
    # GIVEN a budget of 30 on one shard, and a batch of orders of 10 + 20 + 10 (40: one block of 30, the last
    # order left to the single path), whose first put's answer is lost
    campaign = make_campaign(client, total=30, shard_count=1, order_cap=100)
    purge_credits()
    hit = indeterminate_first_put(monkeypatch, error, lands)

    # WHEN the batch is placed
    results = grants.grant_many(grant_bodies(campaign, [10, 20, 10]))
    monkeypatch.undo()

    # THEN the first order answers storage_unavailable (retryable), the second is created and the third,
    # with the first's units still reserved, is sold out
    assert hit and isinstance(results[0], StorageUnavailable)
    assert isinstance(results[1], grants.Granted) and results[1].created
    assert isinstance(results[2], SoldOut)
    # AND what is stored never exceeds the budget: 30 if the first put landed, 20 if not
    print(f"stored {stored_total(campaign)} of a budget of 30 (first put landed: {lands})")
    assert stored_total(campaign) == (30 if lands else 20)
    # AND the block's reservation is still held (consumed 30, one lease): only the sweep may return it
    assert consumed(raw_shards(campaign, 1)) == 30 and leases(raw_shards(campaign, 1)) == 1

    # WHEN the dead-lease sweep runs after the lease's expiry and grace
    after = clock.now_ms() + reservations.LEASE_MS + reservations.RETURN_GRACE_MS + 1000
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    returned = reservations.return_dead(counter, 1, after)
    # THEN it counts what landed and returns the rest: consumed equals the stored orders exactly
    assert [(r.reserved, r.used, r.returned) for r in returned] == [(30, 30 if lands else 20, 0 if lands else 10)]
    assert consumed(raw_shards(campaign, 1)) == stored_total(campaign) and leases(raw_shards(campaign, 1)) == 0


def test_grant_batch__indeterminate_put_then_retry_of_whole_batch__one_order_each_within_budget(
        client, monkeypatch):
    # GIVEN a budget of 30 on one shard and the 10 + 20 + 10 batch whose first put landed with its answer lost
    campaign = make_campaign(client, total=30, shard_count=1, order_cap=100)
    purge_credits()
    requests = grant_bodies(campaign, [10, 20, 10])
    indeterminate_first_put(monkeypatch, StorageUnavailable, lands=True)
    grants.grant_many(requests)
    monkeypatch.undo()
    # WHEN the caller retries the whole batch
    results = grants.grant_many(requests)
    # THEN the first two are repeats of stored orders, the third is still sold out, and 30 are stored
    assert [type(r).__name__ for r in results] == ["Granted", "Granted", "SoldOut"]
    assert [r.created for r in results[:2]] == [False, False]
    assert stored_total(campaign) == 30 == consumed(raw_shards(campaign, 1))
