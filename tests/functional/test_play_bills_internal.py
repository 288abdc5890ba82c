"""Issue 18 item 2: a bill's credit never rides the public grant path, and reconciliation checks every bill.

Money is checked against an independent model written here (`fen_of`): a day's developer share is
price * num * share_bp // 10 000 per gift, summed, and a bill credits floor(cumulative / 10) minus the floor
before it. The hostile caller uses the public HTTP routes only.
"""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.errors import StorageUnavailable
from chalicelib.play import bills
from chalicelib.play import reconcile as play_reconcile
from chalicelib.play.settlement import bill_closes_at_ms, day_start_ms
from chalicelib.play.tables import PlaySettlementItem
from chalicelib.rewards.tables import LedgerEntry
from tests.play_support import clock_at, gift, install_play_key, make_anchor, make_app, new_id, post_events, start_game
from tests.problems import invalid
from tests.rewards_support import call, deliver_credits, purge_credits

REFUSED = invalid(("activity_id", "names an internal activity: internal money movements never go through the "
                                   "public grant and admin routes"))


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


def fen_of(share_units: int) -> int:
    """The independent model: platform units (1 000 = ¥1) to whole fen, rounded down."""
    return share_units // 10


def push(client, anchor, app, *messages) -> None:
    start_game(client, app, anchor)
    status, body = post_events(client, anchor.room_id, list(messages))
    assert status == 200 and {r["status"] for r in body["results"]} == {"appended"}, body


def wallet(client, act_id: str, activity_id: str = "play-bills") -> dict:
    status, body = call(client, "GET", f"/v1/wallets/{act_id}?activity_id={activity_id}")
    assert status == 200, body
    return body


def hostile_grant(act_id: str, rain_id: str, amount: int, activity_id: str = "play-bills") -> dict:
    return {"activity_id": activity_id, "scene_id": "bill", "act_id": act_id, "rain_id": rain_id,
            "award_type": "cash", "stage": "1", "amount": amount, "open_time_ms": clock.now_ms()}


