"""Applying the provider's answers to a debited withdrawal, and the payout sweeper.

`payout_states` decides what an answer means; this module applies it with conditional writes on the
withdrawal (`status = PAYOUT_PENDING`), so concurrent settlements (the API call and the sweeper) cannot
both win: PAID, REFUNDED together with the compensating `refund#{request_id}` ledger entry (only on a
definite FAILED), or still pending with the next check time moved back (PROCESSING, a lost answer, a
payout id the provider holds with other content).

The sweeper reads, per bucket, at most `SWEEP_PAGE` withdrawals whose next check is due, earliest first
(index `payout_due`); each check either settles one or moves it back, so payouts stuck for days cannot
hold a bucket's page. It starts at a bucket that rotates with time and stops before its deadline, so a
run cut short does not always leave the same buckets unread. Unresolved payouts older than
`RG_PAYOUT_UNRESOLVED_ALARM_S` are logged and counted (`PayoutsUnresolvedPastHorizon`, alarmed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib import clock, deadline, faults
from chalicelib.dynamo import cancellation_codes, connection, error_code, with_retries
from chalicelib.errors import PayoutConflict, PayoutUnavailable
from chalicelib.observability import count, logger, metric_scope
from chalicelib.rewards import ids, payout_states, payouts, wallets
from chalicelib.rewards.crediting import time_key
from chalicelib.rewards.payout_states import RECHECK, REFUND, RESUBMIT, SETTLE_PAID, TIMEOUT
from chalicelib.rewards.payouts import PayoutProvider, PayoutResult, PayoutTimeout
from chalicelib.rewards.tables import PAID, PAYOUT_PENDING, REFUNDED, LedgerEntry, WalletItem, WithdrawalItem
from chalicelib.rewards.tables import REFUND as REFUND_KIND
from chalicelib.settings import settings

SWEEP_PAGE = 100
PAST_HORIZON_METRIC = "PayoutsUnresolvedPastHorizon"  # alarmed: infra/alarms.py PAYOUT_UNRESOLVED_METRIC


def get(wallet_id: str, request_id: str) -> WithdrawalItem | None:
    """A withdrawal, strongly consistent; None if there is none."""
    try:
        return with_retries(lambda: WithdrawalItem.get(wallet_id, request_id, consistent_read=True))
    except DoesNotExist:
        return None


def payout_target(record: WithdrawalItem) -> tuple[str, str]:
    """(payout id, recipient) of a withdrawal; one written before payout ids used its request id and wallet."""
    if record.payout_id:
        return record.payout_id, record.recipient or ""
    return record.request_id, record.wallet_id


def settle(wallet_id: str, request_id: str, result: PayoutResult, *, from_status: bool = False) -> WithdrawalItem:
    """Apply one provider answer to a pending withdrawal; returns it as it is now.

    PAID settles it, FAILED refunds it; any other answer leaves it pending with its next check moved back.
    """
    current = get(wallet_id, request_id)
    if current is None or current.status != PAYOUT_PENDING:
        return current  # type: ignore[return-value]
    now_ms = clock.now_ms()
    decision = payout_states.decide(result.status, now_ms=now_ms, checks=int(current.payout_checks or 0),
                                    from_status=from_status)
    if decision.action == SETTLE_PAID:
        _settle_paid(current, result, now_ms)
    elif decision.action == REFUND:
        _refund(current, result.reason or "payout failed", now_ms)
    elif decision.action == RECHECK:
        _recheck(current, result.status, decision.next_check_at_ms)  # type: ignore[arg-type]
    return get(wallet_id, request_id)  # type: ignore[return-value]


def _settle_paid(current: WithdrawalItem, result: PayoutResult, now_ms: int) -> None:
    try:
        with_retries(lambda: current.update(
            actions=[WithdrawalItem.status.set(PAID), WithdrawalItem.payout_ref.set(result.reference),
                     WithdrawalItem.resolved_at_ms.set(now_ms), WithdrawalItem.payout_answer.set(result.status),
                     WithdrawalItem.unresolved_bucket.remove(), WithdrawalItem.next_check_at_ms.remove()],
            condition=WithdrawalItem.status == PAYOUT_PENDING))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


def _recheck(current: WithdrawalItem, answer: str, next_check_at_ms: int) -> None:
    """Keep it pending, ask again at `next_check_at_ms` (the sweeper's index moves it back)."""
    try:
        with_retries(lambda: current.update(
            actions=[WithdrawalItem.next_check_at_ms.set(next_check_at_ms), WithdrawalItem.payout_checks.add(1),
                     WithdrawalItem.payout_answer.set(answer)],
            condition=WithdrawalItem.status == PAYOUT_PENDING))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


def _refund(record: WithdrawalItem, reason: str, now_ms: int) -> None:
    wallet_id, request_id, amount = record.wallet_id, record.request_id, int(record.amount)
    entry_key = f"{REFUND_KIND}#{request_id}"
    hour = clock.hour_of(now_ms)
    wallet = wallets.get_wallet_item(wallet_id)
    entry = LedgerEntry(
        wallet_id, entry_key, kind=REFUND_KIND, amount=amount,
        sub_activity_id=wallet.sub_activity_id if wallet else "",
        request_id=request_id, bill_text="withdrawal refund", posted_at_ms=now_ms,
        time_key=time_key(now_ms, entry_key), hour=hour,
        hour_bucket=ids.wallet_hour_bucket(hour, wallet_id, settings().hour_buckets),
    )
    token = uuid.uuid4().hex

    def attempt() -> None:
        with TransactWrite(connection=connection(), client_request_token=token) as tx:
            tx.save(entry, condition=LedgerEntry.entry_key.does_not_exist())
            tx.update(record, actions=[
                WithdrawalItem.status.set(REFUNDED), WithdrawalItem.failure.set(reason),
                WithdrawalItem.resolved_at_ms.set(now_ms), WithdrawalItem.payout_answer.set(payout_states.FAILED),
                WithdrawalItem.unresolved_bucket.remove(), WithdrawalItem.next_check_at_ms.remove(),
            ], condition=WithdrawalItem.status == PAYOUT_PENDING)
            tx.update(WalletItem(wallet_id), actions=[
                WalletItem.balance.add(amount), WalletItem.total_refunded.add(amount),
                WalletItem.entry_count.add(1), WalletItem.updated_at_ms.set(now_ms),
            ])

    try:
        with_retries(attempt)
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" not in cancellation_codes(exc):
            raise
        # Already refunded (or settled) by a concurrent settle: the first outcome stands.


def pay_out(record: WithdrawalItem, payout_provider: PayoutProvider | None = None) -> WithdrawalItem:
    """Call the provider for a debited withdrawal and apply its answer (a lost answer is re-queried later)."""
    payout_id, recipient = payout_target(record)
    try:
        result = (payout_provider or payouts.provider()).transfer(payout_id, recipient, int(record.amount))
    except PayoutTimeout:
        logger.warning("payout timed out; the sweeper will ask the provider again",
                       extra={"request_id": record.request_id, "payout_id": payout_id})
        result = PayoutResult(TIMEOUT)
    except PayoutConflict:
        # The provider holds this payout id with other content: never pay or refund blindly. It stays
        # pending (re-queried with backoff) and is alarmed past the horizon for a person to settle.
        logger.error("payout provider holds this payout id with another recipient or amount",
                     extra={"request_id": record.request_id, "payout_id": payout_id})
        result = PayoutResult("CONFLICT")
    faults.point("withdrawal.after_payout")
    return settle(record.wallet_id, record.request_id, result)


@dataclass
class SweepReport:
    """What one sweep did: withdrawals settled (paid or refunded), still unresolved, and past the horizon."""

    settled: int = 0
    unresolved: int = 0
    past_horizon: int = 0
    provider_unavailable: bool = False


def _count_unresolved(record: WithdrawalItem, report: SweepReport, horizon_s: int) -> None:
    """Count a withdrawal still pending; past the horizon, log it for a person and count it for the alarm."""
    report.unresolved += 1
    now_ms = clock.now_ms()
    if payout_states.past_horizon(int(record.created_at_ms), now_ms, horizon_s):
        report.past_horizon += 1
        logger.error("payout unresolved past the alarm horizon", extra={
            "request_id": record.request_id, "payout_id": payout_target(record)[0], "wallet_id": record.wallet_id,
            "amount": int(record.amount), "age_s": (now_ms - int(record.created_at_ms)) // 1000,
            "last_answer": record.payout_answer, "checks": int(record.payout_checks or 0),
            "provider_unavailable": report.provider_unavailable})


def _check(record: WithdrawalItem, report: SweepReport, horizon_s: int, payout_provider: PayoutProvider) -> None:
    try:
        result = payout_provider.status(payout_target(record)[0])
    except PayoutTimeout:
        # Its answer was lost: ask again later (backoff) and go on with the others; a payout whose queries
        # keep timing out must not stop the sweep at its place in the bucket.
        result = PayoutResult(TIMEOUT)
    if payout_states.decide(result.status, now_ms=0, checks=0, from_status=True).action == RESUBMIT:
        # The provider never saw it: submit the same payout id now (idempotent on its side); its answer
        # decides. A refund here could race a late first call and pay out twice.
        record = pay_out(record, payout_provider)
    else:
        record = settle(record.wallet_id, record.request_id, result, from_status=True)
    if record.status != PAYOUT_PENDING:
        report.settled += 1
        return
    _count_unresolved(record, report, horizon_s)


def _due(bucket: int, now_ms: int, page: int) -> list[WithdrawalItem]:
    """Keys of a bucket's pending withdrawals due for a check by `now_ms`, earliest due first."""
    return with_retries(lambda: list(WithdrawalItem.unresolved.query(
        str(bucket), WithdrawalItem.next_check_at_ms <= now_ms, limit=page)))


def sweep(page: int = SWEEP_PAGE) -> SweepReport:
    """Ask the provider about every pending withdrawal whose next check is due (at most `page` per bucket).

    With no provider configured (`RG_PAYOUT_PROVIDER=none` while payouts are pending) nothing is asked or
    settled, but every due withdrawal is still counted from the index, those past the horizon alarmed, and the
    run logs that the provider is unavailable: a debit never paid is never silent.
    """
    now_ms = clock.now_ms()
    buckets = settings().hour_buckets
    horizon_s = settings().payout_unresolved_alarm_s
    report = SweepReport()
    try:
        payout_provider: PayoutProvider | None = payouts.provider()
    except PayoutUnavailable:
        payout_provider, report.provider_unavailable = None, True
    first = (now_ms // 60_000) % buckets
    keys = (key for n in range(buckets) for key in _due((first + n) % buckets, now_ms, page))
    for key in keys:
        if deadline.remaining_s() < deadline.call_bound_s():
            break  # the next run goes on (it starts at another bucket)
        record = get(key.wallet_id, key.request_id)
        if record is None or record.status != PAYOUT_PENDING:
            continue
        if payout_provider is None:
            _count_unresolved(record, report, horizon_s)
        else:
            _check(record, report, horizon_s, payout_provider)
    if report.provider_unavailable and report.unresolved:
        logger.error("payout provider unavailable: pending payouts cannot be settled", extra={
            "unresolved": report.unresolved, "past_horizon": report.past_horizon})
    if report.past_horizon:
        with metric_scope():  # one EMF document with the stage and service dimensions the alarm names
            count(PAST_HORIZON_METRIC, report.past_horizon)
    return report
