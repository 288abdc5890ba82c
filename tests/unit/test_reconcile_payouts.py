"""The payout reconciliation decision (chalicelib.reconcile.payouts.decide): pure, rows in, findings out."""

from __future__ import annotations

from chalicelib.reconcile.payouts import (
    UNRESOLVED_AFTER_MS,
    WithdrawalRow,
    decide,
    foreign_paid,
    provider_window,
    unresolved,
)
from chalicelib.rewards.payouts import PayoutRecord

HOUR = 3600 * 1000
START = 1_000 * HOUR
END = START + HOUR
NOW = END + 6 * 60_000
NS = "act1/formal"


def row(payout_id: str, status: str = "PAID", amount: int = 100, recipient: str = "alice", at: int = START + 60_000,
        resolved: int | None = START + 61_000) -> WithdrawalRow:
    return WithdrawalRow(payout_id=payout_id, request_id=f"r-{payout_id}", wallet_id=f"{NS}#{recipient}#CNY", ns=NS,
                         recipient=recipient, amount=amount, status=status, created_at_ms=at,
                         resolved_at_ms=None if status == "PAYOUT_PENDING" else resolved)


def paid(payout_id: str, amount: int = 100, recipient: str = "alice", at: int = START + 60_500,
         status: str = "PAID") -> PayoutRecord:
    return PayoutRecord(payout_id, recipient, amount, status, at)


def found(ours, theirs, elsewhere=None, now=NOW):
    return sorted((f.kind, f.ns, f.id, f.details.get("reason", ""))
                  for f in decide(START, END, now, ours, theirs, elsewhere or {}, "_run"))


def test_decide__clean_hour__nothing():
    ours = [row("p1"), row("p2", amount=250, recipient="bob"), row("p3", status="REFUNDED")]
    theirs = [paid("p1"), paid("p2", amount=250, recipient="bob"), paid("p3", status="FAILED")]
    assert found(ours, theirs) == []


def test_decide__provider_paid_a_payout_unknown_here__that_mismatch_only():
    assert found([row("p1")], [paid("p1"), paid("px", amount=70)], {"px": None}) == [
        ("payout_mismatch", "_run", "px", "paid_by_provider_unknown_here")]


def test_decide__paid_here_not_by_provider__that_mismatch_only():
    assert found([row("p1"), row("p2")], [paid("p1"), paid("p2", status="FAILED")]) == [
        ("payout_mismatch", NS, "p2", "paid_here_not_by_provider")]


def test_decide__refunded_here_paid_by_provider__mismatch():
    assert found([row("p1", status="REFUNDED")], [paid("p1")]) == [
        ("payout_mismatch", NS, "p1", "paid_by_provider_not_here")]


def test_decide__amount_or_recipient_differs__mismatch_each():
    ours = [row("p1"), row("p2")]
    theirs = [paid("p1", amount=101), paid("p2", recipient="mallory")]
    assert found(ours, theirs) == [("payout_mismatch", NS, "p1", "amount_or_recipient_differs"),
                                   ("payout_mismatch", NS, "p2", "amount_or_recipient_differs")]


def test_decide__pending__unresolved_only_once_overdue_and_never_a_mismatch():
    pending = row("p1", status="PAYOUT_PENDING", at=END - 60_000)
    assert found([pending], [paid("p1")], now=END - 60_000 + UNRESOLVED_AFTER_MS) == []
    assert found([pending], [paid("p1")], now=END - 60_000 + UNRESOLVED_AFTER_MS + 1) == [
        ("payout_unresolved", NS, "p1", "")]


def test_decide__paid_in_this_hour_issued_in_another__checked_against_its_withdrawal():
    earlier_paid = row("pe", at=START - 10 * 60_000, resolved=START + 5_000)
    earlier_refunded = row("pr", status="REFUNDED", at=START - 10 * 60_000, resolved=START + 5_000)
    theirs = [paid("pe", at=START + 1_000), paid("pr", at=START + 2_000)]
    assert found([], theirs, {"pe": earlier_paid, "pr": earlier_refunded}) == [
        ("payout_mismatch", NS, "pr", "paid_by_provider_not_here")]


def test_foreign_paid__only_paid_records_inside_the_hour_not_issued_in_it():
    theirs = [paid("p1"), paid("late", at=END), paid("early", at=START - 1), paid("px"), paid("pf", status="FAILED")]
    assert foreign_paid(START, END, [row("p1")], theirs) == {"px"}


def test_provider_window__reaches_the_latest_settlement_here():
    start, end = provider_window(START, END, [row("p1", resolved=END + 3 * HOUR), row("p2", status="PAYOUT_PENDING")])
    assert start < START and end > END + 3 * HOUR


def test_unresolved__no_provider__only_overdue_pending_reported_saying_provider_unavailable():
    # GIVEN a paid, a refunded, a pending-but-recent and a pending-overdue withdrawal, and no provider to ask
    ours = [row("p1"), row("p2", status="REFUNDED"), row("p3", status="PAYOUT_PENDING", at=NOW - 60_000),
            row("p4", status="PAYOUT_PENDING", amount=800, at=NOW - UNRESOLVED_AFTER_MS - 1)]
    # WHEN only the unresolved ones are reported
    findings = unresolved(ours, NOW)
    # THEN the overdue pending one is reported, with its amount and that no provider could be asked
    assert [(f.kind, f.id, f.details["amount"], f.details["provider_unavailable"]) for f in findings] == [
        ("payout_unresolved", "p4", 800, True)]
    assert "provider_paid" not in findings[0].details
