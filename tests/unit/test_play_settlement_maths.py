"""Settlement maths (chalicelib.play.settlement): integers only, the ratio in force, UTC+8 days."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.play import settlement as s

RATIOS = (s.Ratio(1, 5000, 0), s.Ratio(2, 3333, 1_000), s.Ratio(3, 10_000, 5_000))


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def gift(gift_id: int = 7, price: int = 1000, num: int = 3, paid: bool = True) -> s.Gift:
    return s.Gift(msg_id="m1", gift_id=gift_id, gift_num=num, price=price, paid=paid)


def test_decide__interactive_paid_gift__revenue_and_floor_share_under_the_ratio_in_force():
    # price 1 999 x 3 = 5 997; at 33.33 %: 5 997 * 3 333 // 10 000 = 1 998 (1 998.8 rounded down)
    settled = s.decide(gift(price=1999, num=3), [7], RATIOS, at_ms=1_500)
    assert (settled.revenue, settled.developer_share, settled.ratio_version, settled.share_bp) == (5997, 1998, 2, 3333)


def test_decide__not_an_interactive_gift_or_not_paid__does_not_count():
    assert s.decide(gift(gift_id=8), [7], RATIOS, 0) is None
    assert s.decide(gift(paid=False), [7], RATIOS, 0) is None


def test_ratio_at__boundaries__the_version_effective_at_or_before():
    assert [s.ratio_at(RATIOS, t).version for t in (0, 999, 1_000, 4_999, 5_000, 10**12)] == [1, 1, 2, 2, 3, 3]


def test_ratio_at__versions_listed_out_of_order__still_the_latest_effective():
    assert s.ratio_at(tuple(reversed(RATIOS)), 1_200).version == 2


def test_day_of__utc8_midnight__the_next_day_starts_at_16_utc():
    assert s.day_of(ms("2026-11-22T15:59:59.999+00:00")) == "2026-11-22"
    assert s.day_of(ms("2026-11-22T16:00:00+00:00")) == "2026-11-23"


def test_day_hours__24_utc_hours_from_16_utc_the_day_before():
    hours = s.day_hours("2026-11-23")
    assert (len(hours), hours[0], hours[-1]) == (24, "2026112216", "2026112315")


def test_bill_closes_at__00_30_utc8_the_next_day():
    assert s.bill_closes_at_ms("2026-11-22") == ms("2026-11-23T00:30:00+08:00")
    assert s.latest_closable_day(ms("2026-11-23T00:29:59+08:00")) == "2026-11-21"
    assert s.latest_closable_day(ms("2026-11-23T00:30:00+08:00")) == "2026-11-22"


def test_bucket_of__stable_and_in_range():
    assert s.bucket_of("abc", 8) == s.bucket_of("abc", 8)
    assert {s.bucket_of(f"m{i}", 8) for i in range(200)} == set(range(8))


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=60))
def test_credit_fen__over_any_days__total_credited_is_floor_of_total_share_over_ten(daily_shares):
    # An independent model: the wallet must end with exactly floor(sum / 10) fen, whatever the days were.
    cumulative, credited = 0, 0
    for share in daily_shares:
        fen = s.credit_fen(cumulative, cumulative + share)
        assert fen >= 0
        credited += fen
        cumulative += share
    assert credited == sum(daily_shares) // 10


@given(st.integers(0, 10**9), st.integers(1, 10**6), st.integers(0, 10_000))
def test_share_of__never_above_revenue_and_never_a_float(price, num, bp):
    revenue = s.revenue_of(price, num)
    share = s.share_of(revenue, bp)
    assert isinstance(share, int) and 0 <= share <= revenue
    assert share * 10_000 <= revenue * bp < (share + 1) * 10_000