def test_hostile_grant__pre_empts_the_bill_order_id__developer_still_paid_in_full(client, monkeypatch):
    purge_credits()
    day = "2030-08-01"
    with clock_at(monkeypatch, day_start_ms(day) + 3_600_000) as now:
        app, anchor = make_app(client, share_bp=5000), make_anchor(client)
        push(client, anchor, app, gift(price=4000, num=3))
        bills.ensure_bill_activity("play-bills")
        # GIVEN a grant caller places the bill's order id (as it was predictable) first, with 1 fen
        status, body = call(client, "POST", "/v1/grants", hostile_grant(f"play-app-{app.app_id}", "20300801", 1))
        # WHEN the day closes and the credit worker runs
        now[0] = bill_closes_at_ms(day)
        report = bills.close_due(app_ids=[app.app_id])
    deliver_credits()
    # THEN the developer holds the whole share, and the hostile grant was refused naming the field
    assert wallet(client, f"play-app-{app.app_id}")["balance"] == fen_of(4000 * 3 * 5000 // 10_000)
    assert report.credit_failed == []
    assert (status, body) == (400, REFUSED)


def test_hostile_grant__10_to_the_12_fen_in_play_bills__refused_nothing_written(client):
    bills.ensure_bill_activity("play-bills")
    bills.ensure_bill_activity("play-bills-sandbox")
    mallory = f"mallory{new_id()}"
    # WHEN a grant caller asks for 10^12 fen in the bill activities, single and batch, and in the reserved prefix
    single = call(client, "POST", "/v1/grants", hostile_grant(mallory, "r1", 10**12))
    status, batch = call(client, "POST", "/v1/grants/batch", {"grants": [
        hostile_grant(mallory, "r2", 10**12, "play-bills-sandbox"), hostile_grant(mallory, "r3", 5, "rg-internal-x")]})
    # THEN every one is refused naming activity_id, and no wallet moved
    assert single == (400, REFUSED)
    assert status == 200 and [(r["status"], r["body"]) for r in batch["results"]] == [
        (400, REFUSED), (400, REFUSED)]
    for activity in ("play-bills", "play-bills-sandbox"):
        seen = wallet(client, mallory, activity)
        assert (seen["balance"], seen["pending"]) == (0, 0)


def test_admin__activity_or_scene_in_the_internal_namespace__refused_nothing_written(client):
    bills.ensure_bill_activity("play-bills")
    scene = f"s{new_id()}"
    # WHEN an operator creates an activity under the reserved prefix, or a scene in a bill activity
    made = call(client, "PUT", "/v1/admin/activities/rg-internal-promo", {
        "children": [{"sub_activity_id": "formal", "purpose": "formal", "starts_at_ms": 0, "ends_at_ms": 10**13}]})
    scened = call(client, "PUT", f"/v1/admin/activities/play-bills/scenes/{scene}", {
        "award_type": "cash", "order_cap": 10**12, "stock_control": False})
    # THEN both are refused naming activity_id, and neither exists
    assert made == (400, REFUSED)
    assert scened == (400, REFUSED)
    status, stored = call(client, "GET", "/v1/admin/activities/play-bills")
    assert status == 200 and scene not in [s["scene_id"] for s in stored["scenes"]]
    assert call(client, "GET", "/v1/admin/activities/rg-internal-promo")[0] == 404


def _closed_bill(client, monkeypatch, day: str, price: int) -> tuple[object, PlaySettlementItem, str]:
    """An app with one gift on `day`, its bill closed and credited; the hour the bill closed in."""
    with clock_at(monkeypatch, day_start_ms(day) + 3_600_000) as now:
        app, anchor = make_app(client, share_bp=10_000), make_anchor(client)
        push(client, anchor, app, gift(price=price))
        now[0] = bill_closes_at_ms(day)
        bills.close_due(app_ids=[app.app_id])
    deliver_credits()
    bill = PlaySettlementItem.get(bills.bill_pk(app.app_id), day.replace("-", ""), consistent_read=True)
    return app, bill, clock.hour_of(bill_closes_at_ms(day))


def _mismatches(hour: str, app_id: int) -> list[dict]:
    found = play_reconcile.reconcile_hour(hour).findings
    return [f.as_dict() for f in found if f.kind == "bill_mismatch" and f.id.startswith(f"{app_id}/")]


def test_reconcile__closed_bill_credit_missing__bill_mismatch_reported(client, monkeypatch):
    purge_credits()
    day = "2030-09-01"

    def lost(*_args, **_kwargs):
        raise StorageUnavailable("credit not placed")

    # GIVEN a bill closed while its credit could not be placed (and no later run placed it)
    monkeypatch.setattr(bills, "place_credit", lost)
    app, bill, hour = _closed_bill(client, monkeypatch, day, price=5000)
    # WHEN the hour the bill closed in is reconciled
    found = _mismatches(hour, app.app_id)
    # THEN the bill is reported: closed, no credit
    assert found == [{"kind": "bill_mismatch", "id": f"{app.app_id}/{day}", "problem": "missing_credit",
                      "order_id": bill.credit_order_id, "bill_fen": 500, "credit_fen": None}]


def test_reconcile__credit_of_another_amount__and_credit_without_a_bill__both_reported(client, monkeypatch):
    purge_credits()
    day = "2030-09-02"
    app, bill, hour = _closed_bill(client, monkeypatch, day, price=7000)
    act = f"play-app-{app.app_id}"
    wallet_id = f"play-bills/formal#{act}#CNY"
    assert wallet(client, act)["balance"] == 700
    # GIVEN the bill's credit says 1 fen more than the bill, and a credit no bill names sits in the wallet
    credit = LedgerEntry.get(wallet_id, f"credit#{bill.credit_order_id}", consistent_read=True)
    credit.update(actions=[LedgerEntry.amount.set(701)])
    stray = LedgerEntry(wallet_id, f"credit#{act}_bill_20300902.stray_cash_1", kind="credit", amount=9,
                        activity_id="play-bills", sub_activity_id="formal", scene_id="bill", act_id=act,
                        status=8, created_at_ms=bill_closes_at_ms(day), hour=hour, hour_bucket=f"{hour}#0")
    stray.save()
    # WHEN the hour is reconciled
    found = _mismatches(hour, app.app_id)
    # THEN both are reported, each naming what it saw
    assert sorted(found, key=lambda f: f["problem"]) == [
        {"kind": "bill_mismatch", "id": f"{app.app_id}/{day}", "problem": "credit_without_bill",
         "order_id": f"{act}_bill_20300902.stray_cash_1", "bill_fen": None, "credit_fen": 9},
        {"kind": "bill_mismatch", "id": f"{app.app_id}/{day}", "problem": "wrong_amount",
         "order_id": bill.credit_order_id, "bill_fen": 700, "credit_fen": 701}]


def _pending_old_layout_bill(client, monkeypatch, now, day: str, price: int):
    """A bill as the old code left it: closed, PENDING, carrying the guessable order id."""
    app, anchor = make_app(client, share_bp=10_000), make_anchor(client)
    push(client, anchor, app, gift(price=price))
    real = bills.place_credit
    monkeypatch.setattr(bills, "place_credit", lambda *_a, **_k: (_ for _ in ()).throw(StorageUnavailable("down")))
    now[0] = bill_closes_at_ms(day)
    bills.close_due(app_ids=[app.app_id])
    monkeypatch.setattr(bills, "place_credit", real)
    legacy = f"play-app-{app.app_id}_bill_{day.replace('-', '')}_cash_1"
    bill = PlaySettlementItem.get(bills.bill_pk(app.app_id), day.replace("-", ""), consistent_read=True)
    bill.update(actions=[PlaySettlementItem.credit_order_id.set(legacy)])
    return app, legacy


def _old_grant(app_id: int, day: str, amount: int) -> None:
    """What a grant caller could do before the fix: the domain grant the public route called, then its credit."""
    from chalicelib.rewards import grants
    from chalicelib.rewards.orders import GrantRequest

    order, _ = grants.place(GrantRequest(activity_id="play-bills", scene_id="bill", act_id=f"play-app-{app_id}",
                                         rain_id=day.replace("-", ""), award_type="cash", stage="1", amount=amount,
                                         open_time_ms=clock.now_ms()))
    grants.enqueue([order])


def test_old_layout_pending_bill__old_id_pre_empted__re_keyed_paid_in_full__the_stray_credit_reported(
        client, monkeypatch):
    purge_credits()
    day = "2030-10-01"
    bills.ensure_bill_activity("play-bills")
    with clock_at(monkeypatch, day_start_ms(day) + 3_600_000) as now:
        # GIVEN a bill the old code left PENDING, whose guessable order id a grant caller took first with 1 fen
        app, legacy = _pending_old_layout_bill(client, monkeypatch, now, day, price=6000)
        _old_grant(app.app_id, day, 1)
        # WHEN the bills job runs with the internal credit path
        report = bills.close_due(app_ids=[app.app_id])
    deliver_credits()
    # THEN the bill was re-keyed to a random id and paid in full; the pre-empting 1 fen is reported, not hidden
    bill = PlaySettlementItem.get(bills.bill_pk(app.app_id), "20301001", consistent_read=True)
    assert (bill.credit_status, report.credit_failed) == ("PLACED", [])
    assert bill.credit_order_id != legacy and bill.credit_order_id.startswith(f"play-app-{app.app_id}_bill_20301001.")
    assert wallet(client, f"play-app-{app.app_id}")["balance"] == 600 + 1
    assert _mismatches(clock.hour_of(bill_closes_at_ms(day)), app.app_id) == [
        {"kind": "bill_mismatch", "id": f"{app.app_id}/{day}", "problem": "credit_without_bill", "order_id": legacy,
         "bill_fen": None, "credit_fen": 1}]


def test_old_layout_pending_bill__old_id_free__credited_under_it_once__reconciles_clean(client, monkeypatch):
    purge_credits()
    day = "2030-10-02"
    with clock_at(monkeypatch, day_start_ms(day) + 3_600_000) as now:
        # GIVEN a bill the old code left PENDING with its guessable id, which nobody took
        app, legacy = _pending_old_layout_bill(client, monkeypatch, now, day, price=4000)
        # WHEN the bills job runs twice (a repeat must not credit again)
        bills.close_due(app_ids=[app.app_id])
        bills.close_due(app_ids=[app.app_id])
    deliver_credits()
    # THEN it is credited once under that id (no second id: an old instance still running would credit it too)
    bill = PlaySettlementItem.get(bills.bill_pk(app.app_id), "20301002", consistent_read=True)
    assert (bill.credit_order_id, bill.credit_status) == (legacy, "PLACED")
    assert wallet(client, f"play-app-{app.app_id}")["balance"] == 400
    assert _mismatches(clock.hour_of(bill_closes_at_ms(day)), app.app_id) == []


def test_bill_credit__process_dies_after_writing_the_credit__next_run_credits_it_once(client, monkeypatch):
    from chalicelib.rewards import internal

    purge_credits()
    day = "2030-10-03"
    real = internal.place

    def dies_after(credit, now_ms=None):
        real(credit, now_ms)
        raise StorageUnavailable("the process died before sending the credit message")

    with clock_at(monkeypatch, day_start_ms(day) + 3_600_000) as now:
        app, anchor = make_app(client, share_bp=10_000), make_anchor(client)
        push(client, anchor, app, gift(price=3000, num=2))
        # GIVEN the run that closes the day writes the credit and dies before sending it or marking the bill
        monkeypatch.setattr(internal, "place", dies_after)
        now[0] = bill_closes_at_ms(day)
        first = bills.close_due(app_ids=[app.app_id])
        monkeypatch.setattr(internal, "place", real)
        deliver_credits()
        assert wallet(client, f"play-app-{app.app_id}")["pending"] == 600  # written, never sent
        # WHEN the next run comes
        now[0] += 600_000
        bills.close_due(app_ids=[app.app_id])
    deliver_credits()
    # THEN the credit is sent and credited exactly once
    assert first.credit_failed == [f"{app.app_id}/{day}"]
    seen = wallet(client, f"play-app-{app.app_id}")
    assert (seen["balance"], seen["pending"]) == (600, 0)
    credits = list(LedgerEntry.query(f"play-bills/formal#play-app-{app.app_id}#CNY",
                                     LedgerEntry.entry_key.startswith("credit#"), consistent_read=True))
    assert [int(c.amount) for c in credits] == [600]


def test_internal_place__same_credit_exists__other_amount_conflict__public_activity_refused(aws_stack):
    from chalicelib.errors import InvalidField, OrderConflict
    from chalicelib.rewards import internal

    credit = internal.InternalCredit(activity_id="rg-internal-test", sub_activity_id="formal", scene_id="bill",
                                     act_id=f"dev{new_id()}", rain_id=f"20300101.{internal.new_nonce()}", stage="1",
                                     amount=250)
    # WHEN the same credit is written twice, then with another amount, then in a public activity
    first, again = internal.place(credit), internal.place(credit)
    with pytest.raises(OrderConflict) as conflict:
        internal.place(internal.InternalCredit(**{**credit.__dict__, "amount": 251}))
    with pytest.raises(InvalidField) as public:
        internal.place(internal.InternalCredit(**{**credit.__dict__, "activity_id": "campaign"}))
    # THEN once written, once exists (the stored order), the others refused; the stored amount is the first
    assert (first[1], again[1], again[0].order_id, again[0].created_at_ms) == (
        True, False, first[0].order_id, first[0].created_at_ms)
    assert (conflict.value.code, conflict.value.details["existing_amount"]) == ("order_conflict", 250)
    assert public.value.details["field"] == "activity_id"
    assert internal.find(credit.wallet_id, credit.order_id).amount == 250


def test_bill_wallet__flow_lists_the_credit__developer_withdraws_from_it(client, monkeypatch):
    purge_credits()
    day = "2030-10-04"
    app, bill, _hour = _closed_bill(client, monkeypatch, day, price=9000)
    act = f"play-app-{app.app_id}"
    # WHEN the developer reads the flow of the bill wallet and withdraws part of it
    status, flow = call(client, "GET", f"/v1/wallets/{act}/flow?activity_id=play-bills")
    paid = call(client, "POST", f"/v1/wallets/{act}/withdrawals",
                {"activity_id": "play-bills", "request_id": f"wd{new_id()}", "amount": 300})
    # THEN the flow shows the bill's credit, the withdrawal is paid and the balance is what is left
    assert status == 200 and [(i["type"], i["amount"], i["order_id"]) for i in flow["items"]] == [
        ("credit", 900, bill.credit_order_id)]
    assert paid == (200, {"request_id": paid[1].get("request_id"), "amount": 300, "status": "PAID", "balance": 600})
    assert wallet(client, act)["balance"] == 600


def test_reconcile__money_credited_in_a_bill_namespace_outside_any_bill__reported_with_the_amount(
        client, monkeypatch):
    from chalicelib.rewards import internal
    from chalicelib.rewards.sending import enqueue

    purge_credits()
    day = "2030-11-01"
    # GIVEN a closed, credited bill, and in the same hour 77 fen credited in play-bills to a wallet no bill names
    _app, _bill, hour = _closed_bill(client, monkeypatch, day, price=2000)
    with clock_at(monkeypatch, bill_closes_at_ms(day) + 60_000):
        stray, _ = internal.place(internal.InternalCredit(
            activity_id="play-bills", sub_activity_id="formal", scene_id="bill", act_id=f"mallory{new_id()}",
            rain_id=f"20301101.{internal.new_nonce()}", stage="1", amount=77))
        enqueue([stray])
    deliver_credits()
    assert stray.hour == hour
    # WHEN the hour is reconciled
    found = [f.as_dict() for f in play_reconcile.reconcile_hour(hour).findings
             if f.kind == "bill_mismatch" and f.id == f"play-bills/formal#{hour}"]
    # THEN the namespace's credited money exceeds its bills' credits by exactly the stray 77 fen
    assert len(found) == 1 and found[0]["problem"] == "credit_without_bill"
    assert found[0]["credit_fen"] - found[0]["bill_fen"] == 77
