"""Payout reconciliation on DynamoDB Local: an hour's withdrawals against the fake provider's own ledger.

Each test runs in an hour of its own (a simulated clock far in the future), so the hour holds only its
withdrawals and payouts; the provider's ledger is tampered with directly to seed each inconsistency."""

from __future__ import annotations

import uuid

import pytest

from chalicelib import clock
from chalicelib.reconcile import payouts as payout_reconcile
from chalicelib.reconcile import runner
from chalicelib.rewards.payouts import FAKE_PK, FakePayoutProvider
from chalicelib.rewards.tables import ConfigItem, WithdrawalItem
from tests.conftest import uid
from tests.rewards_support import (
    HOUR_MS,
    Campaign,
    grant_direct,
    make_campaign,
    payout_mode,
    wallet_id_of,
    withdraw_direct,
)

RUN_NS = "_run"


class SimClock:
    """`clock.now_ms` under the test's control."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start_ms: int) -> None:
        self.now = start_ms
        monkeypatch.setattr(clock, "now_ms", lambda: self.now)


@pytest.fixture
def world(client, monkeypatch) -> tuple[Campaign, SimClock, str]:
    # an hour of its own, 2090 onwards; ten minutes into it
    hour_start = (3_786_912_000_000 // HOUR_MS + uuid.uuid4().int % 100_000) * HOUR_MS
    sim = SimClock(monkeypatch, hour_start + 10 * 60_000)
    campaign = make_campaign(client, total=1_000_000, order_cap=10_000, now_ms=sim.now)
    return campaign, sim, clock.hour_of(hour_start)


def funded_withdrawal(campaign: Campaign, amount: int, mode: str = "ok") -> tuple[str, WithdrawalItem]:
    user = uid("u")
    status, body = grant_direct(campaign.grant_body(user, rain_id="seed", amount=amount))
    assert status == 202, body
    request_id = uid("wd")
    with payout_mode(mode):
        withdraw_direct(user, {"activity_id": campaign.activity_id, "request_id": request_id, "amount": amount})
    return user, WithdrawalItem.get(wallet_id_of(campaign, user), request_id, consistent_read=True)


def reconcile(hour: str, sim: SimClock) -> payout_reconcile.PayoutReconciliation:
    sim.now = clock.hour_start_ms(hour) + HOUR_MS + 6 * 60_000  # the first pass's time: h+1 and its grace
    return payout_reconcile.reconcile_hour(hour, RUN_NS)


def kinds(found) -> list[tuple[str, str, str]]:
    return sorted((f.kind, f.id, f.details.get("reason", "")) for f in found)


def test_payout_reconciliation__clean_hour__nothing_found(world):
    # GIVEN an hour with two paid withdrawals and one the provider refused (refunded)
    campaign, sim, hour = world
    funded_withdrawal(campaign, 300)
    funded_withdrawal(campaign, 200)
    _, refused = funded_withdrawal(campaign, 100, mode="fail")
    assert refused.status == "REFUNDED"
    # WHEN the hour is reconciled THEN nothing is found, and both payments were looked at
    result = reconcile(hour, sim)
    assert result.findings == []
    assert (result.summary["withdrawals"], result.summary["paid"], result.summary["provider_paid"]) == (3, 2, 2)


def test_payout_reconciliation__provider_paid_a_payout_unknown_here__exactly_that_mismatch(world):
    # GIVEN a clean hour, and a transfer the provider made that no withdrawal asked for
    campaign, sim, hour = world
    user, _ = funded_withdrawal(campaign, 300)
    FakePayoutProvider().transfer("postray" + uuid.uuid4().hex, user, 70)
    stray = [p for p in FakePayoutProvider().records(clock.hour_start_ms(hour), sim.now + 1)
             if p.payout_id.startswith("postray")]
    # WHEN the hour is reconciled THEN exactly that payout is reported
    found = reconcile(hour, sim).findings
    assert kinds(found) == [("payout_mismatch", stray[0].payout_id, "paid_by_provider_unknown_here")]
    assert (found[0].ns, found[0].details["paid_amount"], found[0].details["paid_recipient"]) == (RUN_NS, 70, user)


def test_payout_reconciliation__paid_here_but_not_by_the_provider__exactly_that_mismatch(world):
    # GIVEN two paid withdrawals, one of which the provider's ledger does not hold
    campaign, sim, hour = world
    funded_withdrawal(campaign, 300)
    _, lost = funded_withdrawal(campaign, 200)
    ConfigItem(FAKE_PK, lost.payout_id).delete(add_version_condition=False)
    # WHEN the hour is reconciled THEN exactly that withdrawal is reported, in its child's namespace
    found = reconcile(hour, sim).findings
    assert kinds(found) == [("payout_mismatch", lost.payout_id, "paid_here_not_by_provider")]
    assert (found[0].ns, found[0].details["request_id"], found[0].details["amount"]) == (
        f"{campaign.activity_id}/formal", lost.request_id, 200)


def test_payout_reconciliation__refunded_here_but_paid_by_the_provider__mismatch(world):
    # GIVEN a withdrawal refunded here whose payout the provider nonetheless paid (its ledger says PAID)
    campaign, sim, hour = world
    user, refunded = funded_withdrawal(campaign, 150, mode="fail")
    ConfigItem(FAKE_PK, refunded.payout_id).delete(add_version_condition=False)
    FakePayoutProvider().transfer(refunded.payout_id, user, 150)
    # WHEN the hour is reconciled THEN it is reported
    assert kinds(reconcile(hour, sim).findings) == [("payout_mismatch", refunded.payout_id,
                                                     "paid_by_provider_not_here")]


def test_payout_reconciliation__pending_past_the_grace_period__unresolved(world):
    # GIVEN a payout that timed out and that no sweeper has settled
    campaign, sim, hour = world
    _, pending = funded_withdrawal(campaign, 120, mode="timeout")
    assert pending.status == "PAYOUT_PENDING"
    # WHEN the hour is reconciled (an hour later) THEN it is reported unresolved, and not as a mismatch
    assert kinds(reconcile(hour, sim).findings) == [("payout_unresolved", pending.payout_id, "")]


def test_reconciliation_pass__payout_mismatch__in_the_child_report_of_the_hourly_pass(world):
    # GIVEN an hour with a paid withdrawal the provider's ledger does not hold
    campaign, sim, hour = world
    _, lost = funded_withdrawal(campaign, 200)
    ConfigItem(FAKE_PK, lost.payout_id).delete(add_version_condition=False)
    # WHEN the hourly pass runs over the hour
    sim.now = clock.hour_start_ms(hour) + HOUR_MS + 6 * 60_000
    assert runner.run(hour, 1, runner.Budget(None)).status == "done"
    # THEN the child's report lists it, and the run report has the payout summary
    reports = {(r.get("sub_activity_id"), r["pass"]): r for r in runner.reports(hour)
               if r.get("activity_id") in (campaign.activity_id, None)}
    child = reports[("formal", 1)]["discrepancies"]
    assert child["payout_mismatch"]["count"] == 1
    assert [i["id"] for i in child["payout_mismatch"]["items"]] == [lost.payout_id]
    assert reports[(None, 1)]["payouts"]["paid"] == 1
