"""Reconciliation on DynamoDB Local: an hour of real traffic, then known faults seeded in the tables.

Each test runs at its own fake hour (the clock is patched), so the hour partitions it reconciles hold
only its own traffic. Traffic goes through the real routes and the real credit worker; faults are then
written straight into the tables, the way a bug or a manual edit would.
"""

from __future__ import annotations

import json
import random

import pytest

from chalicelib import clients, clock, faults
from chalicelib.faults import InjectedCrash
from chalicelib.queues import ALL_QUEUES, CREDITS
from chalicelib.reconcile import runner
from chalicelib.rewards import crediting, ids, payouts
from chalicelib.rewards.tables import CounterItem, LedgerEntry, WalletItem
from chalicelib.settings import settings
from tests.rewards_support import (
    call,
    chalice_client,
    deliver_credits,
    drain_queue,
    far_hour_clock,
    make_campaign,
    purge_credits,
)
from tests.sim_clock import FakeClock

HOUR_MS = 3600 * 1000
MINUTE_MS = 60 * 1000



@pytest.fixture
def hour_clock(monkeypatch):
    fake, hour_start = far_hour_clock(monkeypatch)
    yield fake, clock.hour_of(hour_start), hour_start
    payouts.set_fake_mode("ok")


def purge_dlqs() -> None:
    for spec in ALL_QUEUES:
        drain_queue(spec.dlq_name)


def hour_of_traffic(client, fake: FakeClock, users: int, rounds: int = 2, seed: int = 1):
    """A campaign with `users` x `rounds` cash grants, all credited, some withdrawals (one refunded)."""
    rng = random.Random(seed)
    campaign = make_campaign(client, now_ms=fake.ms, total=10_000_000, shard_count=4, order_cap=5_000)
    granted = {}
    for round_no in range(rounds):
        bodies = [campaign.grant_body(f"u{i}", rain_id=f"r{round_no}", amount=rng.randrange(100, 2_000))
                  for i in range(users)]
        for start in range(0, len(bodies), 100):
            status, answer = call(client, "POST", "/v1/grants/batch", {"grants": bodies[start:start + 100]})
            assert status == 200, answer
            for body, result in zip(bodies[start:start + 100], answer["results"], strict=True):
                assert result["status"] == 202, result
                granted[result["body"]["order_id"]] = body
        fake.ms += MINUTE_MS
    deliver_credits(batch_size=10)
    fake.ms += MINUTE_MS
    for i in range(0, users, 5):
        status, answer = call(client, "POST", f"/v1/wallets/u{i}/withdrawals",
                              {"activity_id": campaign.activity_id, "request_id": f"w{i}", "amount": 50})
        assert status == 200, answer
    payouts.set_fake_mode("fail")
    status, answer = call(client, "POST", "/v1/wallets/u1/withdrawals",
                          {"activity_id": campaign.activity_id, "request_id": "w-refused", "amount": 30})
    assert status == 502, answer
    payouts.set_fake_mode("ok")
    return campaign, granted


def ns_of(campaign) -> str:
    return ids.child_ns(campaign.activity_id, campaign.sub_activity_id)


def wallet_of(campaign, act_id: str) -> str:
    return ids.wallet_id(ns_of(campaign), act_id, ids.CASH_ASSET)


def report_for(reports, campaign, pass_no: int = 1):
    return next(r for r in reports if r.get("activity_id") == campaign.activity_id and r["pass"] == pass_no)


def found(report) -> set[tuple[str, str]]:
    return {(kind, item["id"]) for kind, entry in report["discrepancies"].items() for item in entry["items"]}


def run_report(reports, pass_no: int = 1):
    return next(r for r in reports if "dlq_depths" in r and r["pass"] == pass_no)


def user_orders(granted, campaign, act_id: str) -> list[str]:
    return sorted(ids.order_key(ns_of(campaign), oid) for oid, body in granted.items() if body["act_id"] == act_id)


