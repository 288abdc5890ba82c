"""Block reservations of the batch grant path on DynamoDB Local: racing batches never oversell, units of
repeats go back at once, and a process that dies holding a reservation has it returned by reconciliation.

Figures are computed from the answers the threads got and from raw reads of the shard items, never from
the reservation code's own counts.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from pynamodb.exceptions import PutError

from chalicelib import clock, faults
from chalicelib.errors import SoldOut
from chalicelib.faults import InjectedCrash
from chalicelib.reconcile import runner
from chalicelib.rewards import grants, ids, reservations
from chalicelib.rewards.orders import parse_grant
from chalicelib.rewards.tables import CounterItem, LedgerEntry
from tests.rewards_support import Campaign, dies_after_reserving, make_campaign, ns_of, orders_of, purge_credits


def raw_shards(campaign: Campaign, shard_count: int) -> list[dict]:
    """The scene's shard items as stored (low-level client: every attribute, leases included)."""
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    client = boto3.client("dynamodb")
    items = []
    for shard in range(shard_count):
        hash_key, range_key = ids.shard_key(counter, shard)
        items.append(client.get_item(TableName=CounterItem.Meta.table_name, ConsistentRead=True,
                                     Key={"counter_id": {"S": hash_key}, "sk": {"S": range_key}})["Item"])
    return items


def consumed(shards: list[dict]) -> int:
    return sum(int(s["consumed"]["N"]) for s in shards)


def leases(shards: list[dict]) -> int:
    return sum(1 for s in shards for name in s if name.startswith("lease_"))


def batch(campaign: Campaign, act_id: str, rain_ids: list[str], amount: int = 1) -> list:
    return [parse_grant(campaign.grant_body(act_id, rain_id=r, amount=amount)) for r in rain_ids]


def test_grant_batch__16_threads_x_3_batches_with_repeats_against_budget_300__300_granted_none_leased(
        client):
    # GIVEN a budget of 300 fen over 4 shards and 16 threads, each sending 3 batches of 20 grants of 1 fen:
    # 15 new orders and 5 repeats of its previous batch (the first batch repeats its own first 5)
    campaign = make_campaign(client, total=300, shard_count=4, order_cap=10)
    purge_credits()
    barrier = threading.Barrier(16)

    def thread(t: int) -> list:
        barrier.wait()
        answers, previous = [], [f"r{i}" for i in range(5)]
        for round_no in range(3):
            fresh = [f"r{round_no * 15 + i}" for i in range(15)]
            answers += grants.grant_many(batch(campaign, f"u{t}", fresh + previous[:5]))
            previous = fresh
        return answers

    with ThreadPoolExecutor(16) as pool:
        answers = [a for chunk in pool.map(thread, range(16)) for a in chunk]

    # THEN exactly 300 distinct orders were created (every fen of the budget, none beyond it)
    created = [a.order.order_id for a in answers if isinstance(a, grants.Granted) and a.created]
    repeats = [a for a in answers if isinstance(a, grants.Granted) and not a.created]
    sold_out = [a for a in answers if isinstance(a, SoldOut)]
    assert len(created) == len(set(created)) == 300
    # AND every other answer is a repeat of a created order or sold_out
    assert len(created) + len(repeats) + len(sold_out) == len(answers) == 16 * 60
    assert {a.order.order_id for a in repeats} <= set(created)
    # AND the shards consumed exactly what the stored orders hold: the repeats' reserved units went back
    shards = raw_shards(campaign, 4)
    stored = orders_of(campaign)
    oversold = max(0, sum(int(o.amount) for o in stored) - 300)
    print(f"\ngranted={len(created)} sold_out={len(sold_out)} repeats={len(repeats)} oversold={oversold} "
          f"consumed={consumed(shards)} leases_left={leases(shards)}")
    assert oversold == 0 and len(stored) == 300
    assert consumed(shards) == 300 and all(int(s["remaining"]["N"]) == 0 for s in shards)
    assert leases(shards) == 0
    assert Counter(int(o.shard) for o in stored) == Counter(
        {i: int(s["consumed"]["N"]) for i, s in enumerate(shards)})


