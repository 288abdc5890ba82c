"""What reconciliation finds. Pure: rows in, findings out; no I/O.

Reconciliation reads an hour bucket by bucket: one `ledger/by_hour` partition holds the hour's orders
of the bucket's wallets (an order is its wallet's credit entry, pending or posted) and their withdrawals
and refunds. The adapter (`chalicelib.reconcile.runner`) reads, applies the safe repairs, and stores what
these functions decide.

An order is its own ledger credit (one item), so a credited order without its credit, a credit without
its order, two credits of one order, or a credit of another amount or wallet than its order's cannot
exist: the findings that looked for them (`missing_ledger_credit`, `orphan_credit`, `duplicate_credit`,
`credit_amount_mismatch`, `credit_wallet_mismatch`) are gone. A credited order edited or deleted behind
the code's back still shows: its wallet no longer agrees with its posted entries (`wallet_mismatch`), its
batch's tally with its orders (`tally_mismatch`), its scene's stock counter with the hour's orders
(`stock_drift`).

Discrepancy kinds (each an alarm):
- missing_credit          an order still not credited at the second pass (h+2)
- over_order_cap          an order above its scene's per-order cap
- wallet_mismatch         a wallet's balance/totals/entry count disagree with its ledger
- tally_mismatch          a batch's tally marker disagrees with the orders it credited
- orphan_tally            a tally marker for a batch that credited no order of the hour
- tally_expired           a batch's orders without a marker, credited so long ago that its marker may have
                          expired (TTL): whether its tally was written cannot be known, so it is not completed
- distributed_drift       the hour's "total distributed" counter differs from its tallies
- stock_drift             a stock/budget counter's consumed sum differs from its orders
- shard_over_cap          a counter shard consumed beyond its cap
- over_budget             a scene consumed beyond its total
- dlq_messages            messages are waiting in a dead-letter queue
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.rewards.config import CLOCK_SKEW_MS, MAX_INVOCATION_MS
from chalicelib.rewards.tables import ACCEPTED, CREDIT, CREDITED, CREDITING, REFUND, WITHDRAWAL

# MAX_INVOCATION_MS (a Lambda's 15 minutes): a batch whose last credit is older can no longer be writing its tally,
# so a missing marker means the invocation died.
MAX_LISTED = 200  # ids listed per kind in a report; counts stay exact

# Clocks and commits the checks allow for. Every Lambda instance reads its own clock, which may be off true time by
# up to CLOCK_SKEW_MS, and a write may commit up to WRITE_DELAY_MS after the clock reading it carries (a request's
# 29 s limit; a grant batch's 60 s lease). Late writes into a closed hour are awaited for RG_RECONCILE_GRACE_S
# (300 s >= skew + delay). A stock shard's `updated_at_ms` is SET by its *last* committer to that committer's own
# reading, so it can trail the creation time of an order the shard already counts (a grant of the next hour that
# committed first) by up to 2 x skew + delay: STAMP_LAG_MS.
WRITE_DELAY_MS = 60_000
STAMP_LAG_MS = 2 * CLOCK_SKEW_MS + WRITE_DELAY_MS


@dataclass(frozen=True)
class Finding:
    """One discrepancy: its kind, the child namespace it belongs to, the id it is about, and facts."""

    kind: str
    ns: str
    id: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "id": self.id, **self.details}


@dataclass(frozen=True)
class OrderRow:
    """The attributes of an order reconciliation looks at (`ref`: `{wallet_id}|{order_id}`, its storage address)."""

    order_key: str
    ref: str
    ns: str
    scene_id: str
    activity_id: str
    wallet_id: str
    asset: str
    amount: int
    order_cap: int
    status: int
    created_at_ms: int
    credited_at_ms: int | None
    credited_by: str | None
    redriven: str | None
    reconcile: bool = True  # the scene's `reconcile` pinned on the order when placed (absent: True)


@dataclass(frozen=True)
class LedgerRow:
    """The attributes of a ledger entry reconciliation looks at; `posted` is False for a pending order."""

    wallet_id: str
    entry_key: str
    kind: str
    amount: int
    order_key: str | None
    scene_id: str | None
    posted: bool = True

    @property
    def ns(self) -> str:
        """The child namespace, from the wallet id (`{ns}#{act_id}#{asset}`)."""
        return self.wallet_id.split("#", 1)[0]


def is_order(item: Mapping[str, Any]) -> bool:
    """Whether a stored ledger item is an order (a credit entry), not a withdrawal or refund."""
    return item.get("kind") == CREDIT and item.get("status") is not None


def order_row(item: Mapping[str, Any]) -> OrderRow:
    """An order row from its stored ledger attributes."""
    ns = item["wallet_id"].split("#", 1)[0]
    order_id = item["entry_key"].split("#", 1)[1]
    return OrderRow(
        order_key=f"{ns}#{order_id}", ref=f"{item['wallet_id']}|{order_id}", ns=ns, scene_id=item["scene_id"],
        activity_id=item["activity_id"],
        wallet_id=item["wallet_id"], asset=item["asset"], amount=int(item["amount"]),
        order_cap=int(item["order_cap"]), status=int(item["status"]), created_at_ms=int(item["created_at_ms"]),
        credited_at_ms=int(item["credited_at_ms"]) if item.get("credited_at_ms") is not None else None,
        credited_by=item.get("credited_by"), redriven=item.get("redriven"),
        reconcile=item.get("reconcile") is not False,
    )


def ledger_row(item: Mapping[str, Any]) -> LedgerRow:
    """A ledger row from stored attributes (a pending order is a row that is not posted)."""
    wallet_id, entry_key = item["wallet_id"], item["entry_key"]
    order_key = f"{wallet_id.split('#', 1)[0]}#{entry_key.split('#', 1)[1]}" if item["kind"] == CREDIT else None
    return LedgerRow(
        wallet_id=wallet_id, entry_key=entry_key, kind=item["kind"], amount=int(item["amount"]),
        order_key=order_key, scene_id=item.get("scene_id"), posted=item.get("time_key") is not None,
    )


@dataclass
class Totals:
    """Counts and sums of one child namespace's orders in the hour."""

    orders: int = 0
    orders_amount: int = 0
    credited: int = 0
    credited_amount: int = 0
    pending: int = 0
    pending_amount: int = 0

    def add(self, other: Totals) -> None:
        """Accumulate another bucket's totals."""
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class BucketResult:
    """What one bucket of the hour yields (JSON-serialisable, stored per bucket for resumption)."""

    findings: list[Finding] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)  # refs of orders past the SLA, not credited
    totals: dict[str, Totals] = field(default_factory=dict)
    scene_amounts: dict[str, int] = field(default_factory=dict)  # "{ns}|{scene}" -> sum of all orders
    batches: dict[str, list[int]] = field(default_factory=dict)  # "{ns}|{asset}|{batch}" -> [amount, count, last]
    wallets: list[str] = field(default_factory=list)
    # Orders (refs) still to be credited when read: the only ones a batch can credit after this read (a
    # CREDITED order never changes), so the tally check re-reads exactly these before it decides.
    pending: list[str] = field(default_factory=list)


