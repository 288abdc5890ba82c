"""A Hypothesis state machine over grants, credit deliveries, redeliveries, withdrawals (paid or failed at the
payout provider) and withdrawal repeats, on DynamoDB Local, checked against a model after every step.

The money equation checked for every user after every step, all figures read from storage:

    sum of granted amounts = balance + pending + (withdrawn - refunded)

where `pending` is what the wallet API reports as granted but not credited, `withdrawn` / `refunded` are
the user's withdrawal and refund ledger entries. Alongside: balance >= 0, balance = credits - withdrawals
+ refunds (ledger) = the model's balance, every order credited at most once (one ledger credit per order,
`entry_count` = ledger entries), and the "total distributed" counter = what was credited.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from chalicelib.rewards import payouts, wallets
from chalicelib.rewards.tables import CREDITED
from tests.conftest import uid
from tests.hypothesis_profiles import stateful_settings
from tests.rewards_support import (
    credit_message_for,
    distributed,
    grant_direct,
    ledger_sums,
    make_campaign,
    orders_of,
    payout_record,
    purge_credits,
    run_credit_worker,
    wallet_id_of,
    wallet_item,
    withdraw_direct,
    withdrawal_body,
)

USERS = ("alice", "bob")


class RewardsMachine(RuleBasedStateMachine):
    """Model: per order its user and amount and whether it is credited; per user what was paid out."""

    client = None
    seen: ClassVar[Counter] = Counter()  # outcomes over all examples, printed so a run shows what it exercised

    def __init__(self) -> None:
        super().__init__()
        # a fresh campaign per example: no state leaks between examples
        self.campaign = make_campaign(self.client, total=10**9, shard_count=2, order_cap=1000)
        self.orders: dict[str, tuple[str, int]] = {}      # order_id -> (user, amount)
        self.messages: dict[str, str] = {}                # order_id -> credit message
        self.undelivered: list[str] = []
        self.delivered: list[str] = []
        self.credited: set[str] = set()
        self.paid_out: Counter = Counter()
        self.settled: list[tuple[str, dict, int, dict]] = []  # (user, request, status, answer)

    def balance_of(self, user: str) -> int:
        credited = sum(a for oid, (u, a) in self.orders.items() if u == user and oid in self.credited)
        return credited - self.paid_out[user]

    def pending_of(self, user: str) -> int:
        return sum(a for oid, (u, a) in self.orders.items() if u == user and oid not in self.credited)

    @rule(grants=st.lists(st.tuples(st.sampled_from(USERS), st.integers(1, 1000)), min_size=1, max_size=3))
    def grant(self, grants: list[tuple[str, int]]) -> None:
        for user, amount in grants:
            status, body = grant_direct(self.campaign.grant_body(user, rain_id=uid("r"), amount=amount))
            assert status == 202, body
            self.orders[body["order_id"]] = (user, amount)
            self.messages[body["order_id"]] = credit_message_for(self.campaign, body["order_id"])
            self.undelivered.append(body["order_id"])

    @precondition(lambda self: self.undelivered)
    @rule(count=st.integers(1, 10))
    def deliver(self, count: int) -> None:
        batch, self.undelivered = self.undelivered[:count], self.undelivered[count:]
        _, failed = run_credit_worker([self.messages[oid] for oid in batch])
        assert failed == []
        self.credited.update(batch)
        self.delivered.extend(batch)
        self.seen["delivered"] += len(batch)

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        again = data.draw(st.lists(st.sampled_from(self.delivered), min_size=1, max_size=5))
        _, failed = run_credit_worker([self.messages[oid] for oid in again])
        assert failed == []
        self.seen["redelivered"] += len(again)

    @rule(user=st.sampled_from(USERS), percent=st.integers(1, 130), provider_fails=st.booleans())
    def withdraw(self, user: str, percent: int, provider_fails: bool) -> None:
        # amounts around what the user has (pending included), so most withdrawals can succeed
        available = self.balance_of(user) + self.pending_of(user)
        amount = max(1, available * percent // 100)
        request = withdrawal_body(self.campaign, amount)
        payouts.set_fake_mode("fail" if provider_fails else "ok")
        status, answer = withdraw_direct(user, request)
        # every pending reward of the user is forced in first, whatever the outcome
        self.credited.update(oid for oid, (u, _) in self.orders.items() if u == user)
        if amount > available:
            assert (status, answer["code"], answer["balance"]) == (409, "insufficient_balance", available)
            self.seen["insufficient"] += 1
            return
        if provider_fails:
            assert (status, answer["code"], answer["status"]) == (502, "payout_failed", "REFUNDED")
            self.seen["refunded"] += 1
        else:
            assert (status, answer["status"]) == (200, "PAID")
            self.paid_out[user] += amount
            self.seen["paid"] += 1
        assert answer["balance"] == self.balance_of(user)
        self.settled.append((user, request, status, answer))

    @precondition(lambda self: self.settled)
    @rule(data=st.data(), provider_fails=st.booleans())
    def repeat_withdrawal(self, data: st.DataObject, provider_fails: bool) -> None:
        user, request, status, answer = data.draw(st.sampled_from(self.settled))
        payouts.set_fake_mode("fail" if provider_fails else "ok")
        again_status, again = withdraw_direct(user, request)
        assert (again_status, again) == (status, {k: v for k, v in answer.items() if k != "balance"})
        self.seen["repeated"] += 1

    @invariant()
    def money_is_conserved_and_nothing_credited_twice(self) -> None:
        self.seen["checks"] += 1
        for user in USERS:
            wallet_id = wallet_id_of(self.campaign, user)
            item, sums, view = wallet_item(wallet_id), ledger_sums(wallet_id), wallets.view(wallet_id)
            balance = int(item.balance) if item else 0
            granted = sum(a for u, a in self.orders.values() if u == user)
            assert balance >= 0
            assert balance == sums.balance == self.balance_of(user)
            assert view.pending == self.pending_of(user)
            assert granted == balance + view.pending + (sums.withdrawals - sums.refunds)
            assert len(sums.credited_orders) == len(set(sums.credited_orders))
            assert (int(item.entry_count) if item else 0) == sums.entries
        credited_amount = sum(a for oid, (_, a) in self.orders.items() if oid in self.credited)
        assert distributed(self.campaign) == (credited_amount, len(self.credited))

    def teardown(self) -> None:
        payouts.set_fake_mode("ok")
        if not self.orders:
            return
        stored = {o.order_id: o.status for o in orders_of(self.campaign)}
        assert {oid for oid, status in stored.items() if status == CREDITED} == self.credited
        for _, request, status, _ in self.settled:
            assert payout_record(request["request_id"]).status == ("PAID" if status == 200 else "FAILED")


@pytest.mark.hypothesis  # `make soak` selects Hypothesis tests by this marker; @given tests carry it already
def test_rewards_state_machine__any_interleaving__money_conserved_and_credited_at_most_once(client):
    purge_credits()
    RewardsMachine.client = client
    RewardsMachine.seen.clear()
    try:
        # the profile's budget (tests/hypothesis_profiles.py): no shrinking, `make soak` runs it thorough
        run_state_machine_as_test(RewardsMachine, settings=stateful_settings())
    finally:
        payouts.set_fake_mode("ok")
        purge_credits()  # the grants' own messages: every order was credited from the model's copies
    print("\nstate machine: " + " ".join(f"{k}={v}" for k, v in sorted(RewardsMachine.seen.items())))
