"""The withdrawal payout state machine (pure): only a definite FAILED refunds; every other answer keeps the
money debited and re-queries with a backoff that doubles up to its cap."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.rewards import payout_states as ps

NOW = 1_800_000_000_000


def test_decide__each_known_answer__its_action():
    assert ps.decide("PAID", now_ms=NOW, checks=3).action == ps.SETTLE_PAID
    assert ps.decide("FAILED", now_ms=NOW, checks=0).action == ps.REFUND
    assert ps.decide("UNKNOWN", now_ms=NOW, checks=0, from_status=True).action == ps.RESUBMIT
    for answer in ("PROCESSING", "TIMEOUT", "UNKNOWN"):  # UNKNOWN from a transfer decides nothing
        assert ps.decide(answer, now_ms=NOW, checks=0) == ps.Decision(ps.RECHECK, NOW + 60_000)


@given(answer=st.text(max_size=12).filter(lambda a: a not in ("PAID", "FAILED")), checks=st.integers(0, 10_000),
       from_status=st.booleans())
def test_decide__any_answer_but_paid_or_failed__never_refunds_nor_settles(answer, checks, from_status):
    decision = ps.decide(answer, now_ms=NOW, checks=checks, from_status=from_status)
    assert decision.action in (ps.RECHECK, ps.RESUBMIT)
    if decision.action == ps.RECHECK:
        assert NOW + 60_000 <= decision.next_check_at_ms <= NOW + 30 * 60_000


def test_recheck_delay__doubles_from_a_minute_to_half_an_hour():
    assert [ps.recheck_delay_ms(n) // 60_000 for n in range(0, 9)] == [1, 1, 2, 4, 8, 16, 30, 30, 30]
    assert ps.recheck_delay_ms(10**9) == 30 * 60_000


def test_past_horizon__only_strictly_older_than_the_horizon():
    assert not ps.past_horizon(NOW - 600_000, NOW, 600)
    assert ps.past_horizon(NOW - 600_001, NOW, 600)
