"""Payout reconciliation: an hour's withdrawals against what the payout provider actually paid.

`decide` is pure (rows in, findings out). `reconcile_hour` is its adapter: it reads the withdrawals whose
payout was issued in the hour (index `by_payout_hour`, one query per payout bucket), asks the provider for
its records over the hour (extended to the latest moment one of them was settled here, since a payout is
paid before rewardgate learns of it), looks up the withdrawal of each paid record issued in another hour
(index `by_payout_id`), and confirms every suspect with strongly consistent reads before reporting it.

Kinds (each counted in the hour's report and the discrepancy alarm):
- payout_mismatch    the provider paid a payout that is not PAID here (refunded, or unknown here); a PAID
                     withdrawal the provider did not pay; or the two disagree on amount or recipient
- payout_unresolved  a withdrawal still PAYOUT_PENDING longer than the horizon `RG_PAYOUT_UNRESOLVED_ALARM_S`
                     (default 15 minutes: the provider keeps it processing, keeps timing out, or holds the
                     payout id with other content): a person must look at it. The payout sweeper counts
                     such payouts for the alarm at every check, however old their hour is
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import clock
from chalicelib.dynamo import with_retries
from chalicelib.errors import PayoutUnavailable
from chalicelib.observability import logger
from chalicelib.reconcile.findings import Finding
from chalicelib.rewards import ids
from chalicelib.rewards import payouts as provider_api
from chalicelib.rewards.payouts import PayoutRecord
from chalicelib.rewards.tables import PAID, PAYOUT_PENDING, WithdrawalItem, WithdrawalRequestItem
from chalicelib.rewards.withdrawals import PAYOUT_HOUR_BUCKETS
from chalicelib.settings import settings

PAYOUT_MISMATCH = "payout_mismatch"
PAYOUT_UNRESOLVED = "payout_unresolved"

HOUR_MS = 3600 * 1000
# The default horizon (RG_PAYOUT_UNRESOLVED_ALARM_S): a payout pending longer than this is reported.
UNRESOLVED_AFTER_MS = 15 * 60 * 1000
# How far the provider's clock may differ from ours when its records are windowed by time.
CLOCK_SLACK_MS = 5 * 60 * 1000


@dataclass(frozen=True)
class WithdrawalRow:
    """The attributes of a withdrawal payout reconciliation looks at."""

    payout_id: str
    request_id: str
    wallet_id: str
    ns: str
    recipient: str
    amount: int
    status: str
    created_at_ms: int
    resolved_at_ms: int | None


def provider_window(start_ms: int, end_ms: int, ours: Iterable[WithdrawalRow]) -> tuple[int, int]:
    """Which of the provider's records to ask for: the hour, to the latest settlement here, with clock slack."""
    latest = max((r.resolved_at_ms for r in ours if r.resolved_at_ms is not None), default=0)
    return start_ms - CLOCK_SLACK_MS, max(end_ms, latest + 1) + CLOCK_SLACK_MS


def foreign_paid(start_ms: int, end_ms: int, ours: Iterable[WithdrawalRow], theirs: Iterable[PayoutRecord]) -> set[str]:
    """Payout ids the provider paid in the hour that were not issued in it (to be looked up by payout id)."""
    issued = {r.payout_id for r in ours}
    return {p.payout_id for p in theirs
            if p.status == provider_api.PAID and start_ms <= p.at_ms < end_ms and p.payout_id not in issued}


def _mismatch(ns: str, payout_id: str, reason: str, row: WithdrawalRow | None, paid: PayoutRecord | None) -> Finding:
    details: dict[str, Any] = {"reason": reason}
    if row is not None:
        details |= {"request_id": row.request_id, "status": row.status, "amount": row.amount,
                    "recipient": row.recipient}
    if paid is not None:
        details |= {"paid_amount": paid.amount, "paid_recipient": paid.recipient, "paid_at_ms": paid.at_ms}
    return Finding(PAYOUT_MISMATCH, ns, payout_id, details)


