"""The independent model of play settlement: gifts -> daily bills -> the developer's wallet.

Imports nothing from `chalicelib` (a test parses its imports). Its own arithmetic, from the public rules (README
"Interactive play", "Settlement"): a gift counts when it is paid and one of the app's interactive gifts; its revenue
is price * num (platform units, 1 000 = ¥1); the developer's share is revenue * share_bp // 10 000, gift by gift,
under the ratio in force; a day is a UTC+8 day; the bill credits floor(cumulative share / 10) fen in total, so a
day's credit is floor(after / 10) - floor(before / 10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

UTC8 = timedelta(hours=8)
DAY_MS = 86_400_000
BP_SCALE = 10_000
CLOSE_AFTER_MS = 30 * 60_000  # a day's bill closes at 00:30 UTC+8 the next day


def day_of(at_ms: int) -> str:
    """The UTC+8 day of an instant, `YYYY-MM-DD`."""
    return (datetime.fromtimestamp(at_ms / 1000, tz=UTC) + UTC8).strftime("%Y-%m-%d")


def closes_at_ms(day: str) -> int:
    """When the day's bill may close."""
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC) - UTC8
    return int(start.timestamp() * 1000) + DAY_MS + CLOSE_AFTER_MS


@dataclass
class PlayModel:
    """One play app: its ratio, its interactive gift ids, the gifts it received (the ones the platform answered
    `appended` for)."""

    share_bp: int
    interactive: frozenset[int]
    gifts: list[tuple[str, int, int, bool, int]] = field(default_factory=list)  # (day, gift id, price*num, paid, bp)

    def record_gift(self, at_ms: int, gift_id: int, price: int, num: int, paid: bool) -> None:
        """A gift the platform accepted at `at_ms`."""
        self.gifts.append((day_of(at_ms), gift_id, price * num, paid, self.share_bp))

    def share(self, day: str) -> int:
        """The developer's share of a day, in platform units."""
        return sum(revenue * bp // BP_SCALE for d, gift_id, revenue, paid, bp in self.gifts
                   if d == day and paid and gift_id in self.interactive)

    def days(self) -> list[str]:
        """The days with gifts, in order."""
        return sorted({d for d, *_ in self.gifts})

    def credited_fen(self) -> int:
        """What the developer's wallet must hold once every day's bill is closed and credited."""
        return sum(self.share(day) for day in self.days()) // 10
