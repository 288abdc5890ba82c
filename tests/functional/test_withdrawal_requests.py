"""Withdrawal request ids are the caller's, unique per user and parent activity: what the payout provider
actually paid each user (read from the fake provider's own ledger) must equal that user's PAID withdrawals,
when two users share a request id and when one user repeats a request after a child window has closed.
Runs on DynamoDB Local (tests/conftest.py)."""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import clock
from chalicelib.errors import PayoutConflict
from chalicelib.rewards.payouts import FakePayoutProvider
from chalicelib.rewards.tables import ConfigItem
from tests.conftest import uid
from tests.problems import problem
from tests.rewards_support import (
    HOUR_MS,
    Campaign,
    call,
    grant_direct,
    ledger_sums,
    make_campaign,
    wallet_id_of,
    wallet_item,
    withdraw_direct,
)

FAKE_LEDGER_PK = "payout-fake"  # where the fake provider keeps its transfers (one item each)


def provider_paid() -> dict[str, int]:
    """What the fake provider moved, per recipient user, read straight from its ledger items."""
    paid: dict[str, int] = defaultdict(int)
    for item in ConfigItem.query(FAKE_LEDGER_PK, consistent_read=True):
        body = json.loads(item.body)
        if body.get("status") != "PAID":
            continue
        # the recipient is the user; a ledger written by a provider called with a wallet id names it inside
        recipient = body["recipient"] if "recipient" in body else body["wallet_id"].split("#")[1]
        paid[recipient] += int(body["amount"])
    return paid


def withdraw(client, act_id: str, body: dict) -> tuple[int, dict]:
    return call(client, "POST", f"/v1/wallets/{act_id}/withdrawals", body)


def fund(campaign: Campaign, act_id: str, amount: int) -> None:
    """A pending reward in the child open now (a withdrawal forces it in): won now, so `open_time_ms` picks it."""
    status, body = grant_direct(campaign.grant_body(act_id, rain_id=uid("r"), amount=amount,
                                                    open_time_ms=clock.now_ms()))
    assert status == 202, body


@pytest.fixture
def two_children(client) -> tuple[Campaign, int]:
    """An activity whose `formal` child closes at `boundary` and whose `late` child opens there."""
    now = clock.now_ms()
    boundary = now + 24 * HOUR_MS
    campaign = make_campaign(client, total=1_000_000, order_cap=10_000, now_ms=now, extra_children=[
        {"sub_activity_id": "late", "purpose": "formal", "starts_at_ms": boundary,
         "ends_at_ms": boundary + 24 * HOUR_MS}])
    return campaign, boundary


def test_withdraw__two_users_same_request_id__provider_pays_each_exactly_their_own_amount(client, two_children):
    # GIVEN Alice with 500 and Bob with 400 in the same child
    campaign, _ = two_children
    alice, bob = uid("alice"), uid("bob")
    fund(campaign, alice, 500)
    fund(campaign, bob, 400)
    request_id = uid("wd")
    # WHEN both withdraw with the same request id (Alice 300, Bob 200)
    a = withdraw(client, alice, {"activity_id": campaign.activity_id, "request_id": request_id, "amount": 300})
    b = withdraw(client, bob, {"activity_id": campaign.activity_id, "request_id": request_id, "amount": 200})
    # THEN both are paid, and the provider moved exactly 300 to Alice and 200 to Bob
    assert a == (200, {"request_id": request_id, "amount": 300, "status": "PAID", "balance": 200})
    assert b == (200, {"request_id": request_id, "amount": 200, "status": "PAID", "balance": 200})
    paid = provider_paid()
    assert (paid[alice], paid[bob]) == (300, 200)
    # AND each withdrawal carries its own payout reference
    refs = [call(client, "GET", f"/v1/wallets/{user}/withdrawals/{request_id}?activity_id={campaign.activity_id}")
            for user in (alice, bob)]
    assert [status for status, _ in refs] == [200, 200]
    assert refs[0][1]["payout_ref"] != refs[1][1]["payout_ref"]


def test_withdraw__same_user_repeats_after_the_child_boundary__one_debit_one_payment_same_answer(
        client, two_children, monkeypatch):
    # GIVEN a user with 500 in `formal` and (after the boundary) 700 in `late`
    campaign, boundary = two_children
    user = uid("u")
    fund(campaign, user, 500)
    body = {"activity_id": campaign.activity_id, "request_id": uid("wd"), "amount": 300}
    # WHEN the user withdraws 300 in `formal`
    first = withdraw(client, user, body)
    # AND repeats the same request after `formal` closed, once `late` holds money
    monkeypatch.setattr(clock, "now_ms", lambda: boundary + 1_000)
    fund(campaign, user, 700)
    again = withdraw(client, user, body)
    conflict = withdraw(client, user, {**body, "amount": 301})
    # THEN the repeat answers the first outcome, and the other amount is an explicit conflict
    assert first == (200, {"request_id": body["request_id"], "amount": 300, "status": "PAID", "balance": 200})
    assert again == (200, {"request_id": body["request_id"], "amount": 300, "status": "PAID"})
    assert conflict == (409, problem("withdrawal_conflict",
                                     f"withdrawal {body['request_id']} exists with a different amount",
                                     request_id=body["request_id"], existing_amount=300))
    # AND 300 left the user's money once: `formal` debited once, `late` never, the provider paid 300 once
    formal, late = ledger_sums(wallet_id_of(campaign, user)), ledger_sums(wallet_id_of(campaign, user, "late"))
    assert (formal.withdrawals, formal.balance) == (300, 200)
    assert late.withdrawals == 0
    late_wallet = wallet_item(wallet_id_of(campaign, user, "late"))
    assert late_wallet is None or int(late_wallet.total_withdrawn) == 0
    assert provider_paid()[user] == 300
    # AND reading it back from either child's time answers the withdrawal in `formal`
    status, record = call(client, "GET",
                          f"/v1/wallets/{user}/withdrawals/{body['request_id']}?activity_id={campaign.activity_id}")
    assert (status, record["sub_activity_id"], record["amount"], record["status"]) == (200, "formal", 300, "PAID")


