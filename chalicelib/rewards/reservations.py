"""Block reservations of stock/budget: a batch of grants takes its total from a shard in one write.

A grant batch (`grants.place_many`) does not consume a shard per order inside a transaction (2 write
units per order for the shard, 2 for the order). It reserves instead:

1. the *journal* `resv#{rid}` / `journal` is put first: every order of the batch (key, amount), with a
   TTL of `JOURNAL_TTL_S` (TTL deletes are free); it is only ever read for a reservation that was never
   settled;
2. one conditional `UpdateItem` per shard used (usually one): `ADD consumed :n, remaining -:n`,
   `SET lease_{rid} = {a: n, x: expires_at_ms}` if `remaining >= :n` — the units are taken *before* any
   order is written, so the shard's invariant (`consumed + remaining = cap`, `remaining >= 0`) holds and
   nothing can be oversold;
3. each order is a plain conditional put (`attribute_not_exists`), carrying `reservation = rid` and the
   shard; no order is written after `expires_at_ms - WRITE_MARGIN_MS` by the writer's clock;
4. `settle`: `ADD consumed -unused, remaining +unused REMOVE lease_{rid}` if the lease still exists —
   units of duplicates and conflicts go back at once.

Before its first reservation from a counter in an hour, a process notes the counter in the registry of
counters that may hold open leases (`leased#open#{bucket}`, one write per process, counter and hour). A
process that dies between 2 and 4 leaves the lease on the shard: `return_expired` (run by the reconciliation
schedule) reads the registry — whatever was reserved from since the last clean sweep, however long ago —
and for those counters finds leases `RETURN_GRACE_MS` past their expiry, counts the orders the journal lists
that exist with this reservation and shard, and settles the rest back — reported as `reservation_returned`;
a counter swept clean leaves the registry. A lease whose journal is gone is kept and reported
(`reservation_unaccountable`), never returned blind.
The same conditional settle makes the writer's and the reconciler's returns exclusive. Undersell is
bounded by the in-flight reservations and lasts until settle (milliseconds) or, after a crash, until
the next reconciliation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import clock
from chalicelib.dynamo import connection, with_retries
from chalicelib.observability import emit_now, logger
from chalicelib.rewards import ids
from chalicelib.rewards.blocks import BlockBook, FullHints  # noqa: F401 - re-exported: the batch's bookkeeping
from chalicelib.rewards.counters import allocated_shards
from chalicelib.rewards.orders import credit_entry_key
from chalicelib.rewards.tables import CounterItem, LedgerEntry

LEASE_PREFIX = "lease_"
LEASE_MS = 60_000
# A writer stops writing orders under a reservation this long before it expires (its own clock).
WRITE_MARGIN_MS = 15_000
# Reconciliation returns a dead reservation only this long after it expired (clock skew, slow requests).
RETURN_GRACE_MS = 300_000
JOURNAL_SK = "journal"
JOURNAL_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Reservation:
    """Units taken from one shard for some orders of one batch."""

    rid: str
    counter_id: str
    shard: int
    amount: int
    expires_at_ms: int

    def writable(self, now_ms: int) -> bool:
        """Whether an order may still be written under this reservation."""
        return now_ms < self.expires_at_ms - WRITE_MARGIN_MS


@dataclass(frozen=True)
class Returned:
    """A dead reservation settled by reconciliation: what it took, what its orders used, what went back."""

    counter_id: str
    shard: int
    rid: str
    reserved: int
    used: int
    returned: int


def new_id() -> str:
    """A reservation id."""
    return uuid.uuid4().hex


_NAMES = {"#c": "consumed", "#r": "remaining", "#u": "updated_at_ms"}


def _table() -> str:
    return CounterItem.Meta.table_name


def _key(counter_id: str, shard: int) -> dict[str, Any]:
    hash_key, range_key = ids.shard_key(counter_id, shard)
    return {"counter_id": {"S": hash_key}, "sk": {"S": range_key}}


def write_journal(rid: str, counter_id: str, ns: str, asset: str, orders: Sequence[tuple[str, int, str]],
                  now_ms: int) -> None:
    """Record the orders (order id, amount, asset) a reservation may be used for, before the reservation is taken.

    The orders of one counter share its child namespace and nearly always `asset` (the scene's terms at their
    open times), so those are written once and each order is named by its id alone (its wallet follows:
    `ids.order_wallet_id`): about 30 bytes an order; an order of other terms carries its asset as a third element.
    """
    listed = [[order_id, amount] if own == asset else [order_id, amount, own] for order_id, amount, own in orders]
    body = {"counter": counter_id, "ns": ns, "asset": asset, "orders": listed}
    item = CounterItem(f"resv#{rid}", JOURNAL_SK, journal=json.dumps(body, separators=(",", ":")),
                       updated_at_ms=now_ms, expires_at=clock.utc_datetime(now_ms + JOURNAL_TTL_S * 1000))
    with_retries(item.save)


def reserve(rid: str, counter_id: str, shard: int, amount: int, now_ms: int) -> Reservation | int:
    """Take `amount` from a shard for reservation `rid`: the `Reservation`, or the shard's remaining when short.

    Idempotent: a retry whose first attempt was applied (its answer lost) finds its own lease and
    answers it, instead of taking the units a second time.
    """
    expires = now_ms + LEASE_MS
    try:
        with_retries(lambda: connection().client.update_item(
            TableName=_table(), Key=_key(counter_id, shard),
            UpdateExpression="ADD #c :a, #r :neg SET #l = :lease, #u = :now, #f = if_not_exists(#f, :now)",
            ConditionExpression="attribute_not_exists(#l) AND #r >= :a",
            ExpressionAttributeNames={"#l": LEASE_PREFIX + rid, "#f": "first_at_ms", **_NAMES},
            ExpressionAttributeValues={":a": {"N": str(amount)}, ":neg": {"N": str(-amount)},
                                       ":now": {"N": str(now_ms)},
                                       ":lease": {"M": {"a": {"N": str(amount)}, "x": {"N": str(expires)}}}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD"))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        old = exc.response.get("Item") or {}
        mine = old.get(LEASE_PREFIX + rid)
        if mine is not None:
            return Reservation(rid, counter_id, shard, int(mine["M"]["a"]["N"]), int(mine["M"]["x"]["N"]))
        return int(old.get("remaining", {}).get("N", "0"))
    return Reservation(rid, counter_id, shard, amount, expires)


def fit(amounts: Sequence[int], positions: Sequence[int], room: int) -> list[int]:
    """The positions, in order, whose amounts fit in `room` units (greedy). Pure."""
    chosen, left = [], room
    for position in positions:
        if amounts[position] <= left:
            chosen.append(position)
            left -= amounts[position]
    return chosen


def reserve_blocks(rid: str, counter_id: str, shard_count: int, amounts: Sequence[int], now_ms: int, *,
                   home_key: str, hints: FullHints) -> tuple[list[tuple[Reservation, list[int]]], list[int]]:
    """Reserve `amounts` from the counter's shards in as few writes as possible.

    Returns the blocks (each reservation and the positions of the amounts it holds) and the positions no
    shard had room for. Shards are tried from the home of `home_key` (an order key of the batch: the same
    batch tries the same shards, so a seeded simulation replays exactly); a shard `hints` believes too full
    for the smallest amount left is passed over, and one found short is recorded there.
    """
    blocks: list[tuple[Reservation, list[int]]] = []
    pending = list(range(len(amounts)))
    for shard in ids.shard_order(home_key, shard_count):
        if not pending:
            break
        if hints.hinted_full(counter_id, shard, min(amounts[i] for i in pending)):
            continue
        want = pending
        got = reserve(rid, counter_id, shard, sum(amounts[i] for i in want), now_ms)
        if isinstance(got, int):
            hints.saw_full(counter_id, shard, got)
            want = fit(amounts, pending, got)
            if not want:
                continue
            got = reserve(rid, counter_id, shard, sum(amounts[i] for i in want), now_ms)
            if isinstance(got, int):
                hints.saw_full(counter_id, shard, got)
                continue
        blocks.append((got, want))
        taken = set(want)
        pending = [i for i in pending if i not in taken]
    return blocks, pending


def settle(reservation: Reservation, used: int, now_ms: int) -> bool:
    """Give back what a reservation did not use and drop its lease; False if it was already settled."""
    return _settle(reservation.counter_id, reservation.shard, reservation.rid, reservation.amount - used, now_ms)


def _settle(counter_id: str, shard: int, rid: str, unused: int, now_ms: int) -> bool:
    try:
        with_retries(lambda: connection().client.update_item(
            TableName=_table(), Key=_key(counter_id, shard),
            UpdateExpression="ADD #c :neg, #r :unused SET #u = :now REMOVE #l",
            ConditionExpression="attribute_exists(#l)",
            ExpressionAttributeNames={"#l": LEASE_PREFIX + rid, **_NAMES},
            ExpressionAttributeValues={":neg": {"N": str(-unused)}, ":unused": {"N": str(unused)},
                                       ":now": {"N": str(now_ms)}}))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return False
    return True


# --- reconciliation: dead reservations -------------------------------------------------------


def _leases(counter_id: str, shard: int) -> dict[str, tuple[int, int]]:
    answer = with_retries(lambda: connection().client.get_item(
        TableName=_table(), Key=_key(counter_id, shard), ConsistentRead=True))
    item = answer.get("Item") or {}
    return {name[len(LEASE_PREFIX):]: (int(value["M"]["a"]["N"]), int(value["M"]["x"]["N"]))
            for name, value in item.items() if name.startswith(LEASE_PREFIX)}


def outstanding(counter_id: str, shards: Iterable[int]) -> int:
    """Units reserved on these shards of a counter and not yet settled or returned (counted as consumed)."""
    return sum(amount for shard in shards for amount, _ in _leases(counter_id, shard).values())


def _used(rid: str, shard: int) -> int | None:
    """What the orders written under reservation `rid` on `shard` took (from the journal's order list).

    None when the journal is gone: it is written before its reservation is taken, so a lease without one
    outlived the journal's TTL, and what its orders used cannot be counted.
    """
    try:
        journal = with_retries(lambda: CounterItem.get(f"resv#{rid}", JOURNAL_SK, consistent_read=True))
    except CounterItem.DoesNotExist:
        return None
    body = json.loads(journal.journal or "{}")
    keys = list(dict.fromkeys((ids.order_wallet_id(body["ns"], entry[0], entry[2] if len(entry) > 2 else body["asset"]),
                               credit_entry_key(entry[0])) for entry in body.get("orders", [])))
    used = 0
    for start in range(0, len(keys), 100):
        chunk = keys[start:start + 100]
        for item in with_retries(lambda c=chunk: list(LedgerEntry.batch_get(c, consistent_read=True))):
            if item.reservation == rid and item.shard == shard:
                used += int(item.amount)
    return used


def return_dead(counter_id: str, shard_count: int, now_ms: int) -> list[Returned]:
    """Settle every reservation of a counter whose lease expired more than `RETURN_GRACE_MS` ago."""
    returned: list[Returned] = []
    for shard in range(max(shard_count, allocated_shards(counter_id))):
        for rid, (amount, expires) in _leases(counter_id, shard).items():
            if now_ms < expires + RETURN_GRACE_MS:
                continue
            used = _used(rid, shard)
            if used is None:
                # Returning blind could sell its orders' units twice; keeping them is a bounded undersell.
                logger.error("reservation_unaccountable", extra={
                    "counter_id": counter_id, "shard": shard, "reservation": rid, "reserved": amount,
                    "expired_at_ms": expires})
                continue
            if _settle(counter_id, shard, rid, amount - used, now_ms):
                returned.append(Returned(counter_id, shard, rid, amount, used, amount - used))
    return returned


# --- the registry of counters that may hold open leases, so the sweep needs no scan -----------
#
# `leased#open#{bucket}` / `{counter_id}`: a counter reserved from and not yet swept clean, with the latest hour
# (`hour_ms`, stored in `amount`) a process registered it in. The sweep reads every bucket (its work is the
# counters reserved from since their last clean sweep: never an outage's length), returns their dead leases,
# and deletes an entry once its hour is past every lease's expiry and grace and the counter holds no lease —
# conditionally on the hour it read, so a process registering a later hour meanwhile keeps it.

REGISTRY_BUCKETS = 16
_registered: set[tuple[str, str]] = set()
_REGISTERED_MAX = 10_000
_instance = uuid.uuid4().hex


def registry_key(bucket: int) -> str:
    """Partition of the counters that may hold open leases, spread over `REGISTRY_BUCKETS` by process."""
    return f"leased#open#{bucket:02d}"


def register(counter_id: str, shard_count: int, now_ms: int) -> None:
    """Before a process first reserves from a counter in an hour, note the counter (and that hour) in the registry.

    One write per process, counter and hour; the hour only moves forward, so the sweep never drops an entry
    a process still reserves under.
    """
    hour = clock.hour_of(now_ms)
    if (hour, counter_id) in _registered:
        return
    bucket = ids.stable_hash(_instance) % REGISTRY_BUCKETS
    hour_ms = clock.hour_start_ms(hour)
    try:
        with_retries(lambda: connection().client.update_item(
            TableName=_table(), Key={"counter_id": {"S": registry_key(bucket)}, "sk": {"S": counter_id}},
            UpdateExpression="SET #h = :h, #n = :n, #u = :now",
            ConditionExpression="attribute_not_exists(#h) OR #h <= :h",
            ExpressionAttributeNames={"#h": "amount", "#n": "count", "#u": "updated_at_ms"},
            ExpressionAttributeValues={":h": {"N": str(hour_ms)}, ":n": {"N": str(shard_count)},
                                       ":now": {"N": str(now_ms)}}))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        # another process of this bucket registered a later hour: the entry stays at least until then
    if len(_registered) >= _REGISTERED_MAX:
        _registered.clear()
    _registered.add((hour, counter_id))


@dataclass(frozen=True)
class Registered:
    """A registry entry: a counter that may hold open leases, in one bucket, registered up to `hour_ms`."""

    bucket: int
    counter_id: str
    shard_count: int
    hour_ms: int

    def quiet_since(self, now_ms: int) -> bool:
        """Whether every lease taken under this registration is past its expiry and the sweep's grace."""
        return now_ms >= self.hour_ms + 3_600_000 + LEASE_MS + RETURN_GRACE_MS


def _registered_counters() -> list[Registered]:
    """Every registry entry (all buckets, strongly consistent)."""
    found: list[Registered] = []
    for bucket in range(REGISTRY_BUCKETS):
        for item in with_retries(lambda b=bucket: list(CounterItem.query(registry_key(b), consistent_read=True))):
            found.append(Registered(bucket, item.sk, int(item.count or 0), int(item.amount or 0)))
    return found


def _forget(entry: Registered) -> None:
    """Drop a swept-clean entry, unless a process registered a later hour since it was read."""
    try:
        with_retries(lambda: connection().client.delete_item(
            TableName=_table(), Key={"counter_id": {"S": registry_key(entry.bucket)}, "sk": {"S": entry.counter_id}},
            ConditionExpression="#h = :h", ExpressionAttributeNames={"#h": "amount"},
            ExpressionAttributeValues={":h": {"N": str(entry.hour_ms)}}))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise


def return_expired(now_ms: int | None = None) -> list[Returned]:
    """Reconciliation's sweep: dead reservations of the registered counters back to their shards.

    Run by every reconciliation schedule (every 5 minutes): a lease is returnable from `LEASE_MS +
    RETURN_GRACE_MS` after it was taken, whenever the sweep next runs — after an outage of any length, its
    work is the counters reserved from since their last clean sweep. Each one returned is logged as
    `reservation_returned`; their count is the `ReservationReturned` metric.
    """
    now_ms = clock.now_ms() if now_ms is None else now_ms
    returned: list[Returned] = []
    entries = sorted(_registered_counters(), key=lambda e: (e.counter_id, e.bucket))
    shard_counts: dict[str, int] = {}
    for entry in entries:
        shard_counts[entry.counter_id] = max(shard_counts.get(entry.counter_id, 0), entry.shard_count)
    clean: set[str] = set()
    for counter_id, shard_count in shard_counts.items():
        returned.extend(return_dead(counter_id, shard_count, now_ms))
        if outstanding(counter_id, range(max(shard_count, allocated_shards(counter_id)))) == 0:
            clean.add(counter_id)
    for entry in entries:
        if entry.counter_id in clean and entry.quiet_since(now_ms):
            _forget(entry)
    for r in returned:
        logger.warning("reservation_returned", extra={
            "counter_id": r.counter_id, "shard": r.shard, "reservation": r.rid, "reserved": r.reserved,
            "used": r.used, "returned": r.returned})
    emit_now("ReservationReturned", len(returned))
    return returned
