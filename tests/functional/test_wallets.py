"""Wallet routes through the Chalice test client: balance with pending rewards, the merged flow with its
stable cursor, and withdrawals with every payout outcome (paid, failed and refunded, timed out and settled
by the sweeper), switches and tokens."""

from __future__ import annotations

import base64

import pytest

from chalicelib import clock
from chalicelib.rewards import ids, wallets, withdrawals
from chalicelib.rewards.tables import PAID, PAYOUT_PENDING, REFUNDED, WithdrawalItem
from tests.conftest import uid
from tests.problems import problem
from tests.rewards_support import (
    Campaign,
    call,
    credit_message_for,
    distributed,
    grant_direct,
    ledger_sums,
    make_campaign,
    order_id_of,
    payout_mode,
    payout_record,
    run_credit_worker,
    switch,
    wallet_id_of,
    wallet_item,
    withdrawal_body,
)


@pytest.fixture
def campaign(client) -> Campaign:
    return make_campaign(client, total=1_000_000, order_cap=10_000)


def wallet(client, campaign: Campaign, act_id: str, query: str = "") -> dict:
    status, body = call(client, "GET", f"/v1/wallets/{act_id}?activity_id={campaign.activity_id}{query}")
    assert status == 200, body
    return body


def grant(campaign: Campaign, act_id: str, rain_id: str, amount: int) -> dict:
    status, body = grant_direct(campaign.grant_body(act_id, rain_id=rain_id, amount=amount))
    assert status == 202, body
    return body


def grant_ms_apart(monkeypatch, campaign: Campaign, act_id: str, start_ms: int, rounds: range,
                   base_amount: int) -> None:
    """Grant reward `r{n}` of `base_amount + n` at `start_ms + n` for each n, one millisecond apart."""
    for n in rounds:
        monkeypatch.setattr(clock, "now_ms", lambda n=n: start_ms + n)
        grant(campaign, act_id, f"r{n}", base_amount + n)
    monkeypatch.undo()


def credit(campaign: Campaign, act_id: str, *rain_ids: str) -> None:
    _, failed = run_credit_worker([credit_message_for(campaign, order_id_of(campaign, act_id, r)) for r in rain_ids])
    assert failed == []


def withdraw(client, campaign: Campaign, act_id: str, body: dict) -> tuple[int, dict]:
    return call(client, "POST", f"/v1/wallets/{act_id}/withdrawals", body)


def funded(campaign: Campaign, amount: int) -> str:
    user = uid("u")
    grant(campaign, user, "seed", amount)
    credit(campaign, user, "seed")
    return user


def settle_by_sweeper(monkeypatch, after_ms: int = 61_000) -> None:
    """The payout sweeper `after_ms` from now (its first check of a payout is a minute after its lost answer)."""
    now = clock.now_ms()
    monkeypatch.setattr(clock, "now_ms", lambda: now + after_ms)
    withdrawals.sweep_unresolved()
    monkeypatch.undo()


# --- balance and pending ---------------------------------------------------------------------


def test_wallet__granted_then_credited__pending_moves_into_balance_never_both(client, campaign):
    # GIVEN a user with nothing
    user = uid("u")
    assert wallet(client, campaign, user) == {"balance": 0, "pending": 0, "total_income": 0, "total_withdrawn": 0,
                                               "total_refunded": 0, "currency": "CNY"}
    # WHEN two rewards are granted THEN both show as pending at once
    grant(campaign, user, "r1", 300)
    grant(campaign, user, "r2", 200)
    assert wallet(client, campaign, user) == {"balance": 0, "pending": 500, "total_income": 0,
                                                  "total_withdrawn": 0, "total_refunded": 0, "currency": "CNY"}
    # WHEN one is credited THEN it moves from pending to balance
    credit(campaign, user, "r1")
    assert (wallet(client, campaign, user)["balance"], wallet(client, campaign, user)["pending"]) == (300, 200)
    # WHEN the other is credited (and the first redelivered) THEN everything is balance, counted once
    credit(campaign, user, "r2", "r1")
    assert wallet(client, campaign, user) == {"balance": 500, "pending": 0, "total_income": 500,
                                               "total_withdrawn": 0, "total_refunded": 0, "currency": "CNY"}


