"""Settlement of interactive gifts: the ratio in force, day ledgers, bills closed at 00:30 UTC+8, the credit.

Money is checked against an independent model written here (`expected_share`), never against the code's own
helpers: each gift's share is price * num * share_bp // 10 000 under the ratio the test itself switched.
"""

from __future__ import annotations

import re

import pytest

from chalicelib.play import apps, bills, ingest
from chalicelib.play import reconcile as play_reconcile
from chalicelib.play.settlement import bill_closes_at_ms, day_start_ms
from chalicelib.play.tables import PlaySettlementItem, PlayStreamItem
from chalicelib.reconcile import runner
from tests.play_support import (
    INTERACTIVE_GIFT,
    clock_at,
    gift,
    install_play_key,
    make_anchor,
    make_app,
    post_events,
    start_game,
)
from tests.problems import invalid, problem
from tests.rewards_support import call, deliver_credits, purge_credits

DAY = "2030-03-18"
T = day_start_ms(DAY) + 10 * 3600 * 1000  # 10:00 UTC+8


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


def expected_share(gifts: list[tuple[int, int, int]]) -> int:
    """The independent model: (price, num, share_bp in force) -> the developer's share, in platform units."""
    return sum(price * num * bp // 10_000 for price, num, bp in gifts)


def settlement(client, app_id: int, day: str = DAY) -> dict:
    status, body = call(client, "GET", f"/v1/play-apps/{app_id}/settlement?day={day}")
    assert status == 200, body
    return body


def wallet_balance(client, app_id: int, activity_id: str = "play-bills") -> int:
    status, body = call(client, "GET", f"/v1/wallets/play-app-{app_id}?activity_id={activity_id}")
    assert status == 200, body
    assert body["pending"] == 0, body
    return body["balance"]


def push(client, anchor, app, *messages) -> list[dict]:
    start_game(client, app, anchor)  # the running game, or a new one after the clock jumped
    status, body = post_events(client, anchor.room_id, list(messages))
    assert status == 200, body
    assert {r["status"] for r in body["results"]} == {"appended"}
    return body["results"]


def test_ratio_changed_mid_day__each_gift_under_the_ratio_in_force_when_it_arrived__bill_credits_once(
        client, monkeypatch):
    purge_credits()
    monkeypatch.setattr(apps, "ratio_delay_ms", lambda: 6000)
    with clock_at(monkeypatch, T) as now:
        app, anchor = make_app(client, share_bp=5000), make_anchor(client)
        # GIVEN gifts at 50 %, then a change to 20 % an hour later, then gifts either side of its effect
        push(client, anchor, app, gift(price=1999, num=3), gift(gift_id=1, price=10**6))  # the second: not interactive
        now[0] += 3_600_000
        status, changed = call(client, "PUT", f"/v1/admin/play-apps/{app.app_id}",
                               {"name": "x", "share_bp": 2000, "interactive_gift_ids": [INTERACTIVE_GIFT]})
        assert status == 200 and changed["ratios"][-1]["effective_from_ms"] == now[0] + 6000
        now[0] += 5999
        push(client, anchor, app, gift(price=777, num=1))
        now[0] += 1
        push(client, anchor, app, gift(price=1001, num=7), gift(price=5000, paid=False))
        model = [(1999, 3, 5000), (777, 1, 5000), (1001, 7, 2000)]
        # THEN the running day shows the model's figures with both ratio versions
        view = settlement(client, app.app_id)
        assert (view["gifts"], view["revenue"], view["developer_share"]) == (
            3, 1999 * 3 + 777 + 1001 * 7, expected_share(model))
        assert view["ratio_versions"] == [1, 2] and view["closed"] is False and view["credit"] is None
        # WHEN the bills job runs before 00:30 UTC+8 the next day, then at 00:30
        now[0] = bill_closes_at_ms(DAY) - 1
        assert bills.close_due(app_ids=[app.app_id]).closed == []
        now[0] = bill_closes_at_ms(DAY)
        report = bills.close_due(app_ids=[app.app_id])
        # THEN the day is closed with the same figures and its credit placed through the internal credit path
        assert report.closed == [f"{app.app_id}/{DAY}"]
        closed = settlement(client, app.app_id)
        assert closed["closed"] is True and closed["developer_share"] == expected_share(model)
        # (its order id: the day and a random part recorded on the bill, so no grant caller can predict it)
        credit = dict(closed["credit"])
        assert re.fullmatch(rf"play-app-{app.app_id}_bill_20300318\.[0-9a-f]{{32}}_cash_1", credit.pop("order_id"))
        assert credit == {"activity_id": "play-bills", "wallet_act_id": f"play-app-{app.app_id}",
                          "amount_fen": expected_share(model) // 10, "status": "PLACED"}
        # AND once the credit worker ran, the developer's wallet holds the share in fen
        deliver_credits()
        assert wallet_balance(client, app.app_id) == expected_share(model) // 10
        # WHEN the job runs again and the credit queue is drained again
        assert bills.close_due(app_ids=[app.app_id]).closed == []
        deliver_credits()
        # THEN nothing moved: the bill is immutable and credited once
        assert settlement(client, app.app_id) == closed
        assert wallet_balance(client, app.app_id) == expected_share(model) // 10


def test_bills__sub_fen_remainders__carried_to_the_next_day_never_lost(client, monkeypatch):
    purge_credits()
    day1 = "2030-04-01"
    with clock_at(monkeypatch, day_start_ms(day1) + 3_600_000) as now:
        app, anchor = make_app(client, share_bp=5000), make_anchor(client)
        push(client, anchor, app, gift(price=2011, num=1))  # share 1 005.5 -> 1 005 units = 100.5 fen
        now[0] += 86_400_000
        push(client, anchor, app, gift(price=2011, num=1))
        now[0] = bill_closes_at_ms(day1) + 86_400_000
        report = bills.close_due(app_ids=[app.app_id])
        assert report.closed == [f"{app.app_id}/{day1}", f"{app.app_id}/2030-04-02"]
    first, second = settlement(client, app.app_id, day1), settlement(client, app.app_id, "2030-04-02")
    assert (first["credit"]["amount_fen"], second["credit"]["amount_fen"]) == (100, 101)
    assert second["cumulative_share"] == 2010
    deliver_credits()
    assert wallet_balance(client, app.app_id) == 2010 // 10


def test_sandbox_app__bill_credited_in_the_sandbox_activity_only(client, monkeypatch):
    purge_credits()
    day = "2030-05-01"
    with clock_at(monkeypatch, day_start_ms(day) + 3_600_000) as now:
        app, anchor = make_app(client, sandbox=True, share_bp=10_000), make_anchor(client)
        start_game(client, app, anchor)
        post_events(client, anchor.room_id, [gift(price=1000, num=2)], test=True)
        now[0] = bill_closes_at_ms(day)
        bills.close_due(app_ids=[app.app_id])
    deliver_credits()
    assert settlement(client, app.app_id, day)["credit"]["activity_id"] == "play-bills-sandbox"
    assert wallet_balance(client, app.app_id, "play-bills-sandbox") == 200
    status, live = call(client, "GET", f"/v1/wallets/play-app-{app.app_id}?activity_id=play-bills")
    assert status == 200 and live["balance"] == 0


def test_counter_drift__bill_held_not_closed__hourly_reconciliation_reports_it(client, monkeypatch):
    day = "2030-06-01"
    with clock_at(monkeypatch, day_start_ms(day) + 3_600_000) as now:
        app, anchor = make_app(client), make_anchor(client)
        (result,) = push(client, anchor, app, gift(price=3000))
        hour = runner.parse_hour("2030-05-31T17")
        entry = ingest.settlement_entry(app.app_id, hour, result["msg_id"])
        assert entry is not None
        # GIVEN the hour counter beside the entry is corrupted (one gift too many)
        PlaySettlementItem(entry.pk, "sum").update(actions=[PlaySettlementItem.gifts.add(1)])
        now[0] = bill_closes_at_ms(day)
        # WHEN the bills job runs
        report = bills.close_due(app_ids=[app.app_id])
        # THEN the day is held, not closed
        assert report.held == [f"{app.app_id}/{day}"] and report.closed == []
        assert settlement(client, app.app_id, day)["closed"] is False
        # AND the hourly reconciliation reports the drift, through the existing reconciler's run report
        outcome = runner.run(hour, 2, runner.Budget(None), restart=True)
        assert outcome.status == "done"
    run_report = next(r for r in runner.reports(hour) if r["pass"] == 2 and "dlq_depths" in r)
    drift = run_report["discrepancies"]["play_counter_drift"]
    assert [item["id"] for item in drift["items"]] == [entry.pk]
    assert drift["items"][0]["counter"]["gifts"] == 2 and drift["items"][0]["entries"]["gifts"] == 1
    assert run_report["play"]["entries"] >= 1


def test_hour_reconciliation__lost_event_and_lost_entry__both_reported(client, monkeypatch):
    day = "2030-07-01"
    with clock_at(monkeypatch, day_start_ms(day) + 3_600_000):
        app, anchor = make_app(client), make_anchor(client)
        kept, lost_event, lost_entry = push(client, anchor, app, gift(price=10), gift(price=20), gift(price=30))
        hour = runner.parse_hour("2030-06-30T17")
        # GIVEN one settled gift's stream event vanished, and another's entry (its counter adjusted to match)
        PlayStreamItem(lost_event["game_id"], lost_event["seq"]).delete()
        entry = ingest.settlement_entry(app.app_id, hour, lost_entry["msg_id"])
        entry.delete()
        PlaySettlementItem(entry.pk, "sum").update(actions=[
            PlaySettlementItem.gifts.add(-1), PlaySettlementItem.revenue.add(-30),
            PlaySettlementItem.developer_share.add(-15)])
        # WHEN the hour is reconciled
        found = play_reconcile.reconcile_hour(hour).findings
    mine = {(f.kind, f.id) for f in found if f.id.startswith(f"{app.app_id}#")
            or f.id.startswith(lost_event["game_id"])}
    assert ("play_entry_without_event", f"{ingest.settlement_entry(app.app_id, hour, lost_event['msg_id']).pk}|"
                                        f"{lost_event['msg_id']}") in mine
    assert ("play_event_without_entry", f"{lost_entry['game_id']}|{lost_entry['seq']}") in mine
    assert kept["msg_id"] not in str(mine)


def test_settlement__bad_day_or_unknown_app__400_404(client):
    app = make_app(client)
    assert call(client, "GET", f"/v1/play-apps/{app.app_id}/settlement") == (400, invalid(("day", "is required")))
    assert call(client, "GET", f"/v1/play-apps/{app.app_id}/settlement?day=2030-02-30") == (
        400, invalid(("day", "is not a calendar day")))
    assert call(client, "GET", f"/v1/play-apps/{app.app_id}/settlement?day=2030-1-1&colour=red") == (
        400, invalid(("day", "must match ^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), ("colour", "is not a known field")))
    assert call(client, "GET", "/v1/play-apps/123/settlement?day=2030-01-01") == (
        404, problem("play_app_not_found", "play app 123 is not configured", app_id=123))
