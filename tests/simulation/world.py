"""The system under test, in-process on DynamoDB Local, and the thin adapter between it and the simulation.

Everything that knows rewardgate's shapes lives here (so a contract change touches this file only):
- requests go through the Chalice app's test client (routes, validation, problem bodies);
- the clock is `chalicelib.clock.now_ms`, replaced by the simulated clock;
- the credit queue is the simulation's own at-least-once queue (`SimQueue`): sends are captured (or made to
  fail), and the simulation decides which records reach the credit worker, in which order, how often;
  every other SQS call goes to the moto server;
- the payout provider is the simulation's `SimProvider`, installed in place of `payouts.provider()`;
- storage reads for the probes read the tables directly (never the code's own helpers for expectations).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.simulation import provider as sim_provider
from tests.simulation.model import Plan

ROOT = Path(__file__).resolve().parents[2]
HOUR_BUCKETS = 4
# The sweeper's Lambda time. Deployed: 60 s, with one storage call bounded by 13 s (RG_AWS_* defaults). The tests
# bound a call by 63 s (RG_AWS_READ_TIMEOUT_S=30 for DynamoDB Local), and the payout sweep starts no record with
# less than one call's bound left: a 120 s Lambda (60 s budget) would settle nothing at all.
SWEEPER_TIMEOUT_S = 300
CASH = "cash"
ASSET = "CNY"
_POINT = re.compile(r"""faults\.point\(\s*["']([^"']+)["']\s*\)""")


def fault_points() -> list[str]:
    """Every crash point the production code declares (`faults.point("...")`), found in its source."""
    found = set()
    for path in (ROOT / "chalicelib").rglob("*.py"):
        if path.name == "faults.py":
            continue
        found.update(_POINT.findall(path.read_text()))
    return sorted(found)


def hour_text(ms: int) -> str:
    """`YYYY-MM-DDTHH` of an instant (UTC)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H")


# --- the credit queue ----------------------------------------------------------------------------


@dataclass
class SimMessage:
    """One credit message in the simulated queue."""

    message_id: str
    body: str
    deliveries: int = 0
    extra_deliveries: int = 0  # duplicates SQS will still hand out after a successful delivery


@dataclass
class SimQueue:
    """At-least-once, unordered: the simulation picks what is delivered, and when."""

    messages: list[SimMessage] = field(default_factory=list)
    sent: int = 0
    send_failures: int = 0
    fail_next_sends: int = 0
    partial_next_send: bool = False

    def __len__(self) -> int:
        return len(self.messages)


class SqsProxy:
    """The SQS client the code sees: the credit queue is the SimQueue, everything else is moto."""

    def __init__(self, real: Any, credit_url: str, queue: SimQueue) -> None:
        self._real, self._url, self._queue = real, credit_url, queue

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
        if QueueUrl != self._url:
            return self._real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries, **kw)
        if self._queue.fail_next_sends > 0:
            self._queue.fail_next_sends -= 1
            self._queue.send_failures += 1
            raise ConnectionError("simulated SQS send failure")
        failed = []
        for index, entry in enumerate(Entries):
            if self._queue.partial_next_send and index == len(Entries) - 1:
                failed.append({"Id": entry["Id"], "SenderFault": False, "Code": "ServiceUnavailable",
                               "Message": "simulated"})
                self._queue.send_failures += 1
                continue
            self._queue.messages.append(SimMessage(uuid.uuid4().hex, entry["MessageBody"]))
            self._queue.sent += 1
        self._queue.partial_next_send = False
        return {"Successful": [], "Failed": failed}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str], **kw: Any) -> dict[str, Any]:
        if QueueUrl != self._url:
            return self._real.get_queue_attributes(QueueUrl=QueueUrl, AttributeNames=AttributeNames, **kw)
        return {"Attributes": {"ApproximateNumberOfMessages": str(len(self._queue.messages)),
                               "ApproximateNumberOfMessagesNotVisible": "0"}}


# --- the payout provider adapter -------------------------------------------------------------------


def provider_contract() -> str:
    """"payout_id" when rewardgate's PayoutProvider takes a global payout id and a recipient, else "request_id"."""
    from chalicelib.rewards import payouts

    params = inspect.signature(payouts.PayoutProvider.transfer).parameters
    return "payout_id" if "payout_id" in params else "request_id"