@pytest.mark.parametrize(("query", "error", "field"), [
    ("", "invalid_field", "activity_id"),
    ("?activity_id=a_b", "invalid_field", "activity_id"),
    ("?activity_id={act}&asset=USD", "invalid_field", "asset"),
    ("?activity_id={act}&sub_activity_id=nope", "invalid_field", "sub_activity_id"),
])
def test_wallet__bad_query__400_naming_it(client, campaign, query, error, field):
    status, body = call(client, "GET", f"/v1/wallets/u1{query.format(act=campaign.activity_id)}")
    assert (status, body["code"], body["field"]) == (400, error, field)


def test_wallet__unknown_activity__404(client):
    status, body = call(client, "GET", f"/v1/wallets/u1?activity_id={uid('act')}")
    assert (status, body["code"]) == (404, "activity_not_found")


# --- flow ------------------------------------------------------------------------------------


def flow_pages(client, campaign: Campaign, user: str, limit: int) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        query = f"&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, body = call(client, "GET", f"/v1/wallets/{user}/flow?activity_id={campaign.activity_id}{query}")
        assert status == 200, body
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_flow__credits_withdrawals_pending__newest_first_stable_cursor_pending_replaced_in_place(
        client, campaign, monkeypatch):
    # GIVEN 7 rewards granted a millisecond apart, 4 credited; then a withdrawal
    user = uid("u")
    grant_ms_apart(monkeypatch, campaign, user, clock.now_ms(), range(7), base_amount=100)
    credit(campaign, user, "r0", "r2", "r4", "r6")
    assert withdraw(client, campaign, user, withdrawal_body(campaign, 50, "wd1"))[0] == 200
    # the withdrawal forced every pending reward in; grant three more that stay pending
    grant_ms_apart(monkeypatch, campaign, user, clock.now_ms() + 10, range(7, 10), base_amount=100)

    # WHEN the flow is read 3 at a time
    first_page = flow_pages(client, campaign, user, 3)[0]
    # AND, between pages, a pending reward on the first page is credited
    credit(campaign, user, "r9")
    pages = flow_pages(client, campaign, user, 3)
    rows = [row for page in pages for row in page]

    # THEN every movement appears once, newest first: 3 pending, the withdrawal, 7 credits
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert [(r["type"], r.get("order_id", r.get("request_id"))) for r in rows] == [
        ("credit", order_id_of(campaign, user, "r9")),
        ("pending", order_id_of(campaign, user, "r8")),
        ("pending", order_id_of(campaign, user, "r7")),
        ("withdrawal", "wd1"),
        *[("credit", order_id_of(campaign, user, f"r{n}")) for n in range(6, -1, -1)],
    ]
    assert [r["amount"] for r in rows] == [109, 108, 107, 50, 106, 105, 104, 103, 102, 101, 100]
    # AND the credited reward kept the place it had as pending
    assert [r["at_ms"] for r in first_page] == [r["at_ms"] for r in rows[:3]]
    assert first_page[0]["type"] == "pending" and rows[0]["type"] == "credit"


def test_flow__pages_read_while_rewards_are_credited__no_row_lost_or_repeated(client, campaign, monkeypatch):
    # GIVEN 6 pending rewards
    user = uid("u")
    grant_ms_apart(monkeypatch, campaign, user, clock.now_ms(), range(6), base_amount=10)
    # WHEN the flow is paged 2 at a time, with a third of the rewards credited after every page
    seen, cursor = [], None
    for step in range(10):
        query = "&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = call(client, "GET", f"/v1/wallets/{user}/flow?activity_id={campaign.activity_id}{query}")[1]
        seen += [r["order_id"] for r in body["items"]]
        credit(campaign, user, *[f"r{n}" for n in range(6) if n % 3 == step % 3])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # THEN every reward was listed exactly once, newest first
    assert seen == [order_id_of(campaign, user, f"r{n}") for n in range(5, -1, -1)]


@pytest.mark.parametrize("cursor", ["garbage!", base64.urlsafe_b64encode(b"123#x").decode(),
                                    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
                                    # digits `str.isdigit` takes and `int` does not (a 500 before)
                                    base64.urlsafe_b64encode("¹²³⁴⁵⁶⁷⁸⁹⁰¹²³#credit#x".encode()).decode()])
