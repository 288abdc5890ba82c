"""The wallet check of reconciliation, incremental: read units bound by the hour, not by the wallet's history.

A wallet touched in an hour must agree with its posted ledger: balance = credits - withdrawals + refunds,
and the totals and `entry_count` match (`findings.wallet_findings`). Reading the whole ledger each time
costs what the wallet's history weighs; instead each wallet keeps a checkpoint in the reconciliation table
(`wallet-check#{wallet_id}` / `cp`): "the posted entries with time <= T were `count` entries with these
sums", as last verified. A check reads the checkpoint (one GetItem per wallet, so what a pass reads does
not depend on how its wallets fall into hour buckets), the `by_time` entries after T (strongly consistent),
then the wallet (strongly consistent); checkpoint + new entries that equal the wallet are a consistent
snapshot that agrees (proof below), and T moves forward.

Why equality proves a consistent snapshot: every posting writes its ledger entry and the wallet
(`entry_count` + 1) in one transaction, and entries are never removed. The entries read are at least those
the checkpoint counted plus the new ones read; the wallet, read after the query, counts at least as many.
So `count + len(new) == entry_count` holds only when nothing was posted after the query and no entry with a
time <= T appeared since the checkpoint (a late credit of an old order, whose time is its order's creation).

Without a checkpoint (or a week after the last whole read) the same reads start from nothing: the whole
posted ledger, then the wallet. Any disagreement is re-read once the wallet holds still (same wallet twice
around a query); then the whole posted ledger (`by_time`) is read between two wallet reads, as before this
module existed, and decides: findings as `findings.wallet_findings` reports them, and a fresh checkpoint
when it agrees. A wallet that keeps moving
is deferred (`wallet:{id}`), as before. Posted entries are read only through the `by_time` index, never the
table's partition (which may also hold pending orders).

What incremental gives up: an entry with a time <= T edited or deleted after it was checkpointed is not
re-read while the wallet's own figures still match the checkpoint. A tampered wallet, a deleted or edited
entry after T, and any entry posted before T since (late credits) are still caught at once; the old-entry
edit is caught by the whole read each wallet gets at least every `FULL_CHECK_EVERY_MS` when touched.

Costs: a check reads the checkpoint (0.5 read units), the new entries (1 unit per 4 KB) and the wallet (1);
a checkpoint is written (1 write unit) only when it moves over new entries, and only for wallets whose
ledger is longer than `SMALL_LEDGER` entries (a shorter one is read whole for one unit, as before).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock, deadline
from chalicelib.dynamo import with_retries
from chalicelib.reconcile import findings as F
from chalicelib.reconcile.tables import ReconItem
from chalicelib.rewards.tables import ACCEPTED, CREDIT, CREDITING, REFUND, WITHDRAWAL, LedgerEntry, WalletItem
from chalicelib.settings import settings

READ_ATTEMPTS = 3  # reads of a moving wallet before its check is deferred
THREADS = 8
FULL_CHECK_EVERY_MS = 7 * 24 * 3600 * 1000  # a touched wallet's whole ledger is re-read at least this often
CHECKPOINT_TTL_S = 35 * 24 * 3600  # an untouched wallet's checkpoint expires; its next check reads it whole
CHECKPOINT_SK = "cp"
# A posted ledger this short is read whole in one read unit (about 450 B an entry, 4 KB a unit): cheaper than a
# checkpoint, whose every move costs a write unit (5 read units' price). Longer ones get a checkpoint.
SMALL_LEDGER = 8


# --- the decision (pure) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    """A posted ledger entry as the wallet check sees it: when (from its time key), what kind, how much."""

    at_ms: int
    kind: str
    amount: int


@dataclass(frozen=True)
class Checkpoint:
    """The posted entries with `at_ms <= through_ms`: how many, their sums; when the whole ledger was last read."""

    through_ms: int
    count: int
    income: int
    withdrawn: int
    refunded: int
    full_at_ms: int

    def add(self, entries: Iterable[Posted], through_ms: int) -> Checkpoint:
        """This checkpoint moved to `through_ms`, counting the given entries up to it (not before its own T)."""
        count, sums = self.count, {CREDIT: self.income, WITHDRAWAL: self.withdrawn, REFUND: self.refunded}
        for entry in entries:
            if self.through_ms < entry.at_ms <= through_ms:
                count += 1
                sums[entry.kind] = sums.get(entry.kind, 0) + entry.amount
        return Checkpoint(max(self.through_ms, through_ms), count, sums[CREDIT], sums[WITHDRAWAL], sums[REFUND],
                          self.full_at_ms)


def empty_checkpoint(full_at_ms: int) -> Checkpoint:
    """Nothing counted yet (the start of a whole read)."""
    return Checkpoint(-1, 0, 0, 0, 0, full_at_ms)


def wallet_figures(wallet: Mapping[str, Any] | None) -> dict[str, int]:
    """The wallet's own figures the ledger must explain (an absent wallet has zeros)."""
    names = ("balance", "total_income", "total_withdrawn", "total_refunded", "entry_count")
    return {name: int((wallet or {}).get(name) or 0) for name in names}