def test_grant_batch__exception_after_reservation__units_back_at_once_nothing_leased(client):
    # GIVEN a budget of 1 000 over 2 shards and a batch of 10 grants of 7 fen
    campaign = make_campaign(client, total=1000, shard_count=2, order_cap=10)
    purge_credits()
    # WHEN an exception unwinds the batch after its reservation, before any order is written
    with faults.armed("grant.after_reservation"), pytest.raises(InjectedCrash):
        grants.grant_many(batch(campaign, "u1", [f"r{i}" for i in range(10)], amount=7))
    # THEN the process, still alive, gives the 70 fen back at once: nothing consumed, no lease, no order
    assert consumed(raw_shards(campaign, 2)) == 0 and leases(raw_shards(campaign, 2)) == 0
    assert orders_of(campaign) == []


def test_grant_batch__process_dies_after_reservation__units_held_until_reconciliation_returns_them_once(
        client, monkeypatch):
    # GIVEN a budget of 1 000 over 2 shards and a batch of 10 grants of 7 fen
    campaign = make_campaign(client, total=1000, shard_count=2, order_cap=10)
    purge_credits()
    requests = batch(campaign, "u1", [f"r{i}" for i in range(10)], amount=7)
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)

    # WHEN the process dies after reserving, before writing any order
    dies_after_reserving(monkeypatch)
    with faults.armed("grant.after_reservation"), pytest.raises(InjectedCrash):
        grants.grant_many(requests)
    monkeypatch.undo()

    # THEN the 70 fen stay reserved (sold to no one: a temporary undersell), no order exists
    assert consumed(raw_shards(campaign, 2)) == 70 and leases(raw_shards(campaign, 2)) == 1
    assert orders_of(campaign) == []
    # AND reconciliation before the lease expired plus the grace leaves it alone
    assert reservations.return_dead(counter, 2, clock.now_ms()) == []
    # WHEN reconciliation runs after the grace
    after = clock.now_ms() + reservations.LEASE_MS + reservations.RETURN_GRACE_MS + 1000
    monkeypatch.setattr(clock, "now_ms", lambda: after)
    returned = reservations.return_expired()
    # THEN it returns the 70 fen, once, and reports it
    mine = [r for r in returned if r.counter_id == counter]
    assert [(r.reserved, r.used, r.returned) for r in mine] == [(70, 0, 70)]
    assert consumed(raw_shards(campaign, 2)) == 0 and leases(raw_shards(campaign, 2)) == 0
    assert reservations.return_dead(counter, 2, after) == []
    # AND the client's retry of the batch grants all 10, consuming exactly their 70 fen
    results = grants.grant_many(requests)
    assert all(isinstance(r, grants.Granted) and r.created for r in results)
    assert consumed(raw_shards(campaign, 2)) == 70 == sum(int(o.amount) for o in orders_of(campaign))


def test_grant_batch__crash_before_settle_with_3_repeats__reconciliation_returns_only_the_repeats_units(
        client, monkeypatch):
    # GIVEN 3 orders of 5 fen already granted, then a batch of 7 new grants plus those 3 repeats
    campaign = make_campaign(client, total=1000, shard_count=1, order_cap=10)
    purge_credits()
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    assert all(r.created for r in grants.grant_many(batch(campaign, "u1", ["r0", "r1", "r2"], amount=5)))
    requests = batch(campaign, "u1", [f"r{i}" for i in range(10)], amount=5)

    # WHEN the process writes the orders and dies before settling its reservation
    def die(*_args, **_kwargs):
        raise InjectedCrash("before settle")

    monkeypatch.setattr(reservations, "settle", die)
    with pytest.raises(InjectedCrash):
        grants.grant_many(requests)
    monkeypatch.undo()
    # THEN 10 orders exist and 65 fen are consumed: 50 for them and 15 still reserved for the repeats
    assert len(orders_of(campaign)) == 10 and consumed(raw_shards(campaign, 1)) == 65

    # WHEN reconciliation runs after the lease expired plus the grace
    after = clock.now_ms() + reservations.LEASE_MS + reservations.RETURN_GRACE_MS + 1000
    returned = reservations.return_dead(counter, 1, after)
    # THEN it counts the 7 orders written under the reservation and returns the 3 repeats' 15 fen
    assert [(r.reserved, r.used, r.returned) for r in returned] == [(50, 35, 15)]
    assert consumed(raw_shards(campaign, 1)) == 50 == sum(int(o.amount) for o in orders_of(campaign))