def test_withdraw__same_request_in_two_children_at_once__one_debit_one_payment(client, two_children, monkeypatch):
    # GIVEN a user with 500 in each child
    campaign, boundary = two_children
    user = uid("u")
    fund(campaign, user, 500)
    with monkeypatch.context() as later:
        later.setattr(clock, "now_ms", lambda: boundary + 1_000)
        fund(campaign, user, 500)
    request_id = uid("wd")
    # WHEN the same request is sent 8 times at once, naming one child or the other
    bodies = [{"activity_id": campaign.activity_id, "sub_activity_id": ("formal", "late")[i % 2],
               "request_id": request_id, "amount": 300} for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: withdraw_direct(user, b), bodies))
    # THEN every answer is the one withdrawal (a repeat racing the first call may see it still pending)
    seen = {(s, a["request_id"], a["amount"], a["status"]) for s, a in answers}
    assert (200, request_id, 300, "PAID") in seen
    assert seen <= {(200, request_id, 300, "PAID"), (202, request_id, 300, "PAYOUT_PENDING")}
    # AND 300 left one wallet once and was paid once
    debited = [ledger_sums(wallet_id_of(campaign, user, c)).withdrawals for c in ("formal", "late")]
    assert sorted(debited) == [0, 300]
    assert provider_paid()[user] == 300


def test_withdrawal_read__unknown_request_or_other_child__404_problem(client, two_children):
    # GIVEN a paid withdrawal in `formal`
    campaign, _ = two_children
    user = uid("u")
    fund(campaign, user, 100)
    request_id = uid("wd")
    body = {"activity_id": campaign.activity_id, "request_id": request_id, "amount": 60}
    assert withdraw(client, user, body)[0] == 200
    base = f"/v1/wallets/{user}/withdrawals"
    # WHEN it is read naming its child, another child, another user, an unknown request id
    named = call(client, "GET", f"{base}/{request_id}?activity_id={campaign.activity_id}&sub_activity_id=formal")
    other_child = call(client, "GET", f"{base}/{request_id}?activity_id={campaign.activity_id}&sub_activity_id=late")
    other_user = call(client, "GET",
                      f"/v1/wallets/{uid('u')}/withdrawals/{request_id}?activity_id={campaign.activity_id}")
    unknown = call(client, "GET", f"{base}/nope?activity_id={campaign.activity_id}")
    # THEN its own child answers it; the rest are 404 withdrawal_not_found naming the request id
    status, record = named
    assert (status, record["sub_activity_id"], record["amount"], record["status"]) == (200, "formal", 60, "PAID")
    assert record["payout_ref"].startswith("fake-po") and record["resolved_at_ms"] >= record["created_at_ms"]
    expected = problem("withdrawal_not_found", f"no withdrawal {request_id} for this user in activity "
                       f"{campaign.activity_id}", request_id=request_id)
    assert other_child == (404, expected) and other_user == (404, expected)
    assert unknown == (404, problem("withdrawal_not_found",
                                    f"no withdrawal nope for this user in activity {campaign.activity_id}",
                                    request_id="nope"))


def test_fake_provider__repeat_with_other_content__conflict_pays_nothing_and_records_windowed():
    # GIVEN a payout of 100 to alice
    provider = FakePayoutProvider()
    payout_id, alice = "po" + uid("t"), uid("alice")
    start = clock.now_ms()
    first = provider.transfer(payout_id, alice, 100)
    # WHEN it is repeated as it was, to another recipient, with another amount
    again = provider.transfer(payout_id, alice, 100)
    with pytest.raises(PayoutConflict):
        provider.transfer(payout_id, uid("bob"), 100)
    with pytest.raises(PayoutConflict):
        provider.transfer(payout_id, alice, 101)
    # THEN the repeat answers the first outcome, and the ledger holds one payment of 100 to alice
    assert first == again and first.status == "PAID" and provider.status(payout_id) == first
    mine = [r for r in provider.records(start, clock.now_ms() + 1) if r.payout_id == payout_id]
    assert [(r.recipient, r.amount, r.status) for r in mine] == [(alice, 100, "PAID")]
    assert [r for r in provider.records(start - HOUR_MS, start) if r.payout_id == payout_id] == []
    assert provider.status("po-never-seen").status == "UNKNOWN"
