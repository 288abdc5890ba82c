"""A red-packet rain on the local stack: rewardgate as designed, next to a naive one-by-one baseline.

Starts its own DynamoDB Local (in memory) and a moto server (SQS, Secrets Manager; with the SQS
performance patches of `bench.moto_server`), provisions every table and queue from the deploy template,
installs a signing key and configures one cash scene per mode (budget control on, `--shards` shards).
Then, in one process, each mode grants USERS x ROUNDS rewards on `--api-threads` threads (each thread
one concurrent API Lambda instance) and drains the credit queue on `--worker-threads` threads (each a
concurrent invocation of the credit worker, fed by Lambda's SQS event-source semantics):

  rewardgate  POST /v1/grants/batch with up to 100 grants; credit messages sent 10 per SendMessageBatch;
              the credit worker receives CREDITS.batch_size records per invocation (10 per ReceiveMessage,
              as Lambda's poller does) and writes one "total distributed" tally per batch;
  naive       POST /v1/grants per reward (one message each); the worker gets one record per invocation,
              so its per-batch tally (marker + two shard ADDs, one transaction) is written per reward.

Every DynamoDB and SQS call is metered by AWS's billing rules (`bench.meter`); each mode is verified
(every granted order credited exactly once, wallets, totals and budget agree) before figures print.

    .venv/bin/python bench/rain.py                       # defaults: about 1-2 minutes on 2 cores
    .venv/bin/python bench/rain.py --users 2000 --rounds 5 --shards 16
    .venv/bin/python bench/rain.py --summary             # rewardgate mode only, small: well under a minute

`--summary` ends with one line: write units per credited reward (grant side, credit side, total), dollars
per million rewards, grants/s over a floor measured in the same run (the same number of plain conditional
puts on DynamoDB Local from the same number of threads), and oversold/lost/double_credits from
`bench.rain_audit`, an independent check over raw table scans (with a second, tight-budget scene granted
concurrently until sold out, so that "oversold" is tested where it can happen).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import results as results_module  # noqa: E402 - after the path insert
from bench.results import add_json_argument  # noqa: E402

# Before chalicelib is imported: table and queue names are fixed at import time. The configuration
# cache keeps its production default (RG_CONFIG_CACHE_S unset = 5 s); the tests run with none.
os.environ.update({"RG_STAGE": "local", "RG_LOG_LEVEL": "ERROR", "AWS_ACCESS_KEY_ID": "local",
                   "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                   "POWERTOOLS_METRICS_NAMESPACE": "rewardgate"})
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "RG_CONFIG_CACHE_S"):
    os.environ.pop(_name, None)

HOUR_MS = 3600 * 1000


@dataclass(frozen=True)
class Mode:
    """How one mode grants and credits."""

    name: str
    grants_per_request: int
    worker_batch_size: int


@dataclass
class ModeResult:
    """What one mode did, measured and verified."""

    mode: Mode
    rewards_planned: int = 0
    granted: int = 0
    grant_errors: Counter = field(default_factory=Counter)
    grant_s: float = 0.0
    credited: int = 0
    credit_failures: int = 0
    duplicate_deliveries: int = 0
    credit_s: float = 0.0
    verify: dict[str, Any] = field(default_factory=dict)


# --- the local stack ---------------------------------------------------------------------------


def start_stack(workdir: Path) -> tuple[Any, Any]:
    """DynamoDB Local (in memory) and the bench moto server, with every table and queue provisioned."""
    import boto3

    from bench import moto_server
    from chalicelib import clients, settings
    from infra.provision import provision_queues, provision_tables
    from rewardgate_ops import services

    ddb = services.start_dynamodb_local(services.free_port(), log_path=workdir / "dynamodb.log")
    try:
        moto = moto_server.start(services.free_port(), log_path=workdir / "moto.log")
    except BaseException:
        ddb.stop()
        raise
    try:
        os.environ.update(services.endpoint_environment(ddb.endpoint, moto.endpoint))
        settings.reset_settings()
        clients.reset_clients()
        provision_tables(boto3.client("dynamodb"), "local")
        provision_queues(boto3.client("sqs"), "local")
    except BaseException:
        moto.stop()
        ddb.stop()
        raise
    return ddb, moto


def isolate_requests_per_thread(chalice_app: Any) -> None:
    """Give each thread its own `current_request`, as each Lambda instance has its own process.

    Chalice keeps the request it is handling on the app object (Lambda runs one request at a time per
    instance); threads sharing one app would read each other's bodies.
    """
    slot = threading.local()

    class PerThreadRequests(type(chalice_app)):  # type: ignore[misc]
        current_request = property(lambda self: getattr(slot, "request", None),
                                   lambda self, value: setattr(slot, "request", value))
        lambda_context = property(lambda self: getattr(slot, "context", None),
                                  lambda self, value: setattr(slot, "context", value))

    chalice_app.__class__ = PerThreadRequests


def new_client() -> Any:
    """A chalice test client over the real app (one per API thread)."""
    from chalice.test import Client

    import app

    return Client(app.app, stage_name="local", project_dir=str(ROOT))


def call(client: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One HTTP call through the test client: (status, parsed JSON)."""
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs = {"body": json.dumps(body, separators=(",", ":")), "headers": {"Content-Type": "application/json"}}
    response = getattr(client.http, method.lower())(path, **kwargs)
    return response.status_code, json.loads(response.body)


