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

Before its first reservation from a counter in an hour, a process notes the counter in that hour's
registry (`leased#{hour}#{bucket}`, one put per process, counter and hour). A process that dies between 2
and 4 leaves the lease on the shard: `return_expired` (run by the reconciliation schedule) reads the
registry of the last hours, and for those counters finds leases `RETURN_GRACE_MS` past their expiry,
counts the orders the journal lists that exist with this reservation and shard, and settles the rest
back — reported as `reservation_returned`.
The same conditional settle makes the writer's and the reconciler's returns exclusive. Undersell is
bounded by the in-flight reservations and lasts until settle (milliseconds) or, after a crash, until
the next reconciliation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import clock
from chalicelib.dynamo import connection, with_retries
from chalicelib.observability import emit_now, logger
from chalicelib.rewards import ids
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


def write_journal(rid: str, counter_id: str, ns: str, asset: str, orders: Sequence[tuple[str, int]],
                  now_ms: int) -> None:
    """Record the orders (order id, amount) a reservation may be used for, before the reservation is taken.

    The orders of one counter share its child namespace and its scene's asset, so those are written once and
    each order is named by its id alone (its wallet follows: `ids.order_wallet_id`): about 30 bytes an order.
    """
    body = {"counter": counter_id, "ns": ns, "asset": asset, "orders": orders}
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
            UpdateExpression="ADD #c :a, #r :neg SET #l = :lease, #u = :now",
            ConditionExpression="attribute_not_exists(#l) AND #r >= :a",
            ExpressionAttributeNames={"#l": LEASE_PREFIX + rid, **_NAMES},
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
                   home_key: str, skip: Callable[[int, int], bool], saw_full: Callable[[int, int], None],
                   ) -> tuple[list[tuple[Reservation, list[int]]], list[int]]:
    """Reserve `amounts` from the counter's shards in as few writes as possible.

    Returns the blocks (each reservation and the positions of the amounts it holds) and the positions no
    shard had room for. Shards are tried from the home of `home_key` (an order key of the batch: the same
    batch tries the same shards, so a seeded simulation replays exactly); `skip(shard, smallest)` passes
    over a shard believed too full, `saw_full(shard, remaining)` records one found short.
    """
    blocks: list[tuple[Reservation, list[int]]] = []
    pending = list(range(len(amounts)))
    for shard in ids.shard_order(home_key, shard_count):
        if not pending:
            break
        if skip(shard, min(amounts[i] for i in pending)):
            continue
        want = pending
        got = reserve(rid, counter_id, shard, sum(amounts[i] for i in want), now_ms)
        if isinstance(got, int):
            saw_full(shard, got)
            want = fit(amounts, pending, got)
            if not want:
                continue
            got = reserve(rid, counter_id, shard, sum(amounts[i] for i in want), now_ms)
            if isinstance(got, int):
                saw_full(shard, got)
                continue
        blocks.append((got, want))
        taken = set(want)
        pending = [i for i in pending if i not in taken]
    return blocks, pending


@dataclass
class BlockBook:
    """What a batch knows about its blocks while it writes their orders: pure bookkeeping, no I/O.

    A block may be settled by its writer (its unused units given back) only when the outcome of every put
    under it is known. Once any put under a block has an indeterminate outcome (the answer lost: timeout,
    throttling, deadline, an exception unwinding mid-put), the order may have landed, so the block is
    *never* settled on this process's knowledge, whatever later puts answer: its lease stays for
    `return_expired`, which counts the orders that actually landed.
    """

    used: list[int]
    in_flight: set[int] = field(default_factory=set)
    indeterminate: set[int] = field(default_factory=set)
    settled: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, blocks: int) -> BlockBook:
        """A book for `blocks` blocks, nothing written yet."""
        return cls(used=[0] * blocks)

    def begin(self, block: int) -> None:
        """A put under `block` is about to be sent: its outcome is unknown until `record`."""
        self.in_flight.add(block)

    def record(self, block: int, *, created: int = 0, known: bool = True) -> None:
        """The put answered: `created` units used by a new order, or an indeterminate answer (`known=False`)."""
        self.in_flight.discard(block)
        self.used[block] += created
        if not known:
            self.indeterminate.add(block)

    def settleable(self, block: int) -> bool:
        """Whether the writer may give back what this block did not use (at most once)."""
        return block not in self.settled and block not in self.in_flight and block not in self.indeterminate

    def mark_settled(self, block: int) -> None:
        """The writer settled (or tried to settle) this block; it is never settled again by the writer."""
        self.settled.add(block)


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


