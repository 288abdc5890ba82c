"""Withdrawals: force pending rewards in, debit once, pay out, and refund what the payout refused.

1. Idempotency: request ids are the caller's, unique per user and parent activity. The request item
   (`{activity_id}#{act_id}` / `request_id`) is claimed in the debit transaction, so a repeated
   `request_id` returns the first outcome whichever child activity is open now and never debits another
   wallet (a different amount is a `WithdrawalConflict`).
2. Every pending order of the user (and every presented token that verifies) is credited now, so
   money granted a moment ago can be withdrawn.
3. One transaction: ledger `withdrawal#{request_id}`, the withdrawal item and the request item
   put-if-absent, and the wallet debited under the condition `balance >= amount`. Invariant enforced
   here: a balance never goes negative and a request debits at most once. The withdrawal carries a new,
   globally unique `payout_id` and its recipient (the user) before the provider is ever called.
4. The payout provider is called with the payout id (idempotent on its side; `chalicelib.rewards.payouts`).
   PAID settles it; only a definite FAILED refunds, through a compensating ledger entry
   `refund#{request_id}` in one transaction with the status change; PROCESSING, a timeout or any answer
   that decides nothing leaves it PAYOUT_PENDING for the payout sweeper, which asks the provider again with
   exponential backoff, or re-submits the same payout id when the provider never saw it — the answer to
   that decides (`payout_states`, applied by `payout_settle`). Money the provider might still pay is never
   refunded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock, faults, validate
from chalicelib.dynamo import cancellation_codes, connection, raw_item, with_retries
from chalicelib.errors import (
    InsufficientBalance,
    InvalidField,
    InvalidToken,
    WithdrawalConflict,
    WithdrawalNotFound,
)
from chalicelib.rewards import (
    config_store,
    crediting,
    ids,
    internal,
    orders,
    payout_settle,
    payout_states,
    payouts,
    tokens,
    wallets,
)
from chalicelib.rewards.crediting import time_key
from chalicelib.rewards.payout_settle import pay_out, payout_target, settle  # noqa: F401  (re-exported)
from chalicelib.rewards.tables import (
    CREDITED,
    PAYOUT_PENDING,
    WITHDRAWAL,
    LedgerEntry,
    WalletItem,
    WithdrawalItem,
    WithdrawalRequestItem,
)
from chalicelib.settings import settings

MAX_TOKENS = 100
# Partitions of the `by_payout_hour` index. Fixed, not RG_HOUR_BUCKETS: withdrawals are user-paced (16
# partitions take thousands of writes per second) and reconciling an hour's payouts costs one query each.
PAYOUT_HOUR_BUCKETS = 16
WITHDRAWAL_FIELDS = ("activity_id", "sub_activity_id", "request_id", "amount", "tokens")


@dataclass(frozen=True)
class WithdrawalRequest:
    """A validated withdrawal request."""

    activity_id: str
    sub_activity_id: str | None
    request_id: str
    amount: int
    tokens: tuple[str, ...]


def parse_withdrawal(body: dict[str, Any]) -> WithdrawalRequest:
    """Validate a withdrawal body; the error names the first bad field."""
    validate.no_unknown_fields(body, WITHDRAWAL_FIELDS)
    raw_tokens = body.get("tokens", [])
    if not isinstance(raw_tokens, list) or len(raw_tokens) > MAX_TOKENS or not all(
            isinstance(t, str) for t in raw_tokens):
        raise InvalidField("tokens", f"must be a list of at most {MAX_TOKENS} token strings")
    return WithdrawalRequest(
        activity_id=validate.ident(body, "activity_id"),
        sub_activity_id=validate.ident(body, "sub_activity_id") if body.get("sub_activity_id") else None,
        request_id=validate.ident(body, "request_id"),
        amount=validate.integer(body, "amount", minimum=1),
        tokens=tuple(raw_tokens),
    )


@dataclass(frozen=True)
class WithdrawalOutcome:
    """Where a withdrawal stands: PAYOUT_PENDING, PAID or REFUNDED."""

    request_id: str
    amount: int
    status: str
    balance: int | None = None
    failure: str | None = None

    def body(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"request_id": self.request_id, "amount": self.amount, "status": self.status}
        if self.balance is not None:
            out["balance"] = self.balance
        if self.failure:
            out["failure"] = self.failure
        return out


def _outcome(item: WithdrawalItem, balance: int | None = None) -> WithdrawalOutcome:
    return WithdrawalOutcome(request_id=item.request_id, amount=int(item.amount), status=item.status,
                             balance=balance, failure=item.failure)


_get = payout_settle.get


def user_key(activity_id: str, act_id: str) -> str:
    """Hash key of a user's withdrawal requests in one parent activity."""
    return f"{activity_id}#{act_id}"