def test_flow__bad_cursor__400(client, campaign, cursor):
    status, body = call(client, "GET", f"/v1/wallets/u1/flow?activity_id={campaign.activity_id}&cursor={cursor}")
    assert (status, body) == (400, problem('invalid_field',
                                           'cursor: is not a cursor returned by this listing', field='cursor'))


# "²" and "٣" pass `str.isdigit` but not `int`: they reached a 500 before.
@pytest.mark.parametrize("limit", ["0", "101", "x", "%C2%B2", "%D9%A3", "1.0"])
def test_flow__bad_limit__400(client, campaign, limit):
    status, body = call(client, "GET", f"/v1/wallets/u1/flow?activity_id={campaign.activity_id}&limit={limit}")
    assert (status, body["field"]) == (400, "limit")


# --- withdrawals -----------------------------------------------------------------------------


def test_withdraw__pending_rewards_forced_in_then_paid__balance_and_ledger_agree(client, campaign):
    # GIVEN 300 credited and 200 still pending
    user = uid("u")
    grant(campaign, user, "r1", 300)
    credit(campaign, user, "r1")
    grant(campaign, user, "r2", 200)
    # WHEN 450 is withdrawn
    body = withdrawal_body(campaign, 450)
    status, answer = withdraw(client, campaign, user, body)
    # THEN the pending reward was forced in, the withdrawal paid, and wallet, ledger and provider agree
    assert (status, answer) == (200, {"request_id": body["request_id"], "amount": 450, "status": PAID,
                                      "balance": 50})
    assert wallet(client, campaign, user) == {"balance": 50, "pending": 0, "total_income": 500,
                                               "total_withdrawn": 450, "total_refunded": 0, "currency": "CNY"}
    sums = ledger_sums(wallet_id_of(campaign, user))
    assert (sums.credits, sums.withdrawals, sums.refunds, sums.balance) == (500, 450, 0, 50)
    assert payout_record(body["request_id"]).status == "PAID"
    assert distributed(campaign) == (500, 2)


def test_withdraw__repeat__first_outcome_no_second_debit_and_other_amount_409(client, campaign):
    # GIVEN a paid withdrawal of 400 from 1000
    user = funded(campaign, 1000)
    body = withdrawal_body(campaign, 400)
    first = withdraw(client, campaign, user, body)
    # WHEN it is repeated, and repeated with another amount
    again = withdraw(client, campaign, user, body)
    conflict = withdraw(client, campaign, user, {**body, "amount": 401})
    # THEN the repeat answers the first outcome, the other amount is refused, and 400 left the wallet once
    assert first[0] == 200 and again == (200, {"request_id": body["request_id"], "amount": 400, "status": PAID})
    assert conflict == (409, problem('withdrawal_conflict',
                                     f"withdrawal {body['request_id']} exists with a different amount",
                                     request_id=body['request_id'], existing_amount=400))
    assert int(wallet_item(wallet_id_of(campaign, user)).balance) == 600
    assert ledger_sums(wallet_id_of(campaign, user)).withdrawals == 400


def test_withdraw__more_than_the_balance__409_with_the_balance_nothing_debited(client, campaign):
    # GIVEN 100 credited and 50 pending
    user = funded(campaign, 100)
    grant(campaign, user, "p", 50)
    # WHEN 200 is asked for
    body = withdrawal_body(campaign, 200)
    status, answer = withdraw(client, campaign, user, body)
    # THEN it is refused with the balance (the pending reward counted in), and nothing is debited
    assert (status, answer) == (409, problem('insufficient_balance',
                                             'balance 150 is below the withdrawal amount 200', balance=150, amount=200))
    sums = ledger_sums(wallet_id_of(campaign, user))
    assert (sums.withdrawals, sums.balance, int(wallet_item(wallet_id_of(campaign, user)).balance)) == (0, 150, 150)
    assert WithdrawalItem.count(wallet_id_of(campaign, user)) == 0
    # AND the same request id can be used once the money is there
    grant(campaign, user, "more", 50)
    assert withdraw(client, campaign, user, body)[0] == 200


