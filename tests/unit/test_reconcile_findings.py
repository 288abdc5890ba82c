"""Reconciliation decisions, without storage: what a bucket, a wallet, a tally or a counter shows."""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.errors import InvalidField
from chalicelib.reconcile import findings as F
from chalicelib.reconcile.runner import Budget, display_hour, due_runs, next_hour, parse_hour, pass_for

NS = "act1/formal"
NOW = 10_000_000_000
SLA = 600_000


def order(n: int, status: int = 8, amount: int = 100, cap: int = 1000, created: int = NOW - 3_600_000,
          batch: str | None = "b1", wallet: str | None = None) -> F.OrderRow:
    wallet_id = wallet or f"{NS}#u{n}#CNY"
    return F.OrderRow(
        order_key=f"{NS}#o{n}", ref=f"{wallet_id}|o{n}", ns=NS, scene_id="s1", activity_id="act1",
        wallet_id=wallet_id, asset="CNY", amount=amount, order_cap=cap, status=status,
        created_at_ms=created, credited_at_ms=created + 1000 if status == 8 else None,
        credited_by=batch if status == 8 else None, redriven=None,
    )


def credit(n: int, amount: int = 100, wallet: str | None = None, key: str | None = None,
           posted: bool = True) -> F.LedgerRow:
    return F.LedgerRow(wallet_id=wallet or f"{NS}#u{n}#CNY", entry_key=key or f"credit#o{n}", kind="credit",
                       amount=amount, order_key=f"{NS}#o{n}", scene_id="s1", posted=posted)


def kinds(result: F.BucketResult) -> set[tuple[str, str]]:
    return {(f.kind, f.id) for f in result.findings}


def examine(orders, entries) -> F.BucketResult:
    return F.examine_bucket(orders, entries, NOW, SLA)


def test_examine_bucket__credited_and_pending_orders__no_findings_and_exact_totals():
    # GIVEN two credited orders (each its own ledger credit) and one fresh pending order
    result = examine([order(1), order(2, amount=250), order(3, status=1, created=NOW - 1000)], [])
    # THEN nothing is wrong, the pending one is not stuck, and the sums are exact
    assert result.findings == [] and result.stuck == []
    assert result.totals[NS] == F.Totals(orders=3, orders_amount=450, credited=2, credited_amount=350,
                                         pending=1, pending_amount=100)
    assert result.batches == {f"{NS}|CNY|b1": [350, 2, NOW - 3_600_000 + 1000]}


def test_examine_bucket__wallets_to_check__credited_orders_and_withdrawals_not_pending_ones():
    # GIVEN a credited order, a pending one in another wallet, and a withdrawal in a third wallet
    withdrawal = F.LedgerRow(f"{NS}#u7#CNY", "withdrawal#w1", "withdrawal", 50, None, None)
    result = examine([order(1), order(2, status=1, created=NOW - 1000)], [withdrawal])
    # THEN the wallets the bucket moved are checked: the credited order's and the withdrawal's
    assert result.wallets == [f"{NS}#u1#CNY", f"{NS}#u7#CNY"]


def test_examine_bucket__pending_past_sla__stuck_and_fresh_one_not():
    result = examine([order(1, status=1, created=NOW - SLA - 1), order(2, status=1, created=NOW - SLA + 1)], [])
    assert result.stuck == [f"{NS}#u1#CNY|o1"]


def test_examine_bucket__orders_not_yet_credited__listed_pending_whether_stuck_or_fresh():
    # GIVEN a credited order, a fresh accepted one, a stuck accepted one and one being credited
    result = examine([order(1), order(2, status=1, created=NOW - 1000), order(3, status=1, created=NOW - SLA - 1),
                      order(4, status=2)], [])
    # THEN exactly the three a later batch may still credit are pending (the tally check re-reads them)
    assert result.pending == [f"{NS}#u2#CNY|o2", f"{NS}#u3#CNY|o3", f"{NS}#u4#CNY|o4"]


def test_add_to_batch__order_credited_after_the_read__joins_its_batch_sums():
    batches = {f"{NS}|CNY|b1": [100, 1, 5]}
    F.add_to_batch(batches, order(2, amount=40, batch="b1"))
    F.add_to_batch(batches, order(3, amount=7, batch="b2"))
    credited_at = NOW - 3_600_000 + 1000
    assert batches == {f"{NS}|CNY|b1": [140, 2, credited_at], f"{NS}|CNY|b2": [7, 1, credited_at]}


def test_examine_bucket__amount_above_cap__over_order_cap():
    result = examine([order(1, amount=1001, cap=1000)], [])
    assert kinds(result) == {("over_order_cap", f"{NS}#o1")}


