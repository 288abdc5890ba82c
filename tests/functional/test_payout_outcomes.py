"""Withdrawals against an asynchronous payout provider, on DynamoDB Local: a payout the provider is still
*processing*, or whose answer was lost, stays debited and unresolved (never refunded), is re-queried with
exponential backoff, and is counted for the alarm once it is unresolved past the horizon. Only a definite
failure refunds. Money is checked against the provider's own ledger: what it paid plus the wallet's
balance is what the user was given."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from chalicelib import clock
from chalicelib.rewards import ids, payout_states, payouts, withdrawals
from chalicelib.rewards.payout_settle import PAST_HORIZON_METRIC
from chalicelib.rewards.tables import PAID, PAYOUT_PENDING, REFUNDED, WithdrawalItem
from chalicelib.settings import reset_settings, settings
from infra.template import merge_template
from tests.conftest import uid
from tests.payout_support import AsyncProvider
from tests.rewards_support import (
    Campaign,
    grant_direct,
    ledger_sums,
    make_campaign,
    payout_mode,
    payout_record,
    wallet_id_of,
    wallet_item,
    withdraw_direct,
)

SWEEP_EVERY_MS = 2 * 60_000  # the rewards sweeper's schedule


class World:
    """A campaign, a settable clock shared with an asynchronous provider, and the sweeper."""

    def __init__(self, campaign: Campaign, provider: AsyncProvider, start_ms: int) -> None:
        self.campaign, self.provider, self.now = campaign, provider, start_ms
        provider.now_ms = start_ms

    def advance(self, ms: int) -> None:
        self.now += ms
        self.provider.now_ms = self.now

    def sweep(self) -> None:
        withdrawals.sweep_unresolved()

    def sweep_for(self, ms: int) -> None:
        """The sweeper's runs every two minutes for `ms`."""
        for _ in range(ms // SWEEP_EVERY_MS):
            self.advance(SWEEP_EVERY_MS)
            self.sweep()

    def funded(self, amount: int, user: str | None = None) -> str:
        user = user or uid("u")
        status, body = grant_direct(self.campaign.grant_body(user, rain_id="seed", amount=amount))
        assert status == 202, body
        return user

    def withdraw(self, user: str, amount: int) -> tuple[int, dict, str]:
        request_id = uid("wd")
        status, body = withdraw_direct(user, {"activity_id": self.campaign.activity_id, "request_id": request_id,
                                              "amount": amount})
        return status, body, request_id

    def record(self, user: str, request_id: str) -> WithdrawalItem:
        return WithdrawalItem.get(wallet_id_of(self.campaign, user), request_id, consistent_read=True)

    def money(self, user: str) -> tuple[int, int, int]:
        """(paid by the provider, wallet balance, refunds in the ledger) of a user."""
        wallet_id = wallet_id_of(self.campaign, user)
        return (self.provider.paid_to(user), int(wallet_item(wallet_id).balance), ledger_sums(wallet_id).refunds)


@pytest.fixture
def world(client, monkeypatch) -> World:
    start_ms = int(time.time() * 1000)
    provider = AsyncProvider()
    the_world = World(make_campaign(client, total=10_000_000, order_cap=10_000, now_ms=start_ms), provider, start_ms)
    monkeypatch.setattr(clock, "now_ms", lambda: the_world.now)
    monkeypatch.setattr(payouts, "provider", lambda: provider)
    return the_world


def test_withdraw__provider_answers_processing_then_pays__pending_then_paid_never_refunded(world):
    # GIVEN a user given 500 and a provider that accepts transfers as *processing*
    user = world.funded(500)
    # WHEN 300 is withdrawn
    status, body, request_id = world.withdraw(user, 300)
    # THEN it is debited and pending: nothing refunded while the provider may still pay
    assert (status, body) == (202, {"request_id": request_id, "amount": 300, "status": PAYOUT_PENDING,
                                    "balance": 200})
    assert world.money(user) == (0, 200, 0)
    # WHEN the provider pays later and the sweeper comes by
    world.provider.complete(PAID)
    world.sweep_for(4 * 60_000)
    # THEN the withdrawal is PAID: 300 paid once, 200 left, no refund (paid + balance = the 500 given)
    record = world.record(user, request_id)
    assert (record.status, record.payout_ref) == (PAID, f"ref-{record.payout_id}")
    assert world.money(user) == (300, 200, 0)


def test_sweeper__answer_lost_then_the_resubmission_is_processing__never_refunded_ends_paid(world):
    # GIVEN a transfer call lost before the provider saw it; the provider then accepts as *processing*
    user = world.funded(400)
    world.provider.on_transfer = "timeout_unseen"
    status, _, request_id = world.withdraw(user, 400)
    assert status == 202
    world.provider.on_transfer = "processing"
    # WHEN the sweeper finds it unknown to the provider and submits the same payout id again
    world.sweep_for(2 * 60_000)
    # THEN the processing answer leaves it pending, debited, nothing refunded
    assert (world.record(user, request_id).status, world.money(user)) == (PAYOUT_PENDING, (0, 0, 0))
    assert len(world.provider.transfer_calls) == 2
    # WHEN the provider pays it THEN the next sweeps settle it PAID, once
    world.provider.complete(PAID)
    world.sweep_for(10 * 60_000)
    assert (world.record(user, request_id).status, world.money(user)) == (PAID, (400, 0, 0))


def test_sweeper__provider_paid_after_our_call_timed_out__ends_paid(world):
    # GIVEN a provider that accepted the transfer but whose answer was lost (our call timed out)
    user = world.funded(250)
    world.provider.on_transfer = "timeout_after_accepting"
    status, _, request_id = world.withdraw(user, 250)
    assert status == 202
    # WHEN it stays processing for 20 minutes, then pays
    world.sweep_for(20 * 60_000)
    assert (world.record(user, request_id).status, world.money(user)) == (PAYOUT_PENDING, (0, 0, 0))
    world.provider.complete(PAID)
    world.sweep_for(40 * 60_000)
    # THEN it ends PAID, never refunded, and the provider was asked to pay once
    assert (world.record(user, request_id).status, world.money(user)) == (PAID, (250, 0, 0))
    assert len(world.provider.transfer_calls) == 1


def test_sweeper__provider_fails_definitely_after_processing__refunded_once(world):
    # GIVEN a payout processing for a while WHEN the provider finally refuses it
    user = world.funded(300)
    status, _, request_id = world.withdraw(user, 300)
    assert status == 202
    world.sweep_for(6 * 60_000)
    world.provider.complete("FAILED")
    world.sweep_for(40 * 60_000)
    # THEN (a definite failure) it is refunded, once
    record = world.record(user, request_id)
    assert (record.status, record.failure) == (REFUNDED, "the bank refused the account")
    assert world.money(user) == (0, 300, 300)


def test_sweeper__payout_processing_for_two_hours__requeried_with_exponential_backoff(world):
    # GIVEN a payout the provider keeps processing
    user = world.funded(100)
    _, _, request_id = world.withdraw(user, 100)
    debited_at = world.now
    # WHEN the sweeper runs every two minutes for two hours
    world.sweep_for(120 * 60_000)
    # THEN the provider was asked at growing intervals (each at least twice the one before, up to the cap),
    # not at every one of the 60 sweeps
    payout_id = world.record(user, request_id).payout_id
    asked = [at - debited_at for pid, at in world.provider.status_calls if pid == payout_id]
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    print(f"status queries in two hours: {len(asked)} (60 sweeps); minutes after the debit: "
          f"{[round(a / 60_000) for a in asked]}")
    assert asked[0] >= 60_000
    assert all(b >= min(2 * a, payout_states.RECHECK_MAX_MS) for a, b in itertools.pairwise(gaps))
    assert max(gaps) <= payout_states.RECHECK_MAX_MS + SWEEP_EVERY_MS
    assert len(asked) <= 10
    assert (world.record(user, request_id).status, world.money(user)) == (PAYOUT_PENDING, (0, 0, 0))


def test_sweeper__more_stuck_payouts_than_a_page__a_new_one_is_still_settled(world):
    # GIVEN 101 withdrawals in one sweeper bucket (more than the sweeper's page of 100) whose payouts the
    # provider keeps processing (their answers were lost), then a new one the provider pays
    buckets = settings().hour_buckets
    users = (u for u in (uid("u") for _ in range(100_000))
             if ids.bucket_of(wallet_id_of(world.campaign, u), buckets) == 0)
    world.provider.on_transfer = "timeout_after_accepting"
    for user in itertools.islice(users, 101):
        world.withdraw(world.funded(10, user), 10)
        world.advance(10)
    user = next(users)
    _, _, request_id = world.withdraw(world.funded(70, user), 70)
    world.provider.complete(PAID, [world.record(user, request_id).payout_id])
    # WHEN the sweeper runs three times, two minutes apart
    world.sweep_for(3 * SWEEP_EVERY_MS)
    # THEN the new one is settled PAID
    assert (world.record(user, request_id).status, world.money(user)) == (PAID, (70, 0, 0))


def test_sweeper__status_query_of_one_payout_times_out__the_others_are_still_settled(world):
    # GIVEN a payout whose status queries time out, and a later one the provider pays
    stuck_user, paid_user = world.funded(100), world.funded(200)
    world.provider.on_transfer = "timeout_after_accepting"
    _, _, stuck_request = world.withdraw(stuck_user, 100)
    world.advance(1_000)
    _, _, paid_request = world.withdraw(paid_user, 200)
    world.provider.status_times_out.add(world.record(stuck_user, stuck_request).payout_id)
    world.provider.complete(PAID, [world.record(paid_user, paid_request).payout_id])
    # WHEN the sweeper runs
    world.sweep_for(SWEEP_EVERY_MS)
    # THEN the paid one is settled; the stuck one stays debited, its next check moved back
    assert (world.record(paid_user, paid_request).status, world.money(paid_user)) == (PAID, (200, 0, 0))
    stuck = world.record(stuck_user, stuck_request)
    assert (stuck.status, stuck.payout_answer, world.money(stuck_user)) == (PAYOUT_PENDING, "TIMEOUT", (0, 0, 0))
    assert int(stuck.next_check_at_ms) > world.now


@pytest.fixture
def ten_minute_horizon(monkeypatch):
    monkeypatch.setenv("RG_PAYOUT_UNRESOLVED_ALARM_S", "600")
    reset_settings()
    yield 600
    monkeypatch.delenv("RG_PAYOUT_UNRESOLVED_ALARM_S")
    reset_settings()


def horizon_counts(out: str) -> list[tuple[float, dict[str, str]]]:
    """The PayoutsUnresolvedPastHorizon values the sweeps emitted (CloudWatch embedded metric format), each with
    its dimensions."""
    docs = [json.loads(line) for line in out.splitlines() if '"_aws"' in line and PAST_HORIZON_METRIC in line]
    return [(value, {name: doc[name] for name in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]})
            for doc in docs for value in doc[PAST_HORIZON_METRIC]]


