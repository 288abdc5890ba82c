"""A debit never paid is alarmed and reported even with no payout provider configured (review finding F7).

The payout provider setting changed to `none` while withdrawals are still PAYOUT_PENDING (a provider being
replaced, a rollback of the provider's configuration). Before the fix the payout sweeper raised
`PayoutUnavailable` on its first pending payout, every run, before it counted anything for the
`PayoutsUnresolvedPastHorizon` alarm; and payout reconciliation answered `{"provider": "none"}` with no finding.
Now both read the index without the provider: the sweeper counts it, reconciliation reports it, and both say
the provider is unavailable.

GIVEN a withdrawal debited whose payout answer was lost; WHEN the provider setting becomes `none` and an hour
passes; THEN the unresolved payout is still counted (the sweeper's past-horizon figure) or reported
(`payout_unresolved`). The clock is `clock.now_ms` moved forward; the setting is the environment variable.
"""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.reconcile import payouts as payout_reconcile
from chalicelib.rewards import payout_settle
from chalicelib.rewards.tables import PAYOUT_PENDING
from chalicelib.settings import reset_settings
from tests.rewards_support import (
    deliver_credits,
    grant_direct,
    make_campaign,
    payout_mode,
    purge_credits,
    withdraw_direct,
)


@pytest.fixture
def provider_setting(monkeypatch):
    def set_to(name: str) -> None:
        monkeypatch.setenv("RG_PAYOUT_PROVIDER", name)
        reset_settings()

    yield set_to
    monkeypatch.undo()
    reset_settings()


def test_payout_sweep__provider_setting_removed__unresolved_debit_alarmed_and_reported(
        client, monkeypatch, provider_setting):
    purge_credits()
    campaign = make_campaign(client, total=1_000_000, order_cap=10_000)
    # GIVEN 800 fen credited and withdrawn; the provider times out before paying (PAYOUT_PENDING, debited)
    assert grant_direct(campaign.grant_body("orphan", amount=800))[0] == 202
    deliver_credits()
    with payout_mode("timeout"):
        status, pending = withdraw_direct("orphan", {"activity_id": campaign.activity_id, "request_id": "wd-orphan",
                                                    "amount": 800})
    assert (status, pending["status"]) == (202, PAYOUT_PENDING)
    debited_hour = clock.hour_of(clock.now_ms())
    # WHEN the provider setting becomes `none`, and an hour later the sweeper and payout reconciliation run
    provider_setting("none")
    later = clock.now_ms() + 3_600_000
    monkeypatch.setattr(clock, "now_ms", lambda: later)
    swept = payout_settle.sweep()
    print("sweep report:", swept)
    reconciled = payout_reconcile.reconcile_hour(debited_hour, "review", later)
    print("payout reconciliation:", reconciled.summary, [f.as_dict() for f in reconciled.findings])
    # THEN the sweep counts the 800 fen debited and never paid for the alarm, saying the provider is unavailable
    assert (swept.settled, swept.past_horizon, swept.provider_unavailable) == (0, 1, True)
    # AND payout reconciliation reports exactly that payout as unresolved, saying the provider is unavailable
    mine = [f for f in reconciled.findings if f.details.get("request_id") == "wd-orphan"]
    assert [(f.kind, f.details["amount"], f.details["provider_unavailable"]) for f in mine] == [
        (payout_reconcile.PAYOUT_UNRESOLVED, 800, True)]
    assert reconciled.summary["provider_unavailable"] is True
    # AND the withdrawal stays debited and pending (nothing refunded blindly while nobody can be asked)
    from chalicelib.rewards import withdrawals

    assert withdrawals.find(campaign.activity_id, "orphan", "wd-orphan").status == PAYOUT_PENDING
