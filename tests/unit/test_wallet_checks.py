"""The wallet check's pure decision: checkpoint + new entries against the wallet, and how far T moves."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.reconcile import findings as F
from chalicelib.reconcile.wallet_checks import (
    FULL_CHECK_EVERY_MS,
    Checkpoint,
    Posted,
    agrees,
    empty_checkpoint,
    needs_whole_read,
    next_through,
)

KINDS = ("credit", "withdrawal", "refund")


def wallet_for(entries: list[Posted]) -> dict[str, int]:
    """The wallet an honest ledger makes (an independent model: sums by kind)."""
    income = sum(e.amount for e in entries if e.kind == "credit")
    withdrawn = sum(e.amount for e in entries if e.kind == "withdrawal")
    refunded = sum(e.amount for e in entries if e.kind == "refund")
    return {"balance": income - withdrawn + refunded, "total_income": income, "total_withdrawn": withdrawn,
            "total_refunded": refunded, "entry_count": len(entries), "updated_at_ms": 5}


entries_st = st.lists(st.builds(Posted, st.integers(0, 1000), st.sampled_from(KINDS), st.integers(1, 500)),
                      max_size=30)


@given(entries_st, st.integers(-1, 1000), st.integers(-1, 1000))
def test_agrees__checkpoint_then_new_entries_of_an_honest_ledger__always_agrees(entries, t1, t2):
    # GIVEN a checkpoint through t1 built from the ledger, moved again through t2 (any order)
    first = empty_checkpoint(0).add(entries, t1)
    moved = first.add(entries, t2)
    # THEN checkpoint + the entries after its T explain the wallet exactly
    assert agrees(moved, [e for e in entries if e.at_ms > moved.through_ms], wallet_for(entries))
    assert moved.through_ms == max(t1, t2)


@given(entries_st, st.integers(-1, 1000), st.integers(1, 10))
def test_agrees__tampered_balance__disagrees(entries, through, delta):
    checkpoint = empty_checkpoint(0).add(entries, through)
    wallet = wallet_for(entries)
    wallet["balance"] += delta
    assert not agrees(checkpoint, [e for e in entries if e.at_ms > through], wallet)


@given(entries_st.filter(bool), st.integers(-1, 1000), st.data())
def test_agrees__entry_missing_after_checkpoint_or_late_before_it__disagrees(entries, through, data):
    checkpoint = empty_checkpoint(0).add(entries, through)
    new = [e for e in entries if e.at_ms > through]
    wallet = wallet_for(entries)
    if new:
        # an entry after T deleted: the wallet still counts it
        gone = data.draw(st.sampled_from(new))
        assert not agrees(checkpoint, [e for e in new if e is not gone], wallet)
    # a late entry posted before T after the checkpoint: the wallet counts one more than checkpoint + new
    late = Posted(max(0, through), "credit", 7)
    assert not agrees(checkpoint, new, wallet_for([*entries, late]))


def test_agrees__no_wallet_and_no_entries__agrees_like_the_whole_read():
    assert agrees(empty_checkpoint(0), [], None)
    assert F.wallet_findings("a/b#u#CNY", None, []) == []


def test_next_through__pending_order_older_than_margin__stops_just_before_it():
    assert next_through(10_000, 600, None) == 9_400
    assert next_through(10_000, 600, 5_000) == 4_999
    assert next_through(10_000, 600, 9_900) == 9_400


def test_needs_whole_read__no_checkpoint_or_a_week_since_the_whole_read__true():
    recent = Checkpoint(100, 1, 5, 0, 0, full_at_ms=1_000)
    assert needs_whole_read(None, 2_000) is True
    assert needs_whole_read(recent, 1_000 + FULL_CHECK_EVERY_MS - 1) is False
    assert needs_whole_read(recent, 1_000 + FULL_CHECK_EVERY_MS) is True


def test_check__wallets_checked_in_threads__each_runs_under_the_callers_deadline(monkeypatch):
    # GIVEN a reconciler invocation with 60 s left, and wallets whose checks run in worker threads
    import math

    from chalicelib import deadline
    from chalicelib.reconcile import wallet_checks

    seen: list[float] = []

    def recording_check(wallet_id, checkpoint, through_ms, now_ms):
        seen.append(deadline.remaining_s())
        return [], False

    monkeypatch.setattr(wallet_checks, "read_checkpoint", lambda wallet_id: None)
    monkeypatch.setattr(wallet_checks, "check_wallet", recording_check)

    class Context:
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 60_000

    # WHEN the wallets are checked
    with deadline.bounded(Context()):
        assert wallet_checks.check([f"ns#u{i}#CNY" for i in range(12)], {}) == ([], [])
    # THEN every check saw the invocation's deadline (its storage calls stop in time), not none
    assert len(seen) == 12 and all(math.isfinite(r) and 0 < r <= 60 for r in seen), seen
