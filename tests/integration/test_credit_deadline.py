"""Deadlines at the credit worker: when its invocation's time runs out mid-batch, the worker must report the
records it has not started as batch item failures (SQS redelivers them) instead of being killed by its timeout
with the whole batch. Redelivery then credits each order exactly once (DynamoDB Local).

Time is simulated (`time.monotonic`, which the Lambda context's remaining time also reads): after the k-th credit
the clock jumps past the invocation's end. No wall-clock assertion: records, failures and balances.
"""

from __future__ import annotations

import time

import pytest

from chalicelib import clients
from chalicelib.rewards import crediting
from chalicelib.rewards.tables import CREDITED
from chalicelib.routes.rewards import credit_worker
from rewardgate_ops.lambda_events import deliver_batch
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
from tests.sim_clock import SimClock

WORKER_TIMEOUT_S = 60  # the credit worker's Lambda timeout (.chalice/config.json)


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
    clock = SimClock(5_000.0)
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



@pytest.fixture
def own_queue():
    """A queue of this test's own (nothing else on it), as the credit worker's event source."""
    sqs = clients.sqs()
    url = sqs.create_queue(QueueName=uid("deadline"), Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    yield sqs, url, arn
    sqs.delete_queue(QueueUrl=url)


def test_credit_worker__time_runs_out_mid_batch_on_a_real_queue__sqs_redelivers_the_rest_each_credited_once(
        client, monkeypatch, own_queue):
    sqs, url, arn = own_queue
    purge_credits()
    # GIVEN 10 granted orders whose credit messages are on the worker's queue, each sent twice (at-least-once)
    campaign = make_campaign(client, order_cap=1000)
    users = [uid("u") for _ in range(10)]
    granted = {user: 50 + 3 * i for i, user in enumerate(users)}
    for user, amount in granted.items():
        assert grant_direct(campaign.grant_body(user, amount=amount))[0] == 202
    for body in credit_messages_of(campaign) * 2:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    # AND every invocation's time is used up by its 4th credit
    clock = SimClock(5_000.0)
    monkeypatch.setattr(time, "monotonic", clock.monotonic)
    real_credit, calls = crediting.credit, []

    def credit_then_time_passes(order, batch_id):
        credited = real_credit(order, batch_id)
        calls.append(order.order_id)
        if len(calls) % 4 == 0:
            clock.advance(WORKER_TIMEOUT_S)
        return credited

    monkeypatch.setattr(crediting, "credit", credit_then_time_passes)

    # WHEN Lambda's event source delivers batches of 10 until the queue is empty (failed records visible at once)
    deliveries = []
    for _ in range(20):
        done = deliver_batch(sqs, url, arn, credit_worker, 10, function_name="credit_worker",
                             failure_visibility_s=0)
        if done.received == 0:
            break
        deliveries.append(done)

    # THEN every batch answered: 4 records done, the others failed and came back, until all 20 messages were
    # done
    assert deliveries and all(d.succeeded == min(4, d.received) for d in deliveries)
    assert sum(d.succeeded for d in deliveries) == 20
    # AND every user holds exactly their grant, from exactly one ledger credit
    for user, amount in granted.items():
        wallet_id = wallet_id_of(campaign, user)
        sums, item = ledger_sums(wallet_id), wallet_item(wallet_id)
        assert len(sums.credited_orders) == 1, user
        assert int(item.balance) == sums.balance == amount, user
