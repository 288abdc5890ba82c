"""Gifts -> settlement -> daily bills -> the developers' wallets, on DynamoDB Local, with the bills job and the
credit workers running concurrently. Every amount is checked against a model written here (`Model`), never
against the code's own helpers. Figures are printed."""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.play import bills
from chalicelib.play import reconcile as play_reconcile
from chalicelib.play.settlement import bill_closes_at_ms, day_start_ms
from chalicelib.reconcile import runner
from chalicelib.rewards.tables import LedgerEntry
from tests.concurrency_support import run_together
from tests.play_support import clock_at, gift, ingest_direct, install_play_key, make_anchor, make_app, start_game
from tests.rewards_support import call, deliver_credits_concurrently, purge_credits

DAYS = ("2031-02-01", "2031-02-02", "2031-02-03")
# (share_bp, sandbox, per day: the (price, num) of its interactive gifts): remainders below a fen on purpose
APPS = ((5000, False, ((1999, 3), (7, 1), (1001, 7))),
        (3333, False, ((2011, 1), (999, 2))),
        (10_000, True, ((1003, 1),)))
RUNS = 4


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


class Model:
    """The independent model: each gift's share, the cumulative share, and whole fen of it."""

    def __init__(self) -> None:
        self.share: dict[int, int] = {}

    def gift(self, app_id: int, price: int, num: int, share_bp: int) -> None:
        self.share[app_id] = self.share.get(app_id, 0) + price * num * share_bp // 10_000

    def fen(self, app_id: int) -> int:
        return self.share.get(app_id, 0) // 10




def test_bills__gifts_to_wallets__four_concurrent_bill_runs__each_developer_credited_once_the_modelled_fen(
        client, monkeypatch):
    purge_credits()
    model = Model()
    made = []
    with clock_at(monkeypatch, day_start_ms(DAYS[0]) + 2 * 3_600_000) as now:
        for share_bp, sandbox, gifts in APPS:
            made.append((make_app(client, share_bp=share_bp, sandbox=sandbox), make_anchor(client), share_bp,
                         sandbox, gifts))
        # GIVEN three days of interactive gifts for three apps (one sandbox), under each app's ratio
        for number, day in enumerate(DAYS):
            now[0] = day_start_ms(day) + 2 * 3_600_000
            for app, anchor, share_bp, sandbox, gifts in made:
                start_game(client, app, anchor)
                for price, num in gifts:
                    ingest_direct(anchor.room_id, [gift(price=price, num=num + number)], test=sandbox)
                    model.gift(app.app_id, price, num + number, share_bp)
        # WHEN the bills job runs in four instances at once, twice, once every day is due
        now[0] = bill_closes_at_ms(DAYS[-1]) + 60_000
        ids = [a.app_id for a, *_ in made]
        reports = [*run_together(RUNS, lambda _i: bills.close_due(app_ids=ids)), bills.close_due(app_ids=ids)]
        # AND the credit workers drain the credit queue concurrently
        delivered = deliver_credits_concurrently(workers=4)
        closing_hour = clock.hour_of(now[0])
        found = play_reconcile.reconcile_hour(closing_hour).findings
        passed = runner.run(closing_hour, 2, runner.Budget(None), restart=True)
    # THEN each day closed exactly once over all runs, and each developer holds the model's fen, once
    closed = sorted(d for r in reports for d in r.closed)
    assert closed == sorted(f"{a.app_id}/{d}" for a, *_ in made for d in DAYS)
    assert not [f for r in reports for f in r.credit_failed]
    for app, _anchor, _bp, sandbox, _gifts in made:
        activity = "play-bills-sandbox" if sandbox else "play-bills"
        status, seen = call(client, "GET", f"/v1/wallets/play-app-{app.app_id}?activity_id={activity}")
        assert status == 200 and (seen["balance"], seen["pending"]) == (model.fen(app.app_id), 0), (app, seen)
        credits = list(LedgerEntry.query(f"{activity}/formal#play-app-{app.app_id}#CNY",
                                         LedgerEntry.entry_key.startswith("credit#"), consistent_read=True))
        assert len(credits) == len(DAYS) and sum(int(c.amount) for c in credits) == model.fen(app.app_id)
        print(f"app {app.app_id}: modelled {model.share[app.app_id]} units -> {model.fen(app.app_id)} fen; "
              f"wallet {seen['balance']} fen in {len(credits)} credits")
    # AND the hour the bills closed in reconciles without a bill_mismatch
    # (every bill_mismatch of the hour: these apps' bills, and the bill namespaces' credited money as a whole)
    assert [f.as_dict() for f in found if f.kind == "bill_mismatch"] == []
    # AND the rewards reconciler's pass over that hour finds nothing about the bill wallets' orders
    mine = [f"play-app-{i}" for i in ids]
    reported = [(kind, item) for report in runner.reports(closing_hour) if report["pass"] == 2
                for kind, listed in report.get("discrepancies", {}).items() for item in listed.get("items", [])
                if any(act in str(item) for act in mine)]
    assert passed.status == "done" and reported == []
    print(f"bill runs: {RUNS} concurrent + 1; days closed {len(closed)}; credit messages delivered "
          f"{delivered.received} (succeeded {delivered.succeeded})")


def test_ensure_bill_activity__eight_instances_at_once_on_first_use__all_succeed_one_activity():
    from chalicelib.rewards import config_store
    from tests.play_support import new_id

    activity_id = f"rg-internal-bills{new_id()}"
    # WHEN eight bills-job instances credit their first bill in a new bill activity at the same instant
    outcomes = run_together(8, lambda _i: _outcome(lambda: bills.ensure_bill_activity(activity_id)))
    # THEN none fails (a failure would leave its bill unpaid until a later run), and the activity and scene exist
    print(f"ensure_bill_activity x8: {outcomes.count('ok')} ok, {len(outcomes) - outcomes.count('ok')} failed")
    assert outcomes == ["ok"] * 8
    assert config_store.get_activity_uncached(activity_id).child("formal") is not None
    assert config_store.get_scene(activity_id, "bill").award_type == "cash"


def _outcome(work) -> str:
    from chalicelib.errors import RewardgateError

    try:
        work()
    except RewardgateError as error:
        return error.code
    return "ok"