def _against(row: WithdrawalRow, paid: PayoutRecord | None) -> Finding | None:
    """One withdrawal against the provider's PAID record of its payout id (None: the provider did not pay)."""
    if row.status == PAID and paid is None:
        return _mismatch(row.ns, row.payout_id, "paid_here_not_by_provider", row, None)
    if paid is not None and row.status != PAID and row.status != PAYOUT_PENDING:
        return _mismatch(row.ns, row.payout_id, "paid_by_provider_not_here", row, paid)
    if paid is not None and row.status == PAID and (paid.amount, paid.recipient) != (row.amount, row.recipient):
        return _mismatch(row.ns, row.payout_id, "amount_or_recipient_differs", row, paid)
    return None


def unresolved(ours: Iterable[WithdrawalRow], now_ms: int, unresolved_after_ms: int = UNRESOLVED_AFTER_MS,
               paid: Mapping[str, PayoutRecord] | None = None) -> list[Finding]:
    """`payout_unresolved` for each withdrawal pending longer than the horizon (pure).

    `paid`: the provider's PAID records by payout id, or None when no provider can be asked (then each finding
    says `provider_unavailable` instead of whether the provider paid).
    """
    found = []
    for row in ours:
        if row.status != PAYOUT_PENDING or now_ms - row.created_at_ms <= unresolved_after_ms:
            continue
        details: dict[str, Any] = {"request_id": row.request_id, "amount": row.amount, "recipient": row.recipient,
                                   "created_at_ms": row.created_at_ms}
        details |= {"provider_unavailable": True} if paid is None else {"provider_paid": row.payout_id in paid}
        found.append(Finding(PAYOUT_UNRESOLVED, row.ns, row.payout_id, details))
    return found


def decide(start_ms: int, end_ms: int, now_ms: int, ours: Iterable[WithdrawalRow], theirs: Iterable[PayoutRecord],
           elsewhere: Mapping[str, WithdrawalRow | None], run_ns: str,
           unresolved_after_ms: int = UNRESOLVED_AFTER_MS) -> list[Finding]:
    """Findings for one hour.

    `ours`: withdrawals whose payout was issued in `[start_ms, end_ms)`; `theirs`: the provider's records over
    `provider_window`; `elsewhere`: for each id of `foreign_paid`, its withdrawal (None: unknown here).
    A payout still pending here is not compared (the sweeper settles it) until it is pending longer than
    `unresolved_after_ms`: then it is `payout_unresolved`. A finding about no known withdrawal belongs to `run_ns`.
    """
    ours = list(ours)
    paid = {p.payout_id: p for p in theirs if p.status == provider_api.PAID}
    found: list[Finding] = []
    for row in ours:
        if row.status == PAYOUT_PENDING:
            found += unresolved([row], now_ms, unresolved_after_ms, paid)
            continue
        finding = _against(row, paid.get(row.payout_id))
        if finding is not None:
            found.append(finding)
    for payout_id in sorted(foreign_paid(start_ms, end_ms, ours, paid.values())):
        row = elsewhere.get(payout_id)
        if row is None:
            found.append(_mismatch(run_ns, payout_id, "paid_by_provider_unknown_here", None, paid[payout_id]))
        elif row.status != PAYOUT_PENDING and (finding := _against(row, paid[payout_id])) is not None:
            found.append(finding)
    return found


# --- adapter ---------------------------------------------------------------------------------


def _row(item: WithdrawalItem) -> WithdrawalRow | None:
    if not item.payout_id:
        return None  # written before payout ids: its provider id is the request id, not reconciled here
    return WithdrawalRow(payout_id=item.payout_id, request_id=item.request_id, wallet_id=item.wallet_id,
                         ns=item.wallet_id.partition("#")[0],
                         recipient=item.recipient or "", amount=int(item.amount), status=item.status,
                         created_at_ms=int(item.created_at_ms),
                         resolved_at_ms=None if item.resolved_at_ms is None else int(item.resolved_at_ms))


def _hour_rows(hour: str) -> list[WithdrawalRow]:
    rows = []
    for bucket in range(PAYOUT_HOUR_BUCKETS):
        items = with_retries(lambda b=bucket: list(WithdrawalItem.by_payout_hour.query(ids.hour_bucket(hour, b))))
        rows += [r for r in map(_row, items) if r is not None]
    return rows


