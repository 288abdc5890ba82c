"""The batch's block bookkeeping (pure): which blocks its writer may settle."""

from __future__ import annotations

from chalicelib.rewards.blocks import BlockBook


def test_block_book__indeterminate_put_then_known_puts__block_never_settleable():
    # GIVEN a block whose first put's answer was lost
    book = BlockBook.of(1)
    book.begin(0)
    book.record(0, known=False)
    # WHEN the next puts in the same block answer created
    for _ in range(2):
        book.begin(0)
        book.record(0, created=10)
    # THEN the writer may still not settle it (the lost put may have landed), and it counts only what it knows
    assert not book.settleable(0) and book.used == [20]


def test_block_book__put_in_flight_when_unwinding__not_settleable():
    # GIVEN a put under block 1 that never answered (an exception unwound the batch), block 0 all known
    book = BlockBook.of(2)
    book.begin(0)
    book.record(0, created=5)
    book.begin(1)
    # THEN block 0 may be settled once, block 1 never
    assert book.settleable(0) and not book.settleable(1)
    book.mark_settled(0)
    assert not book.settleable(0)


def test_full_hints__shard_seen_short__skipped_for_larger_amounts_until_the_hint_expires():
    from chalicelib.rewards.blocks import FullHints

    # GIVEN shard 2 of a counter seen with 3 units left, on a clock under the test's control
    now = [100.0]
    hints = FullHints(lambda: 1.0, monotonic=lambda: now[0])
    hints.saw_full("c", 2, 3)
    # THEN it is passed over for 4 units, not for 3, not on another shard or counter
    assert hints.hinted_full("c", 2, 4) and not hints.hinted_full("c", 2, 3)
    assert not hints.hinted_full("c", 1, 4) and not hints.hinted_full("d", 2, 4)
    # AND once the hint's second has passed it is tried again
    now[0] += 1.0
    assert not hints.hinted_full("c", 2, 4)
