"""Reconciliation of bills against their credits: every closed bill has exactly its credit, and every credit in a
bill wallet has its bill. Pure findings first (`bill_findings`), then the adapter (`check_app_bills`), which the
play slice's hourly reconciliation (`chalicelib.play.reconcile.reconcile_hour`) runs per app.

Kind `bill_mismatch`, id `{app_id}/{day}`, with `problem`:
- missing_credit       a bill closed by the end of the hour, with a positive credit, whose order is in no bill wallet
- wrong_wallet         that order is in another wallet (the other bill activity's: sandbox and live mixed)
- wrong_amount         the order's amount differs from the bill's `credit_fen`
- credit_without_bill  an order in the app's bill wallet that no bill names (a pre-empted old id, a stray write);
                       or (id `{ns}#{hour}`) a bill namespace whose hour counter of credited money exceeds the
                       credited bill credits of that hour: money credited there, in any wallet, that no bill explains

Work per app and pass is bounded by the window, not by the app's age: the bills of the last `WINDOW_DAYS` days
(one query of the app's bill partition) and the credits of those days in its bill wallet (one range query: a bill
credit's entry key begins `credit#play-app-{app_id}_bill_{YYYYMMDD}`). The bills job credits only bills of that
window too, so an older bill's credit cannot move any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from chalicelib.dynamo import with_retries
from chalicelib.play import apps, settlement
from chalicelib.play.findings import PlayFinding
from chalicelib.play.tables import PlaySettlementItem

KIND = "bill_mismatch"
WINDOW_DAYS = 64  # bills.MAX_DAYS_PER_RUN (62) back from the latest closable day: the days the bills job credits


@dataclass(frozen=True)
class BillRow:
    """A closed bill as the check reads it."""

    day: str
    credit_fen: int
    order_id: str | None
    closed_at_ms: int


@dataclass(frozen=True)
class CreditRow:
    """A credit (an order) in a bill wallet."""

    order_id: str
    wallet_id: str
    amount: int
    hour: str = ""
    credited: bool = False

    @property
    def ns(self) -> str:
        """The child namespace of its wallet."""
        return self.wallet_id.split("#", 1)[0]


@dataclass
class AppBills:
    """One app's bill check: findings, bills read, and the bill credits read (for the namespace check)."""

    findings: list[PlayFinding]
    bills_checked: int
    credits: list[CreditRow]


def day_of_order(order_id: str) -> str:
    """`YYYY-MM-DD` of a bill credit's order id (`{act}_bill_{YYYYMMDD}[.{nonce}]_cash_{stage}`)."""
    key = order_id.split("_")[2][:8]
    return f"{key[:4]}-{key[4:6]}-{key[6:8]}"


def _finding(app_id: int, day: str, problem: str, order_id: str, bill_fen: int | None,
             credit_fen: int | None, **extra: str) -> PlayFinding:
    return PlayFinding(KIND, f"{app_id}/{day}", {"problem": problem, "order_id": order_id, "bill_fen": bill_fen,
                                                 "credit_fen": credit_fen, **extra})


def bill_findings(app_id: int, bills: Sequence[BillRow], credits: Iterable[CreditRow],
                  elsewhere: Mapping[str, CreditRow], closed_by_ms: int) -> list[PlayFinding]:
    """Bills against the credits of the app's bill wallet.

    `credits` are the wallet's bill credits of the bills' days; `elsewhere` the orders of missing credits found
    in another wallet, by order id. Bills closed at or after `closed_by_ms` are not yet due (but still name their
    credit, so it is not reported as a credit without a bill).
    """
    found: list[PlayFinding] = []
    by_id = {c.order_id: c for c in credits}
    named = {b.order_id for b in bills if b.order_id}
    for bill in sorted(bills, key=lambda b: b.day):
        if bill.credit_fen <= 0 or not bill.order_id or bill.closed_at_ms >= closed_by_ms:
            continue
        credit = by_id.get(bill.order_id)
        if credit is None:
            moved = elsewhere.get(bill.order_id)
            if moved is None:
                found.append(_finding(app_id, bill.day, "missing_credit", bill.order_id, bill.credit_fen, None))
            else:
                found.append(_finding(app_id, bill.day, "wrong_wallet", bill.order_id, bill.credit_fen, moved.amount,
                                      wallet_id=moved.wallet_id))
        elif credit.amount != bill.credit_fen:
            found.append(_finding(app_id, bill.day, "wrong_amount", bill.order_id, bill.credit_fen, credit.amount))
    for credit in sorted(by_id.values(), key=lambda c: c.order_id):
        if credit.order_id not in named:
            found.append(_finding(app_id, day_of_order(credit.order_id), "credit_without_bill", credit.order_id,
                                  None, credit.amount))
    return found


