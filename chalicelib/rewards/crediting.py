"""Crediting: turn an ACCEPTED order into money (or coupons) in its wallet, exactly once.

Per order, one transaction of two items: the order (its wallet's ledger credit `credit#{order_id}`)
ACCEPTED/CREDITING -> CREDITED and posted (conditioned on its status and amount matching the message; it
gains `posted_at_ms` and `time_key`, so it enters the wallet's `by_time` flow), and the wallet's balance,
income and entry count ADDed. Invariant enforced here: an order is credited at most once and only for
what it says, and a wallet only ever changes together with its posted entries.

Per batch, the credited sums are added to the "total distributed" counters with one transaction per
(child, asset, order hour) group: an ADD on a random shard of the cumulative counter (what the totals API
reads) and of that hour's counter (what reconciliation compares), plus a tally marker put-if-absent keyed
by the batch id. The marker makes the ADD exactly-once; the orders carry `credited_by = batch id`, so a
batch that crashed before its tally is found (orders with no marker) and finished by reconciliation.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock, deadline, faults
from chalicelib.batch import process_sqs_batch
from chalicelib.dynamo import cancellation_codes, connection, with_retries
from chalicelib.errors import PoisonMessage, StorageUnavailable
from chalicelib.observability import count, logger
from chalicelib.rewards import counters, ids
from chalicelib.rewards import late_hours as late
from chalicelib.rewards.orders import Order, credit_entry_key, parse_credit_message
from chalicelib.rewards.tables import ACCEPTED, CREDITED, CREDITING, CounterItem, LedgerEntry, WalletItem
from chalicelib.settings import settings

TALLY_TTL_S = 40 * 24 * 3600


def new_batch_id(prefix: str = "b") -> str:
    """An id for one crediting batch (one worker invocation, or one withdrawal's forced credits)."""
    return f"{prefix}{uuid.uuid4().hex}"


__all__ = ["credit_entry_key"]  # re-exported: callers name an order's ledger key from here too


def time_key(at_ms: int, entry_key: str) -> str:
    """Sort key of a wallet's flow. A credit sorts at its order's creation, where it showed as pending."""
    return f"{at_ms:013d}#{entry_key}"


def wallet_upsert_actions(sub_activity_id: str, act_id: str, asset: str, now_ms: int) -> list:
    """SET actions that create a wallet's descriptive attributes on first touch and keep them after."""
    return [
        WalletItem.sub_activity_id.set(WalletItem.sub_activity_id | sub_activity_id),
        WalletItem.act_id.set(WalletItem.act_id | act_id),
        WalletItem.asset.set(WalletItem.asset | asset),
        WalletItem.updated_at_ms.set(now_ms),
    ]


def credit(order: Order, batch_id: str) -> bool:
    """Credit one order. True if this call credited it; False if it already was (no effect).

    `PoisonMessage` when the order does not exist or does not match the message: retrying cannot help.
    """
    now_ms = clock.now_ms()
    late.mark_if_late(order.hour, now_ms)  # after its hour's last pass: bring the hour back (before the credit)
    token = uuid.uuid4().hex

    def attempt() -> None:
        with TransactWrite(connection=connection(), client_request_token=token) as tx:
            tx.update(
                LedgerEntry(order.wallet_id, order.entry_key),
                actions=[
                    LedgerEntry.status.set(CREDITED),
                    LedgerEntry.credited_at_ms.set(now_ms),
                    LedgerEntry.credited_by.set(batch_id),
                    LedgerEntry.posted_at_ms.set(now_ms),
                    LedgerEntry.time_key.set(time_key(order.created_at_ms, order.entry_key)),
                    LedgerEntry.unsent_bucket.remove(),
                ],
                condition=LedgerEntry.status.is_in(ACCEPTED, CREDITING) & (LedgerEntry.amount == order.amount),
            )
            tx.update(
                WalletItem(order.wallet_id),
                actions=[
                    WalletItem.balance.add(order.amount),
                    WalletItem.total_income.add(order.amount),
                    WalletItem.total_withdrawn.add(0),
                    WalletItem.total_refunded.add(0),
                    WalletItem.entry_count.add(1),
                    *wallet_upsert_actions(order.sub_activity_id, order.act_id, order.asset, now_ms),
                ],
            )

    try:
        with_retries(attempt)
    except TransactWriteError as exc:
        codes = cancellation_codes(exc)
        # [0] the order, [1] the wallet.
        if codes and codes[0] == "ConditionalCheckFailed":
            return _already_credited(order, exc, batch_id)
        raise
    faults.point("credit.after_transaction")
    return True


def _already_credited(order: Order, exc: Exception, batch_id: str) -> bool:
    try:
        stored = with_retries(lambda: LedgerEntry.get(order.wallet_id, order.entry_key, consistent_read=True))
    except DoesNotExist:
        raise PoisonMessage(f"order {order.order_key} does not exist") from exc
    if int(stored.amount) != order.amount or stored.status is None:
        raise PoisonMessage(f"credit message for {order.order_key} does not match the order") from exc
    if stored.status == CREDITED:
        # Credited by this very batch: its own transaction landed and the answer was lost (a retry met it).
        return stored.credited_by == batch_id
    raise PoisonMessage(f"order {order.order_key} is in status {stored.status}") from exc


@dataclass(frozen=True)
class TallyGroup:
    """The credited sum of one batch for one (child, asset, order hour)."""

    ns: str
    asset: str
    hour: str
    amount: int
    count: int


def tally_groups(credited: Iterable[Order]) -> list[TallyGroup]:
    """Group a batch's newly credited orders for the distributed counter. Pure."""
    sums: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for order in credited:
        group = sums[(order.ns, order.asset, order.hour)]
        group[0] += order.amount
        group[1] += 1
    return [TallyGroup(ns, asset, hour, amount, count) for (ns, asset, hour), (amount, count) in sorted(sums.items())]


def dedupe(orders: Iterable[Order]) -> list[Order]:
    """Each order once (by its key), first seen first. Pure."""
    return list({order.order_key: order for order in reversed(list(orders))}.values())[::-1]


def tally_marker_key(ns: str, hour: str, batch_id: str, asset: str) -> tuple[str, str]:
    """(counter_id, sk) of the marker that records one batch's tally for one group."""
    return ids.tally_counter_id(ns, hour, ids.bucket_of(batch_id, settings().hour_buckets)), f"{batch_id}#{asset}"


def write_tally(batch_id: str, group: TallyGroup, completed_by: str | None = None) -> bool:
    """Add one group's sum to the distributed counters, exactly once per (batch, group).

    True if this call added it, False if the marker says it was already added. `completed_by` names
    who wrote it on the batch's behalf (reconciliation finishing a crashed batch).
    """
    now_ms = clock.now_ms()
    if completed_by is None:  # a batch's own tally after its hour's last pass: bring the hour back
        late.mark_if_late(group.hour, now_ms)
    marker_counter, marker_sk = tally_marker_key(group.ns, group.hour, batch_id, group.asset)
    shard = random.randrange(settings().distributed_shards)
    marker = CounterItem(marker_counter, marker_sk, amount=group.amount, count=group.count, updated_at_ms=now_ms,
                         completed_by=completed_by, expires_at=clock.utc_datetime(now_ms + TALLY_TTL_S * 1000))
    counter_ids = (ids.distributed_counter_id(group.ns, group.asset),
                   ids.distributed_hour_counter_id(group.ns, group.asset, group.hour))
    for counter_id in counter_ids:
        counters.record_shards(counter_id, settings().distributed_shards)
    token = uuid.uuid4().hex

    def attempt() -> None:
        with TransactWrite(connection=connection(), client_request_token=token) as tx:
            tx.save(marker, condition=CounterItem.sk.does_not_exist())
            for counter_id in counter_ids:
                tx.update(
                    CounterItem(*ids.shard_key(counter_id, shard)),
                    actions=[CounterItem.amount.add(group.amount), CounterItem.count.add(group.count),
                             CounterItem.updated_at_ms.set(now_ms)],
                )

    try:
        with_retries(attempt)
    except TransactWriteError as exc:
        if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
            return False
        raise
    return True


def resolve_unknown(batch_id: str, unknown: Iterable[Order]) -> tuple[list[Order], set[tuple[str, str, str]]]:
    """Orders whose credit answered no outcome (its transaction may have landed): re-read each, strongly
    consistent. Returns (those this batch credited, the groups `(ns, asset, hour)` of those still unknown)."""
    landed: list[Order] = []
    undecided: set[tuple[str, str, str]] = set()
    for order in unknown:
        try:
            stored = with_retries(lambda o=order: LedgerEntry.get(o.wallet_id, o.entry_key, consistent_read=True))
        except DoesNotExist:
            continue
        except Exception:
            logger.exception("could not re-read a credit of unknown outcome; reconciliation will tally its group",
                             extra={"batch_id": batch_id, "order_key": order.order_key})
            undecided.add((order.ns, order.asset, order.hour))
            continue
        if stored.status == CREDITED and stored.credited_by == batch_id:
            landed.append(order)
    return landed, undecided


def tally(batch_id: str, credited: Iterable[Order], unknown: Iterable[Order] = ()) -> None:
    """Record a batch's credited sums. A failure here loses nothing: reconciliation finishes the tally.

    `unknown`: orders whose credit gave no answer. Each is re-read first; a group holding one that cannot be
    re-read is not tallied here at all (a marker without it would never be completed), so reconciliation's tally
    completion counts the group from the orders themselves: exactly once either way.
    """
    faults.point("credit.before_tally")
    landed, undecided = resolve_unknown(batch_id, unknown)
    for group in tally_groups(dedupe([*credited, *landed])):
        if (group.ns, group.asset, group.hour) in undecided:
            continue
        try:
            write_tally(batch_id, group)
        except Exception:
            logger.exception("tally failed; reconciliation will complete it",
                             extra={"batch_id": batch_id, "ns": group.ns, "hour": group.hour})


def handle_batch(event: Any) -> dict:
    """The credit worker: credit each record on its own, report failures per record, tally the batch.

    Under the invocation's deadline (set by the entry point), records not started in time are reported
    failed and come back; the tally of what was credited still runs.
    """
    batch_id = new_batch_id()
    credited: list[Order] = []
    unknown: list[Order] = []  # credits that answered no outcome: re-read before the tally

    def credit_record(record: Any) -> None:
        order = parse_credit_message(record.body)
        try:
            if credit(order, batch_id):
                credited.append(order)
        except StorageUnavailable:
            unknown.append(order)
            raise

    try:
        # Records stop starting while one storage call's time (at most half the batch's time) is left: the
        # tally below needs it.
        reserve_s = min(deadline.call_bound_s(), deadline.remaining_s() / 2)
        return process_sqs_batch(event, credit_record, getattr(event, "context", None), reserve_s=reserve_s)
    finally:
        # Even when the invocation fails as a whole, what was credited is tallied.
        tally(batch_id, credited, unknown)
        count("Credits", len(credited))
