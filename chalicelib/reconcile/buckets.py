"""The bucket step of a reconciliation pass: one `ledger/by_hour` partition read, examined and acted on.

The partition holds the hour's orders of the bucket's wallets (each its wallet's credit entry) and their
withdrawals and refunds: one query. `findings.examine_bucket` decides what they show; this step re-enqueues
stuck orders (once per pass, the order's `redriven` marker), checks the wallets the bucket touched
(`wallet_checks`) and returns a compact result the pass stores before its cursor moves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import clients, clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import ActivityNotFound, SceneNotFound
from chalicelib.reconcile import findings as F
from chalicelib.reconcile import wallet_checks
from chalicelib.reconcile.records import query_all
from chalicelib.rewards import config_store, grants, ids, orders
from chalicelib.rewards.tables import ACCEPTED, CREDITING, LedgerEntry
from chalicelib.settings import settings


class Scenes:
    """Per-invocation memory: scene configuration read once per scene, wallets already checked."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Any] = {}
        # A wallet touched in several buckets needs checking once; across invocations a repeat check
        # is harmless (findings are merged by id).
        self.checked_wallets: set[str] = set()
        self._credit_backlog: int | None = None

    def credit_backlog(self) -> int:
        """Messages waiting in (or held from) the credit queue, read once per invocation."""
        if self._credit_backlog is None:
            from chalicelib.queues import CREDITS

            attributes = clients.sqs().get_queue_attributes(
                QueueUrl=clients.queue_url(CREDITS.name),
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            self._credit_backlog = sum(int(v) for v in attributes.values())
        return self._credit_backlog

    def get(self, activity_id: str, scene_id: str) -> Any:
        key = (activity_id, scene_id)
        if key not in self._cache:
            try:
                self._cache[key] = config_store.get_scene(activity_id, scene_id)
            except (ActivityNotFound, SceneNotFound):
                self._cache[key] = None
        return self._cache[key]


def get_order(ref: str) -> LedgerEntry:
    """An order's ledger item by ref, strongly consistent; `DoesNotExist` when there is none."""
    wallet_id, entry_key = orders.parse_ref(ref)
    return with_retries(lambda: LedgerEntry.get(wallet_id, entry_key, consistent_read=True))


def hour_rows(partition: str) -> tuple[list[F.OrderRow], list[F.LedgerRow]]:
    """One `ledger/by_hour` partition: its orders, and its other (withdrawal, refund) entries."""
    items = [i.attribute_values for i in query_all(LedgerEntry.by_hour, partition)]
    return ([F.order_row(i) for i in items if F.is_order(i)],
            [F.ledger_row(i) for i in items if not F.is_order(i)])


def _redrive(ref: str, marker: str) -> str:
    """Re-enqueue a stuck order once per pass. Returns "sent", "already" (this pass) or "credited"."""
    try:
        item = get_order(ref)
    except DoesNotExist:
        return "credited"
    if item.status not in (ACCEPTED, CREDITING):
        return "credited"
    if item.redriven == marker:
        return "already"
    # Send first, then mark: a crash in between costs one duplicate message (crediting is idempotent),
    # whereas marking first could leave an order marked "redriven" that was never sent.
    grants.enqueue([orders.from_item(item)])
    try:
        with_retries(lambda: item.update(
            actions=[LedgerEntry.redriven.set(marker)],
            condition=LedgerEntry.status.is_in(ACCEPTED, CREDITING)))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
    return "sent"


BUCKET_LISTED = 2000  # findings kept per bucket, kind and child; beyond it only the count is kept
# Pending order keys kept per bucket and child for the tally step to re-read (a stored result stays far below
# DynamoDB's item size), and re-read per tally step at most; beyond either the check is deferred, and reported.
PENDING_KEPT = 1000
PENDING_REREAD = 5000


def listed(items: Iterable[F.Finding], cap: int = BUCKET_LISTED) -> dict[str, dict[str, dict[str, Any]]]:
    """Findings grouped by ns and kind: the items (up to `cap`) and how many did not fit."""
    grouped: dict[str, dict[str, dict[str, F.Finding]]] = defaultdict(lambda: defaultdict(dict))
    for finding in items:
        grouped[finding.ns][finding.kind][finding.id] = finding
    return {
        ns: {kind: {"items": [f.as_dict() for _, f in sorted(by_id.items())[:cap]],
                    "overflow": max(0, len(by_id) - cap)}
             for kind, by_id in kinds.items()}
        for ns, kinds in grouped.items()
    }


def merge_listed(into: dict[str, dict[str, dict[str, Any]]], part: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Merge stored findings, one per (kind, id): a wallet seen from two buckets is one finding."""
    for ns, kinds in part.items():
        for kind, entry in kinds.items():
            merged = into.setdefault(ns, {}).setdefault(kind, {"items": {}, "overflow": 0})
            for item in entry["items"]:
                merged["items"][item["id"]] = item
            merged["overflow"] += entry["overflow"]


def bucket_step(hour: str, pass_no: int, bucket: int, scenes: Scenes) -> dict[str, Any]:
    """Reconcile one bucket of the hour; returns its compact, storable result."""
    now_ms = clock.now_ms()
    partition = ids.hour_bucket(hour, bucket)
    order_rows, ledger_rows = hour_rows(partition)
    result = F.examine_bucket(order_rows, ledger_rows, now_ms, settings().accepted_sla_s * 1000)
    found = list(result.findings)
    by_ref = {o.ref: o for o in order_rows}
    marker = f"{hour}:p{pass_no}"
    redriven: dict[str, list[str]] = defaultdict(list)
    deferred: list[str] = []
    # At h+1 an order past the SLA while the credit queue still holds messages is most likely among
    # them (crediting is behind, not lost): re-sending would duplicate a whole backlog. At h+2 it is
    # re-sent whatever the queue holds, and reported.
    hold_redrive = pass_no == 1 and bool(result.stuck) and scenes.credit_backlog() > 0
    for ref in result.stuck:
        order = by_ref[ref]
        if hold_redrive and order.redriven != marker:
            deferred.append(f"redrive:{order.ns}|{order.order_key}")
            continue
        outcome = _redrive(ref, marker)
        if outcome == "credited":
            continue
        redriven[order.ns].append(order.order_key)
        if pass_no == 2 and order.reconcile:  # re-driven whatever its flag; reported only if it is reconciled
            found.append(F.Finding("missing_credit", order.ns, order.order_key,
                                   {"amount": order.amount, "created_at_ms": order.created_at_ms}))
    pending: dict[str, list[str]] = defaultdict(list)
    for ref in result.pending:
        pending[by_ref[ref].ns].append(ref)
    wallets = [w for w in result.wallets if w not in scenes.checked_wallets]
    scenes.checked_wallets.update(wallets)
    wallet_found, wallet_deferred = wallet_checks.check(wallets, wallet_checks.oldest_pending(order_rows))
    found.extend(wallet_found)
    deferred.extend(wallet_deferred)
    return {
        "totals": {ns: asdict(t) for ns, t in result.totals.items()},
        "scene_amounts": result.scene_amounts,
        "hour_totals": F.scene_totals(order_rows),
        "batches": result.batches,
        "pending": {ns: keys[:PENDING_KEPT] for ns, keys in pending.items()},
        "pending_overflow": {ns: len(keys) - PENDING_KEPT for ns, keys in pending.items() if len(keys) > PENDING_KEPT},
        "findings": listed(found),
        "redriven": {ns: {"count": len(keys), "items": sorted(keys)[:F.MAX_LISTED]} for ns, keys in redriven.items()},
        "deferred": deferred,
    }