def test_withdraw__never_credited_wallet__409_balance_zero(client, campaign):
    # a wallet never credited has no item at all: the debit condition must still refuse
    status, answer = withdraw(client, campaign, uid("nobody"), withdrawal_body(campaign, 1))
    assert (status, answer["code"], answer["balance"]) == (409, "insufficient_balance", 0)


@pytest.mark.parametrize(("change", "field"), [
    ({"amount": 0}, "amount"), ({"amount": "5"}, "amount"), ({"request_id": "a_b"}, "request_id"),
    ({"tokens": "t"}, "tokens"), ({"tokens": [1]}, "tokens[0]"), ({"iban": "x"}, "iban"),
    ({"sub_activity_id": "nope"}, "sub_activity_id"),
])
def test_withdraw__bad_field__400_nothing_debited(client, campaign, change, field):
    user = funded(campaign, 100)
    status, answer = withdraw(client, campaign, user, {**withdrawal_body(campaign, 10), **change})
    assert (status, answer["code"], answer["field"]) == (400, "invalid_field", field)
    assert int(wallet_item(wallet_id_of(campaign, user)).balance) == 100


def test_withdraw__payout_fails__502_refund_entry_and_balance_restored(client, campaign):
    # GIVEN 500, and a payout provider that refuses transfers
    user = funded(campaign, 500)
    body = withdrawal_body(campaign, 200)
    # WHEN 200 is withdrawn, and the request repeated
    with payout_mode("fail"):
        status, answer = withdraw(client, campaign, user, body)
        again = withdraw(client, campaign, user, body)
    expected = problem('payout_failed',
                       'payout failed and was refunded: fake provider refused', request_id=body['request_id'],
                       amount=200, status=REFUNDED, failure='fake provider refused')
    # THEN both answer 502 payout_failed, and a refund entry put the 200 back
    assert (status, {k: v for k, v in answer.items() if k != "balance"}) == (502, expected)
    assert answer["balance"] == 500
    assert again == (502, expected)
    sums = ledger_sums(wallet_id_of(campaign, user))
    assert (sums.credits, sums.withdrawals, sums.refunds, sums.balance) == (500, 200, 200, 500)
    assert wallet(client, campaign, user) | {} == {"balance": 500, "pending": 0, "total_income": 500,
                                                  "total_withdrawn": 200, "total_refunded": 200, "currency": "CNY"}
    # the refunded money can be withdrawn again
    assert withdraw(client, campaign, user, withdrawal_body(campaign, 500))[0] == 200


@pytest.mark.parametrize(("mode", "sweep_mode", "final", "provider"), [
    ("timeout", "ok", PAID, "PAID"),
    ("timeout", "fail", REFUNDED, "FAILED"),
    ("timeout_after_paying", "fail", PAID, "PAID"),
])
def test_withdraw__payout_times_out__202_pending_then_the_sweeper_settles_once(client, campaign, monkeypatch, mode,
                                                                            sweep_mode, final, provider):
    # GIVEN a provider that times out (before, or after paying)
    user = funded(campaign, 500)
    body = withdrawal_body(campaign, 300)
    with payout_mode(mode):
        # WHEN 300 is withdrawn THEN it is debited and answered as pending
        status, answer = withdraw(client, campaign, user, body)
        assert (status, answer) == (202, {"request_id": body["request_id"], "amount": 300, "status": PAYOUT_PENDING,
                                          "balance": 200})
        # a sweep inside the grace period leaves it alone; a repeat answers pending
        withdrawals.sweep_unresolved()
        assert withdraw(client, campaign, user, body)[0] == 202
    # WHEN the sweeper runs after its grace period, twice, with the provider now answering
    with payout_mode(sweep_mode):
        settle_by_sweeper(monkeypatch)
        settle_by_sweeper(monkeypatch)
    # THEN it is settled as the provider decided (never paid twice, never paid and refunded)
    record = WithdrawalItem.get(wallet_id_of(campaign, user), body["request_id"], consistent_read=True)
    assert (record.status, payout_record(body["request_id"]).status) == (final, provider)
    assert record.unresolved_bucket is None
    sums = ledger_sums(wallet_id_of(campaign, user))
    refunded = 300 if final == REFUNDED else 0
    assert (sums.withdrawals, sums.refunds, sums.balance) == (300, refunded, 200 + refunded)
    assert int(wallet_item(wallet_id_of(campaign, user)).balance) == 200 + refunded
    status, _ = withdraw(client, campaign, user, body)
    assert status == (200 if final == PAID else 502)


