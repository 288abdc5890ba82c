"""The rain's independent money check: what the caller was told against what the tables hold.

Pure: it takes the benchmark's own record of the grants answered 202 (order id -> act id, amount), the
configured budget, and the raw items of the ledger and wallets tables (as a low-level scan returns them,
attribute-value dicts). An order is stored as its wallet's ledger credit: an item carrying the order's facts
(`status`, `activity_id`, `scene_id`, `act_id`, `rain_id`, `stage`, ...), posted (`time_key`) once credited.
It counts the three things that must never happen:

- oversold: the amounts of stored orders of the scene beyond its budget (any order, whether the caller
  saw it or not: a grant committed after a lost answer still spends budget);
- lost: grants answered 202 with no stored order, or whose order is not credited and posted;
- double_credits: posted credits beyond one per reward (the same activity, child, scene, user, rain, award
  type and stage under another key or wallet), plus wallets whose balance is above the sum of the credits
  posted to them (money from nowhere).

It uses none of rewardgate's helpers (key formats, models, read paths): the stored attributes are joined
by the values they carry; the order id is read from the entry key after its `credit#` prefix. So a bug in
those helpers cannot hide itself here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Raw = Mapping[str, Mapping[str, Any]]


def _s(item: Raw, name: str) -> str | None:
    value = item.get(name)
    return None if value is None else value.get("S")


def _n(item: Raw, name: str) -> int:
    value = item.get(name)
    return 0 if value is None or "N" not in value else int(value["N"])


@dataclass(frozen=True)
class Audit:
    """The outcome of one check."""

    orders: int
    credited: int
    oversold: int
    lost: int
    double_credits: int

    @property
    def ok(self) -> bool:
        """Nothing oversold, lost or credited twice."""
        return self.oversold == 0 and self.lost == 0 and self.double_credits == 0


CREDITED = 8
_REWARD = ("activity_id", "sub_activity_id", "scene_id", "act_id", "rain_id", "award_type", "stage")


def audit(granted: Mapping[str, tuple[str, int]], activity_id: str, scene_id: str, budget: int,
          ledger_items: Iterable[Raw], wallet_items: Iterable[Raw]) -> Audit:
    """Count oversold units, lost grants and double credits of one scene (see the module docstring)."""
    orders = [o for o in ledger_items if _s(o, "kind") == "credit" and "status" in o
              and _s(o, "activity_id") == activity_id and _s(o, "scene_id") == scene_id]
    by_order_id: dict[str, list[Raw]] = {}
    for o in orders:
        by_order_id.setdefault((_s(o, "entry_key") or "").removeprefix("credit#"), []).append(o)
    oversold = max(0, sum(_n(o, "amount") for o in orders) - budget)

    posted = [o for o in orders if _n(o, "status") == CREDITED and _s(o, "time_key") is not None]
    per_reward: Counter = Counter(tuple(_s(o, name) for name in _REWARD) for o in posted)
    credited_to: dict[str, int] = Counter()
    for o in posted:
        credited_to[_s(o, "wallet_id") or ""] += _n(o, "amount")
    double = sum(n - 1 for n in per_reward.values() if n > 1)
    wallets = {_s(o, "wallet_id") for o in orders}
    for wallet in wallet_items:
        wallet_id = _s(wallet, "wallet_id")
        if wallet_id in wallets and _n(wallet, "balance") > credited_to[wallet_id]:
            double += 1

    lost = 0
    for order_id, (act_id, amount) in granted.items():
        stored = by_order_id.get(order_id, [])
        if not any(_s(o, "act_id") == act_id and _n(o, "amount") == amount and o in posted for o in stored):
            lost += 1
    return Audit(orders=len(orders), credited=len(posted), oversold=oversold, lost=lost, double_credits=double)