def configure_campaign(client: Any, tag: str, shards: int, total: int, order_cap: int,
                       window_ms: tuple[int, int] | None = None, label: str = "spring-festival") -> str:
    """An activity with a `formal` child (open now, or over `window_ms`) and a cash scene `rain` with budget control."""
    now = int(time.time() * 1000)
    starts_at_ms, ends_at_ms = window_ms or (now - HOUR_MS, now + 24 * HOUR_MS)
    activity_id = f"{tag}-{label}-{random.randrange(16**8):08x}"
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}", {
        "name": f"bench {tag}",
        "children": [{"sub_activity_id": "formal", "purpose": "formal",
                      "starts_at_ms": starts_at_ms, "ends_at_ms": ends_at_ms}]})
    if status != 200:
        raise RuntimeError(f"activity configuration failed: {status} {body}")
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/rain", {
        "award_type": "cash", "order_cap": order_cap, "total": total, "shard_count": shards,
        "stock_control": True, "bill_text": "red packet rain"})
    if status != 200:
        raise RuntimeError(f"scene configuration failed: {status} {body}")
    return activity_id


# --- one mode ----------------------------------------------------------------------------------


def plan_rewards(users: int, rounds: int, amount_max: int, seed: int) -> list[tuple[str, str, int]]:
    """(act_id, rain_id, amount) for every user in every round, round by round like a rain."""
    rng = random.Random(seed)
    # 32-character user ids, like a hashed platform user id: key sizes decide when an item crosses 1 KB.
    act_ids = [f"u{user:07d}-{hashlib.sha256(str(user).encode()).hexdigest()[:23]}" for user in range(users)]
    return [(act_ids[user], f"r{rnd}", rng.randint(1, amount_max)) for rnd in range(rounds) for user in range(users)]


def run_grants(meter: Any, mode: Mode, activity_id: str, plan: list[tuple[str, str, int]], threads: int,
               result: ModeResult, progress: Any) -> dict[str, tuple[str, int]]:
    """Grant every planned reward through the HTTP handler; returns {order_id: (act_id, amount)}."""
    won_ms = int(time.time() * 1000)  # when the rain opened: sent as open_time_ms, as callers should

    def body(act_id: str, rain_id: str, amount: int) -> dict[str, Any]:
        return {"activity_id": activity_id, "scene_id": "rain", "act_id": act_id, "rain_id": rain_id,
                "award_type": "cash", "stage": "1", "amount": amount, "open_time_ms": won_ms}

    size = mode.grants_per_request
    requests = [plan[i:i + size] for i in range(0, len(plan), size)]
    granted: dict[str, tuple[str, int]] = {}
    errors: Counter = Counter()
    lock = threading.Lock()
    next_request = iter(range(len(requests)))

    def api_instance() -> None:
        client = new_client()
        while True:
            with lock:
                index = next(next_request, None)
            if index is None:
                return
            chunk = requests[index]
            started, overhead = time.perf_counter(), meter.overhead_s()
            if size == 1:
                status, answer = call(client, "POST", "/v1/grants", body(*chunk[0]))
                outcomes = [(status, answer)]
            else:
                status, answer = call(client, "POST", "/v1/grants/batch", {"grants": [body(*r) for r in chunk]})
                outcomes = [(r["status"], r["body"]) for r in answer["results"]] if status == 200 else \
                    [(status, answer)] * len(chunk)
            meter.record_invocation("api", time.perf_counter() - started - (meter.overhead_s() - overhead))
            meter.record_http()
            with lock:
                for (act_id, _, amount), (item_status, item_body) in zip(chunk, outcomes, strict=True):
                    if item_status == 202:
                        granted[item_body["order_id"]] = (act_id, amount)
                    else:
                        errors[f"{item_status} {item_body.get('code') or item_body.get('error', '')}".strip()] += 1
            progress.update(len(chunk))

    started = run_threads(api_instance, threads, "api")
    result.grant_s = time.perf_counter() - started
    result.granted = len(granted)
    result.grant_errors = errors
    return granted


def credit_queue() -> tuple[str, str]:
    """(URL, ARN) of the credit queue."""
    from chalicelib import clients
    from chalicelib.queues import CREDITS

    url = clients.queue_url(CREDITS.name)
    attributes = clients.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, attributes["QueueArn"]