def agrees(checkpoint: Checkpoint, new: Sequence[Posted], wallet: Mapping[str, Any] | None) -> bool:
    """Whether checkpoint + the entries after it explain the wallet exactly (count, totals and balance)."""
    sums = {CREDIT: checkpoint.income, WITHDRAWAL: checkpoint.withdrawn, REFUND: checkpoint.refunded}
    for entry in new:
        sums[entry.kind] = sums.get(entry.kind, 0) + entry.amount
    expected = {"balance": sums[CREDIT] - sums[WITHDRAWAL] + sums[REFUND], "total_income": sums[CREDIT],
                "total_withdrawn": sums[WITHDRAWAL], "total_refunded": sums[REFUND],
                "entry_count": checkpoint.count + len(new)}
    return wallet_figures(wallet) == expected


def needs_whole_read(checkpoint: Checkpoint | None, now_ms: int) -> bool:
    """No checkpoint yet, or the last whole read is older than `FULL_CHECK_EVERY_MS`."""
    return checkpoint is None or now_ms - checkpoint.full_at_ms >= FULL_CHECK_EVERY_MS


def next_through(now_ms: int, margin_ms: int, oldest_pending_ms: int | None) -> int:
    """How far a new checkpoint may reach: entries still to be posted must land after it.

    A credit's time is its order's creation, so no later than the oldest order of the wallet still pending
    (as seen by the bucket), minus one; anything else posts with a time close to its commit, and `margin_ms`
    covers the gap. An entry that lands before T all the same (an order pending elsewhere) is a late entry:
    the next check sees the count disagree and reads the whole ledger -- a cost, never a wrong answer.
    """
    through = now_ms - margin_ms
    if oldest_pending_ms is not None:
        through = min(through, oldest_pending_ms - 1)
    return through


def oldest_pending(orders: Iterable[Any]) -> dict[str, int]:
    """Per wallet, the creation time of its oldest order still to be credited among `orders` (bucket rows)."""
    oldest: dict[str, int] = {}
    for order in orders:
        if order.status in (ACCEPTED, CREDITING):
            oldest[order.wallet_id] = min(order.created_at_ms, oldest.get(order.wallet_id, order.created_at_ms))
    return oldest


# --- the adapter -------------------------------------------------------------------------------------------


class _Row(Protocol):
    attribute_values: dict[str, Any]


def _posted(item: _Row) -> Posted:
    values = item.attribute_values
    return Posted(int(values["time_key"][:13]), values["kind"], int(values["amount"]))


def _pk(wallet_id: str) -> str:
    return f"wallet-check#{wallet_id}"


def read_checkpoint(wallet_id: str) -> Checkpoint | None:
    """The wallet's checkpoint (eventually consistent, half a read unit: an older checkpoint is still true)."""
    try:
        item = with_retries(lambda: ReconItem.get(_pk(wallet_id), CHECKPOINT_SK, attributes_to_get=["body"]))
    except DoesNotExist:
        return None
    return Checkpoint(**json.loads(item.body))


def write_checkpoint(wallet_id: str, checkpoint: Checkpoint) -> None:
    """Store a verified checkpoint (a plain put: any verified checkpoint is true, whichever lands last)."""
    now = clock.now_ms()
    item = ReconItem(_pk(wallet_id), CHECKPOINT_SK, body=json.dumps(asdict(checkpoint), separators=(",", ":")),
                     updated_at_ms=now, expires_at=clock.utc_datetime(now + CHECKPOINT_TTL_S * 1000))
    with_retries(item.save)


def _read_wallet(wallet_id: str) -> dict[str, Any] | None:
    try:
        return with_retries(lambda: WalletItem.get(wallet_id, consistent_read=True)).attribute_values
    except DoesNotExist:
        return None


