"""Counter shards in DynamoDB: read them, re-spread stock/budget caps, summarise them.

A counter `c` is a head item (`c` / `head`, holding how many shards were ever allocated, so retired
shards are still found) and its shards (`c#0000` / `shard`, ...), each on its own partition.

The grant path consumes a shard inside its own transaction (`chalicelib.rewards.grants`); this module
owns everything else that touches shard items. Re-spreading is safe against live grants and against
a concurrent re-spread:
- each cap change is conditioned on the cap it was planned from (`cap = :old`), so two planners can
  never both apply a delta;
- a decrease also requires `remaining >= -delta`, so a cap never drops below what was consumed;
- each change stamps `spread_version` and refuses to overwrite a newer one, so a slow, stale admin
  request cannot undo a newer configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import ConfigConflict
from chalicelib.rewards.ids import HEAD_SK, shard_index, shard_key
from chalicelib.rewards.spread import CapChange, ShardState, plan_changes
from chalicelib.rewards.tables import CounterItem

MAX_SPREAD_ROUNDS = 25


def allocated_shards(counter_id: str) -> int:
    """How many shards a counter has ever had (its head item's count; 0 for a new counter)."""
    try:
        head = with_retries(lambda: CounterItem.get(counter_id, HEAD_SK, consistent_read=True))
    except DoesNotExist:
        return 0
    return int(head.count or 0)


def _shard_items(counter_id: str, shard_count: int) -> list[CounterItem]:
    """Shards 0..shard_count-1 that exist, strongly consistent, in one BatchGetItem."""
    keys = [shard_key(counter_id, i) for i in range(shard_count)]
    if not keys:
        return []
    return with_retries(lambda: list(CounterItem.batch_get(keys, consistent_read=True)))


def read_shards(counter_id: str) -> list[ShardState]:
    """Every shard of a counter (retired ones included), strongly consistent."""
    return sorted(
        (ShardState(index=shard_index(item.counter_id), cap=int(item.cap or 0),
                    consumed=int(item.consumed or 0), updated_at_ms=int(item.updated_at_ms or 0))
         for item in _shard_items(counter_id, allocated_shards(counter_id))),
        key=lambda s: s.index,
    )


def first_consumed_ms(counter_id: str) -> int | None:
    """When the counter was first consumed: the earliest `first_at_ms` of its shards (set by the first grant or
    reservation that consumed each, never moved). None when a shard consumed without one (consumed before the
    stamp existed) or no shard has one: its history is then unknown here. Strongly consistent."""
    stamps = []
    for item in _shard_items(counter_id, allocated_shards(counter_id)):
        if item.first_at_ms is not None:
            stamps.append(int(item.first_at_ms))
        elif int(item.consumed or 0) > 0:
            return None
    return min(stamps, default=None)


def sum_shards(counter_id: str, shard_count: int) -> tuple[int, int]:
    """(amount, count) summed over every shard an additive counter ever used, strongly consistent.

    That is the larger of `shard_count` (today's setting) and the head's count (every count writers have
    recorded), so lowering RG_DISTRIBUTED_SHARDS never hides amounts already added to higher shards.
    """
    items = _shard_items(counter_id, max(shard_count, allocated_shards(counter_id)))
    return sum(int(i.amount or 0) for i in items), sum(int(i.count or 0) for i in items)


# Counters whose head this process has already raised to (at least) a count: one head write per counter
# per process, not per tally. Bounded: a long-lived worker sees a new hourly counter every hour.
_recorded: dict[str, int] = {}
_RECORDED_MAX = 10_000


def record_shards(counter_id: str, shard_count: int) -> None:
    """Before adding to shards 0..shard_count-1 of an additive counter, make its head cover them."""
    if _recorded.get(counter_id, 0) >= shard_count:
        return
    _allocate(counter_id, shard_count)
    if len(_recorded) >= _RECORDED_MAX:
        _recorded.clear()
    _recorded[counter_id] = shard_count


def _allocate(counter_id: str, shard_count: int) -> None:
    """Record that shards 0..shard_count-1 exist before any is created (the count only grows)."""
    head = CounterItem(counter_id, HEAD_SK)
    try:
        with_retries(lambda: head.update(
            actions=[CounterItem.count.set(shard_count), CounterItem.updated_at_ms.set(clock.now_ms())],
            condition=CounterItem.count.does_not_exist() | (CounterItem.count < shard_count),
        ))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


@dataclass(frozen=True)
class StockSummary:
    """A counter's totals, summed over its shards."""

    total: int
    consumed: int
    remaining: int
    shards: int


def summarise(counter_id: str, total: int) -> StockSummary:
    """Total (as configured), consumed and remaining (summed over shards) for one counter."""
    shards = read_shards(counter_id)
    return StockSummary(
        total=total,
        consumed=sum(s.consumed for s in shards),
        remaining=sum(max(0, s.remaining) for s in shards),
        shards=len(shards),
    )


class _Superseded(Exception):
    """A newer configuration version already owns this counter."""


def _apply(counter_id: str, change: CapChange, version: int) -> None:
    item = CounterItem(*shard_key(counter_id, change.index))
    newer_not_applied = CounterItem.spread_version.does_not_exist() | (CounterItem.spread_version <= version)
    planned_from = (CounterItem.cap == change.old) if change.exists else CounterItem.cap.does_not_exist()
    condition = planned_from & newer_not_applied
    if change.delta < 0:
        condition &= CounterItem.remaining >= -change.delta
    try:
        with_retries(lambda: item.update(
            actions=[
                CounterItem.cap.add(change.delta),
                CounterItem.remaining.add(change.delta),
                CounterItem.consumed.add(0),
                CounterItem.spread_version.set(version),
                CounterItem.updated_at_ms.set(clock.now_ms()),
            ],
            condition=condition,
        ))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        current = CounterItem.get(*shard_key(counter_id, change.index), consistent_read=True)
        if current.spread_version is not None and current.spread_version > version:
            raise _Superseded(counter_id) from exc
        raise ConfigConflict("counter moved while re-spreading") from exc


def respread(counter_id: str, total: int, shard_count: int, version: int, *, decreases_only: bool = False,
             strict: bool = False) -> bool:
    """Move a counter's caps to the spread of `total` over `shard_count` shards for config `version`.

    Re-reads and re-plans after every conflict with a live grant, until the plan is reached. With
    `decreases_only`, applies just the decreases (the first phase of a total change). Returns False
    when a newer configuration took over the counter (nothing more to do here).
    """
    _allocate(counter_id, shard_count)
    for _ in range(MAX_SPREAD_ROUNDS):
        changes = plan_changes(total, shard_count, read_shards(counter_id), strict=strict)
        if decreases_only:
            changes = [c for c in changes if c.delta < 0]
        if not changes:
            return True
        try:
            for change in changes:
                _apply(counter_id, change, version)
        except _Superseded:
            return False
        except ConfigConflict:
            continue
    raise ConfigConflict(f"counter {counter_id} kept moving; re-spread did not converge, retry the request")