def _used(rid: str, shard: int) -> int:
    """What the orders written under reservation `rid` on `shard` took (from the journal's order list)."""
    try:
        journal = with_retries(lambda: CounterItem.get(f"resv#{rid}", JOURNAL_SK, consistent_read=True))
    except CounterItem.DoesNotExist:
        return 0  # written before the reservation: no journal means no order could use it
    body = json.loads(journal.journal or "{}")
    keys = list(dict.fromkeys((ids.order_wallet_id(body["ns"], order_id, body["asset"]), credit_entry_key(order_id))
                              for order_id, _ in body.get("orders", [])))
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
            if _settle(counter_id, shard, rid, amount - used, now_ms):
                returned.append(Returned(counter_id, shard, rid, amount, used, amount - used))
    return returned


# --- the registry of counters reserved from, so the sweep needs no scan -----------------------

REGISTRY_BUCKETS = 16
SWEEP_HOURS = 3
_registered: set[tuple[str, str]] = set()
_REGISTERED_MAX = 10_000
_instance = uuid.uuid4().hex


def registry_key(hour: str, bucket: int) -> str:
    """Partition of the counters reserved from in one hour, spread over `REGISTRY_BUCKETS` by process."""
    return f"leased#{hour}#{bucket:02d}"


def register(counter_id: str, shard_count: int, now_ms: int) -> None:
    """Before a process first reserves from a counter in an hour, note the counter in that hour's registry.

    One put per process, counter and hour (the item is the same whoever writes it); the partition is
    chosen by the process, so the first minute of an hour is not one hot partition.
    """
    hour = clock.hour_of(now_ms)
    if (hour, counter_id) in _registered:
        return
    bucket = ids.stable_hash(_instance) % REGISTRY_BUCKETS
    item = CounterItem(registry_key(hour, bucket), counter_id, count=shard_count, updated_at_ms=now_ms,
                       expires_at=clock.utc_datetime(now_ms + JOURNAL_TTL_S * 1000))
    with_retries(item.save)
    if len(_registered) >= _REGISTERED_MAX:
        _registered.clear()
    _registered.add((hour, counter_id))


def _registered_counters(now_ms: int) -> dict[str, int]:
    """Counters reserved from in the last `SWEEP_HOURS` hours (and this one), with their shard counts."""
    found: dict[str, int] = {}
    for back in range(SWEEP_HOURS + 1):
        hour = clock.hour_of(now_ms - back * 3_600_000)
        for bucket in range(REGISTRY_BUCKETS):
            for item in with_retries(lambda h=hour, b=bucket: list(CounterItem.query(
                    registry_key(h, b), consistent_read=True))):
                found[item.sk] = max(found.get(item.sk, 0), int(item.count or 0))
    return found


def return_expired(now_ms: int | None = None) -> list[Returned]:
    """Reconciliation's sweep: dead reservations of the counters reserved from lately back to their shards.

    Run by every reconciliation schedule (every 5 minutes): a lease taken in hour H is returnable from
    `LEASE_MS + RETURN_GRACE_MS` after it was taken and is looked for until H + `SWEEP_HOURS`. Each one
    returned is logged as `reservation_returned`; their count is the `ReservationReturned` metric.
    """
    now_ms = clock.now_ms() if now_ms is None else now_ms
    returned: list[Returned] = []
    for counter_id, shard_count in sorted(_registered_counters(now_ms).items()):
        returned.extend(return_dead(counter_id, shard_count, now_ms))
    for r in returned:
        logger.warning("reservation_returned", extra={
            "counter_id": r.counter_id, "shard": r.shard, "reservation": r.rid, "reserved": r.reserved,
            "used": r.used, "returned": r.returned})
    emit_now("ReservationReturned", len(returned))
    return returned