def horizon_lines(out: str, payout_id: str) -> list[dict]:
    """The sweeper's 'past the alarm horizon' log lines about one payout."""
    lines = [json.loads(line) for line in out.splitlines() if "payout unresolved past the alarm horizon" in line]
    return [line for line in lines if line.get("payout_id") == payout_id]


def test_sweeper__payout_unresolved_past_the_horizon__counted_for_the_alarm(world, ten_minute_horizon, capsys):
    # GIVEN a payout the provider keeps processing, and a ten-minute horizon
    user = world.funded(100)
    _, _, request_id = world.withdraw(user, 100)
    payout_id = world.record(user, request_id).payout_id
    # WHEN the sweeper runs for the first eight minutes THEN it is not reported
    world.sweep_for(8 * 60_000)
    assert horizon_lines(capsys.readouterr().out, payout_id) == []
    # WHEN it runs on for an hour THEN every check of it past ten minutes reports it (at least one an hour, since
    # checks back off to 30 minutes at most) and counts it in the alarm's metric
    world.sweep_for(60 * 60_000)
    out = capsys.readouterr().out
    reported = horizon_lines(out, payout_id)
    print(f"checks of the payout reported past the horizon in the hour: {len(reported)}; "
          f"ages (min): {[line['age_s'] // 60 for line in reported]}")
    assert len(reported) >= 2
    assert all(line["age_s"] > 600 and line["last_answer"] == "PROCESSING" for line in reported)
    counted = horizon_counts(out)
    assert sum(value for value, _ in counted) >= len(reported)
    # AND the alarm watches that very metric with the same dimensions, firing on any count within an hour
    alarm = merge_template(settings().stage)["Resources"]["PayoutUnresolvedAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["Period"], alarm["Statistic"]) == (
        PAST_HORIZON_METRIC, 0, 3600, "Sum")
    assert {(d["Name"], d["Value"]) for d in alarm["Dimensions"]} == {
        item for _, dims in counted for item in dims.items()}
    # AND the money stays debited, unrefunded
    assert (world.record(user, request_id).status, world.money(user)) == (PAYOUT_PENDING, (0, 0, 0))


