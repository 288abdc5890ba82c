"""The rain's independent money check (`bench/rain_audit.py`) sees each failure it exists to report."""

from __future__ import annotations

from bench.rain_audit import audit


def order(order_id: str, act_id: str, amount: int, scene: str = "rain", activity: str = "a1", credited: bool = True,
          key: str | None = None) -> dict:
    """An order as stored: its wallet's ledger credit, posted (`time_key`) once credited."""
    item = {"wallet_id": {"S": f"w-{act_id}"}, "entry_key": {"S": key or f"credit#{order_id}"}, "kind": {"S": "credit"},
            "status": {"N": "8" if credited else "1"}, "act_id": {"S": act_id}, "activity_id": {"S": activity},
            "sub_activity_id": {"S": "formal"}, "scene_id": {"S": scene}, "rain_id": {"S": f"r-{order_id}"},
            "award_type": {"S": "cash"}, "stage": {"S": "1"}, "amount": {"N": str(amount)}}
    if credited:
        item["time_key"] = {"S": f"0000000000001#credit#{order_id}"}
    return item


def wallet(act_id: str, balance: int) -> dict:
    return {"wallet_id": {"S": f"w-{act_id}"}, "balance": {"N": str(balance)}}


GRANTED = {"o1": ("u1", 30), "o2": ("u1", 20), "o3": ("u2", 50)}
ORDERS = [order("o1", "u1", 30), order("o2", "u1", 20), order("o3", "u2", 50)]
WALLETS = [wallet("u1", 50), wallet("u2", 50)]


def test_audit__every_grant_credited_once_within_budget__all_zero():
    # GIVEN three granted orders within a budget of 100, each credited once WHEN audited
    result = audit(GRANTED, "a1", "rain", 100, ORDERS, WALLETS)
    # THEN nothing is reported
    assert (result.orders, result.credited, result.oversold, result.lost, result.double_credits) == (3, 3, 0, 0, 0)
    assert result.ok


def test_audit__stored_orders_beyond_budget__oversold_by_the_excess():
    # GIVEN a fourth stored order (never answered to the caller) over a budget of 100 WHEN audited
    result = audit(GRANTED, "a1", "rain", 100, [*ORDERS, order("o4", "u3", 7)], WALLETS)
    # THEN the excess is oversold
    assert result.oversold == 7 and not result.ok


def test_audit__granted_without_order_or_credit__lost():
    # GIVEN o3 never credited and a 202 answered for an order that was never stored WHEN audited
    granted = {**GRANTED, "o9": ("u9", 1)}
    result = audit(granted, "a1", "rain", 100, [*ORDERS[:2], order("o3", "u2", 50, credited=False)], WALLETS[:1])
    # THEN both are lost
    assert result.lost == 2


def test_audit__second_credit_entry_or_excess_balance__double_credits():
    # GIVEN o1 credited a second time under another ledger key, and u2's balance above its credits WHEN audited
    result = audit(GRANTED, "a1", "rain", 10_000, [*ORDERS, order("o1", "u1", 30, key="credit#o1-again")],
                   [wallet("u1", 80), wallet("u2", 51)])
    # THEN the extra entry and u2's excess are each one double credit (u1's 80 is what its entries say)
    assert result.double_credits == 2


def test_audit__other_scenes_orders__ignored():
    # GIVEN an order of another scene and one of another activity WHEN audited with a budget of 100
    others = [order("x1", "u1", 500, scene="other"), order("x2", "u1", 500, activity="a2")]
    result = audit(GRANTED, "a1", "rain", 100, [*ORDERS, *others], WALLETS)
    # THEN they neither count against the budget nor as lost
    assert result.ok and result.orders == 3