def new_payout_id() -> str:
    """A globally unique payout id (what the provider is called with)."""
    return f"po{uuid.uuid4().hex}"


def _get_request(activity_id: str, act_id: str, request_id: str) -> WithdrawalRequestItem | None:
    try:
        return with_retries(lambda: WithdrawalRequestItem.get(user_key(activity_id, act_id), request_id,
                                                              consistent_read=True))
    except DoesNotExist:
        return None


def _repeat(existing: WithdrawalItem | WithdrawalRequestItem, amount: int) -> None:
    if int(existing.amount) != amount:
        raise WithdrawalConflict(
            f"withdrawal {existing.request_id} exists with a different amount",
            request_id=existing.request_id, existing_amount=int(existing.amount),
        )


def find(activity_id: str, act_id: str, request_id: str, legacy_wallet_id: str | None = None) -> WithdrawalItem:
    """A user's withdrawal by request id, in whichever child it was made; `WithdrawalNotFound` if none.

    `legacy_wallet_id` is where to look for a withdrawal made before request items existed.
    """
    claim = _get_request(activity_id, act_id, request_id)
    wallet_id = claim.wallet_id if claim is not None else legacy_wallet_id
    item = _get(wallet_id, request_id) if wallet_id else None
    if item is None:
        raise WithdrawalNotFound(f"no withdrawal {request_id} for this user in activity {activity_id}",
                                 request_id=request_id)
    return item


def _first_outcome(activity_id: str, act_id: str, request_id: str, amount: int,
                   legacy_wallet_id: str) -> WithdrawalOutcome | None:
    """The first outcome of a request id already used by this user in this activity (None if it is new)."""
    claim = _get_request(activity_id, act_id, request_id)
    if claim is not None:
        _repeat(claim, amount)
        return _outcome(find(activity_id, act_id, request_id))
    legacy = _get(legacy_wallet_id, request_id)
    if legacy is not None:
        _repeat(legacy, amount)
        return _outcome(legacy)
    return None


def _token_orders(ns: str, act_id: str, presented: Sequence[str]) -> list[str]:
    """Order ids of presented tokens, each verified and required to belong to this wallet."""
    public_keys = tokens.signing_key().public_keys if presented else {}
    keys = []
    for index, token in enumerate(presented):
        try:
            claims = tokens.verify(token, public_keys)
        except InvalidToken as exc:
            raise InvalidToken(f"tokens[{index}]: {exc.message}", index=index) from exc
        if (ids.child_ns(claims["activity_id"], claims["sub_activity_id"]) != ns or claims["act_id"] != act_id
                or claims["asset"] != ids.CASH_ASSET):
            raise InvalidToken(f"tokens[{index}]: token is for another wallet", index=index)
        keys.append(claims["order_id"])
    return keys


def force_credit(wallet_id: str, extra_order_ids: Sequence[str] = ()) -> int:
    """Credit every pending order of a wallet now (plus the given ones of it); returns how many this call credited.

    The pending ones are a strongly consistent Query of the wallet's own partition, so an order granted
    before this call is among them (the tokens are for one a caller may hold from a grant racing this).
    """
    pending = {o.order_id: o for o in wallets.pending_orders(wallet_id)}
    extra = [orders.order_ref(wallet_id, oid) for oid in extra_order_ids if oid not in pending]
    for order in wallets.load_orders(extra):
        if order.status != CREDITED:
            pending[order.order_id] = order
    batch_id = crediting.new_batch_id("w")
    credited = [o for o in pending.values() if crediting.credit(o, batch_id)]
    crediting.tally(batch_id, credited)
    return len(credited)


