"""The rewards sweeper's two parts are isolated (review finding F5).

Before the fix it re-sent unsent credit messages first and settled payouts second, under one deadline and with
no isolation: while SQS hangs (the very outage that makes orders `unsent`), the re-send spent the whole
invocation on timed-out sends, the deadline ended the run with an exception, and the payout sweep never ran.
Now payouts go first, a failure in either part never stops the other, and the re-send stops at its first
failed send (the rest keep their `unsent` flag for the next run).

Time is a fake monotonic clock (each hung send costs one call's bound, 13 s with the default settings); the
sweeper runs with the 60 s timeout `.chalice/config.json` gives it.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from chalicelib import clients, clock, deadline
from chalicelib.rewards import grants, sending
from chalicelib.rewards.orders import parse_grant
from chalicelib.rewards.tables import PAYOUT_PENDING
from chalicelib.settings import reset_settings
from rewardgate_ops.lambda_events import LocalLambdaContext, scheduled_event
from tests.rewards_support import (
    deliver_credits,
    grant_direct,
    ledger_sums,
    make_campaign,
    payout_mode,
    purge_credits,
    withdraw_direct,
)


class HungSqs:
    """An SQS endpoint that never answers: each call costs one call's bound of (fake) time, then fails."""

    def __init__(self, now: list[float]) -> None:
        self.now = now
        self.calls = 0

    def send_message_batch(self, **_kwargs: Any) -> dict:
        self.calls += 1
        self.now[0] += deadline.call_bound_s()
        raise EndpointConnectionError(endpoint_url="https://sqs.invalid")


@pytest.fixture
def default_timeouts(monkeypatch):
    """The deployed timeouts (the test stack raises the read timeout to 30 s): one call's bound is 13 s."""
    monkeypatch.setenv("RG_AWS_READ_TIMEOUT_S", "5")
    reset_settings()
    assert deadline.call_bound_s() == 13
    yield
    monkeypatch.undo()
    reset_settings()


def test_rewards_sweeper__sqs_hung_with_unsent_orders__decided_payouts_still_settled(client, monkeypatch,
                                                                                      default_timeouts):
    purge_credits()
    campaign = make_campaign(client, total=1_000_000, order_cap=10_000)
    # GIVEN a user credited 500 fen who withdraws it; the provider pays but its answer is lost (PAYOUT_PENDING)
    assert grant_direct(campaign.grant_body("payee", amount=500))[0] == 202
    deliver_credits()
    with payout_mode("timeout_after_paying"):
        status, pending = withdraw_direct("payee", {"activity_id": campaign.activity_id, "request_id": "wd-starved",
                                                    "amount": 500})
    assert (status, pending["status"]) == (202, PAYOUT_PENDING)
    # AND 16 orders whose credit messages could not be sent (SQS is down): flagged unsent, as a failed send flags
    flagged = []
    for n in range(16):
        order, created = grants.place(parse_grant(campaign.grant_body(f"unsent{n}", amount=10)))
        assert created
        sending._mark_unsent(order)
        flagged.append(order)
    # WHEN the sweeper runs two minutes later (the payout is due for a check) while SQS hangs
    later = clock.now_ms() + 120_000
    monkeypatch.setattr(clock, "now_ms", lambda: later)
    fake = [1_000_000.0]
    monkeypatch.setattr(deadline, "_now", lambda: fake[0])
    hung = HungSqs(fake)
    monkeypatch.setattr(clients, "sqs", lambda: hung)
    monkeypatch.setattr(clients, "queue_url", lambda name: f"https://sqs.invalid/{name}")
    from chalicelib.routes.rewards import rewards_sweeper

    try:
        outcome: Any = rewards_sweeper(scheduled_event("rewards_sweeper"), LocalLambdaContext("rewards_sweeper", 60))
    except Exception as exc:  # the run's outcome is printed; the assertion below decides
        outcome = exc
    print(f"sweeper outcome: {outcome!r}; hung sends: {hung.calls}; fake time spent: {fake[0] - 1_000_000.0:.0f} s")
    # THEN the run ends normally, having settled the payout the provider decided, and sent SQS one call only
    from chalicelib.rewards import withdrawals

    record = withdrawals.find(campaign.activity_id, "payee", "wd-starved")
    print("withdrawal after the sweep:", record.status)
    assert record.status == "PAID"
    # (other tests of the session may leave payouts due in the same tables: this one is checked by its record)
    assert isinstance(outcome, dict) and outcome["resent"] == 0 and outcome["settled_withdrawals"] >= 1, outcome
    assert hung.calls == 1
    # AND every order not sent keeps its flag for the next run
    assert all(_still_unsent(o) for o in flagged)


def _still_unsent(order: Any) -> bool:
    from chalicelib.rewards.tables import LedgerEntry

    return LedgerEntry.get(order.wallet_id, order.entry_key, consistent_read=True).unsent_bucket is not None


def test_rewards_sweeper__payout_sweep_fails__credits_still_resent(client, monkeypatch, default_timeouts):
    purge_credits()
    campaign = make_campaign(client, total=1_000_000, order_cap=10_000)
    # GIVEN an order of 30 fen whose credit message could not be sent (flagged unsent)
    order, created = grants.place(parse_grant(campaign.grant_body("resent", amount=30)))
    assert created
    sending._mark_unsent(order)
    # AND the payout sweep fails (the database answers nothing to its query)
    from chalicelib.errors import StorageUnavailable
    from chalicelib.rewards import withdrawals

    def failing_sweep() -> int:
        raise StorageUnavailable("payout index unavailable")

    monkeypatch.setattr(withdrawals, "sweep_unresolved", failing_sweep)
    # WHEN the sweeper runs
    from chalicelib.routes.rewards import rewards_sweeper

    outcome = rewards_sweeper(scheduled_event("rewards_sweeper"), LocalLambdaContext("rewards_sweeper", 60))
    print("sweeper outcome:", outcome)
    # THEN the run ends normally, the payout part reported as failed, the credit message re-sent
    assert outcome["settled_withdrawals"] is None
    assert outcome["resent"] >= 1
    assert not _still_unsent(order)
    # AND the user is credited the 30 fen once the worker runs
    deliver_credits()
    assert ledger_sums(order.wallet_id).credits == 30
