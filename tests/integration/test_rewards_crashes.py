"""A crash injected between the steps of grant, credit and withdrawal (`chalicelib.faults` crash points),
then the real recovery path: the client retrying the same grant or withdrawal request, SQS redelivering,
the sweepers. Every case must converge to exactly-once effects: one order, one ledger credit, the right
balance, a payout made at most once, and the right totals.
"""

from __future__ import annotations

import pytest

from chalicelib import clock, faults
from chalicelib.faults import InjectedCrash
from chalicelib.rewards import grants, tokens, withdrawals
from chalicelib.rewards.orders import parse_credit_message, parse_grant
from chalicelib.rewards.tables import ACCEPTED, CREDITED, PAID, PAYOUT_PENDING, REFUNDED, WithdrawalItem
from tests.conftest import uid
from tests.problems import problem
from tests.rewards_support import (
    Campaign,
    call,
    credit_message_for,
    credit_messages_of,
    deliver_credits,
    distributed,
    grant_direct,
    ledger_sums,
    make_campaign,
    order_id_of,
    order_item,
    orders_of,
    payout_mode,
    payout_record,
    purge_credits,
    run_credit_worker,
    stock_shards,
    tally_marker,
    wallet_id_of,
    wallet_item,
    withdraw_direct,
    withdrawal_body,
)


@pytest.fixture
def campaign(client) -> Campaign:
    return make_campaign(client, total=100_000, order_cap=1000)


def later(monkeypatch, seconds: int) -> None:
    """Move the clock forward (a client retrying later; a sweeper run after its grace period)."""
    now = clock.now_ms()
    monkeypatch.setattr(clock, "now_ms", lambda: now + seconds * 1000)


def assert_credited_once(campaign: Campaign, act_id: str, expected_balance: int, orders_expected: int) -> None:
    wallet_id = wallet_id_of(campaign, act_id)
    sums, item = ledger_sums(wallet_id), wallet_item(wallet_id)
    assert len(sums.credited_orders) == len(set(sums.credited_orders)) == orders_expected
    assert int(item.balance) == sums.balance == expected_balance
    assert int(item.entry_count) == sums.entries


# --- grant -----------------------------------------------------------------------------------


