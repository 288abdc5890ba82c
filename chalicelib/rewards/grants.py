"""Granting rewards: one order per order id, never beyond stock or budget.

An order is its wallet's ledger credit (`credit#{order_id}` in the wallet's partition of the ledger
table, pending until credited). A single grant is one DynamoDB transaction: the order put-if-absent, and
(when the scene controls stock or budget) one counter shard's `ADD consumed :amount` guarded by
`remaining >= :amount`. Both commit or
neither does, so a sold-out scene writes nothing and an order exists only with its stock consumed.
Invariant enforced here: sum over shards of `consumed` <= total, because each shard's consumption is
bounded by its cap and the caps never sum above the total (see `spread`).

After the commit the order is enqueued for crediting (`chalicelib.rewards.sending`, re-exported here). If
that send fails, the order stays ACCEPTED and is flagged in the sparse `unsent` index, which the sweeper
re-sends; if the process dies before even that, the hourly reconciliation re-drives it. Either way the
reward is never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock, faults
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import AmountOverCap, OrderConflict, RewardgateError, SoldOut, StorageUnavailable
from chalicelib.observability import logger
from chalicelib.rewards import config_store, ids, orders, ratelimit, reservations, tokens
from chalicelib.rewards.config import TOKEN_ISSUANCE, Scene
from chalicelib.rewards.orders import GrantRequest, Order
from chalicelib.rewards.sending import enqueue, resend_unsent  # noqa: F401 - re-exported: callers use grants.*
from chalicelib.rewards.stock_tx import Exists as _Exists
from chalicelib.rewards.stock_tx import ShardFull as _ShardFull
from chalicelib.rewards.stock_tx import consistent_remaining as _consistent_remaining
from chalicelib.rewards.stock_tx import transact as _transact
from chalicelib.rewards.tables import ACCEPTED, LedgerEntry
from chalicelib.settings import settings

# A shard seen full is skipped by this process for this long before it is tried again by a
# transaction; it is still re-read (strongly consistent) before a grant is declared sold out.
FULL_HINT_S = 1.0
# An existing ACCEPTED order this old is re-enqueued when its grant is repeated: its first send has
# long succeeded or failed, and crediting is idempotent, so a repeat costs one message at most.
REENQUEUE_AFTER_MS = 30_000

_hints = reservations.FullHints(lambda: FULL_HINT_S)


@dataclass(frozen=True)
class Granted:
    """The outcome of one grant: the order, whether this call created it, and its token."""

    order: Order
    created: bool
    token: str | None

    def body(self) -> dict:
        """The JSON the grant API answers with."""
        return orders.public_view(self.order, self.token)


def _hint_full(counter_id: str, shard: int, remaining: int) -> None:
    _hints.saw_full(counter_id, shard, remaining)


def _hinted_full(counter_id: str, shard: int, amount: int) -> bool:
    return _hints.hinted_full(counter_id, shard, amount)


def _place_with_stock(order: Order, counter_id: str, shard_count: int) -> Order:
    """Commit the order on the first shard with room; `SoldOut` when none has any."""
    candidates = ids.shard_order(order.order_key, shard_count)
    deferred = [s for s in candidates if _hinted_full(counter_id, s, order.amount)]
    first_pass = [s for s in candidates if s not in deferred]
    transacted = False
    for attempt_shards in (first_pass, None):
        if attempt_shards is None:
            # Every shard tried is full; confirm the ones skipped on a hint before saying sold out.
            if not deferred:
                break
            room = _consistent_remaining(counter_id, deferred)
            attempt_shards = [s for s in deferred if room.get(s, 0) >= order.amount]
        for shard in attempt_shards:
            transacted = True
            try:
                _transact(order, counter_id, shard)
                return replace(order, shard=shard)
            except _ShardFull as full:
                _hint_full(counter_id, shard, full.remaining)
    if not transacted:
        # No transaction ran, so nothing checked whether this order already exists: a repeat of a granted
        # order must get its order back, not sold_out.
        _raise_if_exists(order)
    raise SoldOut(f"scene {order.scene_id} is sold out", scene_id=order.scene_id,
                  sub_activity_id=order.sub_activity_id)


def _stored(order: Order) -> LedgerEntry:
    """The stored order item, strongly consistent; `DoesNotExist` when there is none."""
    return with_retries(lambda: LedgerEntry.get(order.wallet_id, order.entry_key, consistent_read=True))


def _raise_if_exists(order: Order) -> None:
    try:
        existing = _stored(order)
    except DoesNotExist:
        return
    raise _Exists(orders.from_item(existing))


def _place_without_stock(order: Order) -> Order:
    try:
        with_retries(lambda: orders.to_item(order).save(condition=LedgerEntry.entry_key.does_not_exist()))
    except PutError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        _raise_if_exists(order)
        raise StorageUnavailable("order vanished after a conflicting put") from exc
    return order


def _put_reserved(order: Order, rid: str, mine: str | None) -> Order:
    """An order's conditional put under reservation `rid`.

    When the put finds the order already there carrying `mine` (this batch's reservation), it is the
    order this very put wrote on an attempt whose answer was lost: created here, its units used.
    """
    item = orders.to_item(order)
    item.reservation = rid
    try:
        with_retries(lambda: item.save(condition=LedgerEntry.entry_key.does_not_exist()))
    except PutError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        try:
            existing = _stored(order)
        except DoesNotExist:
            raise StorageUnavailable("order vanished after a conflicting put") from exc
        if mine is not None and existing.reservation == mine:
            return orders.from_item(existing)
        raise _Exists(orders.from_item(existing)) from exc
    return order


def _issuing_key() -> tokens.SigningKey | None:
    """The signing key when tokens are issued, None when switched off.

    Read before anything is written: a missing key must refuse the grant (503), not answer 503 for a
    grant that was committed and enqueued.
    """
    if not config_store.get_switches().enabled(TOKEN_ISSUANCE):
        return None
    return tokens.signing_key()


def _token(order: Order, key: tokens.SigningKey | None) -> str | None:
    return None if key is None else tokens.sign(order.token_claims(settings().app_id), key)


def _decide(request: GrantRequest, now_ms: int) -> tuple[Order, Scene]:
    """The order a request asks for, after the switches and the scene's rate limit let it through."""
    open_time_ms = orders.open_time_of(request, now_ms, settings().grant_retry_horizon_s)
    activity = config_store.get_activity(request.activity_id)
    child = activity.child_at(open_time_ms)
    scene = config_store.get_scene(request.activity_id, request.scene_id)
    config_store.get_switches().require_grants(request.activity_id, request.scene_id)
    try:
        order = orders.decide_order(request, activity, child, scene, now_ms, settings().hour_buckets, open_time_ms)
    except AmountOverCap as over:
        # The cap may have been lowered since this order was placed: a retry still finds it (200 or conflict).
        asked = orders.decide_order(request, activity, child, scene, now_ms, settings().hour_buckets, open_time_ms,
                                    enforce_cap=False)
        try:
            existing = _stored(asked)
        except DoesNotExist:
            raise over from None  # no order placed under an earlier cap: the refusal stands
        raise _Exists(orders.from_item(existing), asked) from over
    ratelimit.acquire(f"{order.ns}#{scene.scene_id}", scene.rate_limit_per_s)
    return order, scene


def _repeat(request: GrantRequest, order: Order, existing: Order) -> tuple[Order, bool]:
    """An existing order answers a repeat of its grant; different content is `OrderConflict`."""
    if not existing.same_content(order, open_time_given=request.open_time_ms is not None):
        raise OrderConflict(
            f"order {order.order_id} exists with different content",
            order_id=order.order_id, existing_amount=existing.amount,
        )
    return existing, False


def place(request: GrantRequest, now_ms: int | None = None) -> tuple[Order, bool]:
    """Decide and commit one order. Returns (order, created); an identical repeat is (existing, False).

    The child is the one open at the request's open_time_ms (when the reward was won), so an identical
    request retried at any later moment within the retry horizon maps to the same order, even after that
    child's window has closed; without open_time_ms it is the one open now.
    """
    now_ms = clock.now_ms() if now_ms is None else now_ms
    try:
        order, scene = _decide(request, now_ms)
    except _Exists as found:
        return _repeat(request, found.asked or found.existing, found.existing)
    try:
        if scene.stock_control:
            return _place_with_stock(order, ids.stock_counter_id(order.ns, scene.scene_id), scene.shard_count), True
        return _place_without_stock(order), True
    except _Exists as found:
        return _repeat(request, order, found.existing)


Placed = tuple[Order, bool] | RewardgateError


def _attempt(request: GrantRequest, order: Order, commit: Callable[[], Order]) -> Placed:
    try:
        return commit(), True
    except _Exists as found:
        try:
            return _repeat(request, order, found.existing)
        except RewardgateError as error:
            return error
    except RewardgateError as error:
        return error


def _raise(error: Exception) -> Order:
    raise error


def place_many(requests: Sequence[GrantRequest]) -> list[Placed]:
    """Decide and commit a batch: (order, created) or the error, per request, in order.

    Stock-controlled orders of one counter take their units from the shards in blocks
    (`chalicelib.rewards.reservations`): one journal put and one conditional shard write for the whole
    group, a plain conditional put per order, one settle that returns what duplicates did not use. What
    no block could hold (a shard nearly full, a reservation about to expire) goes the single-grant way.
    """
    now_ms = clock.now_ms()
    results: list[Placed | None] = [None] * len(requests)
    groups: dict[tuple[str, int], list[tuple[int, Order]]] = {}
    for index, request in enumerate(requests):
        try:
            order, scene = _decide(request, now_ms)
        except _Exists as found:
            results[index] = _attempt(request, found.asked or found.existing, lambda f=found: _raise(f))
            continue
        except RewardgateError as error:
            results[index] = error
            continue
        if scene.stock_control:
            key = (ids.stock_counter_id(order.ns, scene.scene_id), scene.shard_count)
            groups.setdefault(key, []).append((index, order))
        else:
            results[index] = _attempt(request, order, lambda o=order: _place_without_stock(o))
    for (counter_id, shard_count), members in groups.items():
        leftovers = _place_reserved(requests, members, counter_id, shard_count, results, now_ms)
        for index, order in leftovers:
            results[index] = _attempt(requests[index], order,
                                      lambda o=order, c=counter_id, n=shard_count: _place_with_stock(o, c, n))
    assert all(r is not None for r in results), "every request has an outcome"
    return results  # type: ignore[return-value]


def _place_reserved(requests: Sequence[GrantRequest], members: list[tuple[int, Order]], counter_id: str,
                    shard_count: int, results: list[Placed | None], now_ms: int) -> list[tuple[int, Order]]:
    """Commit one counter's orders under block reservations; returns the members left to the single path."""
    smallest = min(o.amount for _, o in members)
    if all(_hinted_full(counter_id, shard, smallest) for shard in range(shard_count)):
        return members  # every shard was just seen full: the single path confirms sold_out, writing nothing
    rid = reservations.new_id()
    reservations.register(counter_id, shard_count, now_ms)
    first = members[0][1]
    reservations.write_journal(rid, counter_id, first.ns, first.asset,
                               [(o.order_id, o.amount, o.asset) for _, o in members], now_ms)
    planned, rest = reservations.reserve_blocks(
        rid, counter_id, shard_count, [o.amount for _, o in members], now_ms, home_key=members[0][1].order_key,
        hints=_hints)
    leftovers = [members[i] for i in rest]
    written: set[str] = set()
    book = reservations.BlockBook.of(len(planned))

    def settle(block: int) -> None:
        book.mark_settled(block)
        try:
            reservations.settle(planned[block][0], book.used[block], clock.now_ms())
        except Exception:
            logger.exception("could not settle a reservation; reconciliation returns it",
                             extra={"reservation": rid, "shard": planned[block][0].shard})

    try:
        faults.point("grant.after_reservation")
        for block, (reservation, positions) in enumerate(planned):
            for index, order in (members[i] for i in positions):
                if not reservation.writable(clock.now_ms()):
                    leftovers.append((index, order))
                    continue
                placed = replace(order, shard=reservation.shard)
                # A second request for an order this batch already wrote is a repeat, whatever reservation it shows.
                mine = None if order.order_key in written else rid
                book.begin(block)
                outcome = _attempt(requests[index], order, lambda p=placed, m=mine: _put_reserved(p, rid, m))
                written.add(order.order_key)
                results[index] = outcome
                created = isinstance(outcome, tuple) and outcome[1]
                # Known: created, a repeat, a conflict. Anything else (storage_unavailable, a deadline) may have
                # landed: the block's lease is left for the sweep, which counts what did.
                book.record(block, created=order.amount if created else 0,
                            known=isinstance(outcome, tuple | OrderConflict))
            if book.settleable(block):
                settle(block)
    finally:
        # Also when an exception unwinds this call (the process lives and knows what it wrote): every block
        # whose orders are all known gives back what they did not use now; a dead process leaves its leases
        # to reconciliation.
        for block in range(len(planned)):
            if book.settleable(block):
                settle(block)
    return leftovers


def _needs_reenqueue(order: Order, created: bool) -> bool:
    return created or (order.status == ACCEPTED and clock.now_ms() - order.created_at_ms > REENQUEUE_AFTER_MS)


def grant(request: GrantRequest) -> Granted:
    """Grant one reward: commit the order, sign its token, enqueue it for crediting."""
    key = _issuing_key()
    order, created = place(request)
    faults.point("grant.after_transaction")
    if _needs_reenqueue(order, created):
        enqueue([order])
    return Granted(order=order, created=created, token=_token(order, key))


def grant_many(requests: Sequence[GrantRequest | RewardgateError]) -> list[Granted | RewardgateError]:
    """Grant a batch: each item independently (its own result or error); credit messages sent in batches."""
    key = _issuing_key()
    results: list[Granted | RewardgateError] = []
    to_send: list[Order] = []
    placed = iter(place_many([r for r in requests if not isinstance(r, RewardgateError)]))
    for request in requests:
        if isinstance(request, RewardgateError):
            results.append(request)
            continue
        outcome = next(placed)
        if isinstance(outcome, RewardgateError):
            results.append(outcome)
            continue
        order, created = outcome
        if _needs_reenqueue(order, created):
            to_send.append(order)
        results.append(Granted(order=order, created=created, token=None))
    faults.point("grant.after_transaction")
    enqueue(to_send)
    return [replace(r, token=_token(r.order, key)) if isinstance(r, Granted) else r for r in results]
