"""Wallet reads: balance with still-pending rewards, and the merged, paginated flow.

An order is its wallet's credit entry in the wallet's own ledger partition, so pending rewards are one
strongly consistent Query of that partition (`entry_key` beginning `credit#`, status not CREDITED): no
index lag, an order granted before the read is listed, one credited before it is not. Its price: the
Query reads every credit of the wallet in that child activity, posted ones included (filtered out
server-side, but read and paid for), so its cost grows with the wallet's number of rewards.

The flow merges ledger entries and pending orders newest first. A credit sorts at its order's creation
time — where it appeared as pending — so a reward keeps its place in the flow when it is credited and
cursor pagination stays stable.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.dynamo import with_retries
from chalicelib.errors import InvalidField
from chalicelib.rewards import orders
from chalicelib.rewards.crediting import time_key
from chalicelib.rewards.ids import CASH_ASSET
from chalicelib.rewards.orders import Order, credit_entry_key, parse_ref
from chalicelib.rewards.tables import CREDIT, CREDITED, REFUND, WITHDRAWAL, LedgerEntry, WalletItem

MAX_PENDING = 500


def pending_orders(wallet_id: str, before_ms: int | None = None, limit: int = MAX_PENDING) -> list[Order]:
    """Orders of a wallet that are not credited yet, newest first, at most `limit` (one consistent Query)."""
    condition = LedgerEntry.status != CREDITED
    if before_ms is not None:
        condition &= LedgerEntry.created_at_ms < before_ms
    found = with_retries(lambda: [
        orders.from_item(item) for item in LedgerEntry.query(
            wallet_id, LedgerEntry.entry_key.startswith(f"{CREDIT}#"), filter_condition=condition,
            consistent_read=True)])
    return sorted(found, key=lambda o: o.created_at_ms, reverse=True)[:limit]


def load_orders(refs: Iterable[str]) -> list[Order]:
    """Orders by ref (`{wallet_id}|{order_id}`), strongly consistent, newest first; missing ones are skipped."""
    keys = list(dict.fromkeys(parse_ref(ref) for ref in refs))
    if not keys:
        return []
    items = with_retries(lambda: list(LedgerEntry.batch_get(keys, consistent_read=True)))
    return sorted((orders.from_item(i) for i in items if i.status is not None),
                  key=lambda o: o.created_at_ms, reverse=True)


@dataclass(frozen=True)
class WalletView:
    """What the wallet API shows."""

    wallet_id: str
    balance: int
    pending: int
    total_income: int
    total_withdrawn: int
    total_refunded: int
    currency: str

    def body(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "balance": self.balance, "pending": self.pending, "total_income": self.total_income,
            "total_withdrawn": self.total_withdrawn, "total_refunded": self.total_refunded,
            "currency": self.currency,
        }


def get_wallet_item(wallet_id: str) -> WalletItem | None:
    """The wallet item, strongly consistent; None for a wallet never credited."""
    try:
        return with_retries(lambda: WalletItem.get(wallet_id, consistent_read=True))
    except DoesNotExist:
        return None


VIEW_ATTEMPTS = 5


def _entry_count(item: WalletItem | None) -> int:
    return int(item.entry_count or 0) if item else 0


def view(wallet_id: str, asset: str = CASH_ASSET) -> WalletView:
    """Balance, pending (granted, not yet credited), totals.

    A credit landing between the wallet read and the pending read would show the reward as neither, so
    the wallet is read again: an unchanged `entry_count` proves no credit landed in between.
    """
    item = get_wallet_item(wallet_id)
    for _ in range(VIEW_ATTEMPTS):
        pending = sum(o.amount for o in pending_orders(wallet_id))
        again = get_wallet_item(wallet_id)
        if _entry_count(again) == _entry_count(item):
            break
        item = again
    return WalletView(
        wallet_id=wallet_id,
        balance=int(item.balance) if item else 0,
        pending=pending,
        total_income=int(item.total_income) if item else 0,
        total_withdrawn=int(item.total_withdrawn or 0) if item else 0,
        total_refunded=int(item.total_refunded or 0) if item else 0,
        currency=asset,
    )


# --- flow ------------------------------------------------------------------------------------


def encode_flow_cursor(sort_key: str) -> str:
    """Opaque cursor for the position after `sort_key`."""
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


# A flow position is a `time_key`: 13 ASCII digits, '#', an entry key (`credit#{order id}`, `withdrawal#` or
# `refund#{request id}`). An id is printable ASCII (an order id: five identifiers of at most 64 characters
# joined by '_'); 400 characters at most keeps a position well under DynamoDB's 1 024-byte sort key. Anything
# else is refused before it reaches a query.
_FLOW_POSITION = re.compile(rf"[0-9]{{13}}#(?:{CREDIT}|{WITHDRAWAL}|{REFUND})#[!-~]{{1,400}}")


def decode_flow_cursor(raw: str | None) -> str | None:
    """The sort key a flow cursor stands for; `InvalidField` if it is not one of ours."""
    if raw is None:
        return None
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidField("cursor", "is not a cursor returned by this listing") from exc
    if not _FLOW_POSITION.fullmatch(key):
        raise InvalidField("cursor", "is not a cursor returned by this listing")
    return key


def _entry_view(entry: LedgerEntry) -> dict[str, Any]:
    view = {"type": entry.kind, "amount": int(entry.amount), "at_ms": int(entry.time_key[:13]),
            "posted_at_ms": int(entry.posted_at_ms), "bill_text": entry.bill_text}
    if entry.kind == CREDIT:
        view["order_id"] = orders.order_id_of(entry.entry_key)
    if entry.request_id:
        view["request_id"] = entry.request_id
    return view


def _pending_view(order: Order) -> dict[str, Any]:
    return {"type": "pending", "amount": order.amount, "at_ms": order.created_at_ms, "order_id": order.order_id,
            "bill_text": order.bill_text}


def flow(wallet_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of the wallet's flow (credits, withdrawals, refunds, pending rewards), newest first."""
    before = decode_flow_cursor(cursor)
    condition = LedgerEntry.time_key < before if before else None
    # Pending orders first, the ledger second: a reward credited between the two reads then shows as its
    # credit (replacing its pending row), never as neither. They sort by creation time; the ledger key of
    # their future credit breaks ties.
    before_ms = int(before[:13]) + 1 if before else None
    pending = pending_orders(wallet_id, before_ms=before_ms, limit=limit + 1)
    entries = with_retries(lambda: list(LedgerEntry.by_time.query(
        wallet_id, range_key_condition=condition, scan_index_forward=False, limit=limit + 1,
        consistent_read=True)))
    rows: dict[str, dict[str, Any]] = {}
    for order in pending:
        key = time_key(order.created_at_ms, credit_entry_key(order.order_id))
        if before is None or key < before:
            rows[key] = _pending_view(order)
    for entry in entries:
        rows[entry.time_key] = _entry_view(entry)  # a credited order replaces its pending row
    ordered = sorted(rows.items(), key=lambda kv: kv[0], reverse=True)
    page = ordered[:limit]
    has_more = len(ordered) > limit
    return {
        "items": [row for _, row in page],
        "next_cursor": encode_flow_cursor(page[-1][0]) if has_more and page else None,
    }
