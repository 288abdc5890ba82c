"""Factories and drivers shared by the rewards tests: configuration, grants, crediting, wallets."""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalice.test import Client

from chalicelib import clients, clock, secrets
from chalicelib.errors import RewardgateError
from chalicelib.process_state import reset as reset_process_state  # noqa: F401 - the tests' name for it
from chalicelib.queues import CREDITS
from chalicelib.rewards import payouts, tokens
from chalicelib.settings import settings
from rewardgate_ops.lambda_events import Delivery, deliver_batch
from tests.conftest import ROOT, uid
from tests.sim_clock import FakeClock
from tests.sqs_support import take_messages

HOUR_MS = 3600 * 1000


def install_signing_key(kid: str = "test-key-1") -> dict[str, Any]:
    """Put a fresh Ed25519 signing key into (moto's) Secrets Manager; return the secret value."""
    value = tokens.new_secret_value(kid)
    secrets.put_secret_json(settings().reward_token_secret, value)
    return value


def chalice_client() -> Client:
    """A chalice test client over the real app, on the local stage."""
    import app

    return Client(app.app, stage_name="local", project_dir=str(ROOT))


def call(client: Client, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One HTTP call through the test client; returns (status, parsed JSON body or text)."""
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs = {"body": json.dumps(body), "headers": {"Content-Type": "application/json"}}
    response = getattr(client.http, method.lower())(path, **kwargs)
    text = response.body.decode() if isinstance(response.body, bytes) else response.body
    try:
        return response.status_code, json.loads(text)
    except (ValueError, TypeError):
        return response.status_code, text


@dataclass
class Campaign:
    """One configured activity with one child window open now, and one scene."""

    activity_id: str
    sub_activity_id: str
    scene_id: str
    award_type: str
    order_cap: int
    won_ms: int | None = None  # when its rewards are won: every grant_body's open_time_ms unless told

    def grant_body(self, act_id: str, rain_id: str = "r1", amount: int = 100, stage: str = "1",
                   open_time_ms: int | None = None) -> dict[str, Any]:
        """A grant request for this campaign's scene, won at `open_time_ms` (default: the campaign's `won_ms`, else
        the server's time now). The same call gives the same body: a retry names the same open time."""
        if open_time_ms is None:
            open_time_ms = clock.now_ms() if self.won_ms is None else self.won_ms
        return {"activity_id": self.activity_id, "scene_id": self.scene_id, "act_id": act_id, "rain_id": rain_id,
                "award_type": self.award_type, "stage": stage, "amount": amount,
                "open_time_ms": open_time_ms}


def make_campaign(client: Client, *, award_type: str = "cash", total: int = 1_000_000, shard_count: int = 4,
                  order_cap: int = 10_000, stock_control: bool = True, rate_limit_per_s: int = 0,
                  now_ms: int | None = None, extra_children: list[dict[str, Any]] | None = None) -> Campaign:
    """Configure an activity (one `formal` child open now) and one scene through the admin API."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    activity_id, scene_id = uid("act"), uid("scene")
    children = [{"sub_activity_id": "formal", "purpose": "formal",
                 "starts_at_ms": now_ms - HOUR_MS, "ends_at_ms": now_ms + 24 * HOUR_MS}]
    children += extra_children or []
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}",
                        {"name": "test campaign", "children": children})
    assert status == 200, body
    scene: dict[str, Any] = {"award_type": award_type, "order_cap": order_cap, "total": total,
                             "shard_count": shard_count, "stock_control": stock_control,
                             "rate_limit_per_s": rate_limit_per_s}
    if award_type == "coupon":
        scene["template_id"] = "tpl1"
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/{scene_id}", scene)
    assert status == 200, body
    return Campaign(activity_id, "formal", scene_id, award_type, order_cap, won_ms=now_ms)


def drain_queue(name: str) -> int:
    """Delete every message now visible in a queue; returns how many."""
    return len(take_messages(clients.queue_url(name)))


def purge_credits() -> None:
    """Empty the credit queue and its DLQ (tests that count messages start from nothing)."""
    for name in (CREDITS.name, CREDITS.dlq_name):
        drain_queue(name)


def queue_arn(name: str) -> str:
    """ARN of a queue by name."""
    url = clients.queue_url(name)
    return clients.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def deliver_credits(max_batches: int = 100, batch_size: int = 10, failure_visibility_s: int | None = 0) -> Delivery:
    """Run the credit worker over the credit queue until it is empty (or `max_batches` ran)."""
    from chalicelib.routes.rewards import credit_worker

    total = Delivery()
    url, arn = clients.queue_url(CREDITS.name), queue_arn(CREDITS.name)
    for _ in range(max_batches):
        done = deliver_batch(clients.sqs(), url, arn, credit_worker, batch_size,
                             function_name="credit_worker", failure_visibility_s=failure_visibility_s)
        if done.received == 0:
            break
        total.received += done.received
        total.succeeded += done.succeeded
        total.failed += done.failed
        total.failed_ids |= done.failed_ids
    return total


# --- domain-level drivers (thread-safe: chalice.test.Client swaps os.environ and the app's
# current_request per call, so concurrent tests call the same domain functions the routes call and
# map outcomes exactly as the routes do) -----------------------------------------------------------


def grant_direct(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /v1/grants without HTTP: (status, body) exactly as the route answers."""
    from chalicelib.http import problem_body, status_for
    from chalicelib.rewards import grants
    from chalicelib.rewards.orders import parse_grant

    try:
        granted = grants.grant(parse_grant(body))
    except RewardgateError as error:
        return status_for(error), problem_body(error)
    return (202 if granted.created else 200), granted.body()


def withdraw_direct(act_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /v1/wallets/{act_id}/withdrawals without HTTP: (status, body) exactly as the route answers."""
    from chalicelib.errors import PayoutFailed
    from chalicelib.http import problem_body, status_for
    from chalicelib.rewards import withdrawals
    from chalicelib.rewards.tables import PAID, REFUNDED

    try:
        outcome = withdrawals.withdraw(act_id, withdrawals.parse_withdrawal(body))
    except RewardgateError as error:
        return status_for(error), problem_body(error)
    if outcome.status == REFUNDED:
        failed = PayoutFailed(f"payout failed and was refunded: {outcome.failure}", **outcome.body())
        return status_for(failed), problem_body(failed)
    return (200 if outcome.status == PAID else 202), outcome.body()


def withdrawal_body(campaign: Campaign, amount: int, request_id: str | None = None,
                    tokens_: list[str] | None = None) -> dict[str, Any]:
    """A withdrawal request for a campaign's wallet."""
    body: dict[str, Any] = {"activity_id": campaign.activity_id, "request_id": request_id or uid("wd"),
                            "amount": amount}
    if tokens_ is not None:
        body["tokens"] = tokens_
    return body


# --- hand-built SQS deliveries -----------------------------------------------------------------


def credit_records(bodies: list[str]) -> list[dict[str, Any]]:
    """SQS event records for credit-message bodies, each with its own messageId (as real deliveries have)."""
    from rewardgate_ops.lambda_events import sqs_record

    arn = f"arn:aws:sqs:us-east-1:123456789012:{CREDITS.name}"
    return [sqs_record({"MessageId": str(uuid.uuid4()), "ReceiptHandle": uuid.uuid4().hex, "Body": body}, arn)
            for body in bodies]


def run_credit_worker(bodies: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Invoke the real credit worker once with these bodies; (its answer, the bodies it reported failed)."""
    from chalicelib.routes.rewards import credit_worker
    from rewardgate_ops.lambda_events import LocalLambdaContext, sqs_event

    records = credit_records(bodies)
    answer = credit_worker(sqs_event(records), LocalLambdaContext("credit_worker", 60)) or {}
    failed_ids = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
    return answer, [r["body"] for r in records if r["messageId"] in failed_ids]


def take_credit_messages(expected: int | None = None, max_polls: int = 200) -> list[str]:
    """Receive and delete credit-queue messages; stop when `expected` arrived or the queue reads empty."""
    return [m["Body"] for m in take_messages(clients.queue_url(CREDITS.name), expected=expected, max_polls=max_polls)]


def credit_message_for(campaign: Campaign, order_id: str, **changes: Any) -> str:
    """The credit message of a stored order (optionally with facts changed, to forge a poison message)."""
    from dataclasses import replace

    from chalicelib.rewards import orders

    order = orders.from_item(order_item(campaign, order_id))
    return orders.credit_message(replace(order, **changes))


# --- reading state back -----------------------------------------------------------------------


def ns_of(campaign: Campaign, sub_activity_id: str | None = None) -> str:
    """The child namespace of a campaign (its `formal` child unless told)."""
    from chalicelib.rewards import ids

    return ids.child_ns(campaign.activity_id, sub_activity_id or campaign.sub_activity_id)


def wallet_id_of(campaign: Campaign, act_id: str, sub_activity_id: str | None = None, asset: str = "CNY") -> str:
    """The wallet key of a user in a campaign's child activity."""
    from chalicelib.rewards import ids

    return ids.wallet_id(ns_of(campaign, sub_activity_id), act_id, asset)


def order_id_of(campaign: Campaign, act_id: str, rain_id: str = "r1", stage: str = "1") -> str:
    """The order id a grant of `campaign.grant_body(act_id, rain_id, stage=stage)` creates."""
    from chalicelib.rewards import ids

    return ids.order_id(act_id, campaign.scene_id, rain_id, campaign.award_type, stage)


def order_item(campaign: Campaign, order_id: str, sub_activity_id: str | None = None) -> Any:
    """The stored order item (strongly consistent), or None."""
    from pynamodb.exceptions import DoesNotExist

    from chalicelib.rewards.tables import LedgerEntry

    # An order is its wallet's ledger credit: the wallet of the user the order id starts with.
    asset = "CNY" if campaign.award_type == "cash" else "coupon:tpl1"
    wallet_id = wallet_id_of(campaign, order_id.split("_", 1)[0], sub_activity_id, asset)
    try:
        return LedgerEntry.get(wallet_id, f"credit#{order_id}", consistent_read=True)
    except DoesNotExist:
        return None


def orders_of(campaign: Campaign, sub_activity_id: str | None = None) -> list[Any]:
    """Every order (credit entry, pending or posted) of a campaign's child (a scan: test data only)."""
    from chalicelib.rewards.tables import LedgerEntry

    prefix = ns_of(campaign, sub_activity_id) + "#"
    return list(LedgerEntry.scan(LedgerEntry.wallet_id.startswith(prefix) & LedgerEntry.entry_key.startswith("credit#"),
                                 consistent_read=True))


def wallet_item(wallet_id: str) -> Any:
    """The wallet item (strongly consistent), or None."""
    from chalicelib.rewards import wallets

    return wallets.get_wallet_item(wallet_id)


def wallet_items(campaign: Campaign, sub_activity_id: str | None = None) -> list[Any]:
    """Every wallet of a campaign's child (a scan: test data only)."""
    from chalicelib.rewards.tables import WalletItem

    prefix = ns_of(campaign, sub_activity_id) + "#"
    return list(WalletItem.scan(WalletItem.wallet_id.startswith(prefix), consistent_read=True))


def ledger(wallet_id: str) -> list[Any]:
    """Every posted ledger entry of a wallet (its partition also holds its pending orders: not posted yet)."""
    from chalicelib.rewards.tables import LedgerEntry

    return list(LedgerEntry.query(wallet_id, filter_condition=LedgerEntry.posted_at_ms.exists(),
                                  consistent_read=True))


@dataclass
class LedgerSums:
    """A wallet's ledger, summed by kind."""

    credits: int = 0
    withdrawals: int = 0
    refunds: int = 0
    entries: int = 0
    credited_orders: list[str] | None = None

    @property
    def balance(self) -> int:
        """What the balance must be: credits - withdrawals + refunds."""
        return self.credits - self.withdrawals + self.refunds


def ledger_sums(wallet_id: str) -> LedgerSums:
    """Sum a wallet's ledger entries by kind."""
    sums = LedgerSums(credited_orders=[])
    for entry in ledger(wallet_id):
        sums.entries += 1
        if entry.kind == "credit":
            sums.credits += int(entry.amount)
            order_key = f"{wallet_id.split('#', 1)[0]}#{entry.entry_key.split('#', 1)[1]}"
            sums.credited_orders.append(order_key)  # type: ignore[union-attr]
        elif entry.kind == "withdrawal":
            sums.withdrawals += int(entry.amount)
        elif entry.kind == "refund":
            sums.refunds += int(entry.amount)
        else:
            raise AssertionError(f"unknown ledger kind {entry.kind!r}")
    return sums


def stock_shards(campaign: Campaign, sub_activity_id: str | None = None) -> list[Any]:
    """The scene's stock/budget shard items (strongly consistent), in shard order."""
    from chalicelib.rewards import counters, ids
    from chalicelib.rewards.tables import CounterItem

    counter = ids.stock_counter_id(ns_of(campaign, sub_activity_id), campaign.scene_id)
    keys = [ids.shard_key(counter, i) for i in range(counters.allocated_shards(counter))]
    return sorted(CounterItem.batch_get(keys, consistent_read=True), key=lambda i: i.counter_id)


def shard_index(item: Any) -> int:
    """The shard number of a shard item (the suffix of its partition key)."""
    from chalicelib.rewards import ids

    return ids.shard_index(item.counter_id)


def distributed(campaign: Campaign, sub_activity_id: str | None = None, asset: str = "CNY") -> tuple[int, int]:
    """(amount, count) on the child's "total distributed" counter."""
    from chalicelib.rewards import totals

    return totals.distributed(ns_of(campaign, sub_activity_id), asset)


def tally_marker(campaign: Campaign, hour: str, batch_id: str, asset: str = "CNY",
                 sub_activity_id: str | None = None) -> Any:
    """The tally marker of one batch (None if the batch's tally was never written)."""
    from pynamodb.exceptions import DoesNotExist

    from chalicelib.rewards import crediting
    from chalicelib.rewards.tables import CounterItem

    counter_id, sk = crediting.tally_marker_key(ns_of(campaign, sub_activity_id), hour, batch_id, asset)
    try:
        return CounterItem.get(counter_id, sk, consistent_read=True)
    except DoesNotExist:
        return None


def payout_record(request_id: str) -> Any:
    """What the fake payout provider recorded for a withdrawal (its status: PAID, FAILED or UNKNOWN).

    The provider knows payout ids, not request ids: the withdrawal (request ids are fresh per test) names it.
    """
    from chalicelib.rewards.payouts import FakePayoutProvider
    from chalicelib.rewards.tables import WithdrawalItem

    found = list(WithdrawalItem.scan(WithdrawalItem.request_id == request_id, consistent_read=True))
    assert len(found) <= 1, f"request id {request_id} is used by {len(found)} withdrawals: name the wallet"
    return FakePayoutProvider().status(found[0].payout_id if found else request_id)


@contextlib.contextmanager
def payout_mode(mode: str) -> Iterator[None]:
    """Set the fake payout provider's (global) mode for a block; always back to "ok" afterwards."""
    from chalicelib.rewards import payouts

    payouts.set_fake_mode(mode)
    try:
        yield
    finally:
        payouts.set_fake_mode("ok")


@contextlib.contextmanager
def switch(client: Client, name: str, value: dict[str, Any]) -> Iterator[None]:
    """Set a degradation switch through the admin API for a block; switched back on afterwards."""
    status, body = call(client, "PUT", f"/v1/admin/switches/{name}", value)
    assert status == 200, body
    try:
        yield
    finally:
        default = {"percent": 100} if "percent" in value else {"enabled": True}
        status, body = call(client, "PUT", f"/v1/admin/switches/{name}", default)
        assert status == 200, body


def deliver_credits_concurrently(workers: int = 4, batch_size: int = 10) -> Delivery:
    """Drain the credit queue with `workers` concurrent worker loops (Lambda's concurrent invocations).

    Each loop stops at an empty receive; a final single loop picks up records that failed and came back.
    """
    import threading

    total, lock = Delivery(), threading.Lock()

    def loop() -> None:
        done = deliver_credits(max_batches=10_000, batch_size=batch_size)
        with lock:
            total.received += done.received
            total.succeeded += done.succeeded
            total.failed += done.failed
            total.failed_ids |= done.failed_ids

    threads = [threading.Thread(target=loop) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loop()
    return total


def credit_messages_of(campaign: Campaign) -> list[str]:
    """Drain the (shared) credit queue and keep the credit messages of this campaign's activity."""
    from chalicelib.errors import PoisonMessage
    from chalicelib.rewards.orders import parse_credit_message

    mine = []
    for body in take_credit_messages():
        try:
            if parse_credit_message(body).activity_id == campaign.activity_id:
                mine.append(body)
        except PoisonMessage:
            continue
    return mine


# Each far_hour_clock gets its own span of hours, this many apart: a test moves its clock at most about 1 700
# hours on (a week of idle hours, 10 hours apart), so no two tests of a run reconcile the same hour (a pass is
# recorded per hour: a test meeting another's finished pass would find nothing left to run).
HOURS_APART = 3000
_far_hours = itertools.count(random.randrange(0, 8))


def forget_schedule_watermark() -> None:
    """Delete the schedule's "reconciled through" watermark (`chalicelib.reconcile.watermark`): a test at its own
    hours starts the schedule afresh (its first deploy), not from another test's hours thousands of hours away."""
    from chalicelib.reconcile import watermark
    from chalicelib.reconcile.tables import ReconItem

    ReconItem(watermark.PK, watermark.SK).delete()


def far_hour_clock(monkeypatch: Any) -> tuple[FakeClock, int]:
    """The clock at 20 minutes past an hour years ahead that no other test of this run uses, so the hour
    partitions and passes a test reconciles hold only its own traffic; the signing key installed, the fake payout
    provider paying, the credit queue empty. Returns the clock and the hour's start (ms)."""
    hour_ms = 3600 * 1000
    hour_start = clock.hour_start_ms("2045010100") + next(_far_hours) * HOURS_APART * hour_ms
    fake = FakeClock(hour_start + 20 * 60 * 1000)
    monkeypatch.setattr(clock, "now_ms", fake)
    forget_schedule_watermark()
    install_signing_key()
    payouts.set_fake_mode("ok")
    purge_credits()
    return fake, hour_start


def dies_after_reserving(monkeypatch: Any) -> None:
    """A grant batch's process dies right after its reservation: nothing runs after the `grant.after_reservation`
    crash point (not even the settle an unwinding exception would do)."""
    from chalicelib.faults import InjectedCrash
    from chalicelib.rewards import reservations

    def dead(*_args: Any, **_kwargs: Any) -> None:
        raise InjectedCrash("the process is gone")

    monkeypatch.setattr(reservations, "settle", dead)
