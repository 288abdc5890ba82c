"""Spreading a stock/budget total over counter shards (`spread.plan_caps` / `plan_changes`), property-based.

The money invariant rests here: the caps planned for a counter never sum above the total, no cap drops
below what its shard already consumed, and the changes are ordered so that the sum never overshoots
while they are applied one by one.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import TotalBelowConsumed
from chalicelib.rewards.spread import ShardState, plan_caps, plan_changes


@st.composite
def counters(draw: st.DrawFn) -> list[ShardState]:
    """Existing shards of a counter: any indices (gaps and retired shards included), consumed <= cap."""
    indices = draw(st.sets(st.integers(0, 12), max_size=10))
    shards = []
    for index in sorted(indices):
        cap = draw(st.integers(0, 10_000))
        shards.append(ShardState(index=index, cap=cap, consumed=draw(st.integers(0, cap))))
    return shards


def consumed_of(shards: list[ShardState]) -> int:
    return sum(s.consumed for s in shards)


@given(shards=counters(), shard_count=st.integers(1, 12), headroom=st.integers(0, 50_000))
def test_plan_caps__total_at_least_consumed__caps_sum_to_total_and_none_below_consumed(shards, shard_count,
                                                                                        headroom):
    # GIVEN a counter in any state and a new total that covers what it consumed
    total = consumed_of(shards) + headroom
    # WHEN the caps are planned
    caps = plan_caps(total, shard_count, shards)
    # THEN they sum to exactly the total, and no shard is capped below what it already granted
    assert sum(caps.values()) == total
    by_index = {s.index: s for s in shards}
    for index, cap in caps.items():
        assert cap >= (by_index[index].consumed if index in by_index else 0)
    # AND every active shard exists in the plan, retired ones are frozen at what they consumed
    assert set(range(shard_count)) <= set(caps)
    for index, state in by_index.items():
        if index >= shard_count:
            assert caps[index] == state.consumed
    # AND what is left to grant is split evenly over the active shards (a re-spread rebalances)
    free = [caps[i] - (by_index[i].consumed if i in by_index else 0) for i in range(shard_count)]
    assert max(free) - min(free) <= 1
    assert sum(free) == headroom


@given(shards=counters(), shard_count=st.integers(1, 12), shortfall=st.integers(1, 5_000))
def test_plan_caps__total_below_consumed__strict_refuses_lenient_freezes_every_shard(shards, shard_count, shortfall):
    # GIVEN a counter that has consumed something, and a total below that
    consumed = consumed_of(shards)
    if consumed == 0:
        shards = [*shards, ShardState(index=13, cap=5, consumed=5)]
        consumed = 5
    total = max(0, consumed - shortfall)
    # WHEN planned strictly THEN it is refused with the figures
    with pytest.raises(TotalBelowConsumed) as refused:
        plan_caps(total, shard_count, shards)
    assert refused.value.details == {"total": total, "consumed": consumed}
    # WHEN planned leniently THEN every shard stops at what it consumed: nothing more can be granted
    caps = plan_caps(total, shard_count, shards, strict=False)
    by_index = {s.index: s for s in shards}
    assert all(caps[i] == (by_index[i].consumed if i in by_index else 0) for i in caps)
    assert sum(caps.values()) == consumed


@given(shards=counters(), shard_count=st.integers(1, 12), headroom=st.integers(0, 50_000))
def test_plan_changes__applied_in_order__decreases_first_and_sum_never_above_old_or_new_total(shards, shard_count,
                                                                                             headroom):
    # GIVEN a counter whose caps sum to its old total, and a new total
    old_total = sum(s.cap for s in shards)
    new_total = consumed_of(shards) + headroom
    # WHEN the changes are planned and applied one by one
    changes = plan_changes(new_total, shard_count, shards)
    caps = {s.index: s.cap for s in shards}
    deltas = [c.delta for c in changes]
    seen_increase = False
    for change in changes:
        assert caps.get(change.index, 0) == change.old
        assert change.exists == (change.index in {s.index for s in shards})
        caps[change.index] = change.new
        # THEN at no moment do the caps sum above both the old and the new total
        assert sum(caps.values()) <= max(old_total, new_total)
        if seen_increase:
            assert sum(caps.values()) <= new_total
        seen_increase |= change.delta > 0
    # AND decreases come before increases
    assert deltas == sorted(deltas)
    # AND the end state is the plan, with no needless write except creating a missing shard
    assert caps == {**{s.index: s.cap for s in shards}, **plan_caps(new_total, shard_count, shards)}
    assert all(c.delta != 0 or not c.exists for c in changes)
    assert sum(caps.values()) == new_total


def test_plan_changes__fresh_counter__creates_every_shard_with_the_remainder_on_the_first():
    # GIVEN no shard yet WHEN 10 is spread over 4 shards
    changes = plan_changes(10, 4, [])
    # THEN four shards are created: 3, 3, 2, 2
    assert [(c.index, c.old, c.new, c.exists) for c in sorted(changes, key=lambda c: c.index)] == [
        (0, 0, 3, False), (1, 0, 3, False), (2, 0, 2, False), (3, 0, 2, False)]


def test_plan_changes__zero_total_fresh_counter__still_creates_the_shards_at_zero():
    # A scene configured with total 0 must still have shard items, so a grant fails on the condition
    # (sold out) instead of on a missing item.
    changes = plan_changes(0, 2, [])
    assert [(c.index, c.new, c.exists) for c in sorted(changes, key=lambda c: c.index)] == [(0, 0, False),
                                                                                           (1, 0, False)]


def test_plan_changes__shrinking_shard_count__retires_extra_shards_at_their_consumption():
    # GIVEN 4 shards of 25, each having granted 5 WHEN the same total moves to 2 shards
    shards = [ShardState(index=i, cap=25, consumed=5) for i in range(4)]
    changes = plan_changes(100, 2, shards)
    caps = {s.index: s.cap for s in shards} | {c.index: c.new for c in changes}
    # THEN shards 2 and 3 stop at 5, and the 80 still free goes to shards 0 and 1
    assert caps == {0: 45, 1: 45, 2: 5, 3: 5}
    assert [c.index for c in changes if c.delta < 0] == [2, 3]
