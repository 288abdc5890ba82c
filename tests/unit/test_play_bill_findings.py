"""bill_findings: closed bills against the credits of the app's bill wallet (pure)."""

from __future__ import annotations

from chalicelib.play.bill_checks import BillRow, CreditRow, bill_findings

W = "play-bills/formal#play-app-7#CNY"
SANDBOX = "play-bills-sandbox/formal#play-app-7#CNY"
DUE = 2_000


def bill(day: str, fen: int, nonce: str = "n", closed_at_ms: int = 1_000) -> BillRow:
    return BillRow(day=day, credit_fen=fen, order_id=f"play-app-7_bill_{day.replace('-', '')}.{nonce}_cash_1"
                   if fen else None, closed_at_ms=closed_at_ms)


def credit(of: BillRow, amount: int, wallet_id: str = W) -> CreditRow:
    return CreditRow(order_id=of.order_id, wallet_id=wallet_id, amount=amount)


def test_bill_findings__every_bill_matched__nothing():
    bills = [bill("2030-01-01", 100), bill("2030-01-02", 0), bill("2030-01-03", 5)]
    assert bill_findings(7, bills, [credit(bills[0], 100), credit(bills[2], 5)], {}, DUE) == []


def test_bill_findings__credit_in_the_other_bill_wallet__wrong_wallet_naming_it():
    paid_wrong = bill("2030-01-01", 100)
    found = bill_findings(7, [paid_wrong], [], {paid_wrong.order_id: credit(paid_wrong, 100, SANDBOX)}, DUE)
    assert [f.as_dict() for f in found] == [{
        "kind": "bill_mismatch", "id": "7/2030-01-01", "problem": "wrong_wallet", "order_id": paid_wrong.order_id,
        "bill_fen": 100, "credit_fen": 100, "wallet_id": SANDBOX}]


def test_bill_findings__bill_closed_after_the_hour__not_due_yet__its_credit_not_a_stray():
    late = bill("2030-01-01", 100, closed_at_ms=DUE)
    unpaid_late = bill("2030-01-02", 40, closed_at_ms=DUE + 1)
    assert bill_findings(7, [late, unpaid_late], [credit(late, 100)], {}, DUE) == []


def test_bill_findings__missing_wrong_amount_and_stray__one_finding_each_in_day_order():
    missing, short = bill("2030-01-02", 10), bill("2030-01-01", 30)
    stray = CreditRow(order_id="play-app-7_bill_20300103_cash_1", wallet_id=W, amount=1)
    found = [(f.id, f.details["problem"]) for f in bill_findings(7, [missing, short], [credit(short, 29), stray],
                                                                 {}, DUE)]
    assert found == [("7/2030-01-01", "wrong_amount"), ("7/2030-01-02", "missing_credit"),
                     ("7/2030-01-03", "credit_without_bill")]


def test_namespace_findings__counter_above_the_credited_bill_credits__reported_else_nothing():
    from chalicelib.play.bill_checks import namespace_findings

    hour, sandbox_ns = "2030010116", "play-bills-sandbox/formal"
    paid = [CreditRow("a", W, 100, hour, True), CreditRow("b", W, 50, hour, False),
            CreditRow("c", W, 7, "2030010115", True), CreditRow("d", SANDBOX, 30, hour, True)]
    # GIVEN live: 100 credited this hour (50 pending, 7 of another hour); counted 130. Sandbox: 30 and 30
    found = namespace_findings(hour, {"play-bills/formal": 130, sandbox_ns: 30}, paid)
    assert [f.as_dict() for f in found] == [{"kind": "bill_mismatch", "id": f"play-bills/formal#{hour}",
                                             "problem": "credit_without_bill", "order_id": None, "bill_fen": 100,
                                             "credit_fen": 130}]
    # a counter that lags (a tally not yet written) is not a finding
    assert namespace_findings(hour, {"play-bills/formal": 90, sandbox_ns: 0}, paid) == []