def _consistent(row: WithdrawalRow) -> WithdrawalRow | None:
    """The withdrawal as it is now (the index may lag behind a settlement)."""
    try:
        return _row(with_retries(lambda: WithdrawalItem.get(row.wallet_id, row.request_id, consistent_read=True)))
    except WithdrawalItem.DoesNotExist:
        return None


def _by_payout_id(payout_id: str) -> WithdrawalRow | None:
    claims = with_retries(lambda: list(WithdrawalRequestItem.by_payout_id.query(payout_id, limit=1)))
    if not claims:
        return None
    try:
        item = with_retries(lambda: WithdrawalItem.get(claims[0].wallet_id, claims[0].request_id,
                                                       consistent_read=True))
    except WithdrawalItem.DoesNotExist:
        return None
    return _row(item)


@dataclass
class PayoutReconciliation:
    """What `reconcile_hour` found, and what it looked at."""

    findings: list[Finding]
    summary: dict[str, Any]


def _without_provider(hour: str, now_ms: int) -> PayoutReconciliation:
    """No provider configured: nothing can be compared, but every payout pending past the horizon is reported."""
    horizon_ms = settings().payout_unresolved_alarm_s * 1000
    ours = _hour_rows(hour)
    suspects = unresolved(ours, now_ms, horizon_ms)
    if suspects:
        ids_ = {f.id for f in suspects}
        suspects = unresolved([_consistent(r) or r for r in ours if r.payout_id in ids_], now_ms, horizon_ms)
    logger.error("payout provider unavailable: withdrawals are not compared, only unresolved ones reported",
                 extra={"hour": hour, "withdrawals": len(ours), "unresolved": len(suspects)})
    for finding in suspects:
        logger.error("payout reconciliation discrepancy", extra={"hour": hour, **finding.as_dict()})
    return PayoutReconciliation(suspects, {"provider": "none", "provider_unavailable": True, "withdrawals": len(ours),
                                           "discrepancies": len(suspects)})


def reconcile_hour(hour: str, run_ns: str, now_ms: int | None = None) -> PayoutReconciliation:
    """Compare one UTC hour's (`YYYYMMDDHH`) withdrawals with the provider's records.

    Cost: `PAYOUT_HOUR_BUCKETS` (16) index queries, one `records` call, one lookup per record paid in the hour but
    issued in another, and two strongly consistent reads per suspect.
    """
    now_ms = clock.now_ms() if now_ms is None else now_ms
    start, end = clock.hour_start_ms(hour), clock.hour_start_ms(hour) + HOUR_MS
    try:
        payout_provider = provider_api.provider()
    except PayoutUnavailable:
        return _without_provider(hour, now_ms)
    ours = _hour_rows(hour)
    theirs = payout_provider.records(*provider_window(start, end, ours))
    elsewhere = {pid: _by_payout_id(pid) for pid in foreign_paid(start, end, ours, theirs)}
    horizon_ms = settings().payout_unresolved_alarm_s * 1000
    found = decide(start, end, now_ms, ours, theirs, elsewhere, run_ns, horizon_ms)
    if found:
        # confirm: re-read each suspect strongly consistent and decide again on what is true now
        suspects = {f.id for f in found}
        fresh = [_consistent(r) or r if r.payout_id in suspects else r for r in ours]
        elsewhere = {pid: _by_payout_id(pid) if pid in suspects else row for pid, row in elsewhere.items()}
        found = decide(start, end, now_ms, fresh, theirs, elsewhere, run_ns, horizon_ms)
    for finding in found:
        logger.error("payout reconciliation discrepancy", extra={"hour": hour, **finding.as_dict()})
    paid_here = sum(1 for r in ours if r.status == PAID)
    paid_there = sum(1 for p in theirs if p.status == provider_api.PAID and start <= p.at_ms < end)
    return PayoutReconciliation(found, {"withdrawals": len(ours), "paid": paid_here, "provider_paid": paid_there,
                                        "discrepancies": len(found)})