def _user_of(recipient_or_wallet: str) -> str:
    # old contract: the wallet id `{ns}#{act_id}#{asset}`; new contract: the user id itself
    parts = recipient_or_wallet.split("#")
    return parts[1] if len(parts) == 3 else recipient_or_wallet


class ProviderAdapter:
    """rewardgate's PayoutProvider protocol in front of the simulation's provider."""

    def __init__(self, world: World) -> None:
        self.world = world
        from chalicelib.rewards import payouts

        self.payouts = payouts

    def _result(self, status: str, reference: str | None) -> Any:
        if status == sim_provider.FAILED:
            return self.payouts.PayoutResult(status, reason="simulated provider refused")
        return self.payouts.PayoutResult(status, reference=reference)

    def transfer(self, payout_id: str, recipient: str, amount: int) -> Any:
        self.world.provider_calls.append(("transfer", payout_id, recipient, int(amount)))
        try:
            status, ref = self.world.provider.transfer(payout_id, _user_of(recipient), int(amount), self.world.now)
        except sim_provider.Timeout as exc:
            raise self.payouts.PayoutTimeout("simulated provider timeout") from exc
        except sim_provider.Conflict as exc:
            from chalicelib import errors

            conflict = getattr(self.payouts, "PayoutConflict", None) or errors.PayoutConflict  # type: ignore[attr-defined]
            raise conflict(f"payout {payout_id} exists with another recipient or amount") from exc
        return self._result(status, ref)

    def status(self, payout_id: str) -> Any:
        return self._result(*self.world.provider.status(payout_id))

    def records(self, start_ms: int, end_ms: int) -> list[Any]:
        record = getattr(self.payouts, "PayoutRecord", None)
        return [record(p.payout_id, p.recipient, p.amount, p.status, p.at_ms)
                for p in self.world.provider.records(start_ms, end_ms)] if record else []


# --- the world -----------------------------------------------------------------------------------


class _TickingTime:
    """The `time` module, but `monotonic()` advances a fixed tick per reading."""

    TICK_S = 0.25

    def __init__(self) -> None:
        import time

        self._time, self._now = time, 0.0

    def monotonic(self) -> float:
        self._now += self.TICK_S
        return self._now

    def __getattr__(self, name: str) -> Any:
        return getattr(self._time, name)