def _debit(wallet_id: str, request: WithdrawalRequest, act_id: str, sub_activity_id: str) -> None:
    now_ms = clock.now_ms()
    payout_id = new_payout_id()
    entry_key = f"{WITHDRAWAL}#{request.request_id}"
    hour = clock.hour_of(now_ms)
    entry = LedgerEntry(
        wallet_id, entry_key, kind=WITHDRAWAL, amount=request.amount, sub_activity_id=sub_activity_id,
        request_id=request.request_id, bill_text="withdrawal", posted_at_ms=now_ms,
        time_key=time_key(now_ms, entry_key), hour=hour,
        hour_bucket=ids.wallet_hour_bucket(hour, wallet_id, settings().hour_buckets),
    )
    record = WithdrawalItem(
        wallet_id, request.request_id, amount=request.amount, status=PAYOUT_PENDING, created_at_ms=now_ms,
        unresolved_bucket=str(ids.bucket_of(wallet_id, settings().hour_buckets)),
        next_check_at_ms=now_ms + payout_states.FIRST_CHECK_MS, payout_checks=0,
        payout_id=payout_id, recipient=act_id, sub_activity_id=sub_activity_id,
        payout_hour_bucket=ids.hour_bucket(hour, ids.bucket_of(payout_id, PAYOUT_HOUR_BUCKETS)),
    )
    claim = WithdrawalRequestItem(
        user_key(request.activity_id, act_id), request.request_id, wallet_id=wallet_id,
        sub_activity_id=sub_activity_id, amount=request.amount, payout_id=payout_id, created_at_ms=now_ms,
    )
    token = uuid.uuid4().hex

    def attempt() -> None:
        with TransactWrite(connection=connection(), client_request_token=token) as tx:
            tx.save(entry, condition=LedgerEntry.entry_key.does_not_exist())
            tx.save(record, condition=WithdrawalItem.request_id.does_not_exist())
            tx.save(claim, condition=WithdrawalRequestItem.request_id.does_not_exist())
            tx.update(
                WalletItem(wallet_id),
                actions=[WalletItem.balance.add(-request.amount), WalletItem.total_withdrawn.add(request.amount),
                         WalletItem.entry_count.add(1), WalletItem.updated_at_ms.set(now_ms)],
                condition=WalletItem.balance >= request.amount,
                return_values="ALL_OLD",
            )

    try:
        with_retries(attempt)
    except TransactWriteError as exc:
        codes = cancellation_codes(exc)
        # Puts first: [0] ledger entry, [1] withdrawal item, [2] request item; then [3] the wallet.
        if "ConditionalCheckFailed" in codes[:3]:
            raise _Duplicate from exc
        if len(codes) > 3 and codes[3] == "ConditionalCheckFailed":
            balance = int(raw_item(exc.cancellation_reasons[3].raw_item).get("balance", 0))
            raise InsufficientBalance(
                f"balance {balance} is below the withdrawal amount {request.amount}",
                balance=balance, amount=request.amount,
            ) from exc
        raise


class _Duplicate(Exception):
    """The same request id was debited concurrently (in this wallet or, by the same user, in another)."""


def withdraw(act_id: str, request: WithdrawalRequest) -> WithdrawalOutcome:
    """Withdraw cash from a user's wallet in one child activity.

    An activity whose money is not payable (`internal.is_payable`: the sandbox bill activity) is refused with
    `InvalidField` naming `activity_id` before anything is read, credited or debited.
    """
    if not internal.is_payable(request.activity_id):
        raise InvalidField("activity_id", f"{request.activity_id} holds money that is not payable "
                                          "(sandbox or internal credits are never paid out)")
    now_ms = clock.now_ms()
    activity = config_store.get_activity(request.activity_id)
    child = (activity.child(request.sub_activity_id) if request.sub_activity_id else activity.wallet_child_at(now_ms))
    if child is None:
        raise InvalidField("sub_activity_id", f"activity {activity.activity_id} has no such child activity")
    config_store.get_switches().require_withdrawal(act_id)
    payout_provider = payouts.provider()  # refuse before any credit or debit when no provider is configured
    ns = activity.ns(child)
    wallet_id = ids.wallet_id(ns, act_id, ids.CASH_ASSET)
    first = _first_outcome(activity.activity_id, act_id, request.request_id, request.amount, wallet_id)
    if first is not None:
        return first
    token_orders = _token_orders(ns, act_id, request.tokens)
    force_credit(wallet_id, token_orders)
    faults.point("withdrawal.after_force_credit")
    try:
        _debit(wallet_id, request, act_id, child.sub_activity_id)
    except _Duplicate:
        first = _first_outcome(activity.activity_id, act_id, request.request_id, request.amount, wallet_id)
        if first is None:  # cannot happen: a put-if-absent failed, so one of the items exists
            raise
        return first
    faults.point("withdrawal.after_debit")
    record = pay_out(_get(wallet_id, request.request_id), payout_provider)  # type: ignore[arg-type]
    wallet = wallets.get_wallet_item(wallet_id)
    return _outcome(record, balance=int(wallet.balance) if wallet else 0)


def sweep_unresolved() -> int:
    """The payout sweeper (`payout_settle.sweep`): how many pending withdrawals it settled."""
    return payout_settle.sweep().settled