def test_grant__crash_after_transaction__client_retries_converge_to_one_order_credited_once(
        client, campaign, monkeypatch):
    """The order committed but its credit message was never sent (and not flagged unsent). An immediate
    retry returns the order; a retry after REENQUEUE_AFTER_MS re-sends the message. (Without any retry,
    only the hourly reconciliation re-drives such an order.)"""
    purge_credits()
    body = campaign.grant_body("crashy", amount=250)
    # GIVEN a grant that dies right after its transaction
    with faults.armed("grant.after_transaction"), pytest.raises(InjectedCrash):
        grants.grant(parse_grant(body))
    order = order_item(campaign, order_id_of(campaign, "crashy"))
    assert order.status == ACCEPTED and sum(int(s.consumed) for s in stock_shards(campaign)) == 250
    # AND the user still sees the reward as pending
    status, wallet = call(client, "GET", f"/v1/wallets/crashy?activity_id={campaign.activity_id}")
    assert (status, wallet["pending"], wallet["balance"]) == (200, 250, 0)

    # WHEN the client retries at once THEN it gets the order back, with a token for exactly that order
    status, again = grant_direct(body)
    assert status == 200 and again["order_id"] == order.order_id and again["created_at_ms"] == order.created_at_ms
    claims = tokens.verify(again["token"], tokens.signing_key().public_keys)
    assert (claims["amount"], claims["order_id"], claims["open_time_ms"]) == (250, order.order_id,
                                                                               body["open_time_ms"])
    deliver_credits()
    # WHEN the client retries again after the re-enqueue delay, and the queue is drained
    later(monkeypatch, grants.REENQUEUE_AFTER_MS // 1000 + 1)
    status, third = grant_direct(body)
    assert (status, third["token"]) == (200, again["token"])
    deliver_credits()
    # THEN there is one order, stock consumed once, credited once
    assert len(orders_of(campaign)) == 1
    assert sum(int(s.consumed) for s in stock_shards(campaign)) == 250
    assert order_item(campaign, order.order_id).status == CREDITED
    assert_credited_once(campaign, "crashy", 250, 1)
    assert distributed(campaign) == (250, 1)


def test_grant_batch__crash_after_transactions__retry_returns_every_order_once_and_all_credit_once(
        client, campaign, monkeypatch):
    purge_credits()
    bodies = [campaign.grant_body(f"b{n}", amount=100 + n) for n in range(5)]
    # GIVEN a batch grant that dies after committing every order, before sending any message
    with faults.armed("grant.after_transaction"), pytest.raises(InjectedCrash):
        grants.grant_many([parse_grant(b) for b in bodies])
    assert credit_messages_of(campaign) == []
    # WHEN the client repeats the batch later
    later(monkeypatch, grants.REENQUEUE_AFTER_MS // 1000 + 1)
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": bodies})
    # THEN every item is the existing order (200), and the messages are sent again
    assert status == 200 and [r["status"] for r in answer["results"]] == [200] * 5
    deliver_credits()
    # AND each order exists once, stock consumed once, credited once
    assert len(orders_of(campaign)) == 5
    assert sum(int(s.consumed) for s in stock_shards(campaign)) == sum(100 + n for n in range(5))
    for n in range(5):
        assert_credited_once(campaign, f"b{n}", 100 + n, 1)
    assert distributed(campaign) == (sum(100 + n for n in range(5)), 5)


# --- credit ----------------------------------------------------------------------------------


def granted_messages(campaign: Campaign, users_amounts: list[tuple[str, int]]) -> list[str]:
    for user, amount in users_amounts:
        assert grant_direct(campaign.grant_body(user, amount=amount))[0] == 202
    return [credit_message_for(campaign, order_id_of(campaign, user)) for user, _ in users_amounts]


def test_credit__crash_after_first_transaction__redelivery_credits_the_rest_once_tally_short_by_the_crashed(
        campaign):
    """The crashed order is credited (money right) but its batch never tallied it, and the redelivery
    finds it already credited, so the distributed counter is short by exactly that order until the hourly
    reconciliation completes the tally (orders with `credited_by` and no marker; see
    tests/integration/test_reconciliation.py). Asserted here: the state reconciliation starts from."""
    users = [("c1", 300), ("c2", 400), ("c3", 500)]
    messages = granted_messages(campaign, users)
    # GIVEN a worker that dies right after crediting the first record of a batch
    with faults.armed("credit.after_transaction"), pytest.raises(InjectedCrash):
        run_credit_worker(messages)
    crashed = order_item(campaign, parse_credit_message(messages[0]).order_id)
    assert crashed.status == CREDITED
    # WHEN SQS redelivers the whole batch (new messageIds), twice
    for _ in range(2):
        _, failed = run_credit_worker(messages)
        assert failed == []
    # THEN every order is credited once, with the right balances
    for user, amount in users:
        assert_credited_once(campaign, user, amount, 1)
    # AND the crashed batch has no tally marker; the distributed figure lacks exactly the crashed order
    assert tally_marker(campaign, crashed.hour, crashed.credited_by) is None
    assert distributed(campaign) == (400 + 500, 2)


def test_credit__crash_before_tally__orders_credited_once_marker_absent_distributed_short_by_the_batch(campaign):
    """Until the hourly reconciliation completes the tally (crediting.py; tests/integration/
    test_reconciliation.py), the figure is short by exactly the batch: the state asserted here."""
    users = [("t1", 110), ("t2", 220), ("t3", 330)]
    messages = granted_messages(campaign, users)
    # GIVEN a worker that credits every record, then dies before its batch tally
    with faults.armed("credit.before_tally"), pytest.raises(InjectedCrash):
        run_credit_worker(messages)
    # WHEN SQS redelivers the batch
    _, failed = run_credit_worker(messages)
    assert failed == []
    # THEN each order is credited once, by the crashed batch
    batch_ids = {order_item(campaign, parse_credit_message(m).order_id).credited_by for m in messages}
    assert len(batch_ids) == 1
    for user, amount in users:
        assert_credited_once(campaign, user, amount, 1)
    # AND that batch's tally marker is absent and the distributed counter is short by the whole batch
    hour = order_item(campaign, parse_credit_message(messages[0]).order_id).hour
    assert tally_marker(campaign, hour, batch_ids.pop()) is None
    assert distributed(campaign) == (0, 0)


# --- withdrawal ------------------------------------------------------------------------------


def funded_user(campaign: Campaign, credited: int, pending: int) -> str:
    """A user with `credited` fen in the balance and `pending` fen granted but not yet credited."""
    user = uid("w")
    assert grant_direct(campaign.grant_body(user, rain_id="credited", amount=credited))[0] == 202
    run_credit_worker([credit_message_for(campaign, order_id_of(campaign, user, "credited"))])
    if pending:
        assert grant_direct(campaign.grant_body(user, rain_id="pending", amount=pending))[0] == 202
    return user


def withdrawal_state(campaign: Campaign, user: str, request_id: str) -> tuple[str, str]:
    record = WithdrawalItem.get(wallet_id_of(campaign, user), request_id, consistent_read=True)
    return record.status, payout_record(request_id).status


def test_withdrawal__crash_after_force_credit__repeat_debits_and_pays_once(campaign):
    user = funded_user(campaign, credited=300, pending=200)
    body = withdrawal_body(campaign, 400)
    # GIVEN a withdrawal that dies after forcing the pending reward in, before debiting
    with faults.armed("withdrawal.after_force_credit"), pytest.raises(InjectedCrash):
        withdrawals.withdraw(user, withdrawals.parse_withdrawal(body))
    assert int(wallet_item(wallet_id_of(campaign, user)).balance) == 500
    # WHEN the client repeats the request, twice
    first, second = withdraw_direct(user, body), withdraw_direct(user, body)
    # THEN it is paid once, the second answer repeats the first
    assert first == (200, {"request_id": body["request_id"], "amount": 400, "status": PAID, "balance": 100})
    assert second == (200, {"request_id": body["request_id"], "amount": 400, "status": PAID})
    sums = ledger_sums(wallet_id_of(campaign, user))
    assert (sums.credits, sums.withdrawals, sums.refunds) == (500, 400, 0)
    assert_credited_once(campaign, user, 100, 2)
    assert withdrawal_state(campaign, user, body["request_id"]) == (PAID, "PAID")
    assert distributed(campaign) == (500, 2)


@pytest.mark.parametrize(("mode", "point", "final", "provider"), [
    ("ok", "withdrawal.after_debit", PAID, "PAID"),
    ("fail", "withdrawal.after_debit", REFUNDED, "FAILED"),
    ("ok", "withdrawal.after_payout", PAID, "PAID"),
    ("fail", "withdrawal.after_payout", REFUNDED, "FAILED"),
])
def test_withdrawal__crash_after_debit_or_payout__repeat_answers_pending_sweeper_settles_exactly_once(
        campaign, monkeypatch, mode, point, final, provider):
    user = funded_user(campaign, credited=600, pending=0)
    wallet_id = wallet_id_of(campaign, user)
    body = withdrawal_body(campaign, 250)
    with payout_mode(mode):
        # GIVEN a withdrawal that dies after its debit (or after the provider answered)
        with faults.armed(point), pytest.raises(InjectedCrash):
            withdrawals.withdraw(user, withdrawals.parse_withdrawal(body))
        assert int(wallet_item(wallet_id).balance) == 350
        # WHEN the client repeats it THEN it learns the payout is pending, and nothing is debited again
        assert withdraw_direct(user, body) == (202, {"request_id": body["request_id"], "amount": 250,
                                                     "status": PAYOUT_PENDING})
        assert int(wallet_item(wallet_id).balance) == 350
        # WHEN the sweeper runs after its grace period (twice: a second run must change nothing)
        later(monkeypatch, 61)
        withdrawals.sweep_unresolved()
        withdrawals.sweep_unresolved()
    # THEN the withdrawal is settled the way the provider decided, once
    assert withdrawal_state(campaign, user, body["request_id"]) == (final, provider)
    sums = ledger_sums(wallet_id)
    refunded = 250 if final == REFUNDED else 0
    assert (sums.credits, sums.withdrawals, sums.refunds) == (600, 250, refunded)
    assert int(wallet_item(wallet_id).balance) == sums.balance == 350 + refunded
    assert int(wallet_item(wallet_id).total_refunded) == refunded
    # AND the client's repeat now answers the settled outcome
    status, answer = withdraw_direct(user, body)
    if final == PAID:
        assert (status, answer) == (200, {"request_id": body["request_id"], "amount": 250, "status": PAID})
    else:
        assert status == 502
        assert answer == problem('payout_failed',
                                 'payout failed and was refunded: fake provider refused',
                                 request_id=body['request_id'], amount=250, status=REFUNDED,
                                 failure='fake provider refused')
