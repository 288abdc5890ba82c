"""Hourly reconciliation on the local stack: orders reconciled per second and read units per order, by volume.

Starts its own DynamoDB Local (in memory) and moto server (as `bench/rain.py` does), then for each size in
`--sizes` (default 10 000 and 50 000 orders) seeds one hour of real traffic into its own activity and hour,
and reconciles that hour's first pass (h+1) the way the scheduled reconciler does, measuring it:

  seed       one cash scene with budget control; ORDERS rewards to ORDERS / `--orders-per-user` users, spread
             evenly over the hour under a controlled clock (`chalicelib.clock.now_ms` patched). Each reward
             goes through the grant path's domain function (`grants.place`: order put-if-absent + budget shard
             ADD, one transaction); every 100 orders are credited by one invocation of the real credit worker
             (`chalicelib.routes.rewards.credit_worker`, an SQS event of their credit messages, one second
             after the last of them), which writes the ledger entries, order updates, wallet ADDs and the
             batch's tally. The tables end up exactly as production leaves them (the SQS hop and the reward
             token write nothing to DynamoDB, so they are skipped to seed faster);
  reconcile  at h+1 (6 minutes after the hour, past `RG_RECONCILE_GRACE_S`), `runner.run(hour, 1, budget)` is
             invoked again and again, each time with the budget a fresh Lambda context gives
             (`Budget.from_context`: the reconciler's configured timeout minus the 20 s reserve), until the
             pass is done -- what the 5-minute schedule does through resumption. Each invocation starts with
             a cold configuration cache, as a reconciler invocation 5 minutes after the last one does.

Every DynamoDB call is metered by AWS's billing rules (`bench.meter`). The run fails (exit 1) unless every
reconciliation reports 0 discrepancies and counts every seeded order as credited.

    .venv/bin/python bench/reconcile.py                         # 10 000 and 50 000 orders
    .venv/bin/python bench/reconcile.py --sizes 1000,5000       # a quick run
    .venv/bin/python bench/reconcile.py --sizes 500 --warmup 0 --hour-buckets 64 --idle-hours 12
                                          # the stock checkpoint's catch-up over 12 idle hours
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import results as results_module  # noqa: E402 - after the path insert
from bench.results import add_json_argument  # noqa: E402

HOUR_MS = 3600 * 1000
MINUTE_MS = 60 * 1000
FIRST_HOUR = "2031111110"  # the first size's hour; each next size gets its own hour, 4 (+ idle) hours later
HOURS_APART = 4
RECONCILE_AT_MS = 6 * MINUTE_MS  # after the hour ends: past the 300 s grace, so pass 1 (h+1) is due
CREDIT_BATCH = 100  # records per credit-worker invocation (CREDITS.batch_size)
CREDIT_DELAY_MS = 1000  # a batch is credited this long after its last order (the worker's batching window)
BUDGET_RESERVE_S = 20.0  # Budget.from_context's default reserve, restated for the report


# --- the controlled clock ----------------------------------------------------------------------


class BenchClock:
    """Stands in for `chalicelib.clock.now_ms`: a settable time, which a thread can override for a block."""

    def __init__(self, ms: int) -> None:
        self.ms = ms
        self._local = threading.local()

    def __call__(self) -> int:
        override = getattr(self._local, "ms", None)
        return self.ms if override is None else override

    @contextlib.contextmanager
    def at(self, ms: int) -> Iterator[None]:
        """This thread reads `ms` inside the block."""
        self._local.ms = ms
        try:
            yield
        finally:
            self._local.ms = None


# --- configuration -----------------------------------------------------------------------------


def deployed_reconciler() -> dict[str, Any]:
    """What `.chalice/config.json` deploys for the reconciler: timeout, memory, architecture, and the prod
    stage's `RG_HOUR_BUCKETS` (Chalice's defaults, 60 s and 128 MB x86_64, where the file sets none)."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    function = config.get("lambda_functions", {}).get("reconciler", {})
    prod_env = config.get("stages", {}).get("prod", {}).get("environment_variables", {})
    return {
        "timeout_s": int(function.get("lambda_timeout", config.get("lambda_timeout", 60))),
        "memory_mb": int(function.get("lambda_memory_size", config.get("lambda_memory_size", 128))),
        "architecture": config.get("lambda_architecture", "x86_64"),
        "prod_hour_buckets": int(prod_env["RG_HOUR_BUCKETS"]) if "RG_HOUR_BUCKETS" in prod_env else None,
    }


def configure_campaign(client: Any, fake: BenchClock, hour_start: int, tag: str, shards: int, total: int,
                       order_cap: int, idle_hours: int = 0) -> str:
    """An activity whose `formal` child opens `idle_hours` before the hour's start, and one cash scene `rain`
    with budget control.

    With `idle_hours` 0 the child opens at the hour itself, so the stock checkpoint starts at this hour (no
    earlier hours to sum); otherwise the scene's first orders come after that many idle hours.
    """
    from bench import rain

    opens = hour_start - idle_hours * HOUR_MS
    fake.ms = opens - 10 * MINUTE_MS
    return rain.configure_campaign(client, tag, shards, total, order_cap,
                                   window_ms=(opens, hour_start + 3 * HOUR_MS), label="recon")


HISTORY_PER_HOUR = 250  # earlier entries per wallet seeded into each history hour


