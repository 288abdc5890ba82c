"""A poison credit message inside a batch, through Lambda's SQS semantics (`deliver_batch`) on a real
(moto) queue with a DLQ: only the poison record fails, the rest are credited once, and the poison
reaches the DLQ after maxReceiveCount without ever moving money."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from chalicelib import clients
from chalicelib.rewards import orders
from chalicelib.rewards.tables import ACCEPTED, CREDITED
from chalicelib.routes.rewards import credit_worker
from rewardgate_ops.lambda_events import deliver_batch
from tests.conftest import uid
from tests.rewards_support import (
    credit_message_for,
    distributed,
    grant_direct,
    ledger,
    ledger_sums,
    make_campaign,
    order_id_of,
    order_item,
    wallet_id_of,
    wallet_item,
)


@pytest.fixture
def credit_queue_with_dlq():
    """A dedicated queue (so nothing else is on it) redriving to its own DLQ after 2 receives."""
    sqs = clients.sqs()
    dlq_url = sqs.create_queue(QueueName=uid("poison-dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=uid("poison"), Attributes={
        "VisibilityTimeout": "30",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
    })["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    yield sqs, url, arn, dlq_url
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq_url)


def poison_for(kind: str, campaign, victim_message: str) -> str:
    """A credit message that can never succeed, built from a real order's message."""
    order = orders.parse_credit_message(victim_message)
    if kind == "unknown_order":
        ghost = uid("ghost")
        oid = order_id_of(campaign, ghost)
        return orders.credit_message(replace(order, act_id=ghost, order_id=oid,
                                             wallet_id=wallet_id_of(campaign, ghost)))
    if kind == "amount_mismatch":
        return orders.credit_message(replace(order, amount=order.amount + 1000))
    if kind == "wallet_redirect":
        return orders.credit_message(replace(order, wallet_id=wallet_id_of(campaign, "thief")))
    if kind == "not_a_credit_message":
        return json.dumps({"hello": "world"})
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["unknown_order", "amount_mismatch", "wallet_redirect", "not_a_credit_message"])
def test_credit_worker__poison_in_a_batch_of_10__only_it_fails_the_9_credited_once_it_reaches_the_dlq(
        client, credit_queue_with_dlq, kind):
    sqs, url, arn, dlq_url = credit_queue_with_dlq
    # GIVEN 10 granted orders: 9 whose messages are good, and a victim whose only message is the poison
    campaign = make_campaign(client, order_cap=1000)
    users = [uid("u") for _ in range(10)]
    for n, user in enumerate(users):
        assert grant_direct(campaign.grant_body(user, amount=100 + n))[0] == 202
    good = [credit_message_for(campaign, order_id_of(campaign, user)) for user in users[:9]]
    victim = users[9]
    poison = poison_for(kind, campaign, credit_message_for(campaign, order_id_of(campaign, victim)))
    bodies = [*good, poison]
    random.Random(kind).shuffle(bodies)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])

    # WHEN Lambda delivers the batch (failed records visible again at once)
    first = deliver_batch(sqs, url, arn, credit_worker, 10, failure_visibility_s=0)

    # THEN only the poison record is reported failed
    assert (first.received, first.succeeded, first.failed) == (10, 9, 1)
    # AND each of the 9 is credited exactly once, for its own amount
    for n, user in enumerate(users[:9]):
        sums = ledger_sums(wallet_id_of(campaign, user))
        assert (sums.credits, len(sums.credited_orders), int(wallet_item(wallet_id_of(campaign, user)).balance)) == (
            100 + n, 1, 100 + n)
        assert order_item(campaign, order_id_of(campaign, user)).status == CREDITED
    # AND the poison moved no money: the victim's order is still pending, nobody else was credited
    assert order_item(campaign, order_id_of(campaign, victim)).status == ACCEPTED
    assert ledger(wallet_id_of(campaign, victim)) == []
    assert ledger(wallet_id_of(campaign, "thief")) == []
    assert wallet_item(wallet_id_of(campaign, "thief")) is None
    assert distributed(campaign) == (sum(100 + n for n in range(9)), 9)

    # WHEN it is delivered again, and once more
    second = deliver_batch(sqs, url, arn, credit_worker, 10, failure_visibility_s=0)
    third = deliver_batch(sqs, url, arn, credit_worker, 10, failure_visibility_s=0)

    # THEN it fails again (2nd receive), then sits in the DLQ (maxReceiveCount 2), body intact
    assert (second.received, second.failed) == (1, 1)
    assert third.received == 0
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == [poison]
    # AND the 9 are still credited exactly once; the total distributed counted them once
    assert distributed(campaign) == (sum(100 + n for n in range(9)), 9)
    assert sum(ledger_sums(wallet_id_of(campaign, u)).credits for u in users) == sum(100 + n for n in range(9))
