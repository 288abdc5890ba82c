"""The rain's independent money check: what the caller was told against what the tables hold.

Pure: it takes the benchmark's own record of the grants answered 202 (order id -> act id, amount), the
configured budget, and the raw items of the orders, ledger and wallets tables (as a low-level scan returns
them, attribute-value dicts), and counts the three things that must never happen:

- oversold: the amounts of stored orders of the scene beyond its budget (any order, whether the caller
  saw it or not: a grant committed after a lost answer still spends budget);
- lost: grants answered 202 with no stored order, or whose order has no credit in its wallet's ledger;
- double_credits: credit entries beyond one per order, plus wallets whose balance is above the sum of
  the credits they received (money from nowhere).

It uses none of rewardgate's helpers (key formats, models, read paths): the stored attributes are joined
by the values they carry (`order_key`, `wallet_id`, `activity_id`, `scene_id`), so a bug in those helpers
cannot hide itself here.
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


def audit(granted: Mapping[str, tuple[str, int]], activity_id: str, scene_id: str, budget: int,
          order_items: Iterable[Raw], ledger_items: Iterable[Raw], wallet_items: Iterable[Raw]) -> Audit:
    """Count oversold units, lost grants and double credits of one scene (see the module docstring)."""
    orders = [o for o in order_items if _s(o, "activity_id") == activity_id and _s(o, "scene_id") == scene_id]
    by_order_id = {_s(o, "order_id"): o for o in orders}
    by_key = {_s(o, "order_key"): o for o in orders}
    oversold = max(0, sum(_n(o, "amount") for o in orders) - budget)

    credits: Counter = Counter()
    credited_to: dict[str, int] = Counter()
    for entry in ledger_items:
        key = _s(entry, "order_key")
        if _s(entry, "kind") != "credit" or key not in by_key:
            continue
        credits[key] += 1
        credited_to[_s(entry, "wallet_id") or ""] += _n(entry, "amount")
    double = sum(n - 1 for n in credits.values() if n > 1)
    wallets = {_s(o, "wallet_id") for o in orders}
    for wallet in wallet_items:
        wallet_id = _s(wallet, "wallet_id")
        if wallet_id in wallets and _n(wallet, "balance") > credited_to[wallet_id]:
            double += 1

    lost = 0
    for order_id, (act_id, amount) in granted.items():
        stored = by_order_id.get(order_id)
        if stored is None or _s(stored, "act_id") != act_id or _n(stored, "amount") != amount:
            lost += 1
        elif credits[_s(stored, "order_key")] == 0:
            lost += 1
    return Audit(orders=len(orders), credited=sum(1 for n in credits.values() if n), oversold=oversold,
                 lost=lost, double_credits=double)