def history_hours(history: int) -> int:
    """How many hours before the measured one `--history N` uses (its seeded hours and an empty one; 0 without)."""
    return -(-history // HISTORY_PER_HOUR) + 1 if history else 0


def history_plan(act_ids: list[str], history: int, amount_max: int, seed: int) -> list[list[tuple[str, str, int]]]:
    """Per history hour, (act_id, rain_id, amount) round by round: `history` orders per wallet in all."""
    rng = random.Random(seed)
    hours_ = []
    for hour_no in range(-(-history // HISTORY_PER_HOUR)):
        rounds = range(hour_no * HISTORY_PER_HOUR, min(history, (hour_no + 1) * HISTORY_PER_HOUR))
        hours_.append([(act_id, f"h{rnd}", rng.randint(1, amount_max)) for rnd in rounds for act_id in act_ids])
    return hours_


def seed_history(fake: BenchClock, activity_id: str, hour_start: int, plans: list[list[tuple[str, str, int]]],
                 threads: int, result: SizeResult) -> None:
    """The history hours before the measured one, each seeded and reconciled as the schedule would, unmeasured.

    History hours end two hours before the measured hour M; M-1 holds nothing (a history hour is 50 times
    denser than the measured one, and its last minutes would otherwise fall after the checkpoints). At
    j+1 + 6 min the schedule's passes run: pass 1 of j and pass 2 of j-1; at M + 6 min the last ones (pass 1
    of M-1, pass 2 of M-2). Then the measured hour M is seeded and its pass 1 measured at M+1 + 6 min.
    """
    import io

    from chalicelib import clock
    from chalicelib.reconcile import runner

    starts = [hour_start - (len(plans) + 1 - j) * HOUR_MS for j in range(len(plans))]
    scratch = SizeResult(orders=0, hour="", scope="history")
    passes_at = [start + HOUR_MS for start in starts] + [hour_start]  # the hour whose h+1 pass runs, +1
    seeded = dict(zip(starts, plans, strict=True))
    for pass_hour_end in passes_at:
        hour_ = pass_hour_end - HOUR_MS  # pass 1 of this hour, pass 2 of the one before, at its end + 6 min
        if hour_ in seeded:
            with contextlib.redirect_stdout(io.StringIO()):  # the credit worker's metric lines
                seed_hour(fake, activity_id, hour_, seeded[hour_], threads, scratch, _NoProgress(), batch=True)
            for failure, count in scratch.seed_failures.items():
                result.seed_failures[f"history {failure}"] += count
        fake.ms = pass_hour_end + RECONCILE_AT_MS
        with contextlib.redirect_stdout(io.StringIO()):
            for pass_no, reconciled in ((1, hour_), (2, hour_ - HOUR_MS)):
                if reconciled >= starts[0]:
                    status = runner.run(clock.hour_of(reconciled), pass_no, runner.Budget(None))
                    if status.status != "done":
                        raise RuntimeError(f"history pass {pass_no} of {clock.hour_of(reconciled)} did not finish")
    for start in starts:
        for report in runner.reports(clock.hour_of(start)):
            if report.get("activity_id") == activity_id and not report["ok"]:
                result.seed_failures[f"history discrepancies {sorted(report['discrepancies'])}"] += 1


class _NoProgress:
    def update(self, _: int) -> None:
        pass


def reconcile_idle_hours(fake: BenchClock, hour_start: int, idle_hours: int) -> None:
    """What the schedule did during the idle hours: each one's first pass at h+1 (not measured)."""
    from chalicelib import clock
    from chalicelib.reconcile import runner

    for back in range(idle_hours, 0, -1):
        start = hour_start - back * HOUR_MS
        fake.ms = start + HOUR_MS + RECONCILE_AT_MS
        runner.run(clock.hour_of(start), 1, runner.Budget(None))


# --- seeding one hour --------------------------------------------------------------------------


@dataclass
class SizeResult:
    """One size: what was seeded and what reconciling it took."""

    orders: int
    hour: str
    scope: str
    activity_id: str = ""
    users: int = 0
    amount: int = 0
    seed_s: float = 0.0
    seed_failures: Counter = field(default_factory=Counter)
    invocations: list[tuple[float, int]] = field(default_factory=list)  # (seconds, steps) per invocation
    meter_overhead_s: float = 0.0
    step_s: list[float] = field(default_factory=list)  # bucket steps, in order
    other_s: list[float] = field(default_factory=list)  # planning, catch-up and tally steps
    finish_s: float = 0.0
    reconcile_s: float = 0.0
    status: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    run_report: dict[str, Any] = field(default_factory=dict)
    metric: list[float] = field(default_factory=list)  # ReconciliationDiscrepancies emitted
    largest_record: int = 0  # bytes of the largest stored bucket result of the pass
    wallet_checks: int = 0  # wallet checks (`wallet_checks.check_wallet`)
    checkpoint_rru: float = 0.0  # checkpoint GetItems: 0.5 read units each (eventually consistent, < 4 KB)
    whole_reads: int = 0  # of which read the wallet's whole posted ledger (no checkpoint yet, or a disagreement)
    history: int = 0  # earlier posted entries per wallet, seeded and reconciled before the measured hour


def plan_orders(orders: int, per_user: int, amount_max: int, seed: int) -> tuple[list[tuple[str, str, int]], int]:
    """(act_id, rain_id, amount) per order, round by round like a rain; and the number of users."""
    rng = random.Random(seed)
    users = -(-orders // per_user)
    # 32-character user ids, like a hashed platform user id (key sizes decide item sizes).
    act_ids = [f"u{user:07d}-{hashlib.sha256(str(user).encode()).hexdigest()[:23]}" for user in range(users)]
    plan = [(act_ids[user], f"r{rnd}", rng.randint(1, amount_max)) for rnd in range(per_user) for user in range(users)]
    return plan[:orders], users


def seed_hour(fake: BenchClock, activity_id: str, hour_start: int, plan: list[tuple[str, str, int]], threads: int,
              result: SizeResult, progress: Any, batch: bool = False) -> None:
    """Grant and credit every planned order inside the hour (order i created at hour_start + i/N of the hour).

    `batch`: each 100 orders are granted by one batch grant (`grants.place_many`, the `/v1/grants/batch` path),
    created together at the time of the first of them (how `--history` seeds earlier hours quickly).
    """
    from chalicelib.errors import RewardgateError
    from chalicelib.rewards import grants, orders
    from chalicelib.rewards.orders import parse_grant
    from chalicelib.routes.rewards import credit_worker
    from rewardgate_ops.lambda_events import LocalLambdaContext, failed_ids, sqs_event, sqs_record

    arn = "arn:aws:sqs:us-east-1:123456789012:rewardgate-local-credits"
    n = len(plan)
    chunks = iter(range(0, n, CREDIT_BATCH))
    lock = threading.Lock()
    failures: Counter = Counter()

    def created_at(i: int) -> int:
        return hour_start + (i * HOUR_MS) // n

    def seeder() -> None:
        while True:
            with lock:
                start = next(chunks, None)
            if start is None:
                return
            placed = []
            if batch:
                requests = [parse_grant({"activity_id": activity_id, "scene_id": "rain", "act_id": act_id,
                                         "rain_id": rain_id, "award_type": "cash", "stage": "1", "amount": amount,
                                         "open_time_ms": created_at(start)})
                            for act_id, rain_id, amount in plan[start:start + CREDIT_BATCH]]
                with fake.at(created_at(start)):
                    outcomes = grants.place_many(requests)
                for outcome in outcomes:
                    if isinstance(outcome, RewardgateError):
                        with lock:
                            failures[f"grant {outcome.code}"] += 1
                    else:
                        placed.append(outcome[0])
            for i in (range(start, min(start + CREDIT_BATCH, n)) if not batch else ()):
                act_id, rain_id, amount = plan[i]
                body = {"activity_id": activity_id, "scene_id": "rain", "act_id": act_id, "rain_id": rain_id,
                        "award_type": "cash", "stage": "1", "amount": amount, "open_time_ms": created_at(i)}
                at = created_at(i)
                try:
                    with fake.at(at):
                        order, created = grants.place(parse_grant(body), now_ms=at)
                except RewardgateError as error:
                    with lock:
                        failures[f"grant {error.code}"] += 1
                    continue
                if not created:
                    with lock:
                        failures["grant repeated an existing order"] += 1
                placed.append(order)
            records = [sqs_record({"MessageId": str(uuid.uuid4()), "ReceiptHandle": uuid.uuid4().hex,
                                   "Body": orders.credit_message(o)}, arn) for o in placed]
            with fake.at(created_at(min(start + CREDIT_BATCH, n) - 1) + CREDIT_DELAY_MS):
                answer = credit_worker(sqs_event(records), LocalLambdaContext("credit_worker", 60))
            failed = failed_ids(answer, [r["messageId"] for r in records])
            if failed:
                with lock:
                    failures["credit record failed"] += len(failed)
            progress.update(len(placed))

    from bench.rain import run_threads

    started = run_threads(seeder, threads, "seed")
    result.seed_s = time.perf_counter() - started
    result.seed_failures = failures


# --- reconciling it ----------------------------------------------------------------------------


@contextlib.contextmanager
def timed_steps(result: SizeResult, progress: Any) -> Iterator[None]:
    """Time each bucket step and the finishing step, count wallet checks (wrapping the runner's functions)."""
    from chalicelib.reconcile import runner

    wallet_checks: Any = None  # the code before the incremental check (runner._wallet_snapshot) reads whole ledgers
    if not hasattr(runner, "_wallet_snapshot"):
        from chalicelib.reconcile import wallet_checks
    bucket_step, finish = runner.bucket_step, runner.finish
    others = {name: getattr(runner, name) for name in ("plan", "catch_up_step", "tally_step")}
    lock = threading.Lock()

    def timed_other(name: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return others[name](*args, **kwargs)
            finally:
                result.other_s.append(time.perf_counter() - started)
                progress.update(1)
        return timed

    def timed_bucket_step(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return bucket_step(*args, **kwargs)
        finally:
            result.step_s.append(time.perf_counter() - started)
            progress.update(1)

    def timed_finish(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return finish(*args, **kwargs)
        finally:
            result.finish_s = time.perf_counter() - started
            progress.update(1)

    def counted(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                if name == "check":
                    result.wallet_checks += 1
                elif name == "whole":
                    result.whole_reads += 1
                else:
                    result.checkpoint_rru += 0.5
            return function(*args, **kwargs)
        return wrapper

    if wallet_checks is not None:
        wrapped = {(wallet_checks, "check_wallet"): "check", (wallet_checks, "_whole_snapshot"): "whole",
                   (wallet_checks, "read_checkpoint"): "checkpoint"}
    else:
        wrapped = {(runner, "_wallet_snapshot"): "check"}
    saved = {key: getattr(*key) for key in wrapped}
    for (module, attr), name in wrapped.items():
        setattr(module, attr, counted(name, saved[(module, attr)]))
    if wallet_checks is None:  # each check is one whole read
        runner._wallet_snapshot = counted("whole", runner._wallet_snapshot)
    runner.bucket_step, runner.finish = timed_bucket_step, timed_finish
    for name in others:
        setattr(runner, name, timed_other(name))
    try:
        yield
    finally:
        runner.bucket_step, runner.finish = bucket_step, finish
        for (module, attr), function in saved.items():
            setattr(module, attr, function)
        for name, function in others.items():
            setattr(runner, name, function)


def reconcile_hour(meter: Any, result: SizeResult, timeout_s: float, memory_mb: int, progress: Any,
                   max_invocations: int = 10_000) -> None:
    """Invoke pass 1 of the hour until done, each invocation with a fresh Lambda context's budget."""
    from chalicelib.reconcile import runner
    from chalicelib.rewards import config_store
    from rewardgate_ops.lambda_events import LocalLambdaContext

    started_all = time.perf_counter()
    with timed_steps(result, progress):
        for _ in range(max_invocations):
            config_store.invalidate()  # a new invocation, minutes after the last: its cache has expired
            context = LocalLambdaContext("reconciler", timeout_s, memory_mb)
            started, overhead = time.perf_counter(), meter.overhead_s()
            outcome = runner.run(result.hour, 1, runner.Budget.from_context(context))
            seconds = time.perf_counter() - started
            used_overhead = meter.overhead_s() - overhead
            meter.record_invocation("reconciler", seconds - used_overhead)
            result.meter_overhead_s += used_overhead
            result.invocations.append((seconds, outcome.invocation_steps))
            result.status = outcome.status
            if outcome.status == "done":
                break
    result.reconcile_s = time.perf_counter() - started_all


def read_reports(result: SizeResult) -> None:
    """The stored pass-1 reports (this activity's and the run-level one), and the largest bucket result."""
    from bench.capacity_rules import item_size
    from chalicelib.reconcile import runner
    from chalicelib.reconcile.tables import ReconItem

    records = ReconItem.query(runner.run_pk(result.hour, 1), consistent_read=True)
    result.largest_record = max(item_size(item.serialize()) for item in records)

    for report in runner.reports(result.hour):
        if report["pass"] != 1:
            continue
        if report.get("activity_id") == result.activity_id:
            result.report = report
        elif "dlq_depths" in report:
            result.run_report = report


def problems(result: SizeResult) -> list[str]:
    """Why this size's run is not clean (empty when it is)."""
    found = []
    if result.seed_failures:
        found.append(f"seeding failures {dict(result.seed_failures)}")
    if result.status != "done":
        found.append(f"pass not finished ({result.status})")
    report, run_level = result.report, result.run_report
    if not report:
        found.append("no report for the activity")
        return found
    if report["discrepancy_count"] or not report["ok"]:
        found.append(f"{report['discrepancy_count']} discrepancies: {sorted(report['discrepancies'])}")
    if result.metric != [0]:
        found.append(f"ReconciliationDiscrepancies metric emitted {result.metric}, expected [0]")
    if run_level.get("discrepancy_count"):
        found.append(f"{run_level['discrepancy_count']} run-level discrepancies: {sorted(run_level['discrepancies'])}")
    expected = (result.orders, result.amount, result.orders, result.amount)
    counted = (report["orders"], report["orders_amount"], report["credited"], report["credited_amount"])
    if counted != expected:
        found.append(f"report counts (orders, amount, credited, credited amount) {counted} != seeded {expected}")
    return found


# --- the report ----------------------------------------------------------------------------------


def display(hour: str) -> str:
    return f"{hour[:4]}-{hour[4:6]}-{hour[6:8]}T{hour[8:]}"


def short(target: str) -> str:
    return target.replace("rewardgate-local-", "")


def per(value: float, count: int) -> float:
    return value / count if count else float("nan")


def report(meter: Any, results: list[SizeResult], args: argparse.Namespace, deployed: dict[str, Any],
           hour_buckets: int, warmup: SizeResult | None, elapsed_s: float) -> str:
    from bench.meter import Prices, cost
    from chalicelib.reconcile import runner
    from chalicelib.settings import settings

    prices = Prices(lambda_architecture=deployed["architecture"])
    lines: list[str] = []
    out = lines.append
    usages = {r.scope: meter.usage(f"reconcile:{r.scope}") for r in results}
    seeds = {r.scope: meter.usage(f"seed:{r.scope}") for r in results}
    rows: list[tuple[str, list[float], str]] = []

    def row(label: str, fn: Any, fmt: str = "{:.3f}") -> None:
        rows.append((label, [fn(r) for r in results], fmt))

    row("orders in the hour", lambda r: r.orders, "{:,.0f}")
    row("wallets (users) touched", lambda r: r.users, "{:,.0f}")
    row("orders reconciled / s (wall time)", lambda r: per(r.orders, r.reconcile_s), "{:.0f}")
    row("reconciliation wall time, s", lambda r: r.reconcile_s, "{:.1f}")
    row(f"invocations needed (timeout {args.lambda_timeout:g} s)", lambda r: len(r.invocations), "{:.0f}")
    row("steps (buckets, plan, catch-up, tallies, finish)", lambda r: sum(s for _, s in r.invocations), "{:.0f}")
    if args.history:
        row("earlier posted entries per wallet (--history)", lambda r: r.history, "{:,.0f}")
    row("wallet checks per wallet", lambda r: per(r.wallet_checks, r.users), "{:.2f}")
    row("  decided by a whole snapshot (disagreement)", lambda r: per(r.whole_reads, r.users), "{:.2f}")
    row("longest invocation, s", lambda r: max(s for s, _ in r.invocations), "{:.1f}")
    row("longest step, s", lambda r: max([*r.step_s, *r.other_s, r.finish_s]), "{:.2f}")
    row("  bucket step, s (median)", lambda r: statistics.median(r.step_s), "{:.3f}")
    row("  finishing step, s", lambda r: r.finish_s, "{:.2f}")
    row("DynamoDB read units / order", lambda r: per(usages[r.scope].rru, r.orders), "{:.4f}")
    targets = sorted({t for u in usages.values() for t in u.rru_by}, key=lambda t: -sum(
        per(usages[r.scope].rru_by[t], r.orders) for r in results))
    for target in targets:
        row(f"  {short(target)}", lambda r, t=target: per(usages[r.scope].rru_by[t], r.orders), "{:.4f}")
    row("  of which wallet checks (wallet, ledger, checkpoint)",
        lambda r: per(usages[r.scope].rru_by.get("rewardgate-local-wallets", 0)
                      + usages[r.scope].rru_by.get("rewardgate-local-ledger/by_time", 0)
                      + usages[r.scope].rru_by.get("rewardgate-local-ledger", 0)
                      + r.checkpoint_rru, r.orders), "{:.4f}")
    row("DynamoDB write units / order (run records)", lambda r: per(usages[r.scope].wru, r.orders), "{:.4f}")
    row("DynamoDB calls / order", lambda r: per(usages[r.scope].dynamodb_requests, r.orders), "{:.4f}")
    operations = sorted({op for u in usages.values() for op in u.dynamodb_calls})
    for op in operations:
        row(f"  {op}", lambda r, o=op: per(usages[r.scope].dynamodb_calls[o], r.orders), "{:.4f}")
    row(f"Lambda GB-s / order ({deployed['memory_mb']} MB)",
        lambda r: per(usages[r.scope].invocation_s["reconciler"] * deployed["memory_mb"] / 1024, r.orders), "{:.5f}")
    for key, label in (("dynamodb_reads", "DynamoDB reads"), ("dynamodb_writes", "DynamoDB writes"),
                       ("lambda_duration", "Lambda duration"), ("lambda_requests", "Lambda requests"),
                       ("total", "TOTAL")):
        row(f"$ per million orders: {label}", lambda r, k=key: 1e6 * per(
            cost(usages[r.scope], prices, deployed["memory_mb"])[k], r.orders), "{:.3f}")
    row("discrepancies reported (must be 0)", lambda r: (r.report.get("discrepancy_count", -1)
                                                         + r.run_report.get("discrepancy_count", 0)), "{:.0f}")

    first, last = results[0], results[-1]
    out(f"hourly reconciliation, pass 1 (h+1), on the local stack: sizes {', '.join(f'{r.orders:,}' for r in results)} "
        f"orders in an hour")
    if args.idle_hours:
        out(f"idle hours: the child opened {args.idle_hours} hours before the measured hour; those hours hold no order "
            f"and each was reconciled (pass 1) before the measured pass, as the schedule does; the scene's first "
            f"orders are in the measured hour (no stock checkpoint yet)")
    out(f"data: one cash scene with budget control ({args.shards} shards), {args.orders_per_user} orders per user, "
        f"amounts 1..{args.amount_max} fen; granted by grants.place and credited by the real credit worker, "
        f"{CREDIT_BATCH} per invocation, under a controlled clock (orders evenly over the hour)")
    source = "prod stage of .chalice/config.json" if args.hour_buckets_from_config else "--hour-buckets"
    out(f"settings: RG_HOUR_BUCKETS {hour_buckets} ({source}), RG_ACCEPTED_SLA_S {settings().accepted_sla_s}, "
        f"RG_RECONCILE_GRACE_S {settings().reconcile_grace_s}, RG_DISTRIBUTED_SHARDS {settings().distributed_shards}; "
        f"reconciled at h+1 + {RECONCILE_AT_MS // MINUTE_MS} min")
    out(f"reconciler Lambda (.chalice/config.json): timeout {deployed['timeout_s']} s, {deployed['memory_mb']} MB "
        f"{deployed['architecture']}; scheduled every 5 min; run with a {args.lambda_timeout:g} s timeout, so a step "
        f"starts only while more than {BUDGET_RESERVE_S:g} s remain (Budget.from_context)")
    out(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}; DynamoDB Local (in memory) + moto; "
        f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    out("")
    width = max(len(label) for label, _, _ in rows) + 2
    ratio_label = f"{last.orders:,}/{first.orders:,}" if len(results) > 1 else ""
    out(f"{'':{width}}" + "".join(f"{r.orders:>14,}" for r in results) + (f"{ratio_label:>18}" if ratio_label else ""))
    for label, values, fmt in rows:
        cells = "".join(f"{fmt.format(v):>14}" for v in values)
        if ratio_label:
            a, b = values[0], values[-1]
            cells += f"{(f'{b / a:.3g}x' if a else '-'):>18}"
        out(f"{label:{width}}{cells}")
    out("")
    if len(results) > 1 and not args.history:
        ua, ub = usages[first.scope], usages[last.scope]
        rcu_ratio = per(ub.rru, last.orders) / per(ua.rru, first.orders)
        tput_ratio = per(last.orders, last.reconcile_s) / per(first.orders, first.reconcile_s)
        out(f"growth from {first.orders:,} to {last.orders:,} orders ({last.orders / first.orders:.3g}x the volume): "
            f"read units per order x{rcu_ratio:.3f} (total read units x{ub.rru / ua.rru:.3f}), DynamoDB calls per "
            f"order x{per(ub.dynamodb_requests, last.orders) / per(ua.dynamodb_requests, first.orders):.3f}, "
            f"orders reconciled per second x{tput_ratio:.3f}, wall time x{last.reconcile_s / first.reconcile_s:.3f}")
        slope = (ub.rru - ua.rru) / (last.orders - first.orders) if last.orders != first.orders else float("nan")
        time_slope = (last.reconcile_s - first.reconcile_s) / (last.orders - first.orders) \
            if last.orders != first.orders else float("nan")
        if len(first.invocations) == len(last.invocations) == 1:
            out(f"as a line through the two sizes: read units per pass ~= {ua.rru - slope * first.orders:,.0f} fixed "
                f"+ {slope:.4f} per order; wall time ~= {first.reconcile_s - time_slope * first.orders:.1f} s fixed + "
                f"{1000 * time_slope:.3f} ms per order")
        else:
            out("no line through the sizes: they took different numbers of invocations (each adds its own fixed "
                "reads and start-up)")
    if args.history:
        for base, deep in zip(results[::2], results[1::2], strict=True):
            a, b = per(usages[base.scope].rru, base.orders), per(usages[deep.scope].rru, deep.orders)
            out(f"history: read units per reconciled order in the measured hour ({deep.orders:,} orders, "
                f"{deep.users:,} wallets): {b:.4f} with {deep.history:,} earlier entries per wallet, {a:.4f} with "
                f"{base.history:,} (same run); ratio {b / a:.3f}; wallet checks decided by a whole snapshot in "
                f"the measured pass: {deep.whole_reads} and {base.whole_reads}")
    for r in results:
        u = usages[r.scope]
        tag = f"[{r.orders:,}{f' h{r.history}' if r.history else ''}]"
        seed = seeds[r.scope]
        out(f"{tag} hour {display(r.hour)}, activity {r.activity_id}: seeded "
            f"{r.orders:,} orders ({r.users:,} wallets, {r.orders / hour_buckets:.0f} orders per hour bucket, "
            f"sum {r.amount:,} fen) in {r.seed_s:.1f} s ({r.orders / r.seed_s:.0f}/s); seeding wrote "
            f"{per(seed.wru, r.orders):.2f} write units per order"
            + (f"; FAILURES {dict(r.seed_failures)}" if r.seed_failures else ""))
        per_invocation = ", ".join(f"{s:.1f} s/{n} steps" for s, n in r.invocations)
        out(f"{tag} invocations: {per_invocation}; bucket steps: median {statistics.median(r.step_s):.3f} s, "
            f"p95 {sorted(r.step_s)[int(0.95 * (len(r.step_s) - 1))]:.3f} s, max {max(r.step_s):.3f} s; "
            f"finishing step {r.finish_s:.2f} s; meter overhead in the invoking thread {r.meter_overhead_s:.1f} s")
        out(f"{tag} largest bucket result stored by the pass: {r.largest_record:,} B (DynamoDB's item limit is "
            f"400 KB; it lists the hour's credit batches met in the bucket, and findings up to "
            f"{runner.BUCKET_LISTED} per kind)")
        out(f"{tag} write units by table/index: " + ", ".join(
            f"{short(t)} {v / r.orders:.4f}" for t, v in sorted(u.wru_by.items())) + f"; read units in total "
            f"{u.rru:,.1f}; cancelled transactions {u.cancelled_transactions}, failed conditional writes "
            f"{u.failed_conditions}" + (f"; other calls {dict(u.other_calls)}" if u.other_calls else "")
            + (f"; SQS calls {dict(u.sqs_calls)}" if u.sqs_calls else ""))
        rep = r.report
        if rep:
            out(f"{tag} report: ok={rep['ok']} orders={rep['orders']} credited={rep['credited']} "
                f"pending={rep['pending']} amount={rep['orders_amount']} credited_amount={rep['credited_amount']} "
                f"redriven={rep['redriven']} tallies_completed={rep['tallies_completed']} "
                f"deferred_checks={rep['deferred_checks']} discrepancies={rep['discrepancy_count']} "
                f"{ {k: v['count'] for k, v in rep['discrepancies'].items()} or ''}".rstrip())
        run_level = r.run_report
        out(f"{tag} run-level report: discrepancies={run_level.get('discrepancy_count')} "
            f"dlq_depths={run_level.get('dlq_depths')} events_unapplied={run_level.get('events_unapplied')}; "
            f"metric ReconciliationDiscrepancies emitted {r.metric}")
        trouble = problems(r)
        out(f"{tag} verdict: " + ("OK (0 discrepancies, every seeded order counted as credited)" if not trouble
                                  else "FAILED: " + "; ".join(trouble)))
    if warmup is not None:
        out(f"[warm-up, untimed] {warmup.orders:,} orders in hour {display(warmup.hour)}: seeded in "
            f"{warmup.seed_s:.1f} s, reconciled in {warmup.reconcile_s:.1f} s; "
            + ("; ".join(problems(warmup)) or "0 discrepancies"))
    out("")
    longest = max(max(s for s, _ in r.invocations) for r in results)
    out(f"fits the Lambda limit: the longest invocation ran {longest:.1f} s "
        f"against the {args.lambda_timeout:g} s timeout (a step starts only while > {BUDGET_RESERVE_S:g} s remain, so "
        f"an invocation overruns only if one step takes longer than that; longest step "
        f"{max(max([*r.step_s, *r.other_s, r.finish_s]) for r in results):.2f} s); timings are DynamoDB Local's "
        "on this machine")
    out("on the 5-minute schedule each pass finishes about " + ", ".join(
        f"{(len(r.invocations) - 1) * 5 + r.invocations[-1][0] / 60:.1f} min ({r.orders:,})" for r in results)
        + " after its first invocation ((invocations - 1) x 5 min + the last one); the schedule's invocations also "
        "carry the previous hour's second pass (h+2), not measured here")
    out(f"prices: {prices.describe()}; Lambda {deployed['memory_mb']} MB, duration = measured time per invocation "
        "(meter overhead in the invoking thread excluded)")
    out("capacity counted per call by AWS's rules (bench/meter.py): reads ceil(size / 4 KB) x0.5 eventually "
        "consistent (GSI queries), x1 strongly consistent; Query rounds the total of the items read")
    out(f"run took {elapsed_s:.0f} s in all (seeding included)")
    python = Path(sys.executable)
    shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    out("command: " + " ".join([str(shown), *sys.argv]))
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    """`10000,50000` -> [10000, 50000]; every size at least 1."""
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers, like 10000,50000")
    return sizes


def run_size(meter: Any, client: Any, fake: BenchClock, args: argparse.Namespace, deployed: dict[str, Any],
             hour: str, size: int, scope: str, seed: int, history: int = 0) -> SizeResult:
    """Seed one hour with `size` orders, reconcile it at h+1, read its reports (metered under `{stage}:{scope}`)."""
    import io

    from tqdm import tqdm

    from chalicelib import clock
    from chalicelib.reconcile import runner
    from chalicelib.settings import settings

    hour_start = clock.hour_start_ms(hour)
    result = SizeResult(orders=size, hour=hour, scope=scope, history=history)
    plan, result.users = plan_orders(size, args.orders_per_user, args.amount_max, seed)
    result.amount = sum(amount for _, _, amount in plan)
    earlier = history_plan(sorted({act_id for act_id, _, _ in plan}), history, args.amount_max, seed) if history else []
    budget = 2 * (result.amount + sum(amount for hour_plan in earlier for _, _, amount in hour_plan))
    with meter.scope(f"setup:{scope}"):
        result.activity_id = configure_campaign(client, fake, hour_start, f"s{size}", args.shards,
                                                budget, args.amount_max, args.idle_hours + history_hours(history))
    if args.idle_hours:
        with meter.scope(f"idle:{scope}"), contextlib.redirect_stdout(io.StringIO()):
            reconcile_idle_hours(fake, hour_start - history_hours(history) * HOUR_MS, args.idle_hours)
    if earlier:
        print(f"seeding {history:,} earlier entries per wallet over {len(earlier)} hour(s), each reconciled ...",
              file=sys.stderr)
        with meter.scope(f"history:{scope}"):
            seed_history(fake, result.activity_id, hour_start, earlier, args.seed_threads, result)
    with meter.scope(f"seed:{scope}"), tqdm(total=size, desc=f"seed {size:,} orders", unit="order",
                                            file=sys.stderr, smoothing=0.1) as progress:
        seed_hour(fake, result.activity_id, hour_start, plan, args.seed_threads, result, progress)
    fake.ms = hour_start + HOUR_MS + RECONCILE_AT_MS
    if runner.pass_for(hour, fake.ms) != 1:
        raise RuntimeError("the bench clock is not at h+1")
    captured = io.StringIO()  # the reconciler's CloudWatch metric (embedded metric format on stdout)
    with meter.scope(f"reconcile:{scope}"), contextlib.redirect_stdout(captured), \
            tqdm(total=settings().hour_buckets + 1, desc=f"reconcile {size:,}", unit="step",
                 file=sys.stderr) as progress:
        reconcile_hour(meter, result, args.lambda_timeout, deployed["memory_mb"], progress)
    result.metric = metric_values(captured.getvalue())
    with meter.scope(f"verify:{scope}"):
        read_reports(result)
    print(f"{size:,} orders: reconciled in {result.reconcile_s:.1f} s, {len(result.invocations)} invocation(s); "
          + ("; ".join(problems(result)) or "0 discrepancies"), file=sys.stderr)
    return result


def metric_values(stdout: str) -> list[float]:
    """The `ReconciliationDiscrepancies` values the reconciler emitted (one per finished pass)."""
    values = []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "ReconciliationDiscrepancies" in record:
            found = record["ReconciliationDiscrepancies"]
            values.extend(found if isinstance(found, list) else [found])
    return values


def main() -> int:
    deployed = deployed_reconciler()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 50_000],
                        help="orders in the hour, one reconciliation per size (10000,50000)")
    parser.add_argument("--orders-per-user", type=int, default=5, help="rewards per user in the hour (5)")
    parser.add_argument("--shards", type=int, default=8, help="budget counter shards of the scene (8)")
    parser.add_argument("--amount-max", type=int, default=888, help="largest red packet in fen (888)")
    parser.add_argument("--hour-buckets", type=int, default=None,
                        help=f"RG_HOUR_BUCKETS (default: the prod stage's, {deployed['prod_hour_buckets']})")
    parser.add_argument("--lambda-timeout", type=float, default=deployed["timeout_s"],
                        help=f"reconciler timeout per invocation (.chalice/config.json: {deployed['timeout_s']} s)")
    parser.add_argument("--warmup", type=int, default=500,
                        help="orders of an untimed warm-up hour (DynamoDB Local's JIT), 0 for none (500)")
    parser.add_argument("--idle-hours", type=int, default=0,
                        help="hours the child is open before the measured hour, empty, each reconciled by the schedule "
                             "beforehand (not measured): what catching the scene's stock checkpoint up costs (0)")
    parser.add_argument("--history", type=int, default=0,
                        help="earlier posted entries per wallet, seeded (batch grants, the real credit worker) into "
                             f"hours before the measured one, {HISTORY_PER_HOUR} per hour, each reconciled by its "
                             "passes first; each size then runs twice, with history 1 and with N, and the read "
                             "units per order are compared (0: no history)")
    parser.add_argument("--seed-threads", type=int, default=4, help="concurrent seeding threads (4)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for amounts (7)")
    add_json_argument(parser)
    args = parser.parse_args()
    args.hour_buckets_from_config = args.hour_buckets is None
    hour_buckets = args.hour_buckets or deployed["prod_hour_buckets"] or 16

    # Before any chalicelib settings are read (start_stack resets them): the bench's environment.
    import bench.rain as rain

    os.environ["RG_HOUR_BUCKETS"] = str(hour_buckets)
    from bench.capacity_rules import schemas_from_cloudformation
    from bench.meter import Meter, all_still_attached, attach_rewardgate
    from infra.template import data_resources
    from rewardgate_ops import services

    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="rewardgate-reconcile-"))
    print(f"starting DynamoDB Local and moto (logs in {workdir}) ...", file=sys.stderr)
    ddb, moto = rain.start_stack(workdir)
    with services.running(ddb, moto):
        import app
        from chalicelib import clock, settings

        if settings.settings().hour_buckets != hour_buckets:
            raise RuntimeError("RG_HOUR_BUCKETS was read before the bench set it")
        first_start = clock.hour_start_ms(FIRST_HOUR)
        apart = HOURS_APART + args.idle_hours + history_hours(args.history)  # each size's own idle/history hours
        fake = BenchClock(first_start)
        clock.now_ms = fake  # every caller looks clock.now_ms up at call time
        meter = Meter(schemas_from_cloudformation(data_resources("local")))
        attach_rewardgate(meter)  # before the first write: the meter's shadow sizes updates from it
        rain.isolate_requests_per_thread(app.app)
        client = rain.new_client()
        warmup = None
        if args.warmup:
            print(f"warming up ({args.warmup} orders, untimed) ...", file=sys.stderr)
            warmup = run_size(meter, client, fake, args, deployed, clock.hour_of(first_start - apart * HOUR_MS),
                              args.warmup, "warmup", args.seed - 1)
        runs = [(size, h) for size in args.sizes for h in ((1, args.history) if args.history else (0,))]
        results = [run_size(meter, client, fake, args, deployed,
                            clock.hour_of(first_start + number * apart * HOUR_MS), size, f"{number}:{size}:h{h}",
                            args.seed + number, h)
                   for number, (size, h) in enumerate(runs)]
        if not all_still_attached(meter):
            print("WARNING: a client was rebuilt during the run; some calls may not be metered", file=sys.stderr)
        print(report(meter, results, args, deployed, hour_buckets, warmup, time.perf_counter() - began))
        results_module.write(args.json, "reconcile", {"sizes": args.sizes, "hour_buckets": hour_buckets,
                                                      "orders_per_user": args.orders_per_user}, {
            "sizes": [{"orders": r.orders, "reconcile_s": r.reconcile_s,
                       "orders_per_s": r.orders / r.reconcile_s if r.reconcile_s else None,
                       "invocations": len(r.invocations), "status": r.status,
                       "rru_per_order": meter.usage(f"reconcile:{r.scope}").rru / r.orders if r.orders else None,
                       "wru_per_order": meter.usage(f"reconcile:{r.scope}").wru / r.orders if r.orders else None,
                       "problems": problems(r)} for r in results]})
    return 1 if any(problems(r) for r in [*results, *([warmup] if warmup else [])]) else 0


if __name__ == "__main__":
    sys.exit(main())