def test_reconcile_schedule__dead_reservation_past_its_grace__returned_and_logged(client, monkeypatch, capsys):
    # GIVEN a process that died holding a reservation of 3 x 9 fen
    campaign = make_campaign(client, total=500, shard_count=2, order_cap=10)
    purge_credits()
    dies_after_reserving(monkeypatch)
    with faults.armed("grant.after_reservation"), pytest.raises(InjectedCrash):
        grants.grant_many(batch(campaign, "u1", ["r1", "r2", "r3"], amount=9))
    monkeypatch.undo()
    assert consumed(raw_shards(campaign, 2)) == 27
    capsys.readouterr()

    # WHEN the reconciliation schedule runs after the lease expired plus the grace
    after = clock.now_ms() + reservations.LEASE_MS + reservations.RETURN_GRACE_MS + 1000
    monkeypatch.setattr(clock, "now_ms", lambda: after)
    runner.scheduled(runner.Budget(0))

    # THEN the 27 fen are back on the shard, and the return is logged as reservation_returned with its figures
    assert consumed(raw_shards(campaign, 2)) == 0 and leases(raw_shards(campaign, 2)) == 0
    counter = ids.stock_counter_id(ns_of(campaign), campaign.scene_id)
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"reservation_returned"' in line]
    assert [(e["reserved"], e["used"], e["returned"]) for e in logged if e["counter_id"] == counter] == [(27, 0, 27)]


def test_grant_batch__order_put_answer_lost_then_retried__counted_as_used_not_returned(client, monkeypatch):
    # GIVEN a budget of 100 over 1 shard, and a network that loses the answer of the first order put after it
    # was applied (the retry then finds the order it wrote itself)
    campaign = make_campaign(client, total=100, shard_count=1, order_cap=10)
    purge_credits()
    real_save = LedgerEntry.save
    lost = []

    def save_then_lose_answer(self, *args, **kwargs):
        answer = real_save(self, *args, **kwargs)
        if not lost:
            lost.append(self.entry_key)
            raise PutError("connection reset") from EndpointConnectionError(endpoint_url="http://dynamodb")
        return answer

    monkeypatch.setattr(LedgerEntry, "save", save_then_lose_answer)
    # WHEN a batch of 4 grants of 10 fen is placed
    results = grants.grant_many(batch(campaign, "u1", ["r1", "r2", "r3", "r4"], amount=10))
    monkeypatch.undo()
    # THEN all 4 are new orders, and the shard's consumed units equal the stored orders' (nothing handed back
    # for an order that exists: that would let the budget be sold twice)
    assert lost and [r.created for r in results] == [True, True, True, True]
    assert consumed(raw_shards(campaign, 1)) == 40 == sum(int(o.amount) for o in orders_of(campaign))


def test_grant_batch__same_order_twice_in_one_batch__second_is_a_repeat_and_its_units_go_back(client):
    # GIVEN a budget of 100 over 1 shard WHEN one batch holds the same grant twice (and one other)
    campaign = make_campaign(client, total=100, shard_count=1, order_cap=10)
    purge_credits()
    results = grants.grant_many(batch(campaign, "u1", ["r1", "r1", "r2"], amount=10))
    # THEN the first is created, the second answers it as a repeat, and only the 2 orders' units stay consumed
    assert [r.created for r in results] == [True, False, True]
    assert results[0].order.order_id == results[1].order.order_id
    assert consumed(raw_shards(campaign, 1)) == 20 and leases(raw_shards(campaign, 1)) == 0


def test_grant_batch__reserve_answer_lost_then_retried__reserved_once_and_all_settled(client, monkeypatch):
    # GIVEN a budget of 100 over 1 shard, and a network that loses the answer of the first shard write after
    # it was applied (the retry meets the reservation it made itself)
    campaign = make_campaign(client, total=100, shard_count=1, order_cap=10)
    purge_credits()
    real = reservations.connection().client

    class LosesFirstAnswer:
        lost = False

        def __getattr__(self, name):
            return getattr(real, name)

        def update_item(self, **kwargs):
            answer = real.update_item(**kwargs)
            if not LosesFirstAnswer.lost:
                LosesFirstAnswer.lost = True
                raise EndpointConnectionError(endpoint_url="http://dynamodb")
            return answer

    monkeypatch.setattr(reservations, "connection", lambda: type("C", (), {"client": LosesFirstAnswer()})())
    # WHEN a batch of 4 grants of 10 fen is placed
    results = grants.grant_many(batch(campaign, "u1", ["r1", "r2", "r3", "r4"], amount=10))
    monkeypatch.undo()
    # THEN all 4 are granted and the shard holds exactly their 40 fen, with no lease left behind
    assert LosesFirstAnswer.lost and [r.created for r in results] == [True, True, True, True]
    assert consumed(raw_shards(campaign, 1)) == 40 == sum(int(o.amount) for o in orders_of(campaign))
    assert leases(raw_shards(campaign, 1)) == 0
