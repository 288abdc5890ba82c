"""Factories and drivers shared by the rewards tests: configuration, grants, crediting, wallets."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from chalice.test import Client

from chalicelib import clients, secrets
from chalicelib.queues import CREDITS
from chalicelib.rewards import config_store, ratelimit, tokens
from chalicelib.settings import settings
from rewardgate_ops.lambda_events import Delivery, deliver_batch
from tests.conftest import ROOT, uid

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

    def grant_body(self, act_id: str, rain_id: str = "r1", amount: int = 100, stage: str = "1") -> dict[str, Any]:
        """A grant request for this campaign's scene."""
        return {"activity_id": self.activity_id, "scene_id": self.scene_id, "act_id": act_id, "rain_id": rain_id,
                "award_type": self.award_type, "stage": stage, "amount": amount}


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
    return Campaign(activity_id, "formal", scene_id, award_type, order_cap)


def purge_credits() -> None:
    """Empty the credit queue and its DLQ (tests that count messages start from nothing)."""
    sqs = clients.sqs()
    for name in (CREDITS.name, CREDITS.dlq_name):
        sqs.purge_queue(QueueUrl=clients.queue_url(name))


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


def reset_process_state() -> None:
    """Forget per-process caches between tests (config cache, rate buckets)."""
    config_store.invalidate()
    ratelimit.reset()
