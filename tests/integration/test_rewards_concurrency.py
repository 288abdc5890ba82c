"""Grants, credits and withdrawals racing on DynamoDB Local: never oversold, never credited twice,
never lost, never negative. Real threads; every figure printed is computed from the stored data.

The threads call the same domain functions the routes call (`grant_direct` / `withdraw_direct` map the
outcome to the route's status and body): `chalice.test.Client` swaps `os.environ` and the app's
`current_request` per call, so it cannot be shared by threads.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.rewards import config_store, orders
from chalicelib.rewards.tables import CREDITED
from rewardgate_ops.lambda_events import LocalLambdaContext, sqs_event
from tests.conftest import uid
from tests.problems import problem
from tests.rewards_support import (
    call,
    credit_messages_of,
    credit_records,
    deliver_credits,
    deliver_credits_concurrently,
    distributed,
    grant_direct,
    ledger_sums,
    make_campaign,
    order_item,
    orders_of,
    purge_credits,
    shard_index,
    stock_shards,
    wallet_id_of,
    wallet_item,
    withdraw_direct,
    withdrawal_body,
)


@pytest.fixture
def production_config_cache(monkeypatch):
    """The production 5 s configuration cache (tests run with none): 1600 grants otherwise pay three
    config reads each, and nothing reconfigures the campaign during the run."""
    from chalicelib.settings import settings

    cached = dataclasses.replace(settings(), config_cache_s=5)
    monkeypatch.setattr(config_store, "settings", lambda: cached)
    config_store.invalidate()
    yield
    config_store.invalidate()


def run_threads(count: int, work) -> list:
    """Run `work(i)` on `count` threads released together; results in thread order."""
    barrier = threading.Barrier(count)

    def start(i: int):
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(start, range(count)))


def credit_audit(campaign, expected_by_wallet: dict[str, int], granted_orders: list[str]) -> dict[str, int]:
    """Double credits and losses, computed from orders, ledger and wallets (never assumed)."""
    excess = missing = extra_entries = 0
    credited_keys: Counter = Counter()
    for wallet_id, expected in expected_by_wallet.items():
        sums, item = ledger_sums(wallet_id), wallet_item(wallet_id)
        balance = int(item.balance) if item else 0
        assert balance == sums.balance, f"wallet {wallet_id} disagrees with its ledger"
        excess += max(0, balance - expected)
        missing += max(0, expected - balance)
        # a credit transaction applied twice would bump entry_count without a second ledger key
        extra_entries += (int(item.entry_count) if item else 0) - sums.entries
        credited_keys.update(sums.credited_orders)
    stored = {o.order_id: o for o in orders_of(campaign)}
    not_credited = [oid for oid in granted_orders if stored[oid].status != CREDITED]
    double = sum(n - 1 for n in credited_keys.values() if n > 1) + extra_entries + (1 if excess else 0)
    return {"double_credits": double, "lost": len(not_credited) + (1 if missing else 0), "excess_fen": excess,
            "missing_fen": missing, "ledger_credits": sum(credited_keys.values())}


def test_grants__32_threads_x_50_against_stock_500_over_4_shards__exactly_500_granted_then_credited_once(
        client, production_config_cache):
    # GIVEN a scene with stock 500 over 4 shards, and an empty credit queue
    campaign = make_campaign(client, total=500, shard_count=4, order_cap=10)
    purge_credits()
    threads, per_thread = 32, 50

    # WHEN 32 threads (one user each) each grant 50 different orders (rounds) of 1 at once
    def grant_50(t: int) -> list[tuple[int, dict]]:
        return [grant_direct(campaign.grant_body(f"u{t}", rain_id=f"r{i}", amount=1)) for i in range(per_thread)]

    answers = [a for batch in run_threads(threads, grant_50) for a in batch]

    # THEN exactly 500 were granted, and every other answer is sold_out
    statuses = Counter(status for status, _ in answers)
    granted = [body for status, body in answers if status == 202]
    sold_out = [body for status, body in answers if status == 409]
    assert statuses == {202: 500, 409: 1100}, statuses
    assert all(body["code"] == "sold_out" and body["scene_id"] == campaign.scene_id for body in sold_out)
    # AND the shards consumed exactly what the orders hold, each shard within its cap
    shards = stock_shards(campaign)
    consumed = sum(int(s.consumed) for s in shards)
    stored = orders_of(campaign)
    assert len(shards) == 4 and all(0 <= int(s.consumed) <= int(s.cap) and int(s.remaining) == 0 for s in shards)
    assert consumed == 500 == len(stored) == sum(int(o.amount) for o in stored)
    assert Counter(int(o.shard) for o in stored) == Counter({shard_index(s): int(s.consumed) for s in shards})
    oversold = max(0, consumed - 500)
    status, stock = call(client, "GET", f"/v1/activities/{campaign.activity_id}/scenes/{campaign.scene_id}/stock")
    assert (status, stock["consumed"], stock["remaining"], stock["total"]) == (200, 500, 0, 500)

    # WHEN the credit queue is drained by 4 concurrent workers
    delivery = deliver_credits_concurrently(workers=4)
    # THEN every granted order is credited exactly once
    expected: Counter = Counter()
    for body in granted:
        expected[wallet_id_of(campaign, body["act_id"])] += body["amount"]
    audit = credit_audit(campaign, expected, [body["order_id"] for body in granted])
    amount, count = distributed(campaign)
    print(f"\ngranted={len(granted)} sold_out={len(sold_out)} oversold={oversold} consumed={consumed} "
          f"credited={audit['ledger_credits']} double_credits={audit['double_credits']} lost={audit['lost']} "
          f"over {threads} threads x {per_thread} grants (messages delivered={delivery.received})")
    # (the queue is shared: a straggler of another test may ride along; exactness comes from the ledger)
    assert delivery.received >= 500 and delivery.failed == 0
    assert audit == {"double_credits": 0, "lost": 0, "excess_fen": 0, "missing_fen": 0, "ledger_credits": 500}
    assert (amount, count) == (500, 500)


def test_grants__one_order_id_claimed_by_32_threads__one_order_repeats_get_it_conflicts_refused(client):
    # GIVEN one order id, requested by 24 threads with one content and 8 with a different amount
    campaign = make_campaign(client, total=10_000, shard_count=4, order_cap=1000)
    purge_credits()
    same, other = campaign.grant_body("racer", amount=300), campaign.grant_body("racer", amount=301)
    bodies = [same] * 24 + [other] * 8
    random.Random(7).shuffle(bodies)

    # WHEN all 32 grant at once
    answers = run_threads(32, lambda i: grant_direct(bodies[i]))

    # THEN exactly one created the order; whoever won, its content defines the order
    winners = [(i, body) for i, (status, body) in enumerate(answers) if status == 202]
    assert len(winners) == 1, Counter(s for s, _ in answers)
    win_index, original = winners[0]
    winning_amount = bodies[win_index]["amount"]
    for i, (status, body) in enumerate(answers):
        if i == win_index:
            continue
        if bodies[i]["amount"] == winning_amount:
            # AND every same-content repeat gets the original order back, with the identical token
            assert (status, body) == (200, original)
        else:
            # AND every different-content repeat is refused, naming the stored amount
            assert status == 409
            assert body == problem('order_conflict',
                                   f"order {original['order_id']} exists with different content",
                                   order_id=original['order_id'], existing_amount=winning_amount)
    # AND stock was consumed once
    assert sum(int(s.consumed) for s in stock_shards(campaign)) == winning_amount
    assert len(orders_of(campaign)) == 1

    # WHEN every message sent is delivered (a repeat may re-send; crediting must absorb it)
    deliver_credits()
    # THEN the order is credited exactly once
    wallet_id = wallet_id_of(campaign, "racer")
    sums = ledger_sums(wallet_id)
    print(f"\nclaims=32 orders={len(orders_of(campaign))} ledger_credits={len(sums.credited_orders)} "
          f"consumed={sum(int(s.consumed) for s in stock_shards(campaign))} amount={winning_amount}")
    assert (sums.credits, len(sums.credited_orders), int(wallet_item(wallet_id).balance)) == (
        winning_amount, 1, winning_amount)
    assert order_item(campaign, original["order_id"]).status == CREDITED


def test_crediting__every_message_delivered_1_to_3_times_shuffled_to_6_workers__each_order_credited_once(client):
    # GIVEN 60 granted orders of varied amounts over 12 users, and the messages the grants sent
    campaign = make_campaign(client, total=1_000_000, order_cap=5000)
    purge_credits()
    rng = random.Random(20240501)
    granted: dict[str, tuple[str, int]] = {}
    for n in range(60):
        user, amount = f"user{n % 12}", rng.randint(1, 5000)
        status, body = grant_direct(campaign.grant_body(user, rain_id=f"r{n}", amount=amount))
        assert status == 202, body
        granted[body["order_id"]] = (wallet_id_of(campaign, user), amount)
    messages = credit_messages_of(campaign)
    assert sorted(orders.parse_credit_message(m).order_id for m in messages) == sorted(granted)

    # WHEN each message is delivered 1-3 times, shuffled, in batches of up to 10 with distinct messageIds,
    # to 6 workers running concurrently; records a worker reports failed go back to the queue
    deliveries = [m for m in messages for _ in range(rng.randint(1, 3))]
    rng.shuffle(deliveries)
    queue = [deliveries[i:i + 10] for i in range(0, len(deliveries), 10)]
    lock = threading.Lock()
    retried = Counter()

    def worker(_: int) -> None:
        from chalicelib.routes.rewards import credit_worker

        while True:
            with lock:
                if not queue:
                    return
                bodies = queue.pop()
            records = credit_records(bodies)
            answer = credit_worker(sqs_event(records), LocalLambdaContext("credit_worker", 60)) or {}
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            if failed:
                with lock:
                    retry = [r["body"] for r in records if r["messageId"] in failed]
                    retried.update(retry)
                    assert max(retried.values()) < 5, "a record keeps failing"
                    queue.append(retry)

    run_threads(6, worker)

    # THEN every wallet holds exactly the sum of its granted amounts, computed from ledger and wallets
    expected: Counter = Counter()
    for wallet_id, amount in granted.values():
        expected[wallet_id] += amount
    audit = credit_audit(campaign, dict(expected), list(granted))
    amount, count = distributed(campaign)
    status, totals = call(client, "GET", f"/v1/activities/{campaign.activity_id}/totals")
    print(f"\ndeliveries={len(deliveries)} messages={len(messages)} retried_records={sum(retried.values())} "
          f"double_credits={audit['double_credits']} lost={audit['lost']} "
          f"distributed={amount} credited_sum={sum(a for _, a in granted.values())}")
    assert audit == {"double_credits": 0, "lost": 0, "excess_fen": 0, "missing_fen": 0, "ledger_credits": 60}
    # AND the "total distributed" figure counts each reward once despite the redeliveries
    assert status == 200
    assert totals["children"] == [{"sub_activity_id": "formal", "purpose": "formal",
                                   "distributed": {"CNY": {"amount": sum(a for _, a in granted.values()),
                                                           "rewards": 60}}}]
    assert (amount, count) == (sum(a for _, a in granted.values()), 60)


def test_withdrawals__20_concurrent_against_one_balance__never_negative_and_ledger_agrees(client):
    # GIVEN a user with 1000 fen: 600 credited, 400 still pending (the withdrawals must force it in)
    campaign = make_campaign(client, total=1_000_000, order_cap=1000)
    user = uid("rich")
    for n, amount in enumerate((350, 250)):
        assert grant_direct(campaign.grant_body(user, rain_id=f"c{n}", amount=amount))[0] == 202
    purge_credits()  # the credited half is credited below by a direct worker run
    from tests.rewards_support import credit_message_for, order_id_of, run_credit_worker
    run_credit_worker([credit_message_for(campaign, order_id_of(campaign, user, f"c{n}")) for n in range(2)])
    for n, amount in enumerate((100, 300)):
        assert grant_direct(campaign.grant_body(user, rain_id=f"p{n}", amount=amount))[0] == 202
    wallet_id = wallet_id_of(campaign, user)
    assert int(wallet_item(wallet_id).balance) == 600
    amount_each, balance_before = 150, 1000

    # WHEN 20 withdrawals of 150 (distinct request ids) race
    answers = run_threads(20, lambda i: withdraw_direct(user, withdrawal_body(campaign, amount_each, f"w{i}")))

    # THEN at most balance // amount succeed, every refusal says the balance was short, nothing goes negative
    paid = [body for status, body in answers if status == 200]
    refused = [body for status, body in answers if status != 200]
    sums, final = ledger_sums(wallet_id), int(wallet_item(wallet_id).balance)
    print(f"\nwithdrawals=20 succeeded={len(paid)} max_possible={balance_before // amount_each} "
          f"final_balance={final} ledger: credits={sums.credits} withdrawals={sums.withdrawals} "
          f"refunds={sums.refunds}")
    assert len(paid) <= balance_before // amount_each
    assert all(body["code"] == "insufficient_balance" and body["balance"] < amount_each for body in refused), refused
    assert final >= 0
    assert final == sums.credits - sums.withdrawals + sums.refunds
    assert (sums.credits, sums.withdrawals) == (balance_before, amount_each * len(paid))
    # a refusal happens only once the balance is below one withdrawal, and balances only fall here
    assert final < amount_each and len(paid) == balance_before // amount_each
    # AND the pending orders were force-credited exactly once despite 20 concurrent forcing withdrawals
    assert len(sums.credited_orders) == 4 and int(wallet_item(wallet_id).entry_count) == sums.entries
    assert distributed(campaign) == (1000, 4)


def test_withdrawals__one_request_id_sent_by_10_threads_at_once__debited_and_paid_once(client):
    # GIVEN a user with 500 fen credited
    campaign = make_campaign(client, total=1_000_000, order_cap=1000)
    user = uid("dup")
    assert grant_direct(campaign.grant_body(user, amount=500))[0] == 202
    from tests.rewards_support import credit_message_for, order_id_of, payout_record, run_credit_worker
    run_credit_worker([credit_message_for(campaign, order_id_of(campaign, user))])
    body = withdrawal_body(campaign, 200)

    # WHEN the same withdrawal request arrives 10 times at once
    answers = run_threads(10, lambda i: withdraw_direct(user, body))

    # THEN it is debited once; every answer is that one withdrawal, paid or still being paid
    wallet_id = wallet_id_of(campaign, user)
    sums = ledger_sums(wallet_id)
    print(f"\nsame request x10: answers={sorted(Counter(s for s, _ in answers).items())} "
          f"withdrawals_in_ledger={sums.withdrawals} balance={int(wallet_item(wallet_id).balance)}")
    assert (sums.withdrawals, sums.refunds, int(wallet_item(wallet_id).balance)) == (200, 0, 300)
    for status, answer in answers:
        assert (status, answer["request_id"], answer["amount"]) in (
            (200, body["request_id"], 200), (202, body["request_id"], 200)), answer
        assert answer["status"] in ("PAID", "PAYOUT_PENDING")
    assert payout_record(body["request_id"]).status == "PAID"
    assert withdraw_direct(user, body) == (200, {"request_id": body["request_id"], "amount": 200, "status": "PAID"})
