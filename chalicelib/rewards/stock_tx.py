"""The single grant's storage step: the order put-if-absent and its shard's consumption in one transaction.

`chalicelib.rewards.grants` decides which shards to try; this module applies one attempt and turns the
transaction's cancellation into `Exists` (the order is there) or `ShardFull` (the shard lacks room).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.dynamo import cancellation_codes, connection, raw_item, with_retries
from chalicelib.rewards import ids, orders
from chalicelib.rewards.orders import Order
from chalicelib.rewards.tables import CounterItem, LedgerEntry


class ShardFull(Exception):
    """The shard had less room than the order: its remaining units."""

    def __init__(self, remaining: int) -> None:
        super().__init__(remaining)
        self.remaining = remaining


class Exists(Exception):
    """The order is already stored: the stored one (and the order the request names, when found early)."""

    def __init__(self, existing: Order, asked: Order | None = None) -> None:
        super().__init__(existing.order_key)
        self.existing = existing
        self.asked = asked  # the order the request names, when found before deciding to place it


def transact(order: Order, counter_id: str, shard: int) -> None:
    """Order put-if-absent + shard consumption, atomically."""
    placed = replace(order, shard=shard)
    # One token per attempt, reused by retries: if a commit's answer is lost, the retry is answered
    # "done" instead of running the transaction a second time (which would fail on the order).
    token = uuid.uuid4().hex

    def attempt() -> None:
        with TransactWrite(connection=connection(), client_request_token=token) as tx:
            tx.save(orders.to_item(placed), condition=LedgerEntry.entry_key.does_not_exist(), return_values="ALL_OLD")
            tx.update(
                CounterItem(*ids.shard_key(counter_id, shard)),
                actions=[
                    CounterItem.consumed.add(order.amount),
                    CounterItem.remaining.add(-order.amount),
                    CounterItem.updated_at_ms.set(order.created_at_ms),
                    CounterItem.first_at_ms.set(CounterItem.first_at_ms | order.created_at_ms),
                ],
                condition=CounterItem.remaining >= order.amount,
                return_values="ALL_OLD",
            )

    try:
        with_retries(attempt)
    except TransactWriteError as exc:
        codes = cancellation_codes(exc)
        reasons = exc.cancellation_reasons
        # PynamoDB sends puts before updates: [0] is the order, [1] the shard.
        if codes and codes[0] == "ConditionalCheckFailed":
            raise Exists(orders.from_fields(raw_item(reasons[0].raw_item))) from exc
        if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
            old = raw_item(reasons[1].raw_item)
            raise ShardFull(int(old.get("remaining", 0))) from exc
        raise


def consistent_remaining(counter_id: str, shards: Sequence[int]) -> dict[int, int]:
    keys = [ids.shard_key(counter_id, s) for s in shards]
    items = with_retries(lambda: list(CounterItem.batch_get(keys, consistent_read=True)))
    return {ids.shard_index(item.counter_id): int(item.remaining or 0) for item in items}