def namespace_findings(hour: str, counted: Mapping[str, int], credits: Iterable[CreditRow]) -> list[PlayFinding]:
    """Each bill namespace's hour counter (credited money of orders placed in `hour`, read *before* the credits)
    against the credited bill credits of that hour: a counter above them is money no bill explains."""
    explained: dict[str, int] = dict.fromkeys(counted, 0)
    for credit in credits:
        if credit.credited and credit.hour == hour and credit.ns in explained:
            explained[credit.ns] += credit.amount
    return [PlayFinding(KIND, f"{ns}#{hour}", {"problem": "credit_without_bill", "order_id": None,
                                               "bill_fen": explained[ns], "credit_fen": counted[ns]})
            for ns in sorted(counted) if counted[ns] > explained[ns]]


# --- the adapter ---------------------------------------------------------------------------------


def _bills(app_id: int, first_day: str, last_day: str) -> list[BillRow]:
    from chalicelib.play import bill_keys as bills

    items = with_retries(lambda: list(PlaySettlementItem.query(
        bills.bill_pk(app_id), PlaySettlementItem.sk.between(settlement.day_key(first_day),
                                                              settlement.day_key(last_day)), consistent_read=True)))
    return [BillRow(day=i.day, credit_fen=int(i.credit_fen or 0), order_id=i.credit_order_id,
                    closed_at_ms=int(i.closed_at_ms or 0)) for i in items]


def _credits(wallet_id: str, act_id: str, first_day: str, last_day: str) -> list[CreditRow]:
    from chalicelib.rewards.tables import LedgerEntry

    low = f"credit#{act_id}_bill_{settlement.day_key(first_day)}"
    high = f"credit#{act_id}_bill_{settlement.day_key(last_day)}~"  # '~' sorts after the id's every character
    items = with_retries(lambda: list(LedgerEntry.query(wallet_id, LedgerEntry.entry_key.between(low, high),
                                                        consistent_read=True)))
    return [CreditRow(order_id=i.entry_key.split("#", 1)[1], wallet_id=wallet_id, amount=int(i.amount), hour=i.hour,
                      credited=i.posted_at_ms is not None) for i in items]


def _elsewhere(wallet_ids: Iterable[str], order_ids: Iterable[str]) -> dict[str, CreditRow]:
    from chalicelib.rewards.tables import LedgerEntry

    keys = [(w, f"credit#{o}") for w in wallet_ids for o in order_ids]
    if not keys:
        return {}
    items = with_retries(lambda: list(LedgerEntry.batch_get(keys, consistent_read=True)))
    return {i.entry_key.split("#", 1)[1]: CreditRow(order_id=i.entry_key.split("#", 1)[1], wallet_id=i.wallet_id,
                                                    amount=int(i.amount)) for i in items}


def bill_namespaces() -> list[str]:
    """The child namespaces bills are credited in."""
    from chalicelib.play import bill_keys as bills
    from chalicelib.play.config import play_settings
    from chalicelib.rewards import ids

    configured = play_settings()
    return [ids.child_ns(a, bills.BILL_CHILD) for a in (configured.bill_activity, configured.sandbox_bill_activity)]


def namespace_counters(hour: str) -> dict[str, int]:
    """What the credit workers tallied as credited in each bill namespace for orders placed in `hour`."""
    from chalicelib.rewards import counters, ids
    from chalicelib.settings import settings

    return {ns: counters.sum_shards(ids.distributed_hour_counter_id(ns, ids.CASH_ASSET, hour),
                                    settings().distributed_shards)[0] for ns in bill_namespaces()}


def check_app_bills(app: apps.PlayApp, hour: str) -> AppBills:
    """One app's bills of the window ending with `hour`'s day against its bill wallet."""
    from chalicelib.play import bill_keys as bills
    from chalicelib.play.config import play_settings

    _start, end = settlement.hour_bounds(hour)
    last_day = settlement.day_of(end - 1)
    first_day = settlement.next_day(last_day, -WINDOW_DAYS)
    act_id = bills.wallet_act_id(app.app_id)
    activity = bills.bill_activity(app)
    rows = _bills(app.app_id, first_day, last_day)
    credits = _credits(bills.bill_wallet_id(activity, app.app_id), act_id, first_day, last_day)
    present = {c.order_id for c in credits}
    missing = [b.order_id for b in rows if b.order_id and b.credit_fen > 0 and b.order_id not in present
               and b.closed_at_ms < end]
    configured = play_settings()
    others = [bills.bill_wallet_id(a, app.app_id) for a in (configured.bill_activity, configured.sandbox_bill_activity)
              if a != activity]
    return AppBills(bill_findings(app.app_id, rows, credits, _elsewhere(others, missing), end), len(rows), credits)
