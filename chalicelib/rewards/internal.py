"""Internal credits: money the platform moves itself (a play bill's credit), never through the grant routes.

An internal credit is written as its wallet's ledger credit in exactly the layout a grant writes
(`orders.to_item`: `credit#{order_id}` in the wallet's partition, ACCEPTED and pending), so the credit
worker, wallet reads, withdrawals and the rewards reconciler handle it unchanged. What differs is who may
write it:

- its activity is in the **internal namespace** (`is_internal`): the configured bill activities
  (`play-bills`, `play-bills-sandbox` by default) and every id starting with `RESERVED_PREFIX`. The public
  grant routes refuse such an activity (`chalicelib.rewards.namespace`) and so do the admin routes, so no
  caller can write an order there or change its configuration;
- its order id carries a random part (`new_nonce`), chosen by the caller of this module and recorded
  durably on its source (the bill) *before* the credit is written, so a retry re-uses it and nobody can
  predict or pre-empt it;
- it is idempotent by that order id: the same credit again is `exists` (the stored order, created False);
  the same id with other content is `OrderConflict`. No stock or budget applies: the source (the bill) is
  the budget, and reconciliation compares the two (`chalicelib.play.bill_checks`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import InvalidField, OrderConflict, StorageUnavailable
from chalicelib.rewards import ids, orders
from chalicelib.rewards.orders import Order
from chalicelib.rewards.tables import LedgerEntry
from chalicelib.settings import settings

RESERVED_PREFIX = "rg-internal-"
# The bill activities' default names: reserved even when a deployment configures others (their wallets exist).
DEFAULT_INTERNAL = frozenset({"play-bills", "play-bills-sandbox"})
NONCE_BYTES = 16


def _bill_activities() -> tuple[str, str]:
    """The configured (live, sandbox) bill activities (read once, in settings: this slice must not import play)."""
    from chalicelib.settings import settings

    return settings().bill_activities


def internal_activities() -> frozenset[str]:
    """Every activity id reserved for internal credits, besides the `RESERVED_PREFIX` ones."""
    return DEFAULT_INTERNAL | set(_bill_activities())


def is_internal(activity_id: str) -> bool:
    """Whether an activity id is in the internal namespace (no public route may name it)."""
    return activity_id.startswith(RESERVED_PREFIX) or activity_id in internal_activities()


def payable_internal() -> frozenset[str]:
    """Internal activities whose wallets may be withdrawn: the live bill activity only.

    Everything else in the internal namespace (the sandbox bill activity: test gifts nobody paid for; every
    `RESERVED_PREFIX` activity unless listed here) holds money that must never reach the payout provider.
    """
    live, sandbox = _bill_activities()
    return frozenset({live} - {sandbox})


def is_payable(activity_id: str) -> bool:
    """Whether a wallet of this activity may be withdrawn (every public activity; internal ones if marked payable)."""
    return not is_internal(activity_id) or activity_id in payable_internal()


def new_nonce() -> str:
    """The unpredictable part of an internal order id (128 random bits, hex): record it before crediting."""
    return secrets.token_hex(NONCE_BYTES)


@dataclass(frozen=True)
class InternalCredit:
    """What an internal credit pays: whose wallet, how much, and the order id its source recorded."""

    activity_id: str
    sub_activity_id: str
    scene_id: str
    act_id: str
    rain_id: str
    stage: str
    amount: int
    bill_text: str = ""

    @property
    def order_id(self) -> str:
        """`{act_id}_{scene_id}_{rain_id}_cash_{stage}`: the grant layout, so every reader parses it."""
        return ids.order_id(self.act_id, self.scene_id, self.rain_id, ids.CASH, self.stage)

    @property
    def wallet_id(self) -> str:
        """The wallet it pays into."""
        return ids.wallet_id(ids.child_ns(self.activity_id, self.sub_activity_id), self.act_id, ids.CASH_ASSET)


def decide(credit: InternalCredit, now_ms: int, hour_buckets: int) -> Order:
    """The order an internal credit writes (pure). Refuses an activity outside the internal namespace."""
    if not is_internal(credit.activity_id):
        raise InvalidField("activity_id", f"{credit.activity_id} is not an internal activity")
    if credit.amount < 1:
        raise InvalidField("amount", f"an internal credit must be positive, not {credit.amount}")
    hour = clock.hour_of(now_ms)
    return Order(
        order_id=credit.order_id, activity_id=credit.activity_id, sub_activity_id=credit.sub_activity_id,
        scene_id=credit.scene_id, act_id=credit.act_id, rain_id=credit.rain_id, award_type=ids.CASH,
        stage=credit.stage, amount=credit.amount, asset=ids.CASH_ASSET, wallet_id=credit.wallet_id,
        order_cap=credit.amount, created_at_ms=now_ms, open_time_ms=now_ms, hour=hour,
        hour_bucket=ids.wallet_hour_bucket(hour, credit.wallet_id, hour_buckets), bill_text=credit.bill_text)


def same_credit(stored: Order, wanted: Order) -> bool:
    """Whether a stored order is this credit (time and bucket differ between attempts; the rest may not)."""
    return (stored.wallet_id, stored.order_id, stored.amount, stored.activity_id, stored.sub_activity_id,
            stored.scene_id, stored.asset) == (wanted.wallet_id, wanted.order_id, wanted.amount, wanted.activity_id,
                                               wanted.sub_activity_id, wanted.scene_id, wanted.asset)


def find(wallet_id: str, order_id: str) -> Order | None:
    """The stored order of an internal credit (strongly consistent), or None."""
    try:
        item = with_retries(lambda: LedgerEntry.get(wallet_id, orders.credit_entry_key(order_id),
                                                    consistent_read=True))
    except DoesNotExist:
        return None
    return orders.from_item(item)


def place(credit: InternalCredit, now_ms: int | None = None) -> tuple[Order, bool]:
    """Write the credit's order once: (order, True) when written now, (stored, False) when it exists.

    The same order id with other content is `OrderConflict` (nothing written). Enqueue the order for crediting
    afterwards (`chalicelib.rewards.sending.enqueue`); a failed send is flagged and re-sent by the sweeper.
    """
    order = decide(credit, clock.now_ms() if now_ms is None else now_ms, settings().hour_buckets)
    try:
        with_retries(lambda: orders.to_item(order).save(condition=LedgerEntry.entry_key.does_not_exist()))
    except PutError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        stored = find(order.wallet_id, order.order_id)
        if stored is None:
            raise StorageUnavailable("internal credit vanished after a conflicting put") from exc
        if not same_credit(stored, order):
            raise OrderConflict(f"order {order.order_id} exists with different content", order_id=order.order_id,
                                existing_amount=stored.amount) from exc
        return stored, False
    return order, True