def test_examine_bucket__order_placed_with_reconcile_off__not_reported_but_still_re_driven_and_tallied():
    # GIVEN orders pinned `reconcile: false`: one credited over its cap, one stuck past the SLA
    unreported = [F.OrderRow(**{**order(1, amount=1001).__dict__, "reconcile": False}),
                  F.OrderRow(**{**order(2, status=1, created=NOW - SLA - 1).__dict__, "reconcile": False})]
    result = examine(unreported, [])
    # THEN nothing of them is reported (no totals, no scene sums, no over_order_cap)
    assert result.totals == {} and result.scene_amounts == {} and result.findings == []
    # AND the stuck one is still re-driven and re-read, the credited one counts in its batch and its wallet is checked
    assert result.stuck == [f"{NS}#u2#CNY|o2"] and result.pending == [f"{NS}#u2#CNY|o2"]
    assert result.batches == {f"{NS}|CNY|b1": [1001, 1, NOW - 3_600_000 + 1000]}
    assert result.wallets == [f"{NS}#u1#CNY"]


def test_order_row__stored_ledger_credit__logical_key_ref_and_namespace():
    # GIVEN an order as stored: its wallet's credit entry
    item = {"wallet_id": f"{NS}#u1#CNY", "entry_key": "credit#u1_s1_r1_cash_1", "kind": "credit", "amount": 100,
            "scene_id": "s1", "activity_id": "act1", "asset": "CNY", "order_cap": 1000, "status": 1,
            "created_at_ms": NOW}
    row = F.order_row(item)
    # THEN its logical key, storage ref and child namespace come from the wallet and the entry key
    assert (row.order_key, row.ref, row.ns) == (f"{NS}#u1_s1_r1_cash_1", f"{NS}#u1#CNY|u1_s1_r1_cash_1", NS)
    assert F.is_order(item) and not F.is_order({**item, "kind": "withdrawal", "status": None})


def test_wallet_findings__pending_order_in_the_partition__not_part_of_the_wallet():
    # GIVEN a wallet credited 100 whose partition also holds a pending order of 300
    wallet = {"balance": 100, "total_income": 100, "total_withdrawn": 0, "total_refunded": 0, "entry_count": 1}
    # THEN the pending one is skipped: the wallet agrees with its posted entries
    assert F.wallet_findings(f"{NS}#u1#CNY", wallet, [credit(1), credit(2, amount=300, wallet=f"{NS}#u1#CNY",
                                                                          posted=False)]) == []


def test_wallet_findings__balance_agrees_with_ledger__none():
    entries = [credit(1, amount=500), F.LedgerRow(f"{NS}#u1#CNY", "withdrawal#w1", "withdrawal", 200, None, None),
               F.LedgerRow(f"{NS}#u1#CNY", "refund#w1", "refund", 200, None, None)]
    wallet = {"balance": 500, "total_income": 500, "total_withdrawn": 200, "total_refunded": 200, "entry_count": 3}
    assert F.wallet_findings(f"{NS}#u1#CNY", wallet, entries) == []


def test_wallet_findings__balance_off_by_one__mismatch_with_both_views():
    wallet = {"balance": 101, "total_income": 100, "total_withdrawn": 0, "total_refunded": 0, "entry_count": 1}
    [found] = F.wallet_findings(f"{NS}#u1#CNY", wallet, [credit(1)])
    assert (found.kind, found.id) == ("wallet_mismatch", f"{NS}#u1#CNY")
    assert found.details["wallet"]["balance"] == 101 and found.details["ledger"]["balance"] == 100


def test_wallet_findings__credits_but_no_wallet__mismatch():
    [found] = F.wallet_findings(f"{NS}#u1#CNY", None, [credit(1)])
    assert found.details["wallet"]["balance"] == 0


MARKER_T = NOW - 3_600_000
TALLY_TTL_MS = 40 * 86_400_000


def test_tally_findings__marker_matches__nothing():
    found, complete = F.tally_findings({f"{NS}|CNY|b1": [300, 3, NOW - 3_600_000]},
                                       {f"{NS}|CNY|b1": {"amount": 300, "count": 3, "updated_at_ms": MARKER_T}},
                                       "2033010110", NOW - 60_000, NOW, marker_ttl_ms=TALLY_TTL_MS)
    assert (found, complete) == ([], [])


def test_tally_findings__marker_missing_for_a_dead_batch__completed():
    found, complete = F.tally_findings({f"{NS}|CNY|b1": [300, 3, NOW - F.MAX_INVOCATION_MS - 1]}, {},
                                       "2033010110", NOW - 60_000, NOW, marker_ttl_ms=TALLY_TTL_MS)
    assert found == [] and complete == [(NS, "CNY", "b1", 300, 3)]


