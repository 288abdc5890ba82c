"""The rain's independent money check (`bench/rain_audit.py`) sees each failure it exists to report."""

from __future__ import annotations

from bench.rain_audit import audit


def order(order_id: str, act_id: str, amount: int, scene: str = "rain", activity: str = "a1") -> dict:
    return {"order_key": {"S": f"a1/formal#{order_id}"}, "order_id": {"S": order_id}, "act_id": {"S": act_id},
            "activity_id": {"S": activity}, "scene_id": {"S": scene}, "amount": {"N": str(amount)},
            "wallet_id": {"S": f"w-{act_id}"}}


def credit(order_id: str, act_id: str, amount: int, suffix: str = "") -> dict:
    return {"wallet_id": {"S": f"w-{act_id}"}, "entry_key": {"S": f"credit#{order_id}{suffix}"},
            "kind": {"S": "credit"}, "order_key": {"S": f"a1/formal#{order_id}"}, "amount": {"N": str(amount)}}


def wallet(act_id: str, balance: int) -> dict:
    return {"wallet_id": {"S": f"w-{act_id}"}, "balance": {"N": str(balance)}}


GRANTED = {"o1": ("u1", 30), "o2": ("u1", 20), "o3": ("u2", 50)}
ORDERS = [order("o1", "u1", 30), order("o2", "u1", 20), order("o3", "u2", 50)]
LEDGER = [credit("o1", "u1", 30), credit("o2", "u1", 20), credit("o3", "u2", 50)]
WALLETS = [wallet("u1", 50), wallet("u2", 50)]


def test_audit__every_grant_credited_once_within_budget__all_zero():
    # GIVEN three granted orders within a budget of 100, each credited once WHEN audited
    result = audit(GRANTED, "a1", "rain", 100, ORDERS, LEDGER, WALLETS)
    # THEN nothing is reported
    assert (result.orders, result.credited, result.oversold, result.lost, result.double_credits) == (3, 3, 0, 0, 0)
    assert result.ok


def test_audit__stored_orders_beyond_budget__oversold_by_the_excess():
    # GIVEN a fourth stored order (never answered to the caller) over a budget of 100 WHEN audited
    result = audit(GRANTED, "a1", "rain", 100, [*ORDERS, order("o4", "u3", 7)], LEDGER, WALLETS)
    # THEN the excess is oversold
    assert result.oversold == 7 and not result.ok


def test_audit__granted_without_order_or_credit__lost():
    # GIVEN o3's credit missing and a 202 answered for an order that was never stored WHEN audited
    granted = {**GRANTED, "o9": ("u9", 1)}
    result = audit(granted, "a1", "rain", 100, ORDERS, LEDGER[:2], WALLETS[:1])
    # THEN both are lost
    assert result.lost == 2


def test_audit__second_credit_entry_or_excess_balance__double_credits():
    # GIVEN o1 credited under a second ledger key, and u2's balance above its credits WHEN audited
    result = audit(GRANTED, "a1", "rain", 100, ORDERS, [*LEDGER, credit("o1", "u1", 30, "-again")],
                   [wallet("u1", 80), wallet("u2", 51)])
    # THEN the extra entry and u2's excess are each one double credit (u1's 80 is what its entries say)
    assert result.double_credits == 2


def test_audit__other_scenes_orders__ignored():
    # GIVEN an order of another scene and one of another activity WHEN audited with a budget of 100
    others = [order("x1", "u1", 500, scene="other"), order("x2", "u1", 500, activity="a2")]
    result = audit(GRANTED, "a1", "rain", 100, [*ORDERS, *others], LEDGER, WALLETS)
    # THEN they neither count against the budget nor as lost
    assert result.ok and result.orders == 3