def run_credits(meter: Any, mode: Mode, queue: tuple[str, str], expected: int, threads: int, result: ModeResult,
                progress: Any, timeout_s: float) -> None:
    """Drain the credit queue with the credit worker until every expected record succeeded."""
    from chalicelib import clients
    from chalicelib.routes.rewards import credit_worker
    from rewardgate_ops.lambda_events import deliver_batch, failed_ids

    sqs = clients.sqs()
    url, arn = queue
    lock = threading.Lock()
    done = threading.Event()
    # Counted by SQS message id: a standard queue may deliver a message twice (moto does so under
    # concurrent receives), and a duplicate must not stand in for a message still in the queue.
    credited_ids: set[str] = set()
    state: dict[str, Any] = {"successes": 0, "failed": 0, "finished_at": None}
    deadline = time.monotonic() + timeout_s

    def timed_worker(event: dict, context: Any) -> Any:
        ids = [record["messageId"] for record in event["Records"]]
        started, overhead = time.perf_counter(), meter.overhead_s()
        answer: Any = None
        try:
            answer = credit_worker(event, context)
            return answer
        finally:
            meter.record_invocation("credit_worker", time.perf_counter() - started - (meter.overhead_s() - overhead))
            succeeded = set(ids) - failed_ids(answer, ids) if answer is not None else set()
            with lock:
                state["successes"] += len(succeeded)
                state["failed"] += len(ids) - len(succeeded)
                fresh = len(succeeded - credited_ids)
                credited_ids.update(succeeded)
                if len(credited_ids) >= expected and not done.is_set():
                    state["finished_at"] = time.perf_counter()
                    done.set()
            progress.update(fresh)

    def poller() -> None:
        while not done.is_set() and time.monotonic() < deadline:
            # Long polling (1 s) like Lambda's pollers, so an idle moment is not a storm of empty receives.
            deliver_batch(sqs, url, arn, timed_worker, mode.worker_batch_size, wait_s=1,
                          function_name="credit_worker", failure_visibility_s=0)

    started = run_threads(poller, threads, "worker")
    result.credit_s = (state["finished_at"] or time.perf_counter()) - started
    result.credited = len(credited_ids)
    result.duplicate_deliveries = state["successes"] - len(credited_ids)
    result.credit_failures = state["failed"]