def add_to_batch(batches: dict[str, list[int]], order: OrderRow) -> None:
    """Count a CREDITED order into its crediting batch's sums ("{ns}|{asset}|{batch}" -> [amount, count, last])."""
    sums = batches.setdefault(f"{order.ns}|{order.asset}|{order.credited_by or ''}", [0, 0, 0])
    sums[0] += order.amount
    sums[1] += 1
    sums[2] = max(sums[2], order.credited_at_ms or 0)


def examine_bucket(orders: Iterable[OrderRow], entries: Iterable[LedgerRow], now_ms: int, sla_ms: int) -> BucketResult:
    """Decide what one bucket's orders and its withdrawals/refunds show.

    Every order takes part in what keeps money moving, whatever its scene's settings: a stuck one is listed to
    be re-driven, a pending one for the tally check to re-read, a credited one in its batch's sums (a tally
    counts every order its batch credited) and its wallet checked. Only *reporting* follows the `reconcile`
    flag pinned on the order (never the scene's current setting): an order of a scene placed with
    `reconcile: false` is left out of the totals, the scene sums and the findings. The wallets to check are
    those of the bucket's credited orders and of its other entries (withdrawals, refunds, and any posted credit
    entry that is no order: an edit behind the code's back, which its wallet check reports).
    """
    result = BucketResult()
    wallets: set[str] = {e.wallet_id for e in entries if e.kind in (CREDIT, WITHDRAWAL, REFUND)}
    by_ref = {o.ref: o for o in orders}
    for ref, order in sorted(by_ref.items()):
        if order.reconcile:
            _report_order(result, order)
        if order.status == CREDITED:
            add_to_batch(result.batches, order)
            wallets.add(order.wallet_id)
        elif order.status in (ACCEPTED, CREDITING):
            result.pending.append(ref)
            if now_ms - order.created_at_ms > sla_ms:
                result.stuck.append(ref)
    result.wallets = sorted(wallets)
    return result