def _posted_after(wallet_id: str, through_ms: int) -> list[Any]:
    """The wallet's posted entries with a time after `through_ms` (strongly consistent, `by_time` only)."""
    condition = LedgerEntry.time_key >= f"{through_ms + 1:013d}"
    return with_retries(lambda: list(LedgerEntry.by_time.query(wallet_id, condition, consistent_read=True)))


def _whole_snapshot(wallet_id: str) -> tuple[dict[str, Any] | None, list[Any]] | None:
    """The wallet and its whole posted ledger, read so that they belong together (else None: it kept moving).

    Every posting also changes the wallet (entry_count), so a wallet that reads the same before and after
    the ledger query was not written in between.
    """
    for _ in range(READ_ATTEMPTS):
        before = _read_wallet(wallet_id)
        entries = with_retries(lambda: list(LedgerEntry.by_time.query(wallet_id, consistent_read=True)))
        if _read_wallet(wallet_id) == before:
            return before, entries
    return None


def _incremental(wallet_id: str, checkpoint: Checkpoint, through_ms: int) -> tuple[str, Checkpoint, int]:
    """Read the entries after the checkpoint, then the wallet: ("ok", the checkpoint moved, the wallet's
    entry count), ("moving", ...) when the wallet never held still, or ("whole", ...) for a disagreement."""
    previous: dict[str, Any] | None = None
    for attempt in range(READ_ATTEMPTS):
        new = [_posted(item) for item in _posted_after(wallet_id, checkpoint.through_ms)]
        wallet = _read_wallet(wallet_id)
        if agrees(checkpoint, new, wallet):
            return "ok", checkpoint.add(new, through_ms), wallet_figures(wallet)["entry_count"]
        if attempt and wallet == previous:
            break  # the wallet held still around the last query: a real disagreement, or a late entry
        previous = wallet
    else:
        return "moving", checkpoint, 0
    return "whole", checkpoint, 0


def check_wallet(wallet_id: str, checkpoint: Checkpoint | None, through_ms: int,
                 now_ms: int) -> tuple[list[F.Finding], bool]:
    """Check one wallet. Returns (findings, deferred).

    Without a usable checkpoint the same reads start from nothing: the whole posted ledger, then the wallet.
    """
    whole = needs_whole_read(checkpoint, now_ms)
    start = empty_checkpoint(now_ms) if whole or checkpoint is None else checkpoint
    outcome, moved, entry_count = _incremental(wallet_id, start, through_ms)
    if outcome == "moving":
        return [], True
    if outcome == "ok":
        if (entry_count > SMALL_LEDGER) if whole else moved.count != start.count:
            write_checkpoint(wallet_id, moved)  # else the old checkpoint (or none, for a short ledger) will do
        return [], False
    snapshot = _whole_snapshot(wallet_id)
    if snapshot is None:
        return [], True
    wallet, items = snapshot
    found = F.wallet_findings(wallet_id, wallet, [F.ledger_row(item.attribute_values) for item in items])
    if not found and len(items) > SMALL_LEDGER:
        write_checkpoint(wallet_id, empty_checkpoint(now_ms).add([_posted(item) for item in items], through_ms))
    return found, False


def check(wallet_ids: Iterable[str], oldest_pending_ms: Mapping[str, int]) -> tuple[list[F.Finding], list[str]]:
    """Check wallets against their posted ledgers. Returns findings and deferred checks (`wallet:{id}`).

    `oldest_pending_ms`: per wallet, its oldest order still to be credited seen by the caller (bounds T).
    """
    wallet_ids = list(wallet_ids)
    now_ms = clock.now_ms()
    margin_ms = settings().accepted_sla_s * 1000

    def one(wallet_id: str) -> tuple[list[F.Finding], bool]:
        through = next_through(now_ms, margin_ms, oldest_pending_ms.get(wallet_id))
        return check_wallet(wallet_id, read_checkpoint(wallet_id), through, now_ms)

    found: list[F.Finding] = []
    deferred: list[str] = []
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = pool.map(deadline.carried(one), wallet_ids)  # threads start without the caller's deadline
        for wallet_id, (wallet_found, wallet_deferred) in zip(wallet_ids, results, strict=True):
            found.extend(wallet_found)
            if wallet_deferred:
                deferred.append(f"wallet:{wallet_id}")
    return found, deferred