def run_threads(target: Any, count: int, name: str) -> float:
    """Run `target` on `count` threads (concurrent Lambda instances) and wait for all; returns their start time."""
    workers = [threading.Thread(target=target, name=f"{name}-{i}") for i in range(count)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return started


def verify(client: Any, activity_id: str, granted: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """Audit what was stored: every granted order credited exactly once, and the money adds up."""
    from chalicelib.rewards import ids
    from chalicelib.rewards.tables import CREDITED, LedgerEntry, WalletItem

    ns = ids.child_ns(activity_id, "formal")
    expected_by_wallet: Counter = Counter()
    orders_by_wallet: Counter = Counter()
    for act_id, amount in granted.values():
        wallet = ids.wallet_id(ns, act_id, ids.CASH_ASSET)
        expected_by_wallet[wallet] += amount
        orders_by_wallet[wallet] += 1
    # An order is its wallet's ledger credit.
    order_keys = [(ids.wallet_id(ns, act_id, ids.CASH_ASSET), f"credit#{order_id}")
                  for order_id, (act_id, _) in granted.items()]
    credited = sum(1 for item in LedgerEntry.batch_get(order_keys, consistent_read=True) if item.status == CREDITED)
    wallets = {w.wallet_id: w for w in WalletItem.batch_get(list(expected_by_wallet), consistent_read=True)}
    balances = sum(int(w.balance) for w in wallets.values())
    excess = sum(max(0, int(wallets[k].balance) - v) for k, v in expected_by_wallet.items() if k in wallets)
    extra_entries = sum(max(0, int(wallets[k].entry_count) - v) for k, v in orders_by_wallet.items() if k in wallets)
    _, totals = call(client, "GET", f"/v1/activities/{activity_id}/totals")
    distributed = next(c for c in totals["children"] if c["sub_activity_id"] == "formal")["distributed"]["CNY"]
    _, stock = call(client, "GET", f"/v1/activities/{activity_id}/scenes/rain/stock")
    granted_sum = sum(amount for _, amount in granted.values())
    report = {
        "orders": len(granted), "credited": credited, "lost": len(granted) - credited,
        "double_credits": extra_entries + (1 if excess else 0),
        "sum_wallet_balances": balances, "sum_granted": granted_sum,
        "distributed": distributed["amount"], "distributed_rewards": distributed["rewards"],
        "budget_consumed": stock["consumed"],
    }
    report["ok"] = (credited == len(granted) and report["double_credits"] == 0 and balances == granted_sum
                    and distributed["amount"] == granted_sum and distributed["rewards"] == len(granted)
                    and stock["consumed"] == granted_sum)
    return report


def run_mode(meter: Any, mode: Mode, client: Any, args: argparse.Namespace) -> ModeResult:
    """Configure, grant, credit and verify one mode; figures land in the meter's scopes `{mode}:...`."""
    from tqdm import tqdm

    result = ModeResult(mode)
    plan = plan_rewards(args.users, args.rounds, args.amount_max, args.seed)
    result.rewards_planned = len(plan)
    with meter.scope("setup"):
        activity_id = configure_campaign(client, mode.name[:4], args.shards, total=len(plan) * args.amount_max * 2,
                                         order_cap=args.amount_max)
        queue = credit_queue()
    with meter.scope(f"{mode.name}:grant"), tqdm(total=len(plan), desc=f"{mode.name:>10} grants ",
                                                  unit="reward", file=sys.stderr, leave=False) as bar:
        granted = run_grants(meter, mode, activity_id, plan, args.api_threads, result, bar)
    with meter.scope(f"{mode.name}:credit"), tqdm(total=len(granted), desc=f"{mode.name:>10} credits",
                                                   unit="reward", file=sys.stderr, leave=False) as bar:
        run_credits(meter, mode, queue, len(granted), args.worker_threads, result, bar, args.timeout)
    with meter.scope("verify"):
        result.verify = verify(client, activity_id, granted)
    result.verify.update(activity_id=activity_id, budget=len(plan) * args.amount_max * 2, granted=granted)
    return result


def warm_up(meter: Any, client: Any, args: argparse.Namespace) -> None:
    """Untimed: JIT-warm DynamoDB Local and load every code path once."""
    class Quiet:
        def update(self, n: int) -> None:
            pass

    with meter.scope("warmup"):
        modes = (Mode("warmup", 100, 100),) if args.summary else (Mode("warmup", 100, 100), Mode("warmupnaive", 1, 1))
        for mode in modes:
            result = ModeResult(mode)
            plan = plan_rewards(150, 1, args.amount_max, args.seed + 1)
            activity_id = configure_campaign(client, "warm", args.shards, total=10**9, order_cap=args.amount_max)
            granted = run_grants(meter, mode, activity_id, plan, args.api_threads, result, Quiet())
            run_credits(meter, mode, credit_queue(), len(granted), args.worker_threads, result, Quiet(), args.timeout)


def calibrate(meter: Any) -> tuple[int, int]:
    """Cross-check the meter against DynamoDB Local on non-transactional calls, where Local applies AWS's
    rules (item sizes, index writes, reads). Returns (calls that agree, calls)."""
    import boto3

    client = boto3.client("dynamodb")
    meter.attach(client)
    orders = ledger = "rewardgate-local-ledger"  # an order is its wallet's ledger credit
    key = {"wallet_id": {"S": "calibration#o"}, "entry_key": {"S": "credit#1"}}
    entries = [{"wallet_id": {"S": "calibration#w"}, "entry_key": {"S": f"credit#{i}"}, "time_key": {"S": f"{i:013d}"},
                "hour_bucket": {"S": "2000010100#1"}, "bill_text": {"S": "y" * 900}} for i in range(6)]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("put_item", {"TableName": orders, "Item": {**key, "hour_bucket": {"S": "2000010100#1"},
                                                    "unsent_bucket": {"S": "1"}, "created_at_ms": {"N": "1"},
                                                    "status": {"N": "1"}}}),
        ("update_item", {"TableName": orders, "Key": key,
                         "UpdateExpression": "SET #s = :s, time_key = :t REMOVE unsent_bucket",
                         "ExpressionAttributeNames": {"#s": "status"},
                         "ExpressionAttributeValues": {":s": {"N": "8"}, ":t": {"S": "0000000000001#credit#1"}}}),
        ("update_item", {"TableName": orders, "Key": key, "UpdateExpression": "SET note = :n",
                         "ExpressionAttributeValues": {":n": {"S": "x" * 1500}}}),
        ("update_item", {"TableName": orders, "Key": key, "UpdateExpression": "SET hour_bucket = :b",
                         "ExpressionAttributeValues": {":b": {"S": "2000010100#2"}}}),
        ("delete_item", {"TableName": orders, "Key": key}),
        ("get_item", {"TableName": orders, "Key": key, "ConsistentRead": True}),
        *[("put_item", {"TableName": ledger, "Item": entry}) for entry in entries],
        ("query", {"TableName": ledger, "KeyConditionExpression": "wallet_id = :w", "ConsistentRead": True,
                   "ExpressionAttributeValues": {":w": {"S": "calibration#w"}}}),
    ]
    calls += [("delete_item", {"TableName": ledger, "Key": {k: e[k] for k in ("wallet_id", "entry_key")}})
              for e in entries]
    agree = 0
    for number, (operation, kwargs) in enumerate(calls):
        with meter.scope(f"calibration:{number}"):
            answer = getattr(client, operation)(**kwargs, ReturnConsumedCapacity="TOTAL")
        used = meter.usage(f"calibration:{number}")
        agree += abs(used.wru + used.rru - answer["ConsumedCapacity"]["CapacityUnits"]) < 1e-9
    return agree, len(calls)


# --- the report ----------------------------------------------------------------------------------


def per(value: float, count: int) -> float:
    return value / count if count else float("nan")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3g}x" if b else "-"