class World:
    """rewardgate in-process, with the simulated clock, queue and provider installed."""

    def __init__(self, plan: Plan, start_ms: int, provider: sim_provider.SimProvider) -> None:
        from tests.rewards_support import chalice_client, install_signing_key

        self.plan = plan
        self.now = start_ms
        self.skew_ms = 0  # the clock skew of the instance running the current action (code's clock = now + skew)
        self.provider = provider
        provider.now = lambda: self.now
        self.provider_calls: list[tuple[str, str, str, int]] = []
        self.queue = SimQueue()
        self.errors: list[str] = []  # answers a caller cannot act on (5xx) outside the model's judged calls
        self.assets: dict[str, list[str]] = {}  # scene -> every asset it has credited (coupon templates change)
        self._undo: list[tuple[Any, str, Any]] = []
        install_signing_key()
        self.client = chalice_client()
        self._install()

    @property
    def server_now(self) -> int:
        """What the code's clock reads on the instance running the current action (its skew included)."""
        return self.now + self.skew_ms

    # --- installation --------------------------------------------------------------------

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._undo.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def _install(self) -> None:
        import os

        from chalicelib import clients, clock
        from chalicelib import settings as settings_module
        from chalicelib.queues import CREDITS
        from chalicelib.rewards import config_store, payouts, ratelimit

        # fewer hour-index buckets: every reconciliation pass and sweep walks them all (the simulated hours are
        # the simulation's own, so no other data is indexed under them)
        self._env = {name: os.environ.get(name) for name in ("RG_HOUR_BUCKETS",)}
        os.environ["RG_HOUR_BUCKETS"] = str(HOUR_BUCKETS)
        settings_module.reset_settings()
        config_store.invalidate()
        ratelimit.reset()
        self._patch(clock, "now_ms", lambda: self.now + self.skew_ms)
        from tests.rewards_support import forget_schedule_watermark

        forget_schedule_watermark()  # the simulated hours are the simulation's own: its schedule starts afresh
        # reconciliation budgets its invocations with time.monotonic(): a tick per reading instead of the wall
        # clock, so how far an invocation gets depends on the seed, not on how loaded the machine is
        from chalicelib.reconcile import runner

        self._patch(runner, "time", _TickingTime())
        # the grant path's "shard seen full" hint lasts one wall-clock second: off, so shard choice is the seed's
        from chalicelib.rewards import grants

        self._patch(grants, "FULL_HINT_S", 0.0)
        proxy = SqsProxy(clients.sqs(), clients.queue_url(CREDITS.name), self.queue)
        self._patch(clients, "sqs", lambda: proxy)
        # indeterminate outcomes at every DynamoDB write, armed per action by the simulation
        from tests.simulation.storage_faults import StorageFaults

        self.storage = StorageFaults()
        self.storage.install()
        adapter = ProviderAdapter(self)
        original = payouts.provider
        # every module that imported `provider` by name gets the simulation's provider
        for module in [m for name, m in sys.modules.items() if name.startswith("chalicelib") and m is not None]:
            if getattr(module, "provider", None) is original:
                self._patch(module, "provider", lambda: adapter)

    def close(self) -> None:
        """Put back everything the world replaced."""
        import os

        from chalicelib import settings as settings_module

        while self._undo:
            owner, name, value = self._undo.pop()
            setattr(owner, name, value)
        self.storage.uninstall()
        for name, value in self._env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        settings_module.reset_settings()

    # --- HTTP through the app --------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request through the app: (status, parsed body). An injected crash propagates (no answer)."""
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs = {"body": json.dumps(body), "headers": {"Content-Type": "application/json"}}
        response = getattr(self.client.http, method.lower())(path, **kwargs)
        text = response.body.decode() if isinstance(response.body, bytes) else response.body
        try:
            return response.status_code, json.loads(text)
        except (ValueError, TypeError):
            return response.status_code, text

    def configure(self) -> None:
        """The activity (its children) and scenes, through the admin API."""
        plan = self.plan
        children = [{"sub_activity_id": c.sub_activity_id, "purpose": c.purpose, "starts_at_ms": c.starts_at_ms,
                     "ends_at_ms": c.ends_at_ms} for c in plan.children]
        status, body = self.call("PUT", f"/v1/admin/activities/{plan.activity_id}",
                                 {"name": "simulation", "children": children})
        assert status == 200, body
        for scene in plan.scenes:
            status, body = self.put_scene(scene.scene_id, self.scene_body(scene))
            assert status == 200, body

    @staticmethod
    def scene_body(scene: Any) -> dict[str, Any]:
        """A scene's document for the admin API."""
        body = {"award_type": scene.award_type, "order_cap": scene.order_cap, "total": scene.total,
                "stock_control": scene.stock_control, "shard_count": scene.shard_count}
        if scene.template_id:
            body["template_id"] = scene.template_id
        return body

    def put_scene(self, scene_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        """Create or replace a scene; the assets it has credited are remembered (where its orders may be)."""
        status, answer = self.call("PUT", f"/v1/admin/activities/{self.plan.activity_id}/scenes/{scene_id}", body)
        if status == 200:
            asset = f"coupon:{body['template_id']}" if body["award_type"] == "coupon" else ASSET
            if asset not in self.assets.setdefault(scene_id, []):
                self.assets[scene_id].append(asset)
        return status, answer

    def set_scene_switch(self, scene_id: str, on: bool) -> tuple[int, Any]:
        """Turn one scene's grants on or off."""
        return self.call("PUT", f"/v1/admin/switches/grants:{self.plan.activity_id}:{scene_id}", {"enabled": on})

    def coupon_scenes(self) -> set[str]:
        return {s.scene_id for s in self.plan.scenes if s.award_type == "coupon"}

    def grant_body(self, user: str, scene_id: str, rain_id: str, stage: str, amount: int,
                   open_time_ms: int) -> dict[str, Any]:
        """A grant request; `open_time_ms` is when the reward was won."""
        return {"activity_id": self.plan.activity_id, "scene_id": scene_id, "act_id": user, "rain_id": rain_id,
                "award_type": self.plan.scene(scene_id).award_type, "stage": stage, "amount": amount,
                "open_time_ms": open_time_ms}

    def grant(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self.call("POST", "/v1/grants", body)

    def grant_batch(self, bodies: list[dict[str, Any]]) -> tuple[int, Any]:
        return self.call("POST", "/v1/grants/batch", {"grants": bodies})

    def withdraw(self, user: str, request_id: str, amount: int, tokens: list[str] | None = None) -> tuple[int, Any]:
        body: dict[str, Any] = {"activity_id": self.plan.activity_id, "request_id": request_id, "amount": amount}
        if tokens:
            body["tokens"] = tokens
        return self.call("POST", f"/v1/wallets/{user}/withdrawals", body)

    # --- concurrent calls (the domain functions the routes call, mapped to status and body exactly as the
    # routes do: the test client swaps process-wide state per request, so it cannot be used from threads) ---

    def grant_direct(self, body: dict[str, Any]) -> tuple[int, Any]:
        from tests.rewards_support import grant_direct

        return grant_direct(body)

    def withdraw_direct(self, user: str, request_id: str, amount: int) -> tuple[int, Any]:
        from tests.rewards_support import withdraw_direct

        return withdraw_direct(user, {"activity_id": self.plan.activity_id, "request_id": request_id,
                                      "amount": amount})

    @staticmethod
    def race(calls: list[Any]) -> list[Any]:
        """Run the calls at the same moment, each in its own thread; their results in call order."""
        import threading

        results: list[Any] = [None] * len(calls)
        start = threading.Barrier(len(calls))

        def run(index: int) -> None:
            start.wait()
            results[index] = calls[index]()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def read_withdrawal(self, user: str, request_id: str, child: str) -> tuple[int, Any]:
        """GET the withdrawal (by parent activity on the new contract, by child wallet on the old)."""
        query = f"activity_id={self.plan.activity_id}"
        if provider_contract() == "request_id":
            query += f"&sub_activity_id={child}"
        return self.call("GET", f"/v1/wallets/{user}/withdrawals/{request_id}?{query}")

    def wallet(self, user: str, child: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/v1/wallets/{user}?activity_id={self.plan.activity_id}"
                                        f"&sub_activity_id={child}")
        assert status == 200, body
        return body

    def stock(self, scene_id: str, child: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/v1/activities/{self.plan.activity_id}/scenes/{scene_id}/stock"
                                        f"?sub_activity_id={child}")
        assert status == 200, body
        return body

    def leased(self, scene_id: str, child: str, shards: int = 64) -> int:
        """Units batch reservations still hold on a scene's shards in one child (`lease_*` attributes, read raw):
        counted as consumed until settled, or returned by reconciliation once the writer is gone."""
        from chalicelib.dynamo import connection
        from chalicelib.rewards import ids
        from chalicelib.rewards.tables import CounterItem

        counter_id = ids.stock_counter_id(self._ns(child), scene_id)
        keys = [dict(zip(("counter_id", "sk"), ({"S": k} for k in ids.shard_key(counter_id, i)), strict=True))
                for i in range(shards)]
        held = 0
        for start in range(0, len(keys), 100):
            answer = connection().client.batch_get_item(RequestItems={CounterItem.Meta.table_name: {
                "Keys": keys[start:start + 100], "ConsistentRead": True}})
            for item in answer["Responses"].get(CounterItem.Meta.table_name, []):
                held += sum(int(v["M"]["a"]["N"]) for name, v in item.items() if name.startswith("lease_"))
        return held

    def totals(self) -> dict[str, Any]:
        status, body = self.call("GET", f"/v1/activities/{self.plan.activity_id}/totals")
        assert status == 200, body
        return body

    def reconcile_hour(self, hour_ms: int, limit: int = 1000) -> tuple[list[dict[str, Any]] | None, int]:
        """Run (again) the due pass over one hour through the admin API until it is done: (its reports, or None
        when it did not finish in `limit` invocations; how many invocations it took)."""
        for invocation in range(1, limit + 1):
            status, body = self.call("POST", "/v1/admin/reconciliations", {"hour": hour_text(hour_ms)})
            if status == 200:
                return body["reports"], invocation
            if status != 202:
                self.errors.append(f"reconciliation of {hour_text(hour_ms)} answered {status} {body}")
                return None, invocation
        return None, limit

    # --- workers and schedules -------------------------------------------------------------

    def deliver(self, messages: list[SimMessage]) -> tuple[set[str], bool]:
        """One credit worker invocation over these messages: (ids it reported failed, whether it died)."""
        from chalicelib.routes.rewards import credit_worker
        from rewardgate_ops.lambda_events import LocalLambdaContext, sqs_event

        arn = "arn:aws:sqs:us-east-1:123456789012:credits"
        records = []
        for m in messages:
            m.deliveries += 1
            records.append({"messageId": m.message_id, "receiptHandle": uuid.uuid4().hex, "body": m.body,
                            "attributes": {"ApproximateReceiveCount": str(m.deliveries),
                                           "SentTimestamp": str(self.now), "SenderId": "sim",
                                           "ApproximateFirstReceiveTimestamp": str(self.now)},
                            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                            "eventSourceARN": arn, "awsRegion": "us-east-1"})
        from chalicelib.faults import InjectedCrash

        try:
            answer = credit_worker(sqs_event(records), LocalLambdaContext("credit_worker", 60)) or {}
        except InjectedCrash:
            return {m.message_id for m in messages}, True
        except Exception:  # the invocation failed as a whole (e.g. every record failed): all come back
            return {m.message_id for m in messages}, False
        return {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}, False

    def sweep(self) -> Any:
        """The rewards sweeper (unsent credit messages, unresolved withdrawals)."""
        from chalicelib.routes.rewards import rewards_sweeper
        from rewardgate_ops.lambda_events import LocalLambdaContext, scheduled_event

        context = LocalLambdaContext("rewards_sweeper", SWEEPER_TIMEOUT_S)
        return rewards_sweeper(scheduled_event("rewards_sweeper"), context)

    def reconcile_scheduled(self, timeout_s: float = 240) -> Any:
        """The reconciliation schedule as EventBridge fires it, in a Lambda with `timeout_s` left (a short one
        stops between steps and the next invocation resumes)."""
        from chalicelib.routes.reconcile import reconciler
        from rewardgate_ops.lambda_events import LocalLambdaContext, scheduled_event

        return reconciler(scheduled_event("reconciler"), LocalLambdaContext("reconciler", timeout_s))

    # --- storage, read directly (for the probes) ---------------------------------------------

    def _ns(self, child: str) -> str:
        from chalicelib.rewards import ids

        return ids.child_ns(self.plan.activity_id, child)

    def wallet_id(self, user: str, child: str) -> str:
        from chalicelib.rewards import ids

        return ids.wallet_id(self._ns(child), user, ASSET)

    def order_id(self, user: str, scene_id: str, rain_id: str, stage: str) -> str:
        from chalicelib.rewards import ids

        return ids.order_id(user, scene_id, rain_id, self.plan.scene(scene_id).award_type, stage)

    def orders_for(self, order_id: str) -> dict[str, tuple[int, str]]:
        """The stored orders of an order id in every child: child -> (amount, status name) (the first found, in
        the order of the assets its scene has had)."""
        from chalicelib.rewards.tables import STATUS_NAMES, LedgerEntry

        keys = [key for c in self.plan.children for key in self._order_addresses(c.sub_activity_id, order_id)]
        found: dict[str, tuple[int, str]] = {}
        for item in sorted(LedgerEntry.batch_get(keys, consistent_read=True), key=lambda i: keys.index(
                (i.wallet_id, i.entry_key))):
            found.setdefault(item.sub_activity_id, (int(item.amount), STATUS_NAMES.get(int(item.status),
                                                                                         str(item.status))))
        return found

    def _order_addresses(self, child: str, order_id: str) -> list[tuple[str, str]]:
        """Where an order may be stored: its wallet's credit entry (the wallet of the user its id starts with, in
        each asset its scene has credited)."""
        from chalicelib.rewards import ids

        user, scene_id = order_id.split("_")[:2]
        return [(ids.wallet_id(self._ns(child), user, asset), f"credit#{order_id}")
                for asset in self.assets.get(scene_id, [ASSET])]

    def wallet_items(self, user: str) -> dict[str, tuple[int, int, int]]:
        """The user's stored wallets: child -> (balance, total withdrawn, total refunded)."""
        from chalicelib.rewards.tables import WalletItem

        by_id = {self.wallet_id(user, c.sub_activity_id): c.sub_activity_id for c in self.plan.children}
        return {by_id[w.wallet_id]: (int(w.balance or 0), int(w.total_withdrawn or 0), int(w.total_refunded or 0))
                for w in WalletItem.batch_get(list(by_id), consistent_read=True)}

    def order_statuses(self, placements: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(child, order id) -> stored status name, for orders that exist."""
        from chalicelib.rewards.tables import STATUS_NAMES, LedgerEntry

        if not placements:
            return {}
        keys = {address: (c, oid) for c, oid in placements for address in self._order_addresses(c, oid)}
        return {keys[(i.wallet_id, i.entry_key)]: STATUS_NAMES.get(int(i.status), str(i.status))
                for i in LedgerEntry.batch_get(list(keys), consistent_read=True)}

    def withdrawals_of(self, user: str) -> list[tuple[str, str, int, str]]:
        """Every stored withdrawal of a user: (child, request id, amount, status)."""
        from chalicelib.rewards.tables import WithdrawalItem

        found = []
        for child in self.plan.children:
            for item in WithdrawalItem.query(self.wallet_id(user, child.sub_activity_id), consistent_read=True):
                found.append((child.sub_activity_id, item.request_id, int(item.amount), item.status))
        return found

    def credit_entries(self, user: str, child: str) -> list[str]:
        """Order keys (`{ns}#{order_id}`) of the posted ledger credits of one wallet (its flow, `by_time`)."""
        from chalicelib.rewards import ids
        from chalicelib.rewards.tables import LedgerEntry

        assets = dict.fromkeys(a for seen in self.assets.values() for a in seen)
        return [f"{self._ns(child)}#{e.entry_key.split('#', 1)[1]}" for asset in assets
                for e in LedgerEntry.by_time.query(ids.wallet_id(self._ns(child), user, asset), consistent_read=True)
                if e.kind == "credit"]

    # --- deliberate inconsistencies (reconciliation must report each) ------------------------

    def tamper_balance(self, user: str, child: str, delta: int) -> tuple[str, str]:
        from chalicelib.rewards.tables import WalletItem

        wallet_id = self.wallet_id(user, child)
        WalletItem(wallet_id).update(actions=[WalletItem.balance.add(delta)])
        return "wallet_mismatch", wallet_id

    def delete_credited_order(self, user: str, child: str, order_id: str, scene_id: str
                              ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Delete a credited order (its wallet's ledger credit). Returns what reconciliation must report (the
        batch that credited it disagrees with its tally) and what it may also report: the wallet (when a
        check reads the wallet's entries) and the scene's stock counter (when a pass compares it)."""
        from chalicelib.rewards.tables import LedgerEntry

        wallet_id = self.wallet_id(user, child)
        order = LedgerEntry.get(wallet_id, f"credit#{order_id}", consistent_read=True)
        batch = order.credited_by
        order.delete()
        # the batch's tally marker disagrees with its orders (tally_mismatch), or has none left (orphan_tally: the
        # deleted order was the only one of its batch in that child and hour)
        return ([("tally_mismatch|orphan_tally", f"{batch}#{ASSET}")],
                [("wallet_mismatch", wallet_id), ("stock_drift", f"{self._ns(child)}|{scene_id}")])

    def namespaces(self) -> set[str]:
        return {self._ns(c.sub_activity_id) for c in self.plan.children}


@contextlib.contextmanager
def local_stack() -> Iterator[None]:
    """DynamoDB Local and moto for a run outside pytest (what tests/conftest.py's `aws_stack` does)."""
    import os
    import tempfile

    import boto3

    import tests.conftest  # noqa: F401 - sets the environment before chalicelib is imported
    from chalicelib import clients, secrets, settings
    from infra.provision import provision_queues, provision_tables
    from rewardgate_ops import services

    logs = Path(tempfile.mkdtemp(prefix="rg-sim-"))
    ddb = services.start_dynamodb_local(services.free_port(), log_path=logs / "dynamodb.log")
    moto = services.start_moto_server(services.free_port(), log_path=logs / "moto.log")
    try:
        os.environ.update(services.endpoint_environment(ddb.endpoint, moto.endpoint))
        settings.reset_settings()
        clients.reset_clients()
        provision_tables(boto3.client("dynamodb"), "local")
        provision_queues(boto3.client("sqs"), "local")
        yield
    finally:
        secrets.reset()
        moto.stop()
        ddb.stop()
