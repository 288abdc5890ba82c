"""The reconciliation benchmark's pure helpers: its plan of an hour, its clock, what it reads back."""

from __future__ import annotations

import threading

from bench.reconcile import BenchClock, metric_values, parse_sizes, plan_orders


def test_plan_orders__rounds_of_users__each_order_id_once_and_amounts_in_range():
    # WHEN an hour of 12 orders is planned at 5 per user
    plan, users = plan_orders(12, 5, 888, seed=7)
    # THEN 3 users cover it, round by round, and no (user, round) repeats (an order id is unique)
    assert users == 3 and len(plan) == 12
    assert [rain for _, rain, _ in plan[:4]] == ["r0", "r0", "r0", "r1"]
    assert len({(act, rain) for act, rain, _ in plan}) == 12
    assert all(1 <= amount <= 888 for _, _, amount in plan)
    assert plan == plan_orders(12, 5, 888, seed=7)[0]


def test_bench_clock__thread_override__only_inside_the_block_and_only_for_that_thread():
    fake = BenchClock(1_000)
    seen = {}
    with fake.at(5_000):
        other = threading.Thread(target=lambda: seen.setdefault("other", fake()))
        other.start()
        other.join()
        seen["inside"] = fake()
    assert seen == {"other": 1_000, "inside": 5_000}
    assert fake() == 1_000


def test_metric_values__embedded_metric_lines__values_read_and_other_output_ignored():
    stdout = ('{"_aws":{},"stage":"local","ReconciliationDiscrepancies":[0.0]}\n'
              'not json\n{"other":1}\n{"ReconciliationDiscrepancies":3}\n')
    assert metric_values(stdout) == [0.0, 3]


def test_parse_sizes__commas_and_underscores():
    assert parse_sizes("10_000,50000") == [10_000, 50_000]