def report(meter: Any, results: list[ModeResult], args: argparse.Namespace, prices: Any,
           calibration: tuple[int, int]) -> str:
    from bench.meter import cost

    lines: list[str] = []
    out = lines.append
    a, b = results
    rows: list[tuple[str, float, float, str]] = []
    figures = {}
    for r in results:
        grant, credit = meter.usage(f"{r.mode.name}:grant"), meter.usage(f"{r.mode.name}:credit")
        both = meter.usage([f"{r.mode.name}:grant", f"{r.mode.name}:credit"])
        figures[r.mode.name] = (grant, credit, both, r.credited, cost(both, prices, args.memory_mb))

    def row(label: str, fn: Any, fmt: str = "{:.3f}") -> None:
        va, vb = fn(a), fn(b)
        rows.append((label, va, vb, fmt))

    def u(r: ModeResult, part: int) -> Any:
        return figures[r.mode.name][part]

    def n(r: ModeResult) -> int:
        return figures[r.mode.name][3]

    row("grants/s (HTTP handler)", lambda r: r.granted / r.grant_s, "{:.0f}")
    row("credits/s (draining the queue)", lambda r: r.credited / r.credit_s, "{:.0f}")
    row("DynamoDB write units / credited reward", lambda r: per(u(r, 2).wru, n(r)), "{:.2f}")
    row("  grant side (API)", lambda r: per(u(r, 0).wru, n(r)), "{:.2f}")
    row("  credit side (worker, incl. tallies)", lambda r: per(u(r, 1).wru, n(r)), "{:.2f}")
    row("DynamoDB read units / credited reward", lambda r: per(u(r, 2).rru, n(r)), "{:.4f}")
    row("DynamoDB requests / reward", lambda r: per(u(r, 2).dynamodb_requests, n(r)), "{:.3f}")
    row("SQS API calls / reward (send+receive+delete)", lambda r: per(u(r, 2).sqs_api_calls, n(r)), "{:.3f}")
    row("  SendMessageBatch", lambda r: per(u(r, 2).sqs_calls["SendMessageBatch"], n(r)), "{:.3f}")
    row("  ReceiveMessage (empty ones included)", lambda r: per(u(r, 2).sqs_calls["ReceiveMessage"], n(r)), "{:.3f}")
    row("  DeleteMessageBatch", lambda r: per(u(r, 2).sqs_calls["DeleteMessageBatch"], n(r)), "{:.3f}")
    row("SQS billed requests / reward (64 KB chunks)", lambda r: per(u(r, 2).sqs_billed, n(r)), "{:.3f}")
    row("Lambda invocations / reward", lambda r: per(sum(u(r, 2).invocations.values()), n(r)), "{:.3f}")
    row("  API (= HTTP requests)", lambda r: per(u(r, 2).invocations["api"], n(r)), "{:.3f}")
    row("  credit worker (= batches)", lambda r: per(u(r, 2).invocations["credit_worker"], n(r)), "{:.3f}")
    row("API requests / reward", lambda r: per(u(r, 2).http_requests, n(r)), "{:.3f}")
    row("API invocation duration, ms (mean)",
        lambda r: 1000 * per(u(r, 2).invocation_s["api"], u(r, 2).invocations["api"]), "{:.1f}")
    row("worker invocation duration, ms (mean)",
        lambda r: 1000 * per(u(r, 2).invocation_s["credit_worker"], u(r, 2).invocations["credit_worker"]), "{:.1f}")
    row(f"Lambda GB-s / reward ({args.memory_mb} MB)",
        lambda r: per(sum(u(r, 2).invocation_s.values()) * args.memory_mb / 1024, n(r)), "{:.5f}")
    for key, label in (("dynamodb_writes", "DynamoDB writes"), ("dynamodb_reads", "DynamoDB reads"),
                       ("sqs", "SQS"), ("lambda_requests", "Lambda requests"),
                       ("lambda_duration", "Lambda duration"), ("api_gateway", "API Gateway (REST)"),
                       ("secrets_manager", "Secrets Manager"), ("total", "TOTAL")):
        row(f"$ per million rewards: {label}",
            lambda r, k=key: 1e6 * per(figures[r.mode.name][4][k], n(r)), "{:.3f}")

    out(f"red-packet rain on the local stack: {args.users} users x {args.rounds} rounds = "
        f"{a.rewards_planned} rewards per mode; cash scene, budget control on, {args.shards} shards")
    out(f"threads: {args.api_threads} API (concurrent API Lambda instances), {args.worker_threads} credit workers "
        f"(concurrent worker invocations); batch sizes: rewardgate {a.mode.grants_per_request} grants/request, "
        f"{a.mode.worker_batch_size} records/invocation; naive {b.mode.grants_per_request} and "
        f"{b.mode.worker_batch_size}")
    worker_limit = deployed_lambda()["worker_reserved_concurrency"]
    out(f"deploy (.chalice/config.json): credit_worker reserved concurrency {worker_limit or 'unset'}; "
        f"Lambda priced at {args.memory_mb} MB {args.lambda_arch}")
    out(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}; DynamoDB Local (in memory) + moto "
        f"(SQS patched, bench/moto_server.py); config cache 5 s (production default)")
    out("")
    width = max(len(r[0]) for r in rows) + 2
    out(f"{'':{width}}{'rewardgate':>14}{'naive':>14}{'rewardgate/naive':>18}")
    for label, va, vb, fmt in rows:
        out(f"{label:{width}}{fmt.format(va):>14}{fmt.format(vb):>14}{ratio(va, vb):>18}")
    out("")
    for r in results:
        grant, credit, both, count, _ = figures[r.mode.name]
        out(f"[{r.mode.name}] write units per credited reward by table/index: " + ", ".join(
            f"{t.replace('rewardgate-local-', '')} {v / count:.2f}" for t, v in sorted(both.wru_by.items())))
        out(f"[{r.mode.name}] DynamoDB calls per reward: " + ", ".join(
            f"{op} {v / count:.3f}" for op, v in sorted(both.dynamodb_calls.items())))
        if both.rru:
            out(f"[{r.mode.name}] read units per reward by table/index: " + ", ".join(
                f"{t.replace('rewardgate-local-', '')} {v / count:.4f}" for t, v in sorted(both.rru_by.items())))
        other = ", ".join(f"{s}.{op} {v}" for (s, op), v in sorted(both.other_calls.items())) or "none"
        out(f"[{r.mode.name}] SQS messages: {dict(both.sqs_messages)}; other AWS calls: {other}")
        out(f"[{r.mode.name}] DynamoDB Local's own ReturnConsumedCapacity: {both.local_reported_capacity / count:.2f} "
            f"units/reward (the meter's AWS-rule count: {(both.wru + both.rru) / count:.2f}); cancelled "
            f"transactions {both.cancelled_transactions}, failed conditional writes {both.failed_conditions}"
            + (f"; unmetered calls {dict(both.unmetered)}" if both.unmetered else ""))
        out(f"[{r.mode.name}] granted {r.granted}/{r.rewards_planned} in {r.grant_s:.1f} s"
            + (f" (refused: {dict(r.grant_errors)})" if r.grant_errors else "")
            + f"; credited {r.credited} in {r.credit_s:.1f} s ({r.credit_failures} failed records redelivered, "
            f"{r.duplicate_deliveries} duplicate deliveries answered as already credited)")
        v = r.verify
        out(f"[{r.mode.name}] verify: orders={v['orders']} credited={v['credited']} lost={v['lost']} "
            f"double_credits={v['double_credits']} sum(wallet balances)={v['sum_wallet_balances']} "
            f"sum(granted)={v['sum_granted']} distributed={v['distributed']} ({v['distributed_rewards']} rewards) "
            f"budget consumed={v['budget_consumed']} -> {'OK' if v['ok'] else 'MISMATCH'}")
    out("item sizes (write units are per started KB): " + item_sizes(meter))
    out("")
    out(f"prices: {prices.describe()}; Lambda {args.memory_mb} MB {args.lambda_arch} (as deployed unless overridden), "
        "duration = measured in-process time per invocation (meter overhead excluded; includes DynamoDB Local / moto "
        "latency on this machine)")
    out(f"meter vs DynamoDB Local on non-transactional calls (where Local follows AWS's rules): "
        f"{calibration[0]}/{calibration[1]} calls agree; on transactions Local reports 2.0 per table per call and "
        "doubles index writes, so the figures above count those by AWS's documented rules instead")
    out("capacity counted per call by AWS's rules (bench/meter.py): 2x per item in transactions, per KB written / "
        "4 KB read, index writes by projection; approximations: cancelled transactions charged as written "
        "(upper bound), number sizes per AWS's formula, shadow item sizes under concurrent updates")
    python = Path(sys.executable)
    shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    out("command: " + " ".join([str(shown), *sys.argv]))
    return "\n".join(lines)


