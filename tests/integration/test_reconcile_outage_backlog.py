"""A reconciler outage longer than the schedule's window (the last closed hour and `LOOKBACK_HOURS` + 1 hours
before it) leaves no hour unreconciled (review finding F6): the schedule works forward from its durable "reconciled
through" watermark, counts the hours behind it in `ReconciliationPassesBehind`, and re-drives their stuck orders.

Before the fix the hours that fell out of `due_runs` were never run: "hour 2026120713 was never reconciled".

The clock is moved by monkeypatching `clock.now_ms`; the wallet is read from its item. Expected figures are the
test's own hour arithmetic. The watermark is deleted before and after each test (other tests' hours are far away).
"""

from __future__ import annotations

import json

import pytest

from chalicelib import clock
from chalicelib.reconcile import runner, watermark
from chalicelib.rewards import late_hours as late
from tests.rewards_support import (
    deliver_credits,
    far_hour_clock,
    forget_schedule_watermark,
    grant_direct,
    make_campaign,
    purge_credits,
    wallet_id_of,
    wallet_item,
)

HOUR = 3_600_000


@pytest.fixture(autouse=True)
def _fresh_schedule():
    forget_schedule_watermark()
    yield
    forget_schedule_watermark()


def behind_figures(out: str) -> list[float]:
    return [json.loads(line)["ReconciliationPassesBehind"][0] for line in out.splitlines()
            if '"ReconciliationPassesBehind"' in line]


def test_reconcile_schedule__down_12_hours__stuck_order_of_an_hour_out_of_the_window_redriven(
        client, monkeypatch, capsys):
    # an hour years ahead that no other test of the run uses (other tests reconcile real recent hours, whose
    # finished passes would change what this schedule owes)
    _fake, far_start = far_hour_clock(monkeypatch)
    start = far_start + 10 * 60_000  # hh:10 of hour H
    now = [start]
    monkeypatch.setattr(clock, "now_ms", lambda: now[0])
    hour = clock.hour_of(start)
    # GIVEN the schedule running at H:10 (it owes H-1 pass 1 and H-2 .. H-8 pass 2, and finishes them)
    runner.scheduled(runner.Budget(None))
    assert watermark.read() == runner.next_hour(hour, -2)
    # AND a reward of 700 fen granted at H:10 whose credit message is lost (the queue is emptied)
    campaign = make_campaign(client, total=100_000, order_cap=1000, now_ms=start)
    status, body = grant_direct(campaign.grant_body("stranded", amount=700))
    assert status == 202, body
    purge_credits()
    # WHEN the schedule does not run for 12 hours; at H+12:10 its window is H+11 pass 1 and H+4 .. H+10 pass 2,
    # so H-1 .. H+3 (5 hours, H among them) lie between the watermark and the window
    now[0] = start + 12 * HOUR
    capsys.readouterr()
    runner.scheduled(runner.Budget(0))  # an invocation with time for one step of each pass only
    out = capsys.readouterr().out
    # THEN the behind figure counts the 6 unfinished overdue window passes and the 5 backlog hours
    print("behind after one step each:", behind_figures(out))
    assert behind_figures(out)[-1] == 6 + 5
    assert runner.display_hour(runner.next_hour(hour, -1)) in out  # the log line names the oldest owed hour

    # WHEN the schedule has time to finish (and the re-driven credits are delivered)
    ran = runner.scheduled(runner.Budget(None))
    print("passes run:", sorted({(r.hour, r.pass_no, r.status) for r in ran}))
    deliver_credits()
    # THEN hour H was reconciled by its last pass, the order re-driven and the user credited 700 fen
    head = runner.status(hour, 2)
    assert head is not None and head["status"] == "done", f"hour {hour} was never reconciled"
    wallet = wallet_item(wallet_id_of(campaign, "stranded"))
    print("wallet:", None if wallet is None else int(wallet.balance))
    assert wallet is not None and int(wallet.balance) == 700
    # AND nothing is behind any more: the watermark reached the on-time last pass (H+10)
    assert watermark.read() == runner.next_hour(hour, 10)
    capsys.readouterr()
    runner.scheduled(runner.Budget(None))
    assert behind_figures(capsys.readouterr().out)[-1] == 0


def test_reconcile_schedule__first_deploy_without_watermark__starts_from_its_window_not_the_epoch(
        monkeypatch, capsys):
    fake, hour_start = far_hour_clock(monkeypatch)
    # GIVEN no watermark recorded (the first deploy), 10 minutes into the hour after next of hour H
    fake.ms = hour_start + 2 * HOUR + 10 * 60_000
    hour = clock.hour_of(hour_start)
    # (hours other tests' late credits marked dirty are re-run by any schedule: not this test's concern)
    marked = {(mark.hour, 2) for mark in late.due(fake.ms)}
    # WHEN the schedule runs
    ran = runner.scheduled(runner.Budget(None))
    # THEN it ran its window only (H+1 pass 1, H .. H-6 pass 2), nothing older, and owes nothing behind
    assert sorted((r.hour, r.pass_no) for r in ran if (r.hour, r.pass_no) not in marked) == sorted(
        [(runner.next_hour(hour), 1)] + [(runner.next_hour(hour, -back), 2) for back in range(7)])
    assert watermark.read() == hour
    assert behind_figures(capsys.readouterr().out)[-1] == 0
