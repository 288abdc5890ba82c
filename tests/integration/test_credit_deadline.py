"""Issue 9 defect 4 at the credit worker: when its invocation's time runs out mid-batch, the worker must report the
records it has not started as batch item failures (SQS redelivers them) instead of being killed by its timeout
with the whole batch. Redelivery then credits each order exactly once (DynamoDB Local).

Time is simulated (`time.monotonic`, which the Lambda context's remaining time also reads): after the k-th credit
the clock jumps past the invocation's end. No wall-clock assertion: records, failures and balances.
"""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.rewards import crediting
from chalicelib.rewards.tables import CREDITED
from tests.conftest import uid
from tests.rewards_support import (
    credit_messages_of,
    grant_direct,
    ledger_sums,
    make_campaign,
    order_id_of,
    order_item,
    purge_credits,
    run_credit_worker,
    wallet_id_of,
    wallet_item,
)

WORKER_TIMEOUT_S = 60  # the credit worker's Lambda timeout (.chalice/config.json)


class SimClock:
    """time.monotonic that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 5_000.0
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


@pytest.mark.parametrize("n,k", [(8, 3), (5, 1)])
def test_credit_worker__time_runs_out_after_k_records__rest_reported_failed_then_redelivery_credits_each_once(
        client, monkeypatch, n, k):
    purge_credits()
    # GIVEN n granted orders for n users (amounts the model below remembers independently)
    campaign = make_campaign(client, order_cap=1000)
    users = [uid("u") for _ in range(n)]
    granted = {user: 100 + 7 * i for i, user in enumerate(users)}
    for user, amount in granted.items():
        assert grant_direct(campaign.grant_body(user, amount=amount))[0] == 202
    bodies = credit_messages_of(campaign)
    assert len(bodies) == n
    # AND an invocation whose time is used up by the k-th credit (the clock jumps past its 60 s)
    clock = SimClock()
    monkeypatch.setattr(time, "monotonic", clock.monotonic)
    real_credit, done = crediting.credit, []

    def credit_then_time_passes(order, batch_id):
        credited = real_credit(order, batch_id)
        done.append(order.order_id)
        if len(done) == k:
            clock.advance(WORKER_TIMEOUT_S)
        return credited

    monkeypatch.setattr(crediting, "credit", credit_then_time_passes)

    # WHEN the worker gets the batch
    answer, failed = run_credit_worker(bodies)

    # THEN it returned normally with the n - k records it never started as batch item failures
    assert len(done) == k
    assert len(failed) == n - k == len(answer["batchItemFailures"])
    assert set(failed) == set(bodies[k:])
    credited_now = {u for u in users if order_item(campaign, order_id_of(campaign, u)).status == CREDITED}
    assert len(credited_now) == k

    # WHEN SQS redelivers the failed records, together with a duplicate of every record (at-least-once), in a
    # fresh invocation
    monkeypatch.setattr(crediting, "credit", real_credit)
    answer, failed = run_credit_worker(failed + bodies)
    # THEN nothing fails, and every user holds exactly their grant, from exactly one ledger credit
    assert failed == []
    for user, amount in granted.items():
        wallet_id = wallet_id_of(campaign, user)
        sums, item = ledger_sums(wallet_id), wallet_item(wallet_id)
        assert len(sums.credited_orders) == 1, user
        assert int(item.balance) == sums.balance == amount, user