def test_withdraw__payout_keeps_timing_out__stays_pending_money_stays_debited(client, campaign, monkeypatch):
    # GIVEN a provider that keeps timing out
    user = funded(campaign, 100)
    body = withdrawal_body(campaign, 100)
    with payout_mode("timeout"):
        assert withdraw(client, campaign, user, body)[0] == 202
        # WHEN the sweeper runs THEN the withdrawal stays pending: no refund of money that may be paid
        settle_by_sweeper(monkeypatch)
        record = WithdrawalItem.get(wallet_id_of(campaign, user), body["request_id"], consistent_read=True)
        assert (record.status, payout_record(body["request_id"]).status) == (PAYOUT_PENDING, "UNKNOWN")
        assert int(wallet_item(wallet_id_of(campaign, user)).balance) == 0
    # WHEN the provider recovers THEN the next sweep pays it (its next check backed off to two minutes later)
    settle_by_sweeper(monkeypatch, after_ms=61_000 + 121_000)
    assert withdraw(client, campaign, user, body)[0] == 200


# --- switches and tokens ---------------------------------------------------------------------


def test_withdraw__switched_off__503_nothing_debited(client, campaign):
    # GIVEN 100 WHEN withdrawing while withdrawals are switched off THEN refused, nothing debited
    user = funded(campaign, 100)
    with switch(client, "withdrawals", {"enabled": False}):
        status, answer = withdraw(client, campaign, user, withdrawal_body(campaign, 50))
    assert (status, answer) == (503, problem('switched_off', 'withdrawals are switched off', switch='withdrawals'))
    assert int(wallet_item(wallet_id_of(campaign, user)).balance) == 100


def test_withdraw__gray_percentage__admits_only_users_inside_it(client, campaign):
    # GIVEN a 30 % gray rollout, a user inside it and one outside, both with a pending reward
    inside = next(u for u in (f"g{n}" for n in range(1000)) if ids.gray_admits(u, 30))
    outside = next(u for u in (f"g{n}" for n in range(1000)) if not ids.gray_admits(u, 30))
    for user in (inside, outside):
        grant(campaign, user, "seed", 100)
    with switch(client, "withdrawal_gray_percent", {"percent": 30}):
        # WHEN both withdraw THEN only the one inside is served
        ok = withdraw(client, campaign, inside, withdrawal_body(campaign, 10))
        refused = withdraw(client, campaign, outside, withdrawal_body(campaign, 10))
    assert ok[0] == 200
    assert refused == (503, problem('switched_off',
                                    'withdrawals are not yet open to this user', switch='withdrawal_gray_percent'))
    # refused before anything was forced in: the outside user's reward is still pending
    assert wallet_item(wallet_id_of(campaign, outside)) is None


def test_withdraw__own_tokens__accepted_and_never_credit_twice(client, campaign):
    # GIVEN a credited reward WHEN withdrawn presenting its token twice THEN it is not credited again
    user = uid("u")
    token = grant(campaign, user, "r1", 250)["token"]
    credit(campaign, user, "r1")
    status, answer = withdraw(client, campaign, user, withdrawal_body(campaign, 250, tokens_=[token, token]))
    assert (status, answer["balance"]) == (200, 0)
    sums = ledger_sums(wallet_id_of(campaign, user))
    assert (sums.credits, len(sums.credited_orders)) == (250, 1)