FLOOR_TABLE = "rewardgate-local-bench-floor"


def measure_floor(count: int, threads: int) -> float:
    """Plain conditional puts per second on DynamoDB Local: `count` puts of an order-sized item, `threads` threads.

    The ceiling a grant path could reach on this machine: one write per reward, nothing else.
    """
    import boto3

    ddb = boto3.client("dynamodb")
    with contextlib.suppress(ddb.exceptions.ResourceInUseException):
        ddb.create_table(TableName=FLOOR_TABLE, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    run = f"{random.randrange(16**8):08x}"
    lock = threading.Lock()
    numbers = iter(range(count))
    padding = "x" * 500  # about an order item's size

    def putter() -> None:
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            ddb.put_item(TableName=FLOOR_TABLE, Item={"pk": {"S": f"{run}#{number}"}, "p": {"S": padding}},
                         ConditionExpression="attribute_not_exists(pk)")

    started = run_threads(putter, threads, "floor")
    return count / (time.perf_counter() - started)


def scan_all(table: str) -> list[dict[str, Any]]:
    """Every raw item of a table (low-level client, no rewardgate code)."""
    import boto3

    items: list[dict[str, Any]] = []
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return items


def independent_audit(activity_id: str, scene_id: str, budget: int, granted: dict[str, tuple[str, int]]) -> Any:
    """`bench.rain_audit.audit` over raw scans of the ledger (orders are their wallets' credits) and wallets tables."""
    from bench.rain_audit import audit

    return audit(granted, activity_id, scene_id, budget, scan_all("rewardgate-local-ledger"),
                 scan_all("rewardgate-local-wallets"))


def run_sold_out(meter: Any, client: Any, args: argparse.Namespace) -> tuple[ModeResult, str, int]:
    """A scene whose budget covers about half of its demand, granted and credited concurrently until sold out."""
    from chalicelib.queues import CREDITS

    mode = Mode("soldout", 20, CREDITS.batch_size)
    result = ModeResult(mode)
    plan = plan_rewards(max(40, args.users // 2), 2, args.amount_max, args.seed + 2)
    budget = sum(amount for _, _, amount in plan) // 2
    result.rewards_planned = len(plan)

    class Quiet:
        def update(self, n: int) -> None:
            pass

    with meter.scope("soldout"):
        activity_id = configure_campaign(client, "tight", args.shards, total=budget, order_cap=args.amount_max)
        granted = run_grants(meter, mode, activity_id, plan, args.api_threads, result, Quiet())
        run_credits(meter, mode, credit_queue(), len(granted), args.worker_threads, result, Quiet(), args.timeout)
    result.verify = {"granted": granted}
    return result, activity_id, budget


def item_sizes(meter: Any) -> str:
    """Mean and largest item size of the tables a reward writes, as the meter saw them written."""
    sizes = []
    for table in ("ledger", "wallets", "counters"):
        _, mean, largest = meter.item_sizes(f"rewardgate-local-{table}")
        sizes.append(f"{table} mean {mean:.0f} B, max {largest} B")
    return "; ".join(sizes)


def summary_line(meter: Any, result: ModeResult, prices: Any, memory_mb: int, floor_per_s: float,
                 checks: list[Any]) -> str:
    """The one line `--summary` ends with."""
    from bench.meter import cost

    grant, credit = meter.usage(f"{result.mode.name}:grant"), meter.usage(f"{result.mode.name}:credit")
    both = meter.usage([f"{result.mode.name}:grant", f"{result.mode.name}:credit"])
    n = result.credited
    dollars = cost(both, prices, memory_mb)["total"]
    grants_per_s = result.granted / result.grant_s if result.grant_s else float("nan")
    return (f"wru_grant={per(grant.wru, n):.2f} wru_credit={per(credit.wru, n):.2f} wru_total={per(both.wru, n):.2f} "
            f"usd_per_million={1e6 * per(dollars, n):.2f} grants_per_s_vs_floor={grants_per_s / floor_per_s:.3f} "
            f"oversold={sum(c.oversold for c in checks)} lost={sum(c.lost for c in checks)} "
            f"double_credits={sum(c.double_credits for c in checks)}")


def run_summary(meter: Any, client: Any, args: argparse.Namespace, prices: Any) -> int:
    """`--summary`: the rewardgate mode, a tight-budget scene, the floor, the independent check, one line."""
    from chalicelib.queues import CREDITS

    result = run_mode(meter, Mode("rewardgate", 100, CREDITS.batch_size), client, args)
    tight, tight_activity, tight_budget = run_sold_out(meter, client, args)
    with meter.scope("floor"):
        floor_per_s = measure_floor(result.rewards_planned, args.api_threads)
    with meter.scope("verify"):
        checks = [independent_audit(result.verify["activity_id"], "rain", result.verify["budget"], granted)
                  for granted in [result.verify["granted"]]]
        checks.append(independent_audit(tight_activity, "rain", tight_budget, tight.verify["granted"]))
    main_check, tight_check = checks
    n = result.credited
    grant_wru = meter.usage(f"{result.mode.name}:grant").wru_by
    credit_wru = meter.usage(f"{result.mode.name}:credit").wru_by
    print(f"rain: {result.rewards_planned} rewards ({args.users} users x {args.rounds} rounds), {args.shards} shards, "
          f"{args.api_threads} API threads, {args.worker_threads} credit workers; granted {result.granted}, "
          f"credited {result.credited}")
    grants_per_s, credits_per_s = result.granted / result.grant_s, result.credited / result.credit_s
    print(f"  throughput: floor (plain conditional puts, same threads) {floor_per_s:.0f}/s; grants/s "
          f"{grants_per_s:.0f} = {grants_per_s / floor_per_s:.3f} x floor; credits/s {credits_per_s:.0f} = "
          f"{credits_per_s / floor_per_s:.3f} x floor")
    for side, by in (("grant", grant_wru), ("credit", credit_wru)):
        print(f"  {side} write units per credited reward by table/index: " + ", ".join(
            f"{t.replace('rewardgate-local-', '')} {v / n:.2f}" for t, v in sorted(by.items())))
    sold_out = tight.grant_errors.get("409 sold_out", 0)
    print(f"tight scene: budget {tight_budget}, demand {tight.rewards_planned} grants; granted {tight.granted}, "
          f"sold_out {sold_out}, other refusals {sum(tight.grant_errors.values()) - sold_out}; credited "
          f"{tight.credited}; stored orders {tight_check.orders}, oversold {tight_check.oversold}")
    print(f"independent check (bench/rain_audit.py over raw scans): rain orders {main_check.orders}, "
          f"credited {main_check.credited}; lost {main_check.lost + tight_check.lost}, double credits "
          f"{main_check.double_credits + tight_check.double_credits}, oversold "
          f"{main_check.oversold + tight_check.oversold}")
    print("item sizes at the end (a write costs a unit per started KB; counters' largest is a batch's reservation "
          "journal): " + item_sizes(meter))
    python = Path(sys.executable)
    shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    print("command: " + " ".join([str(shown), *sys.argv]))
    print(summary_line(meter, result, prices, args.memory_mb, floor_per_s, checks))
    ok = all(c.ok for c in checks) and result.verify["ok"] and tight.granted > 0 and sold_out > 0
    results_module.write(args.json, "rain", params(args), {
        result.mode.name: mode_figures(meter, result, args, prices), "floor_puts_per_s": floor_per_s,
        "oversold": sum(c.oversold for c in checks), "lost": sum(c.lost for c in checks),
        "double_credits": sum(c.double_credits for c in checks), "ok": bool(ok)})
    return 0 if ok else 1


def deployed_lambda() -> dict[str, Any]:
    """Memory and architecture the deploy gives the API and credit-worker functions (Chalice's defaults,
    128 MB x86_64, when .chalice/config.json sets none), and the worker's reserved concurrency."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    functions = config.get("lambda_functions", {})
    memory = {name: functions.get(name, {}).get("lambda_memory_size", config.get("lambda_memory_size", 128))
              for name in ("api_handler", "credit_worker")}
    return {"memory_mb": max(memory.values()), "architecture": config.get("lambda_architecture", "x86_64"),
            "worker_reserved_concurrency": functions.get("credit_worker", {}).get("reserved_concurrency")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", action="store_true",
                        help="rewardgate mode only, small defaults, ends with one line of figures (see the docstring)")
    parser.add_argument("--users", type=int, default=None, help="users in the rain (500; 150 with --summary)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rain rounds; one reward per user per round (3; 2 with --summary)")
    parser.add_argument("--shards", type=int, default=8, help="budget counter shards of the scene (8)")
    parser.add_argument("--api-threads", type=int, default=4, help="concurrent API instances (4)")
    parser.add_argument("--worker-threads", type=int, default=4, help="concurrent credit-worker invocations (4)")
    parser.add_argument("--amount-max", type=int, default=888, help="largest red packet in fen (888)")
    deployed = deployed_lambda()
    parser.add_argument("--memory-mb", type=int, default=deployed["memory_mb"],
                        help=f"Lambda memory for GB-s pricing (.chalice/config.json: {deployed['memory_mb']})")
    parser.add_argument("--lambda-arch", choices=("x86_64", "arm64"), default=deployed["architecture"],
                        help=f"Lambda architecture for GB-s pricing (.chalice/config.json: {deployed['architecture']})")
    parser.add_argument("--seed", type=int, default=7, help="random seed for amounts (7)")
    parser.add_argument("--timeout", type=float, default=600, help="give up draining a queue after this (600 s)")
    add_json_argument(parser)
    args = parser.parse_args()
    # Powertools metrics off in the rain's own process: EMF documents belong in Lambda's log stream, here they
    # would fill stdout (the report). Not at import: bench/reconcile.py imports this module and reads its metric.
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    if args.users is None:
        args.users = 150 if args.summary else 500
    if args.rounds is None:
        args.rounds = 2 if args.summary else 3

    from bench.capacity_rules import schemas_from_cloudformation
    from bench.meter import Meter, Prices, all_still_attached, attach_rewardgate
    from chalicelib.queues import CREDITS
    from infra.template import data_resources
    from rewardgate_ops import services

    workdir = Path(tempfile.mkdtemp(prefix="rewardgate-rain-"))
    print(f"starting DynamoDB Local and moto (logs in {workdir}) ...", file=sys.stderr)
    ddb, moto = start_stack(workdir)
    with services.running(ddb, moto):
        import app
        from chalicelib import secrets, settings
        from chalicelib.rewards import tokens

        meter = Meter(schemas_from_cloudformation(data_resources("local")))
        attach_rewardgate(meter)
        with meter.scope("setup"):
            secrets.put_secret_json(settings.settings().reward_token_secret, tokens.new_secret_value("bench-key-1"))
        calibration = calibrate(meter)
        isolate_requests_per_thread(app.app)
        client = new_client()
        print("warming up ...", file=sys.stderr)
        warm_up(meter, client, args)
        if args.summary:
            return run_summary(meter, client, args, Prices(lambda_architecture=args.lambda_arch))
        modes = [Mode("rewardgate", 100, CREDITS.batch_size), Mode("naive", 1, 1)]
        results = [run_mode(meter, mode, client, args) for mode in modes]
        if not all_still_attached(meter):
            print("WARNING: a client was rebuilt during the run; some calls may not be metered", file=sys.stderr)
        print(report(meter, results, args, Prices(lambda_architecture=args.lambda_arch), calibration))
        results_module.write(args.json, "rain", params(args), {
            r.mode.name: mode_figures(meter, r, args, Prices(lambda_architecture=args.lambda_arch)) for r in results})
    return 0 if all(r.verify["ok"] for r in results) else 1


def params(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters of a run, for its JSON."""
    return {k: getattr(args, k) for k in ("users", "rounds", "shards", "api_threads", "worker_threads", "memory_mb",
                                          "lambda_arch", "summary")}


def mode_figures(meter: Any, result: ModeResult, args: argparse.Namespace, prices: Any) -> dict[str, Any]:
    """One mode's figures for `--json`: throughput, write units per reward by table, dollars per million."""
    from bench.meter import cost

    both = meter.usage([f"{result.mode.name}:grant", f"{result.mode.name}:credit"])
    n = result.credited
    return {
        "grants_per_s": result.granted / result.grant_s if result.grant_s else None,
        "credits_per_s": result.credited / result.credit_s if result.credit_s else None,
        "grants_per_request": result.mode.grants_per_request, "worker_batch_size": result.mode.worker_batch_size,
        "wru_per_reward": per(both.wru, n),
        "wru_per_reward_by_table": {t.replace("rewardgate-local-", ""): v / n for t, v in sorted(both.wru_by.items())},
        "usd_per_million": {k: 1e6 * per(v, n) for k, v in cost(both, prices, args.memory_mb).items()},
        "granted": result.granted, "credited": n, "verified": bool(result.verify["ok"]),
    }


if __name__ == "__main__":
    sys.exit(main())