def test_fake_provider__processing_mode__pending_until_the_provider_pays(client, monkeypatch):
    # GIVEN the local fake provider told to keep transfers processing
    start = int(time.time() * 1000)
    campaign = make_campaign(client, total=1_000_000, order_cap=10_000, now_ms=start)
    now = [start]
    monkeypatch.setattr(clock, "now_ms", lambda: now[0])
    user = uid("u")
    assert grant_direct(campaign.grant_body(user, rain_id="seed", amount=500))[0] == 202
    body = {"activity_id": campaign.activity_id, "request_id": uid("wd"), "amount": 300}
    with payout_mode("processing"):
        # WHEN 300 is withdrawn THEN it is pending, and a sweep while it processes changes nothing
        assert withdraw_direct(user, body)[0] == 202
        now[0] += 61_000
        withdrawals.sweep_unresolved()
        assert payout_record(body["request_id"]).status == "PROCESSING"
    # WHEN the provider is told to pay (mode ok) and the sweeper asks again
    now[0] += 121_000
    withdrawals.sweep_unresolved()
    # THEN the withdrawal is PAID, 200 left, nothing refunded; a repeat answers 200
    record = WithdrawalItem.get(wallet_id_of(campaign, user), body["request_id"], consistent_read=True)
    assert (record.status, payout_record(body["request_id"]).status) == (PAID, "PAID")
    sums = ledger_sums(wallet_id_of(campaign, user))
    assert (sums.withdrawals, sums.refunds, int(wallet_item(wallet_id_of(campaign, user)).balance)) == (300, 0, 200)
    assert withdraw_direct(user, body)[0] == 200