def test_withdraw__token_of_another_user__400_invalid_token_nothing_debited_or_credited(client, campaign):
    # GIVEN a thief with 100 and a victim's pending 900 WHEN the thief presents the victim's token
    victim, thief = uid("victim"), funded(campaign, 100)
    token = grant(campaign, victim, "r1", 900)["token"]
    status, answer = withdraw(client, campaign, thief, withdrawal_body(campaign, 50, tokens_=[token]))
    # THEN it is refused; nothing debited from the thief, nothing credited anywhere
    assert (status, answer) == (400, problem('invalid_token', 'tokens[0]: token is for another wallet', index=0))
    assert int(wallet_item(wallet_id_of(campaign, thief)).balance) == 100
    assert ledger_sums(wallet_id_of(campaign, thief)).withdrawals == 0
    assert wallet_item(wallet_id_of(campaign, victim)) is None


def test_withdraw__tampered_token__400_invalid_token_nothing_debited(client, campaign):
    # GIVEN a reward token with its signature altered WHEN presented THEN refused before anything happens
    user = uid("u")
    token = grant(campaign, user, "r1", 100)["token"]
    header, claims, signature = token.split(".")
    forged = f"{header}.{claims}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    status, answer = withdraw(client, campaign, user, withdrawal_body(campaign, 50, tokens_=[forged]))
    assert (status, answer["code"], answer["index"]) == (400, "invalid_token", 0)
    assert wallet_item(wallet_id_of(campaign, user)) is None


# --- reads racing a credit -------------------------------------------------------------------


def credit_lands_around_the_pending_read(monkeypatch, campaign: Campaign, act_id: str, rain_id: str,
                                        when: str) -> None:
    """Make the worker credit an order just before (or just after) the read path looks up pending orders:
    a credit landing between a reader's reads, deterministically."""
    real = wallets.pending_orders
    done = []

    def pending_read_with_a_credit(*args, **kwargs):
        if when == "before" and not done:
            done.append(True)
            credit(campaign, act_id, rain_id)
        found = real(*args, **kwargs)
        if when == "after" and not done:
            done.append(True)
            credit(campaign, act_id, rain_id)
        return found

    monkeypatch.setattr(wallets, "pending_orders", pending_read_with_a_credit)


@pytest.mark.parametrize("when", ["before", "after"])
def test_wallet__credit_lands_during_the_read__reward_counted_exactly_once(client, campaign, monkeypatch, when):
    """The issue's promise: the user never sees a reward disappear while it queues (nor twice)."""
    # GIVEN a pending reward WHEN it is credited while the wallet is being read
    user = uid("u")
    grant(campaign, user, "r1", 300)
    credit_lands_around_the_pending_read(monkeypatch, campaign, user, "r1", when)
    body = wallet(client, campaign, user)
    # THEN it is in the balance or pending, exactly once
    assert body["balance"] + body["pending"] == 300, body


@pytest.mark.parametrize("when", ["before", "after"])
def test_flow__credit_lands_during_the_read__row_neither_lost_nor_repeated(client, campaign, monkeypatch, when):
    # GIVEN a pending reward WHEN it is credited while the flow is being read THEN it is listed once
    user = uid("u")
    grant(campaign, user, "r1", 300)
    credit_lands_around_the_pending_read(monkeypatch, campaign, user, "r1", when)
    status, body = call(client, "GET", f"/v1/wallets/{user}/flow?activity_id={campaign.activity_id}")
    assert status == 200
    assert [(r["order_id"], r["amount"]) for r in body["items"]] == [(order_id_of(campaign, user, "r1"), 300)]


def test_wallet__credited_and_pending_orders_share_the_partition__each_counted_once(client, campaign):
    """Pending rewards are a strongly consistent Query of the wallet's own ledger partition (an order is its
    wallet's credit entry): a reward credited a moment ago is never also listed as pending."""
    # GIVEN a credited reward and a pending one in one wallet
    user = uid("u")
    grant(campaign, user, "r1", 300)
    grant(campaign, user, "r2", 200)
    credit(campaign, user, "r1")
    # WHEN the wallet and its flow are read
    body = wallet(client, campaign, user)
    status, flow = call(client, "GET", f"/v1/wallets/{user}/flow?activity_id={campaign.activity_id}")
    # THEN the credited reward is balance only, the other pending only
    assert status == 200
    assert (body["balance"], body["pending"]) == (300, 200)
    assert sorted((r["type"], r["amount"]) for r in flow["items"]) == [("credit", 300), ("pending", 200)]
