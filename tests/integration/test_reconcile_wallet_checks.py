"""The wallet check on DynamoDB Local: what it reads once a wallet has history, and what it still catches.

Traffic goes through the real routes and the real credit worker; a wallet's history (earlier hours) is
written straight into the tables (1 000 refund entries and the wallet totals they make), and faults are
written straight into the tables the way a bug or a manual edit would.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from chalicelib import clock
from chalicelib.reconcile import runner, wallet_checks
from chalicelib.rewards import crediting, ids, payouts
from chalicelib.rewards.tables import LedgerEntry, WalletItem
from tests.rewards_support import (
    call,
    chalice_client,
    deliver_credits,
    far_hour_clock,
    make_campaign,
    run_credit_worker,
    take_credit_messages,
    withdraw_direct,
    withdrawal_body,
)
from tests.sim_clock import FakeClock

HOUR_MS = 3600 * 1000
MINUTE_MS = 60 * 1000
DAY_MS = 24 * HOUR_MS
HISTORY = 1000


@pytest.fixture
def hour_clock(monkeypatch):
    yield far_hour_clock(monkeypatch)
    payouts.set_fake_mode("ok")


class LedgerReads:
    """Counts the ledger items DynamoDB read for Queries outside the hour index (the wallet check's reads)."""

    def __init__(self) -> None:
        self.items = 0
        self.queries = 0
        self._client = LedgerEntry._get_connection().connection.client

    def _before(self, params: Any, context: Any, **_: Any) -> None:
        context["wallet_check_params"] = params

    def _after(self, parsed: Any, context: Any, **_: Any) -> None:
        params = context.get("wallet_check_params") or {}
        if params.get("TableName") == LedgerEntry.Meta.table_name and params.get("IndexName") != "by_hour":
            self.queries += 1
            self.items += int(parsed.get("ScannedCount", 0))

    def __enter__(self) -> LedgerReads:
        self._client.meta.events.register("before-parameter-build.dynamodb.Query", self._before)
        self._client.meta.events.register("after-call.dynamodb.Query", self._after)
        return self

    def __exit__(self, *_: Any) -> None:
        self._client.meta.events.unregister("before-parameter-build.dynamodb.Query", self._before)
        self._client.meta.events.unregister("after-call.dynamodb.Query", self._after)


def wallet_of(campaign, act_id: str) -> str:
    return ids.wallet_id(ids.child_ns(campaign.activity_id, campaign.sub_activity_id), act_id, ids.CASH_ASSET)


def grant_and_credit(client, campaign, users: list[str], rain_id: str, amount: int = 100) -> None:
    bodies = [campaign.grant_body(user, rain_id=rain_id, amount=amount + i) for i, user in enumerate(users)]
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": bodies})
    assert status == 200 and all(r["status"] == 202 for r in answer["results"]), answer
    deliver_credits(batch_size=10)


def write_history(wallet_id: str, sub_activity_id: str, entries: int, at_ms: int) -> int:
    """`entries` refunds posted a day before `at_ms` (an hour no test reconciles), and the wallet they make."""
    hour = clock.hour_of(at_ms - DAY_MS)
    total = 0
    with LedgerEntry.batch_write() as batch:
        for i in range(entries):
            key = f"refund#history{i:05d}"
            posted = at_ms - DAY_MS + i
            batch.save(LedgerEntry(wallet_id, key, kind="refund", amount=3, sub_activity_id=sub_activity_id,
                                   request_id=f"history{i:05d}", posted_at_ms=posted,
                                   time_key=crediting.time_key(posted, key), hour=hour,
                                   hour_bucket=ids.hour_bucket(hour, 0)))
            total += 3
    WalletItem(wallet_id).update(actions=[WalletItem.balance.add(total), WalletItem.total_refunded.add(total),
                                          WalletItem.entry_count.add(entries)])
    return total


def reconcile(hour_start: int, fake: FakeClock, pass_no: int = 1) -> list[dict[str, Any]]:
    hour = clock.hour_of(hour_start)
    fake.ms = hour_start + pass_no * HOUR_MS + 6 * MINUTE_MS
    status = runner.run(hour, pass_no, runner.Budget(None))
    assert status.status == "done"
    return runner.reports(hour)


def report_for(reports, campaign, pass_no: int = 1) -> dict[str, Any]:
    return next(r for r in reports if r.get("activity_id") == campaign.activity_id and r["pass"] == pass_no)


def found(report) -> dict[tuple[str, str], dict[str, Any]]:
    return {(kind, item["id"]): item for kind, entry in report["discrepancies"].items() for item in entry["items"]}


def wallet_figures(wallet_id: str) -> dict[str, int]:
    item = WalletItem.get(wallet_id, consistent_read=True)
    return {name: int(getattr(item, name)) for name in
            ("balance", "total_income", "total_withdrawn", "total_refunded", "entry_count")}


@pytest.fixture
def checkpointed(hour_clock):
    """Two wallets with 1 000 earlier entries each and an hour of rewards, checkpointed by that hour's pass 1."""
    fake, hour_start = hour_clock
    client = chalice_client()
    campaign = make_campaign(client, now_ms=fake.ms, total=10_000_000, order_cap=5_000)
    users = ["u0", "u1"]
    grant_and_credit(client, campaign, users, "r1")
    for user in users:
        write_history(wallet_of(campaign, user), campaign.sub_activity_id, HISTORY, hour_start)
    first = report_for(reconcile(hour_start, fake), campaign)
    assert first["ok"] is True and first["credited"] == 2, first
    # the next hour: each wallet gets one more reward
    next_start = hour_start + HOUR_MS
    fake.ms = next_start + 10 * MINUTE_MS
    grant_and_credit(client, campaign, users, "r2")
    status, answer = withdraw_direct("u0", withdrawal_body(campaign, 40, request_id="w-next-hour"))
    assert status == 200, answer
    return fake, client, campaign, next_start


def test_wallet_check__wallets_with_1000_checkpointed_entries__next_hour_reads_only_the_new_entries(checkpointed):
    fake, _client, campaign, next_start = checkpointed

    # WHEN the next hour is reconciled (pass 1, then pass 2 an hour later)
    with LedgerReads() as reads:
        first = report_for(reconcile(next_start, fake), campaign)
    with LedgerReads() as reads_again:
        second = report_for(reconcile(next_start, fake, pass_no=2), campaign, pass_no=2)

    # THEN both passes find the wallets consistent
    assert (first["ok"], first["credited"], first["deferred_checks"]) == (True, 2, []), first
    assert (second["ok"], second["credited"], second["deferred_checks"]) == (True, 2, []), second
    # AND each wallet's check read only what was posted since its checkpoint, not its 1 000-entry history
    # (u0: a reward and a withdrawal, u1: a reward; the checkpoint stops at the pass time - the SLA margin)
    assert reads.items <= 3, f"wallet checks read {reads.items} ledger items in {reads.queries} queries"
    assert reads_again.items <= 3, f"wallet checks read {reads_again.items} ledger items"


def test_wallet_check__balance_tampered_after_checkpoint__reported_with_both_figures(checkpointed):
    fake, _client, campaign, next_start = checkpointed
    wallet = wallet_of(campaign, "u1")
    # GIVEN a wallet whose balance is raised by 7 behind the ledger's back
    honest = wallet_figures(wallet)
    WalletItem(wallet).update(actions=[WalletItem.balance.add(7)])

    # WHEN the hour is reconciled
    report = report_for(reconcile(next_start, fake), campaign)

    # THEN the wallet is reported with the ledger's figures beside the wallet's, exactly as a whole read does
    assert found(report) == {("wallet_mismatch", wallet): {
        "kind": "wallet_mismatch", "id": wallet,
        "wallet": {**honest, "balance": honest["balance"] + 7}, "ledger": honest}}


def test_wallet_check__recent_entry_deleted__reported(checkpointed):
    fake, _client, campaign, next_start = checkpointed
    wallet = wallet_of(campaign, "u0")
    honest = wallet_figures(wallet)
    # GIVEN this hour's withdrawal entry deleted from the ledger (its time is after the checkpoint)
    LedgerEntry.get(wallet, "withdrawal#w-next-hour", consistent_read=True).delete()

    # WHEN the hour is reconciled
    report = report_for(reconcile(next_start, fake), campaign)

    # THEN the wallet is reported: its ledger holds one entry fewer and 40 more
    ledger = {**honest, "balance": honest["balance"] + 40, "total_withdrawn": honest["total_withdrawn"] - 40,
              "entry_count": honest["entry_count"] - 1}
    assert found(report) == {("wallet_mismatch", wallet): {
        "kind": "wallet_mismatch", "id": wallet, "wallet": honest, "ledger": ledger}}


def test_wallet_check__old_entry_deleted_after_checkpoint__missed_hourly_caught_by_the_weekly_whole_read(
        checkpointed):
    fake, _client, campaign, next_start = checkpointed
    wallet = wallet_of(campaign, "u0")
    honest = wallet_figures(wallet)
    # GIVEN an entry of the checkpointed history deleted (what incremental gives up)
    LedgerEntry(wallet, "refund#history00042").delete()

    # WHEN the next hour is reconciled, THEN the hourly check does not see it (documented)
    assert report_for(reconcile(next_start, fake), campaign)["ok"] is True

    # WHEN the wallet is checked again a week after its last whole read
    fake.ms = next_start + 7 * DAY_MS + 10 * MINUTE_MS
    found_, deferred = wallet_checks.check([wallet], {})

    # THEN the whole read reports it
    ledger = {**honest, "balance": honest["balance"] - 3, "total_refunded": honest["total_refunded"] - 3,
              "entry_count": honest["entry_count"] - 1}
    assert ([f.as_dict() for f in found_], deferred) == (
        [{"kind": "wallet_mismatch", "id": wallet, "wallet": honest, "ledger": ledger}], [])


def test_wallet_check__late_credit_of_an_order_older_than_the_checkpoint__whole_read_and_no_finding(hour_clock):
    fake, hour_start = hour_clock
    client = chalice_client()
    campaign = make_campaign(client, now_ms=fake.ms, total=10_000_000, order_cap=5_000)
    wallet = wallet_of(campaign, "u0")
    # GIVEN a wallet with 20 earlier entries (longer than a ledger read whole without a checkpoint)
    write_history(wallet, campaign.sub_activity_id, 20, hour_start)
    # AND an order granted in hour H whose credit message is held back (crediting lags)
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": [campaign.grant_body("u0", rain_id="old")]})
    assert status == 200, answer
    held = take_credit_messages(expected=1)
    assert len(held) == 1
    # AND the same wallet credited in hour H+1 and checkpointed by H+1's pass (the old order is not in its buckets)
    next_start = hour_start + HOUR_MS
    fake.ms = next_start + 10 * MINUTE_MS
    grant_and_credit(client, campaign, ["u0"], "new")
    assert report_for(reconcile(next_start, fake), campaign)["ok"] is True
    checkpoint = wallet_checks.read_checkpoint(wallet)
    assert checkpoint.through_ms > hour_start + 20 * MINUTE_MS  # the old order's time is before T

    # WHEN the old order is credited late (its ledger time is its creation, before T), and hour H+2 is checked
    later_start = next_start + HOUR_MS
    fake.ms = later_start + 10 * MINUTE_MS
    assert run_credit_worker(held)[1] == []
    grant_and_credit(client, campaign, ["u0"], "later")
    assert wallet_figures(wallet)["entry_count"] == 20 + 3
    report = report_for(reconcile(later_start, fake), campaign)

    # THEN no false finding and no false ok: the counts disagree, the whole ledger decides, the checkpoint is rebuilt
    assert (report["ok"], report["deferred_checks"]) == (True, []), report
    rebuilt = wallet_checks.read_checkpoint(wallet)
    assert rebuilt.count == 20 + 3 and rebuilt.full_at_ms > checkpoint.full_at_ms


def test_wallet_check__concurrent_credits_and_withdrawals__never_a_false_finding(hour_clock, monkeypatch):
    fake, _hour_start = hour_clock
    whole_reads = Counter()
    whole = wallet_checks._whole_snapshot

    def counted_whole(wallet_id: str):
        whole_reads["whole"] += 1
        return whole(wallet_id)

    monkeypatch.setattr(wallet_checks, "_whole_snapshot", counted_whole)
    client = chalice_client()
    campaign = make_campaign(client, now_ms=fake.ms, total=10_000_000, order_cap=5_000)
    users = [f"u{i}" for i in range(4)]
    wallets = [wallet_of(campaign, u) for u in users]
    grant_and_credit(client, campaign, users, "r0", amount=2_000)
    for wallet in wallets:  # longer than a ledger read whole without a checkpoint
        write_history(wallet, campaign.sub_activity_id, 20, fake.ms)
    assert wallet_checks.check(wallets, {}) == ([], [])  # the first check (whole read) sets the checkpoints
    stop = threading.Event()
    outcomes: Counter = Counter()
    errors: list[BaseException] = []

    def traffic(user: str) -> None:
        # GIVEN live grants credited at once and withdrawals on the same wallets, from real threads
        n = 0
        try:
            while not stop.is_set() and n < 40:
                n += 1
                if n % 3:
                    status, answer = call(client, "POST", "/v1/grants/batch",
                                          {"grants": [campaign.grant_body(user, rain_id=f"live{n}", amount=50)]})
                    assert status == 200, answer
                    deliver_credits(batch_size=10)
                else:
                    status, answer = withdraw_direct(user, withdrawal_body(campaign, 10, request_id=f"w{user}{n}"))
                    assert status == 200, answer
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    def checker() -> None:
        try:
            while not stop.is_set():
                fake.ms += 3 * MINUTE_MS  # "now" advances: checkpoints pass earlier entries, late credits appear
                found_, deferred = wallet_checks.check(wallets, {})
                outcomes["finding"] += len(found_)
                outcomes["deferred"] += len(deferred)
                outcomes["checked"] += len(wallets)
                if found_:
                    errors.append(AssertionError(f"false finding {found_}"))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=traffic, args=(u,)) for u in users] + [threading.Thread(target=checker)]
    for thread in threads:
        thread.start()
    for thread in threads[:-1]:
        thread.join(timeout=300)
    stop.set()
    threads[-1].join(timeout=60)

    # WHEN the traffic has stopped, a last check
    final = wallet_checks.check(wallets, {})
    print(f"concurrent wallet checks: {dict(outcomes)}, whole-ledger reads {whole_reads['whole']}, final {final}")
    # THEN no check ever reported a finding while the wallets moved, and the quiet wallets check clean
    assert errors == []
    assert outcomes["checked"] > 0 and outcomes["finding"] == 0
    assert final == ([], [])