def _report_order(result: BucketResult, order: OrderRow) -> None:
    """Count a reconciled order into its child's totals and its scene's sum; flag it over its cap."""
    totals = result.totals.setdefault(order.ns, Totals())
    totals.orders += 1
    totals.orders_amount += order.amount
    scene = f"{order.ns}|{order.scene_id}"
    result.scene_amounts[scene] = result.scene_amounts.get(scene, 0) + order.amount
    if order.amount > order.order_cap:
        result.findings.append(Finding("over_order_cap", order.ns, order.order_key,
                                       {"amount": order.amount, "order_cap": order.order_cap}))
    if order.status == CREDITED:
        totals.credited += 1
        totals.credited_amount += order.amount
    else:
        totals.pending += 1
        totals.pending_amount += order.amount


def scene_totals(orders: Iterable[OrderRow]) -> dict[str, int]:
    """Every order's amount summed per "{ns}|{scene}", whatever the scene's settings (an hour's totals)."""
    totals: dict[str, int] = defaultdict(int)
    for order in orders:
        totals[f"{order.ns}|{order.scene_id}"] += order.amount
    return dict(totals)


def wallet_findings(wallet_id: str, wallet: Mapping[str, Any] | None, entries: Iterable[LedgerRow]) -> list[Finding]:
    """Compare a wallet with its posted entries: balance = credits - withdrawals + refunds, and the totals.

    Pending orders (credit entries not posted yet) are not part of the wallet and are skipped.
    """
    sums = {CREDIT: 0, WITHDRAWAL: 0, REFUND: 0}
    count = 0
    for entry in entries:
        if not entry.posted:
            continue
        sums[entry.kind] = sums.get(entry.kind, 0) + entry.amount
        count += 1
    expected = {
        "balance": sums[CREDIT] - sums[WITHDRAWAL] + sums[REFUND],
        "total_income": sums[CREDIT],
        "total_withdrawn": sums[WITHDRAWAL],
        "total_refunded": sums[REFUND],
        "entry_count": count,
    }
    actual = {name: int((wallet or {}).get(name) or 0) for name in expected}
    if actual == expected:
        return []
    ns = wallet_id.split("#", 1)[0]
    return [Finding("wallet_mismatch", ns, wallet_id, {"wallet": actual, "ledger": expected})]


# A marker is written at or after its batch's last credit, by a clock at most CLOCK_SKEW_MS behind: it lives at least
# until that credit + its TTL - CLOCK_SKEW_MS. A batch credited longer ago than its TTL less this margin may have
# lost its marker to the TTL: its absence no longer says the tally was never written.
TALLY_EXPIRY_MARGIN_MS = 24 * 3600 * 1000