def test_tally_findings__marker_missing_for_a_batch_that_may_still_run__left_alone():
    _, complete = F.tally_findings({f"{NS}|CNY|b1": [300, 3, NOW - 60_000]}, {}, "2033010110", NOW - 60_000, NOW,
                                   marker_ttl_ms=TALLY_TTL_MS)
    assert complete == []


def test_tally_findings__marker_missing_for_a_batch_older_than_the_marker_ttl__reported_expired_not_completed():
    # GIVEN a batch whose last credit is older than the markers' TTL less the margin, and no marker (maybe expired)
    last = NOW - TALLY_TTL_MS + F.TALLY_EXPIRY_MARGIN_MS - 1
    found, complete = F.tally_findings({f"{NS}|CNY|b1": [300, 3, last]}, {}, "2033010110", NOW - 60_000, NOW,
                                       marker_ttl_ms=TALLY_TTL_MS)
    # THEN it is not completed (its sum may already be counted) but reported as what it is
    assert complete == []
    assert [(f.kind, f.id, f.details) for f in found] == [
        ("tally_expired", "b1#CNY", {"orders_amount": 300, "orders_count": 3, "last_credited_at_ms": last,
                                     "hour": "2033010110"})]


def test_tally_findings__marker_missing_just_inside_the_marker_ttl_margin__completed():
    last = NOW - TALLY_TTL_MS + F.TALLY_EXPIRY_MARGIN_MS
    found, complete = F.tally_findings({f"{NS}|CNY|b1": [300, 3, last]}, {}, "2033010110", NOW - 60_000, NOW,
                                       marker_ttl_ms=TALLY_TTL_MS)
    assert found == [] and complete == [(NS, "CNY", "b1", 300, 3)]


def test_tally_findings__marker_disagrees_or_has_no_orders__mismatch_and_orphan():
    found, _ = F.tally_findings(
        {f"{NS}|CNY|b1": [300, 3, MARKER_T]},
        {f"{NS}|CNY|b1": {"amount": 301, "count": 3, "updated_at_ms": MARKER_T},
         f"{NS}|CNY|b2": {"amount": 50, "count": 1, "updated_at_ms": MARKER_T},
         f"{NS}|CNY|b3": {"amount": 50, "count": 1, "updated_at_ms": NOW}},  # written after the scan: not compared
        "2033010110", NOW - 60_000, NOW, marker_ttl_ms=TALLY_TTL_MS)
    assert {(f.kind, f.id) for f in found} == {("tally_mismatch", "b1#CNY"), ("orphan_tally", "b2#CNY")}


def test_distributed_finding__counter_moved_between_reads__no_verdict():
    assert F.distributed_finding(NS, "CNY", "h", 100, 150, 100) is None


def test_distributed_finding__steady_counter_off__drift_with_delta():
    found = F.distributed_finding(NS, "CNY", "h", 150, 150, 100)
    assert (found.kind, found.details["delta"]) == ("distributed_drift", 50)


def shards(*rows):
    return [F.ShardRow(i, cap, consumed, updated) for i, (cap, consumed, updated) in enumerate(rows)]


def test_stock_findings__quiet_counter_matches_orders__compared_clean():
    found, compared = F.stock_findings(NS, "s1", 1000, shards((500, 200, 10), (500, 100, 20)), 300,
                                       quiet_since_ms=21 + F.STAMP_LAG_MS)
    assert (found, compared) == ([], True)


def test_stock_findings__quiet_counter_drifted__stock_drift():
    found, compared = F.stock_findings(NS, "s1", 1000, shards((500, 207, 10), (500, 100, 20)), 300,
                                       quiet_since_ms=21 + F.STAMP_LAG_MS)
    assert compared and [(f.kind, f.details["delta"]) for f in found] == [("stock_drift", 7)]


def test_stock_findings__stamp_within_the_lag_before_the_hour_end__comparison_deferred():
    # GIVEN a shard stamped 1 ms less than STAMP_LAG_MS before the hour's end: a later hour's order may be counted
    found, compared = F.stock_findings(NS, "s1", 1000, shards((1000, 800, 10)), 300, quiet_since_ms=9 + F.STAMP_LAG_MS)
    # THEN the 500 more consumed than the hour's orders is not reported; the comparison waits
    assert (found, compared) == ([], False)


