"""How a stock/budget total is spread over counter shards. Pure.

Invariant this module is the source of: the caps it plans sum to at most the total, and no planned
cap is below what its shard has already consumed. What is left to grant (total minus everything
consumed) is split evenly over the active shards, so a re-spread also rebalances shards that drained
unevenly. Shards beyond the active count are retired: their cap shrinks to what they consumed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.errors import TotalBelowConsumed


@dataclass(frozen=True)
class ShardState:
    """A shard as read: index, cap, consumed (remaining = cap - consumed)."""

    index: int
    cap: int
    consumed: int
    updated_at_ms: int = 0

    @property
    def remaining(self) -> int:
        """What this shard can still grant."""
        return self.cap - self.consumed


@dataclass(frozen=True)
class CapChange:
    """Move shard `index` from cap `old` to cap `new`."""

    index: int
    old: int
    new: int
    exists: bool

    @property
    def delta(self) -> int:
        """Signed change of the cap (and of `remaining`)."""
        return self.new - self.old


def plan_caps(total: int, shard_count: int, shards: Iterable[ShardState], strict: bool = True) -> dict[int, int]:
    """Target cap of every existing shard and every active shard index.

    With `strict`, a total below what is already consumed is refused (`TotalBelowConsumed`);
    otherwise every cap is clamped to its consumed amount, which stops further grants.
    """
    by_index = {s.index: s for s in shards}
    consumed = sum(s.consumed for s in by_index.values())
    if consumed > total and strict:
        raise TotalBelowConsumed(
            f"total {total} is below the {consumed} already consumed", total=total, consumed=consumed
        )
    free = max(0, total - consumed)
    base, extra = divmod(free, shard_count)
    targets = {index: state.consumed for index, state in by_index.items() if index >= shard_count}
    for index in range(shard_count):
        already = by_index[index].consumed if index in by_index else 0
        targets[index] = already + base + (1 if index < extra else 0)
    return targets


def plan_changes(total: int, shard_count: int, shards: Iterable[ShardState], strict: bool = True) -> list[CapChange]:
    """The cap changes that reach the plan, decreases first.

    Applying decreases before increases keeps the sum of caps at or below both the old and the new
    total at every moment in between.
    """
    states = {s.index: s for s in shards}
    changes = []
    for index, new in plan_caps(total, shard_count, states.values(), strict).items():
        state = states.get(index)
        old = state.cap if state else 0
        if new != old or state is None:
            changes.append(CapChange(index=index, old=old, new=new, exists=state is not None))
    return sorted(changes, key=lambda c: (c.delta, c.index))