def stored_order(key: str) -> LedgerEntry:
    """An order as stored: its wallet's credit entry (the wallet of the user its id starts with)."""
    ns, order_id = key.split("#", 1)
    return LedgerEntry.get(ids.wallet_id(ns, order_id.split("_", 1)[0], ids.CASH_ASSET), f"credit#{order_id}")


def test_reconcile__clean_hour_and_seeded_faults__finds_every_fault_without_false_alarms(hour_clock):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    purge_credits()
    purge_dlqs()
    # GIVEN an hour of real traffic in two campaigns
    clean, clean_granted = hour_of_traffic(client, fake, users=30, seed=1)
    faulty, granted = hour_of_traffic(client, fake, users=30, seed=2)
    # AND one order committed but never enqueued: the API process died right after its transaction
    with faults.armed("grant.after_transaction"), pytest.raises(InjectedCrash):
        call(client, "POST", "/v1/grants", faulty.grant_body("stuck", rain_id="r9", amount=77))
    stuck_key = ids.order_key(ns_of(faulty), ids.order_id("stuck", faulty.scene_id, "r9", "cash", "1"))
    # AND known faults written straight into the tables of the faulty campaign (an order is its wallet's
    # ledger credit, so a bug or a manual edit deletes, copies or edits a credited order)
    ns = ns_of(faulty)
    missing = [user_orders(granted, faulty, f"u{i}")[0] for i in (2, 3, 4)]
    edited_batches = set()
    for key in missing:  # a credited order deleted
        order = stored_order(key)
        edited_batches.add(order.credited_by)
        order.delete()
    duplicated = [user_orders(granted, faulty, f"u{i}")[0] for i in (6, 7)]
    for key in duplicated:  # a credited order copied under a second credit key
        entry = stored_order(key)
        edited_batches.add(entry.credited_by)
        entry.entry_key = f"{entry.entry_key}#dup"
        entry.time_key = f"{entry.time_key}#dup"
        entry.save()
    altered = user_orders(granted, faulty, "u8")[0]  # a credited order's amount edited
    order = stored_order(altered)
    edited_batches.add(order.credited_by)
    order.update(actions=[LedgerEntry.amount.add(5)])
    ghost_key = ids.order_key(ns, "ghost_order")
    orphan_wallet = wallet_of(faulty, "u9")  # a posted credit entry that is no order
    LedgerEntry(orphan_wallet, "credit#ghost_order", kind="credit", amount=321, sub_activity_id="formal",
                scene_id=faulty.scene_id, posted_at_ms=fake.ms,
                time_key=f"{fake.ms:013d}#credit#ghost_order", hour=hour,
                hour_bucket=ids.hour_bucket(hour, ids.bucket_of(ghost_key, settings().hour_buckets))).save()
    stock_counter = ids.stock_counter_id(ns, faulty.scene_id)
    CounterItem(*ids.shard_key(stock_counter, 0)).update(actions=[CounterItem.consumed.add(7)])
    off_by_one = wallet_of(faulty, "u11")
    WalletItem(off_by_one).update(actions=[WalletItem.balance.add(1)])
    clients.sqs().send_message(QueueUrl=clients.queue_url(CREDITS.dlq_name), MessageBody='{"poison": true}')
    balances_before = {w.wallet_id: int(w.balance) for w in WalletItem.batch_get(
        [wallet_of(faulty, f"u{i}") for i in range(30)])}
    consumed_before = int(CounterItem.get(*ids.shard_key(stock_counter, 0)).consumed)

    # WHEN the hour is reconciled at h+1 (through the API)
    fake.ms = hour_start + HOUR_MS + 6 * MINUTE_MS
    status, body = call(client, "POST", "/v1/admin/reconciliations", {"hour": runner.display_hour(hour)})

    # THEN the clean campaign has no discrepancy and its figures add up
    assert status == 200, body
    reports = body["reports"]
    clean_report = report_for(reports, clean)
    amounts = [b["amount"] for b in clean_granted.values()]
    assert clean_report["ok"] is True, clean_report["discrepancies"]
    assert (clean_report["orders"], clean_report["orders_amount"]) == (len(amounts), sum(amounts))
    assert (clean_report["credited"], clean_report["credited_amount"]) == (len(amounts), sum(amounts))
    assert clean_report["redriven"] == 0
    # AND every seeded fault is found, and nothing else is
    faulty_report = report_for(reports, faulty)
    expected = {("stock_drift", f"{ns}|{faulty.scene_id}")}
    # each fault in a wallet's ledger (or its balance) makes that wallet disagree with its posted entries
    expected |= {("wallet_mismatch", wallet_of(faulty, f"u{i}")) for i in (2, 3, 4, 6, 7, 8, 9, 11)}
    # and each deleted, copied or edited order makes the batch that credited it disagree with its tally
    expected |= {("tally_mismatch", f"{batch}#CNY") for batch in edited_batches}
    assert found(faulty_report) == expected
    assert faulty_report["discrepancy_count"] == len(expected)
    assert faulty_report["ok"] is False
    run_level = run_report(reports)
    assert run_level["dlq_depths"][CREDITS.dlq_name] == 1
    assert found(run_level) == {("dlq_messages", CREDITS.dlq_name)}
    found_count = len(found(faulty_report) & expected) + len(found(run_level))
    print(f"seeded={len(expected) + 1} found={found_count} false_alarms={len(found(clean_report))}")
    # AND the only repair is the stuck order, re-enqueued once
    assert faulty_report["redriven"] == 1 and faulty_report["redriven_orders"] == [stuck_key]
    queued = clients.sqs().receive_message(QueueUrl=clients.queue_url(CREDITS.name), MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", [])
    assert [f"{ns}#{json.loads(m['Body'])['order_id']}" for m in queued] == [stuck_key]
    for message in queued:  # back to the queue for the h+2 part below: nobody credits it in between
        clients.sqs().change_message_visibility(QueueUrl=clients.queue_url(CREDITS.name),
                                                ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=3600)
    assert LedgerEntry.get(wallet_of(faulty, "u6"), f"credit#{duplicated[0].split('#', 1)[1]}#dup")
    assert int(CounterItem.get(*ids.shard_key(stock_counter, 0)).consumed) == consumed_before
    balances_after = {w.wallet_id: int(w.balance) for w in WalletItem.batch_get(list(balances_before))}
    assert balances_after == balances_before

    # WHEN the same hour is reconciled again
    again = runner.run(hour, 1, runner.Budget(None), restart=True)
    # THEN the reports are the same and nothing more is repaired
    assert again.status == "done"
    assert sorted(runner.reports(hour), key=json.dumps) == sorted(reports, key=json.dumps)
    assert clients.sqs().receive_message(QueueUrl=clients.queue_url(CREDITS.name), WaitTimeSeconds=0
                                         ).get("Messages", []) == []

    # WHEN the order is still stuck at h+2
    fake.ms = hour_start + 2 * HOUR_MS + 6 * MINUTE_MS
    second = runner.run(hour, 2, runner.Budget(None))
    # THEN the second pass reports it as a missing credit (and re-drives it once more)
    assert second.status == "done"
    pass2 = report_for(runner.reports(hour), faulty, pass_no=2)
    assert ("missing_credit", stuck_key) in found(pass2)
    assert found(pass2) - {("missing_credit", stuck_key)} == expected
    assert report_for(runner.reports(hour), clean, pass_no=2)["ok"] is True


def test_reconcile__batch_crashed_before_its_tally__completes_the_tally_once(hour_clock):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    purge_credits()
    # GIVEN an hour of traffic whose first crediting batch died after crediting, before its tally
    campaign = make_campaign(client, now_ms=fake.ms, total=1_000_000)
    bodies = [campaign.grant_body(f"u{i}", amount=100 + i) for i in range(25)]
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": bodies})
    assert status == 200 and all(r["status"] == 202 for r in answer["results"])
    with faults.armed("credit.before_tally"):
        crashed = deliver_credits(max_batches=1, batch_size=10)
    deliver_credits(batch_size=10)
    granted_sum = sum(b["amount"] for b in bodies)
    assert crashed.received == 10 and crashed.succeeded == 0  # the crash failed the whole invocation
    totals = call(client, "GET", f"/v1/activities/{campaign.activity_id}/totals")[1]
    tallied_before = totals["children"][0]["distributed"]["CNY"]["amount"]
    assert tallied_before < granted_sum  # the crashed batch's credits are not in the total yet

    # WHEN the hour is reconciled at h+1 (well over the 15 minutes a Lambda can live)
    fake.ms = hour_start + HOUR_MS + 6 * MINUTE_MS
    first = runner.run(hour, 1, runner.Budget(None), restart=True)
    second = runner.run(hour, 1, runner.Budget(None), restart=True)

    # THEN the crashed batch's tally is completed exactly once and the figures agree
    assert first.status == second.status == "done"
    report = report_for(runner.reports(hour), campaign)
    assert report["ok"] is True, report["discrepancies"]
    assert report["tallies_completed"] == 1
    totals = call(client, "GET", f"/v1/activities/{campaign.activity_id}/totals")[1]
    assert totals["children"][0]["distributed"]["CNY"] == {"amount": granted_sum, "rewards": len(bodies)}


def lagging_hour_with_a_batch_dead_before_its_tally(client, fake: FakeClock, hour: str, hour_start: int,
                                                    users: int, base_amount: int):
    """Grants none of which is credited when the hour closes; the h+1 pass reads every bucket in short
    invocations and runs out of time; then crediting catches up, its first batch of 10 dying after crediting,
    before its tally. Returns the campaign and the grant bodies."""
    campaign = make_campaign(client, now_ms=fake.ms, total=1_000_000)
    bodies = [campaign.grant_body(f"u{i}", amount=base_amount + i) for i in range(users)]
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": bodies})
    assert status == 200 and all(r["status"] == 202 for r in answer["results"])
    fake.ms = hour_start + HOUR_MS + 6 * MINUTE_MS
    while (runner.status(hour, 1) or {"step": 0})["step"] < settings().hour_buckets:
        runner.run(hour, 1, runner.Budget(0))
    with faults.armed("credit.before_tally"):
        crashed = deliver_credits(max_batches=1, batch_size=10)
    assert crashed.received == 10 and crashed.succeeded == 0
    deliver_credits(batch_size=10)
    return campaign, bodies


def test_reconcile__batch_crashed_before_tally_after_buckets_read__completed_when_pass_resumes(hour_clock):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    purge_credits()
    # (found by the money-path simulation, `short_reconciler_invocations`: the tally step used to decide from
    # bucket results read invocations earlier, before these orders were credited)
    # GIVEN an hour's grants whose crediting lags: none is credited when the hour closes
    # AND the h+1 pass read every bucket of the hour in short invocations, then ran out of time
    # AND then crediting caught up, its first batch dying after crediting, before its tally
    campaign, bodies = lagging_hour_with_a_batch_dead_before_its_tally(client, fake, hour, hour_start,
                                                                       users=25, base_amount=100)
    granted_sum = sum(b["amount"] for b in bodies)

    # WHEN the pass resumes in a later invocation (well over the 15 minutes a Lambda can live)
    fake.ms += 30 * MINUTE_MS
    resumed = runner.run(hour, 1, runner.Budget(None))

    # THEN the crashed batch's tally is completed and the total distributed equals what was granted
    assert resumed.status == "done"
    report = report_for(runner.reports(hour), campaign)
    assert report["tallies_completed"] == 1
    assert report["ok"] is True, report["discrepancies"]
    totals = call(client, "GET", f"/v1/activities/{campaign.activity_id}/totals")[1]
    assert totals["children"][0]["distributed"]["CNY"] == {"amount": granted_sum, "rewards": len(bodies)}


def test_reconcile__batch_died_before_tally_minutes_ago__report_defers_it_then_a_rerun_completes_it(hour_clock):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    purge_credits()
    # GIVEN an hour whose crediting lagged until its pass had read the buckets; a batch then died before its tally
    campaign, bodies = lagging_hour_with_a_batch_dead_before_its_tally(client, fake, hour, hour_start,
                                                                       users=12, base_amount=200)

    # WHEN the pass finishes 5 minutes later (the batch's Lambda could still be running: not completed yet)
    fake.ms += 5 * MINUTE_MS
    runner.run(hour, 1, runner.Budget(None))

    # THEN its report says the tally check is deferred, rather than presenting the hour as checked
    ns = ns_of(campaign)
    report = report_for(runner.reports(hour), campaign)
    assert report["tallies_completed"] == 0
    assert [d for d in report["deferred_checks"] if d.startswith(f"tallies:{ns}#")] != [], report["deferred_checks"]
    # AND a run after the Lambda's lifetime completes it: the total distributed equals what was granted
    fake.ms += 20 * MINUTE_MS
    runner.run(hour, 1, runner.Budget(None), restart=True)
    report = report_for(runner.reports(hour), campaign)
    assert report["tallies_completed"] == 1 and report["ok"] is True, report
    assert not [d for d in report["deferred_checks"] if d.startswith("tallies:")]
    totals = call(client, "GET", f"/v1/activities/{campaign.activity_id}/totals")[1]
    assert totals["children"][0]["distributed"]["CNY"] == {"amount": sum(b["amount"] for b in bodies),
                                                           "rewards": len(bodies)}


def test_reconcile__last_pass_deferred_to_a_dying_batch__the_schedule_runs_it_again_and_completes_the_tally(
        hour_clock):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    purge_credits()
    # GIVEN an hour whose orders are still uncredited when its last pass (h+2) reads its buckets and re-sends them
    campaign = make_campaign(client, now_ms=fake.ms, total=1_000_000)
    bodies = [campaign.grant_body(f"u{i}", amount=300 + i) for i in range(12)]
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": bodies})
    assert status == 200 and all(r["status"] == 202 for r in answer["results"])
    fake.ms = hour_start + 2 * HOUR_MS + 6 * MINUTE_MS
    while (runner.status(hour, 2) or {"step": 0})["step"] < settings().hour_buckets:
        runner.run(hour, 2, runner.Budget(0))
    # AND crediting then catches up, its first batch dying after crediting, before its tally
    with faults.armed("credit.before_tally"):
        crashed = deliver_credits(max_batches=1, batch_size=10)
    assert crashed.received == 10 and crashed.succeeded == 0
    deliver_credits(batch_size=10)
    # AND the pass finishes 5 minutes later: that batch's Lambda could still be running, so its tally is deferred
    fake.ms += 5 * MINUTE_MS
    assert runner.run(hour, 2, runner.Budget(None)).status == "done"
    ns = ns_of(campaign)
    report = report_for(runner.reports(hour), campaign, pass_no=2)
    assert report["tallies_completed"] == 0
    assert [d for d in report["deferred_checks"] if d.startswith(f"tallies:{ns}#batch-may-still-run:")]

    # WHEN the schedule runs once the Lambda is surely gone (nothing else ever comes back to the hour's last pass)
    fake.ms += 20 * MINUTE_MS
    runs = runner.scheduled(runner.Budget(None))

    # THEN it ran the last pass again, which completed the tally: the total distributed equals what was granted
    assert (hour, 2, "done") in {(r.hour, r.pass_no, r.status) for r in runs}
    report = report_for(runner.reports(hour), campaign, pass_no=2)
    assert report["tallies_completed"] == 1 and report["ok"] is True, report
    assert not [d for d in report["deferred_checks"] if d.startswith("tallies:")]
    totals = call(client, "GET", f"/v1/activities/{campaign.activity_id}/totals")[1]
    assert totals["children"][0]["distributed"]["CNY"] == {"amount": sum(b["amount"] for b in bodies),
                                                           "rewards": len(bodies)}
    # AND a later schedule leaves it alone (it waits for no batch any more)
    fake.ms += 20 * MINUTE_MS
    assert (hour, 2) not in {(r.hour, r.pass_no) for r in runner.scheduled(runner.Budget(None))}


def test_reconcile__tiny_time_budget__resumes_from_its_cursor_to_the_same_report(hour_clock):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    purge_credits()
    # GIVEN an hour of traffic with one fault
    campaign, granted = hour_of_traffic(client, fake, users=40, seed=3)
    WalletItem(wallet_of(campaign, "u3")).update(actions=[WalletItem.balance.add(1)])
    fake.ms = hour_start + HOUR_MS + 6 * MINUTE_MS

    # WHEN every invocation may only start one step (a budget that is always spent)
    invocations = []
    while not invocations or invocations[-1].status != "done":
        invocations.append(runner.run(hour, 1, runner.Budget(0)))
        assert len(invocations) <= 10 * (settings().hour_buckets + 1), "the run does not progress"

    # THEN it took exactly one invocation per step (the hour's buckets, then catching the stock checkpoint up over
    # the hour the child opened in, which no pass recorded, then finishing), each continuing where the last stopped
    steps = invocations[-1].steps
    assert steps > settings().hour_buckets + 1
    assert [i.invocation_steps for i in invocations] == [1] * steps
    assert [i.step for i in invocations[:-1]] == list(range(1, steps))
    resumed = report_for(runner.reports(hour), campaign)
    # AND the report equals the one a single unconstrained run produces
    runner.run(hour, 1, runner.Budget(None), restart=True)
    assert report_for(runner.reports(hour), campaign) == resumed
    assert found(resumed) == {("wallet_mismatch", wallet_of(campaign, "u3"))}
    assert resumed["orders"] == len(granted)


def test_reconcile_api__bad_and_early_hours__refused_with_the_field_named(hour_clock):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    # GIVEN an hour that has not closed yet, and one that was never reconciled
    fake.ms = hour_start + 30 * MINUTE_MS
    # WHEN / THEN
    status, body = call(client, "POST", "/v1/admin/reconciliations", {"hour": "yesterday"})
    assert (status, body["code"], body["field"]) == (400, "invalid_field", "hour")
    status, body = call(client, "POST", "/v1/admin/reconciliations", {"hour": runner.display_hour(hour)})
    assert (status, body["code"], body["field"]) == (400, "invalid_field", "hour")
    assert "is not closed yet" in body["detail"]
    status, body = call(client, "GET", f"/v1/admin/reconciliations/{runner.display_hour(hour)}")
    assert (status, body["code"]) == (404, "not_found")
    assert runner.status(hour, 1) is None


def test_reconcile_schedule__due_passes__are_previous_hour_first_pass_and_the_one_before_second(hour_clock):
    fake, hour, hour_start = hour_clock
    # GIVEN a time 10 minutes into the hour after next
    fake.ms = hour_start + 2 * HOUR_MS + 10 * MINUTE_MS
    # THEN the schedule owes h+1 of the last closed hour and h+2 of the one before
    assert runner.due_runs(fake.ms)[:runner.ON_TIME_RUNS] == [(runner.next_hour(hour), 1), (hour, 2)]
    assert runner.pass_for(hour, fake.ms) == 2
    assert runner.pass_for(runner.next_hour(hour), fake.ms) == 1


def test_reconcile_schedule__pass_unfinished_in_its_hour__continued_later_and_reported_behind_until_done(
        hour_clock, capsys):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    purge_credits()
    # GIVEN an hour of traffic whose second pass (h+2) stopped after one step and was not resumed in its hour
    campaign, granted = hour_of_traffic(client, fake, users=10, seed=5)
    fake.ms = hour_start + 2 * HOUR_MS + 10 * MINUTE_MS
    assert runner.run(hour, 2, runner.Budget(0)).status == "running"
    fake.ms = hour_start + 4 * HOUR_MS + 10 * MINUTE_MS
    assert (hour, 2) in runner.due_runs(fake.ms)[runner.ON_TIME_RUNS:]
    capsys.readouterr()

    # WHEN the schedule runs two hours later with time for one step only
    runner.scheduled(runner.Budget(0))
    # THEN the late pass is still owed and said to be behind (metric and log line name it)
    out = capsys.readouterr().out
    assert f'"{runner.display_hour(hour)} pass 2"' in out
    assert runner.status(hour, 2)["status"] == "running"

    # WHEN the schedule has time to finish what it owes
    ran = runner.scheduled(runner.Budget(None))
    # THEN the late pass completed from where it stopped, with the hour's full report, and nothing is behind
    assert (hour, 2, "done") in {(r.hour, r.pass_no, r.status) for r in ran}
    report = report_for(runner.reports(hour), campaign, pass_no=2)
    assert (report["orders"], report["ok"]) == (len(granted), True)
    lines = capsys.readouterr().out.splitlines()
    emitted = [json.loads(line) for line in lines if '"ReconciliationPassesBehind"' in line]
    assert emitted[-1]["ReconciliationPassesBehind"] == [0.0]


def test_reconcile__stuck_order_while_crediting_lags__redrive_waits_for_h2(hour_clock):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    purge_credits()
    # GIVEN an order committed but never enqueued, while the credit queue holds a backlog
    campaign = make_campaign(client, now_ms=fake.ms)
    with faults.armed("grant.after_transaction"), pytest.raises(InjectedCrash):
        call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=90))
    stuck = ids.order_key(ns_of(campaign), ids.order_id("u1", campaign.scene_id, "r1", "cash", "1"))
    clients.sqs().send_message(QueueUrl=clients.queue_url(CREDITS.name), MessageBody='{"backlog": true}')

    # WHEN the hour is reconciled at h+1
    fake.ms = hour_start + HOUR_MS + 6 * MINUTE_MS
    runner.run(hour, 1, runner.Budget(None), restart=True)
    # THEN the order is not re-sent into the backlog; the report says the re-drive waits
    first = report_for(runner.reports(hour), campaign)
    assert (first["redriven"], first["ok"]) == (0, True)
    assert first["deferred_checks"] == [f"redrive:{ns_of(campaign)}|{stuck}"]
    assert drain_queue(CREDITS.name) == 1  # only the backlog message: nothing was re-sent

    # WHEN it is still stuck at h+2
    fake.ms = hour_start + 2 * HOUR_MS + 6 * MINUTE_MS
    clients.sqs().send_message(QueueUrl=clients.queue_url(CREDITS.name), MessageBody='{"backlog": true}')
    runner.run(hour, 2, runner.Budget(None))
    # THEN it is re-sent whatever the queue holds, and reported as a missing credit
    second = report_for(runner.reports(hour), campaign, pass_no=2)
    assert second["redriven_orders"] == [stuck]
    assert found(second) == {("missing_credit", stuck)}
    assert drain_queue(CREDITS.name) == 2


def test_reconcile__tally_marker_edited__tally_mismatch_reported_not_a_crash(hour_clock):
    fake, hour, hour_start = hour_clock
    client = chalice_client()
    purge_credits()
    # GIVEN an hour of credited traffic, and one batch's tally marker edited behind the code's back
    campaign, granted = hour_of_traffic(client, fake, users=5, seed=3)
    batch = stored_order(user_orders(granted, campaign, "u0")[0]).credited_by
    marker_counter, marker_sk = crediting.tally_marker_key(ns_of(campaign), hour, batch, ids.CASH_ASSET)
    CounterItem(marker_counter, marker_sk).update(actions=[CounterItem.amount.add(1)])
    # WHEN the hour is reconciled at h+1 (through the API)
    fake.ms = hour_start + HOUR_MS + 6 * MINUTE_MS
    status, body = call(client, "POST", "/v1/admin/reconciliations", {"hour": runner.display_hour(hour)})
    # THEN the pass finishes and reports the marker against its orders, and the hour counter against its markers
    assert status == 200, body
    assert found(report_for(body["reports"], campaign)) == {("tally_mismatch", f"{batch}#CNY"),
                                                            ("distributed_drift", f"CNY#{hour}")}