def test_stock_findings__counter_still_moving__comparison_deferred_caps_still_checked():
    # GIVEN 250 consumed against a total of 200, one shard over its cap, and a shard written after the hour
    found, compared = F.stock_findings(NS, "s1", 200, shards((100, 150, 10), (100, 100, 99)), 0, quiet_since_ms=30)
    assert not compared
    assert {f.kind for f in found} == {"shard_over_cap", "over_budget"}


@pytest.mark.parametrize("text", ["2026-11-22T10", "2026112210"])
def test_parse_hour__both_forms__canonical(text):
    assert parse_hour(text) == "2026112210"
    assert display_hour(parse_hour(text)) == "2026-11-22T10"


@pytest.mark.parametrize("text", ["", "2026-11-22", "2026-13-01T00", "2026-11-22T24", "tomorrow"])
def test_parse_hour__not_an_hour__invalid_field(text):
    with pytest.raises(InvalidField) as error:
        parse_hour(text)
    assert error.value.details["field"] == "hour"


def test_pass_for__by_age__not_closed_then_first_then_second():
    start = clock.hour_start_ms("2026112210")
    with pytest.raises(InvalidField):
        pass_for("2026112210", start + 3_600_000 + 299_000)
    assert pass_for("2026112210", start + 3_600_000 + 300_000) == 1
    assert pass_for("2026112210", start + 2 * 3_600_000 + 300_000) == 2
    assert next_hour("2026112223") == "2026112300"


def test_due_runs__just_after_grace__first_pass_of_the_last_hour_then_second_passes_back_six_more_hours():
    now = clock.hour_start_ms("2026112212") + 301_000
    assert due_runs(now) == [("2026112211", 1), ("2026112210", 2), ("2026112209", 2), ("2026112208", 2),
                             ("2026112207", 2), ("2026112206", 2), ("2026112205", 2), ("2026112204", 2)]


def test_budget__zero__expired_and_none__never():
    assert Budget(0).expired() is True
    assert Budget(None).expired() is False


def test_deferred_check__owner__exact_child_activity_not_a_substring_match():
    from chalicelib.reconcile.runner import _deferred_ns

    # activity "a" must not claim the deferred checks of activity "ba"
    assert _deferred_ns("wallet:ba/formal#u1#CNY") == "ba/formal"
    assert _deferred_ns("redrive:ba/formal|ba/formal#o1") == "ba/formal"
    assert _deferred_ns("wallet:a/formal#u1#CNY") == "a/formal"
    assert _deferred_ns("tallies:ba/formal#pending-unread:12") == "ba/formal"


def test_scene_totals__orders_of_two_scenes_one_opted_out__every_order_summed_per_scene():
    # GIVEN orders of two scenes, whatever their settings (an hour's totals must hold every order)
    other = F.OrderRow(**{**order(9, status=0, amount=40).__dict__, "scene_id": "s2"})
    rows = [order(1, amount=100), order(2, amount=250), other]
    # THEN each scene's sum, pending or credited alike
    assert F.scene_totals(rows) == {f"{NS}|s1": 350, f"{NS}|s2": 40}
    assert F.scene_totals([]) == {}


def test_budget_share__parts_of_what_is_left__unlimited_stays_unlimited_and_spent_stays_spent():
    assert Budget(None).share(3).expired() is False
    assert Budget(0).share(3).expired() is True
    assert Budget(3600).share(2).expired() is False


def test_catch_up_runs__scattered_hours__compact_runs_that_index_back_to_every_hour():
    from chalicelib.reconcile.runner import _as_runs, _nth_hour

    # GIVEN unrecorded hours with a hole, across a day boundary
    hours = ["2026112222", "2026112223", "2026112300", "2026112303"]
    runs = _as_runs(hours)
    # THEN consecutive hours fold into one run, and every index maps back to its hour
    assert runs == [["2026112222", 3], ["2026112303", 1]]
    assert [_nth_hour(runs, i) for i in range(len(hours))] == hours
    with pytest.raises(IndexError):
        _nth_hour(runs, len(hours))


@pytest.mark.parametrize("deferred", [
    "wallet:act1/formal#u1#CNY", "tallies:act1/formal#batch-may-still-run:b1#CNY", "redrive:act1/formal|act1/formal#o1",
    "stock:act1/formal|scene1", "distributed:act1/formal|CNY"])
def test_deferred_check__every_kind__filed_under_its_child_activity(deferred):
    # GIVEN a deferred check of any kind, WHEN the reports are split by child activity
    from chalicelib.reconcile import runner

    # THEN it lands in its child's report (stock and distributed ones used to land in none: their "|" was missed)
    assert runner._deferred_ns(deferred) == "act1/formal"
