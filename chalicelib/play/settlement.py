"""What a gift is worth to the developer, and which day and bucket it settles into. Pure.

Revenue is `price * gift_num` in the platform's unit (1 000 = ¥1); the developer's share is
`revenue * share_bp // 10 000` under the ratio version in force when the gift arrived. Only paid gifts
whose `gift_id` is one of the app's interactive gifts count. Days are UTC+8 calendar days; a day's bill
closes at 00:30 UTC+8 the next day. Integers only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

BP_SCALE = 10_000
UNITS_PER_FEN = 10  # 1 000 units = ¥1 = 100 fen
UTC8 = timezone(timedelta(hours=8))
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
BILL_CLOSE_AFTER_MS = 30 * 60 * 1000  # 00:30 UTC+8 the next day


@dataclass(frozen=True)
class Ratio:
    """One version of an app's revenue share: in force from `effective_from_ms` until the next version's."""

    version: int
    share_bp: int
    effective_from_ms: int


def ratio_at(ratios: Sequence[Ratio], at_ms: int) -> Ratio:
    """The ratio in force at `at_ms`: the latest version that took effect at or before it (else the first)."""
    ordered = sorted(ratios, key=lambda r: r.version)
    in_force = ordered[0]
    for ratio in ordered:
        if ratio.effective_from_ms <= at_ms:
            in_force = ratio
    return in_force


@dataclass(frozen=True)
class Gift:
    """The facts of a LIVE_OPEN_PLATFORM_SEND_GIFT message settlement looks at."""

    msg_id: str
    gift_id: int
    gift_num: int
    price: int
    paid: bool


@dataclass(frozen=True)
class Settled:
    """One gift's settlement."""

    msg_id: str
    gift_id: int
    gift_num: int
    price: int
    revenue: int
    developer_share: int
    share_bp: int
    ratio_version: int


def revenue_of(price: int, gift_num: int) -> int:
    """What the gift brought in, in platform units."""
    return price * gift_num


def share_of(revenue: int, share_bp: int) -> int:
    """The developer's part of `revenue` (rounded down)."""
    return revenue * share_bp // BP_SCALE


def decide(gift: Gift, interactive_gift_ids: Iterable[int], ratios: Sequence[Ratio], at_ms: int) -> Settled | None:
    """The settlement of a gift received at `at_ms`, or None when it does not count for the app."""
    if not gift.paid or gift.gift_id not in set(interactive_gift_ids):
        return None
    ratio = ratio_at(ratios, at_ms)
    revenue = revenue_of(gift.price, gift.gift_num)
    return Settled(msg_id=gift.msg_id, gift_id=gift.gift_id, gift_num=gift.gift_num, price=gift.price,
                   revenue=revenue, developer_share=share_of(revenue, ratio.share_bp), share_bp=ratio.share_bp,
                   ratio_version=ratio.version)


def day_of(at_ms: int) -> str:
    """The UTC+8 day of an instant, `YYYY-MM-DD`."""
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC8).strftime("%Y-%m-%d")


def day_key(day: str) -> str:
    """`YYYY-MM-DD` as `YYYYMMDD` (the key and order-id form)."""
    return day.replace("-", "")


def day_start_ms(day: str) -> int:
    """First millisecond of a UTC+8 day."""
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC8).timestamp() * 1000)


def next_day(day: str, steps: int = 1) -> str:
    """The day `steps` after `day`."""
    return day_of(day_start_ms(day) + steps * DAY_MS)


def day_hours(day: str) -> list[str]:
    """The 24 UTC hours (`YYYYMMDDHH`) that make up a UTC+8 day."""
    start = day_start_ms(day)
    return [datetime.fromtimestamp((start + h * HOUR_MS) / 1000, tz=UTC).strftime("%Y%m%d%H") for h in range(24)]


def bill_closes_at_ms(day: str) -> int:
    """When a day's bill may close: 00:30 UTC+8 the next day."""
    return day_start_ms(day) + DAY_MS + BILL_CLOSE_AFTER_MS


def latest_closable_day(now_ms: int) -> str:
    """The most recent day whose bill may be closed at `now_ms`."""
    return day_of(now_ms - DAY_MS - BILL_CLOSE_AFTER_MS)


def bucket_of(msg_id: str, buckets: int) -> int:
    """Which settlement bucket (entry partition and counter shard) a gift goes to."""
    return int.from_bytes(hashlib.sha256(msg_id.encode()).digest()[:8], "big") % buckets


def credit_fen(cumulative_before: int, cumulative_after: int) -> int:
    """Fen to credit for a day, from the cumulative developer share before and after it.

    Crediting the difference of the floors never loses the sub-fen remainder of a day: it is carried
    in the cumulative figure, so the total credited is always floor(total share / 10).
    """
    return cumulative_after // UNITS_PER_FEN - cumulative_before // UNITS_PER_FEN


def hour_bounds(hour: str) -> tuple[int, int]:
    """[start, end) milliseconds of a UTC hour `YYYYMMDDHH`."""
    start = int(datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=UTC).timestamp() * 1000)
    return start, start + HOUR_MS


COUNTER_SK = "sum"


def entry_pk(app_id: int, hour: str, bucket: int) -> str:
    """Partition of a settlement entry and of the hour counter shard it adds to (sort key `COUNTER_SK`)."""
    return f"{app_id}#{hour}#{bucket}"


def entry_sk(msg_id: str) -> str:
    """Sort key of a settlement entry."""
    return f"e#{msg_id}"