def tally_findings(batches: Mapping[str, list[int]], markers: Mapping[str, Mapping[str, int]], hour: str,
                   scan_started_ms: int, now_ms: int, marker_ttl_ms: int,
                   ) -> tuple[list[Finding], list[tuple[str, str, str, int, int]]]:
    """Compare each batch's credited orders with its tally marker.

    `batches`: "{ns}|{asset}|{batch}" -> [amount, count, last_credited_at] from the orders.
    `markers`: "{ns}|{asset}|{batch}" -> {"amount", "count", "updated_at_ms"}.
    Returns the findings and the tallies to complete: (ns, asset, batch, amount, count) of batches whose
    marker is missing and whose invocation is certainly over, and whose marker cannot have expired yet
    (`marker_ttl_ms`, the markers' TTL): a missing marker of an older batch is `tally_expired`, never completed
    (completing a batch that did tally would count its sum twice).
    """
    findings: list[Finding] = []
    to_complete = []
    for key, (amount, count, last) in sorted(batches.items()):
        ns, asset, batch = key.split("|", 2)
        marker = markers.get(key)
        if marker is None:
            if batch and now_ms - last > marker_ttl_ms - TALLY_EXPIRY_MARGIN_MS:
                findings.append(Finding("tally_expired", ns, f"{batch}#{asset}",
                                        {"orders_amount": amount, "orders_count": count,
                                         "last_credited_at_ms": last, "hour": hour}))
            elif batch and now_ms - last > MAX_INVOCATION_MS:
                to_complete.append((ns, asset, batch, amount, count))
            continue
        if marker["updated_at_ms"] >= scan_started_ms:
            continue  # tallied after the orders were read: the two views are not comparable
        if (marker["amount"], marker["count"]) != (amount, count):
            findings.append(Finding("tally_mismatch", ns, f"{batch}#{asset}",
                                    {"orders_amount": amount, "orders_count": count,
                                     "marker_amount": marker["amount"], "marker_count": marker["count"],
                                     "hour": hour}))
    for key, marker in sorted(markers.items()):
        if key not in batches and marker["updated_at_ms"] < scan_started_ms:
            ns, asset, batch = key.split("|", 2)
            findings.append(Finding("orphan_tally", ns, f"{batch}#{asset}",
                                    {"marker_amount": marker["amount"], "hour": hour}))
    return findings, to_complete


def distributed_finding(ns: str, asset: str, hour: str, counter_before: int, counter_after: int,
                        markers_amount: int) -> Finding | None:
    """The hour's distributed counter must equal the sum of its tally markers (read between two counter reads).

    Counter and markers are written in one transaction; if the counter moved between the two reads, the
    snapshot is not consistent and the caller retries later instead of guessing.
    """
    if counter_before != counter_after or counter_before == markers_amount:
        return None
    return Finding("distributed_drift", ns, f"{asset}#{hour}",
                   {"counter": counter_before, "tallies": markers_amount, "delta": counter_before - markers_amount})


@dataclass(frozen=True)
class ShardRow:
    """A stock/budget shard as read."""

    index: int
    cap: int
    consumed: int
    updated_at_ms: int


def lease_explains(finding: Finding, leased: int) -> bool:
    """Whether a stock drift is no more than units reserved by grant batches and not yet settled or returned.

    Reserved units count as consumed before their orders exist (and a dead process's stay so until the sweep
    returns them): such a drift is not yet a fault, and the comparison waits. A drift the other way (orders
    beyond what was consumed), or larger than what the leases hold, is not explained.
    """
    return finding.kind == "stock_drift" and 0 < finding.details["delta"] <= leased


def latest_counted_hour_ms(shards: Iterable[ShardRow]) -> int:
    """A time in the latest hour whose orders the shards may already count: the newest stamp + STAMP_LAG_MS."""
    return max((r.updated_at_ms for r in shards), default=0) + STAMP_LAG_MS


def stock_findings(ns: str, scene_id: str, total: int, shards: Iterable[ShardRow], orders_amount: int | None,
                   quiet_since_ms: int) -> tuple[list[Finding], bool]:
    """Check a scene's counter. Returns (findings, compared).

    Caps and the total are checked on every pass. The consumed sum is compared with the orders only when
    the counter can hold no order after the end of the last hour `orders_amount` covers (`quiet_since_ms`):
    no shard's stamp is within STAMP_LAG_MS of it (commit order and clock skew can set a stamp that far back
    from an order the shard counts). A counter that may hold later orders cannot be compared with a sum of
    closed hours, so that comparison waits for a pass whose orders reach far enough.
    """
    rows = list(shards)
    findings = []
    scene = f"{ns}|{scene_id}"
    for row in rows:
        if row.consumed > row.cap:
            findings.append(Finding("shard_over_cap", ns, f"{scene}#{row.index}",
                                    {"consumed": row.consumed, "cap": row.cap}))
    consumed = sum(r.consumed for r in rows)
    if consumed > total:
        findings.append(Finding("over_budget", ns, scene, {"consumed": consumed, "total": total}))
    quiet = latest_counted_hour_ms(rows) < quiet_since_ms
    if orders_amount is None or not quiet:
        return findings, False
    if consumed != orders_amount:
        findings.append(Finding("stock_drift", ns, scene,
                                {"consumed": consumed, "orders": orders_amount, "delta": consumed - orders_amount}))
    return findings, True
