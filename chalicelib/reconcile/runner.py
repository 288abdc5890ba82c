"""Running a reconciliation pass: read, confirm, repair what is safe, report — resumably.

A pass over hour H is `RG_HOUR_BUCKETS` bucket steps, a planning step, catch-up steps when needed, and a
finishing step. Each bucket step reads one `ledger/by_hour` partition (the hour's orders of the bucket's
wallets, each its wallet's credit entry, and their withdrawals and refunds: one query), decides what they
show (`findings.examine_bucket`), re-enqueues stuck orders and checks the wallets the bucket touched; its
compact result is stored, then the cursor (`head.step`) advances. A Lambda that runs out of time stops
between steps and the next invocation continues from the cursor: nothing is read twice, nothing skipped,
nothing restarted from scratch.

The planning step records the hour's order totals per scene (`hours.record_hour`) and finds the hours a
stock checkpoint must still cross that no pass has recorded (normally none: every hour's pass records
its own). Each of those is summed in one step per bucket and recorded; then the finishing step checks
stock counters (their checkpoints caught up from the recorded
totals in O(1) reads, `hours.advance`), queues and callback events, and writes one report per (hour,
child activity, pass). Tallies are checked before that, one step per child activity of the hour.

Repairs are only those that cannot harm: re-enqueueing a stuck order (crediting is idempotent) at most
once per pass (the order's `redriven` marker) — at h+1 only when the credit queue is empty, so a
backlog that is merely slow is not sent twice — and finishing a crashed batch's tally (the marker makes
it exactly-once). Everything else is reported, never "fixed".
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import clients, clock
from chalicelib.callbacks import store as event_store
from chalicelib.callbacks import sweeper as event_sweeper
from chalicelib.callbacks.tables import EventRecord
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import ActivityNotFound, InvalidField, SceneNotFound
from chalicelib.observability import emit_now, logger
from chalicelib.play import reconcile as play_reconcile
from chalicelib.queues import ALL_QUEUES
from chalicelib.reconcile import findings as F
from chalicelib.reconcile import hours, wallet_checks
from chalicelib.reconcile import payouts as payout_reconcile
from chalicelib.reconcile.tables import ReconItem
from chalicelib.rewards import config_store, counters, crediting, grants, ids, orders, reservations
from chalicelib.rewards.orders import OPEN_TIME_AHEAD_MS
from chalicelib.rewards.tables import ACCEPTED, CREDITED, CREDITING, CounterItem, LedgerEntry
from chalicelib.settings import settings

HOUR_MS = 3600 * 1000
RUN_TTL_S = 14 * 24 * 3600
WALLET_THREADS = 8
RUN_NS = "_run"


# --- hours, passes, budgets ------------------------------------------------------------------


def parse_hour(text: str) -> str:
    """An hour from `YYYY-MM-DDTHH` (UTC) or `YYYYMMDDHH`, as `YYYYMMDDHH`; `InvalidField` otherwise."""
    for fmt in ("%Y-%m-%dT%H", "%Y%m%d%H"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).strftime("%Y%m%d%H")
        except (TypeError, ValueError):
            continue
    raise InvalidField("hour", "must be an hour like 2026-11-22T10 (UTC)")


def display_hour(hour: str) -> str:
    """`YYYYMMDDHH` as `YYYY-MM-DDTHH`."""
    return f"{hour[:4]}-{hour[4:6]}-{hour[6:8]}T{hour[8:]}"


def next_hour(hour: str, steps: int = 1) -> str:
    """The hour `steps` after `hour`."""
    return clock.hour_of(clock.hour_start_ms(hour) + steps * HOUR_MS)


def grace_ms() -> int:
    """How long after an hour ends its late writes are still awaited before it is reconciled."""
    return settings().reconcile_grace_s * 1000


def pass_for(hour: str, now_ms: int) -> int:
    """Pass 1 (h+1) until the hour is two hours old, pass 2 (h+2) after; refuses an hour not yet closed."""
    closes = clock.hour_start_ms(hour) + HOUR_MS + grace_ms()
    if now_ms < closes:
        raise InvalidField("hour", f"{display_hour(hour)} is not closed yet; it can be reconciled from "
                                   f"{datetime.fromtimestamp(closes / 1000, tz=UTC):%Y-%m-%dT%H:%M}Z")
    return 1 if now_ms < closes + HOUR_MS else 2


# A pass the schedule could not finish within its hour is continued for this many hours more.
LOOKBACK_HOURS = 6
ON_TIME_RUNS = 2


def due_runs(now_ms: int) -> list[tuple[str, int]]:
    """What the hourly schedule owes now, newest first, if not done yet.

    The last closed hour's first pass and the one before's second pass are on time; then the second pass
    of each of the LOOKBACK_HOURS hours before those. One of these still owed is a pass that did not
    finish in its hour (a long hour, throttling, the schedule down): it is continued, never dropped,
    and counted as behind. (An unfinished first pass is superseded by its hour's second pass.)
    """
    latest_closed = clock.hour_of(now_ms - HOUR_MS - grace_ms())
    return [(latest_closed, 1)] + [(next_hour(latest_closed, -back), 2) for back in range(1, LOOKBACK_HOURS + 2)]


class Budget:
    """How long this invocation may keep working (steps start only while time is left)."""

    def __init__(self, seconds: float | None) -> None:
        self._deadline = None if seconds is None else time.monotonic() + seconds

    def share(self, parts: int) -> Budget:
        """A budget for one of `parts` passes sharing what is left (unlimited stays unlimited)."""
        if self._deadline is None:
            return Budget(None)
        return Budget(max(0.0, self._deadline - time.monotonic()) / max(1, parts))

    @classmethod
    def from_context(cls, context: Any, reserve_s: float = 20.0) -> Budget:
        """The Lambda's remaining time minus a reserve for the step in progress."""
        if context is None or not hasattr(context, "get_remaining_time_in_millis"):
            return cls(None)
        return cls(max(0.0, context.get_remaining_time_in_millis() / 1000 - reserve_s))

    def expired(self) -> bool:
        """Whether no new step should start."""
        return self._deadline is not None and time.monotonic() >= self._deadline


# --- storage helpers -------------------------------------------------------------------------


def _run_pk(hour: str, pass_no: int) -> str:
    return f"run#{hour}#p{pass_no}"


def _get_body(pk: str, sk: str) -> dict[str, Any] | None:
    try:
        return json.loads(with_retries(lambda: ReconItem.get(pk, sk, consistent_read=True)).body)
    except DoesNotExist:
        return None


def _put_body(pk: str, sk: str, body: dict[str, Any], ttl_s: int | None = None) -> None:
    now = clock.now_ms()
    item = ReconItem(pk, sk, body=json.dumps(body, sort_keys=True, separators=(",", ":")), updated_at_ms=now,
                     expires_at=clock.utc_datetime(now + ttl_s * 1000) if ttl_s else None)
    with_retries(item.save)


def _query_all(index_or_model: Any, hash_key: str, **kwargs: Any) -> list[Any]:
    # One fresh query per attempt: a retried, half-consumed result iterator would skip items.
    return with_retries(lambda: list(index_or_model.query(hash_key, **kwargs)))


# --- configuration lookups -------------------------------------------------------------------


class _Scenes:
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

    def reconciled(self, activity_id: str, scene_id: str) -> bool:
        scene = self.get(activity_id, scene_id)
        # An order of a scene that no longer exists is still money: reconcile it.
        return scene is None or scene.reconcile


# --- the bucket step -------------------------------------------------------------------------


def _get_order(ref: str) -> LedgerEntry:
    """An order's ledger item by ref, strongly consistent; `DoesNotExist` when there is none."""
    wallet_id, entry_key = orders.parse_ref(ref)
    return with_retries(lambda: LedgerEntry.get(wallet_id, entry_key, consistent_read=True))


def _hour_rows(partition: str) -> tuple[list[F.OrderRow], list[F.LedgerRow]]:
    """One `ledger/by_hour` partition: its orders, and its other (withdrawal, refund) entries."""
    items = [i.attribute_values for i in _query_all(LedgerEntry.by_hour, partition)]
    return ([F.order_row(i) for i in items if F.is_order(i)],
            [F.ledger_row(i) for i in items if not F.is_order(i)])


def _redrive(ref: str, marker: str) -> str:
    """Re-enqueue a stuck order once per pass. Returns "sent", "already" (this pass) or "credited"."""
    try:
        item = _get_order(ref)
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


def _listed(items: Iterable[F.Finding], cap: int = BUCKET_LISTED) -> dict[str, dict[str, dict[str, Any]]]:
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


def _merge_listed(into: dict[str, dict[str, dict[str, Any]]], part: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Merge stored findings, one per (kind, id): a wallet seen from two buckets is one finding."""
    for ns, kinds in part.items():
        for kind, entry in kinds.items():
            merged = into.setdefault(ns, {}).setdefault(kind, {"items": {}, "overflow": 0})
            for item in entry["items"]:
                merged["items"][item["id"]] = item
            merged["overflow"] += entry["overflow"]


def bucket_step(hour: str, pass_no: int, bucket: int, scenes: _Scenes) -> dict[str, Any]:
    """Reconcile one bucket of the hour; returns its compact, storable result."""
    now_ms = clock.now_ms()
    partition = ids.hour_bucket(hour, bucket)
    order_rows, ledger_rows = _hour_rows(partition)
    result = F.examine_bucket(order_rows, ledger_rows, now_ms, settings().accepted_sla_s * 1000, scenes.reconciled)
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
        if pass_no == 2:
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
        "findings": _listed(found),
        "redriven": {ns: {"count": len(keys), "items": sorted(keys)[:F.MAX_LISTED]} for ns, keys in redriven.items()},
        "deferred": deferred,
    }


# --- the finishing step ----------------------------------------------------------------------


@dataclass
class _Aggregate:
    totals: dict[str, F.Totals]
    scene_amounts: dict[str, int]
    batches: dict[str, list[int]]
    listed: dict[str, dict[str, dict[str, Any]]]  # ns -> kind -> {"items": {id: item}, "overflow": n}
    redriven: dict[str, dict[str, Any]]
    deferred: list[str]
    hour_totals: dict[str, int]  # every order of the hour per "{ns}|{scene}", reconciled or not
    totals_complete: bool = True  # False when a bucket was read by a version that kept no hour totals
    pending: dict[str, list[str]] = field(default_factory=dict)  # ns -> orders still to be credited when read
    pending_unread: dict[str, int] = field(default_factory=dict)  # ns -> pending orders not kept (-1: unknown)


def _aggregate(parts: Iterable[dict[str, Any]]) -> _Aggregate:
    agg = _Aggregate({}, defaultdict(int), {}, {}, {}, [], defaultdict(int))
    for part in parts:
        if "hour_totals" not in part:
            agg.totals_complete = False
        for key, amount in part.get("hour_totals", {}).items():
            agg.hour_totals[key] += amount
        for ns, values in part["totals"].items():
            agg.totals.setdefault(ns, F.Totals()).add(F.Totals(**values))
        for key, amount in part["scene_amounts"].items():
            agg.scene_amounts[key] += amount
        for key, (amount, count, last) in part["batches"].items():
            sums = agg.batches.setdefault(key, [0, 0, 0])
            sums[0] += amount
            sums[1] += count
            sums[2] = max(sums[2], last)
        _merge_listed(agg.listed, part["findings"])
        for ns, entry in part["redriven"].items():
            merged = agg.redriven.setdefault(ns, {"count": 0, "items": []})
            merged["count"] += entry["count"]
            merged["items"] = sorted(merged["items"] + entry["items"])[:F.MAX_LISTED]
        agg.deferred.extend(part["deferred"])
        if "pending" not in part:  # read by a version that kept no pending orders: which ones is unknown
            for ns in part["totals"]:
                agg.pending_unread[ns] = -1
        for ns, keys in part.get("pending", {}).items():
            agg.pending.setdefault(ns, []).extend(keys)
        for ns, count in part.get("pending_overflow", {}).items():
            if agg.pending_unread.get(ns, 0) >= 0:
                agg.pending_unread[ns] = agg.pending_unread.get(ns, 0) + count
    return agg


def _add(agg: _Aggregate, found: Iterable[F.Finding]) -> None:
    _merge_listed(agg.listed, _listed(found))


def _discrepancies(listed: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """The report form of merged findings: per kind an exact count and the first items by id."""
    out = {}
    for kind in sorted(listed):
        items = [listed[kind]["items"][i] for i in sorted(listed[kind]["items"])]
        out[kind] = {"count": len(items) + listed[kind]["overflow"], "items": items[:F.MAX_LISTED]}
    return out, sum(entry["count"] for entry in out.values())


def _markers(ns: str, hour: str) -> dict[str, dict[str, int]]:
    """The hour's tally markers of a child namespace: "{ns}|{asset}|{batch}" -> amount, count, time."""
    found = {}
    for bucket in range(settings().hour_buckets):
        for item in _query_all(CounterItem, ids.tally_counter_id(ns, hour, bucket), consistent_read=True):
            batch, asset = item.sk.split("#", 1)
            found[f"{ns}|{asset}|{batch}"] = {"amount": int(item.amount or 0), "count": int(item.count or 0),
                                              "updated_at_ms": int(item.updated_at_ms or 0),
                                              "completed": int(item.completed_by is not None)}
    return found


def _hour_counter(ns: str, asset: str, hour: str) -> int:
    return counters.sum_shards(ids.distributed_hour_counter_id(ns, asset, hour), settings().distributed_shards)[0]


def _tally_namespaces(agg: _Aggregate) -> list[str]:
    """The child namespaces whose tallies the pass checks (one step each)."""
    return sorted(set(agg.totals) | {key.split("|", 1)[0] for key in agg.batches})


def _credited_since(refs: list[str]) -> list[F.OrderRow]:
    """Those of `refs` (orders pending when their bucket was read) that are CREDITED now (consistent reads)."""
    def read(ref: str) -> F.OrderRow | None:
        try:
            return F.order_row(_get_order(ref).attribute_values)
        except DoesNotExist:
            return None

    with ThreadPoolExecutor(max_workers=WALLET_THREADS) as pool:
        return [row for row in pool.map(read, refs) if row is not None and row.status == CREDITED]


def tally_step(hour: str, pass_no: int, ns: str, started_ms: int) -> None:
    """Check one child namespace's tallies and hour counters; store the result.

    The bucket results it starts from may have been read invocations ago: an order pending then may have been
    credited since, by a batch that died before its tally. So the orders pending then (at most PENDING_REREAD)
    are read again first, and what they show now counts with their batches. Reads: 2 x RG_HOUR_BUCKETS marker
    queries and one GetItem per pending order.
    """
    pk = _run_pk(hour, pass_no)
    agg = _aggregate([])
    tally_in = _get_body(pk, f"tallyin#{ns}") or {}
    agg.batches = tally_in.get("batches", {})
    for order in _credited_since(tally_in.get("pending", [])):
        F.add_to_batch(agg.batches, order)
    unread = tally_in.get("pending_unread", 0)
    if unread:  # orders that may have been credited since their bucket was read, and were not read again
        agg.deferred.append(f"tallies:{ns}#pending-unread:{'unknown' if unread < 0 else unread}")
    completed = _check_tallies(hour, agg, started_ms, [ns])
    # Stored in the per-bucket form (`_listed`: items as a list) that `finish` merges.
    stored = {n: {kind: {"items": [entry["items"][i] for i in sorted(entry["items"])], "overflow": entry["overflow"]}
                  for kind, entry in kinds.items()} for n, kinds in agg.listed.items()}
    _put_body(pk, f"tally#{ns}", {"findings": stored, "completed": completed.get(ns, 0),
                                  "deferred": agg.deferred}, RUN_TTL_S)


def _check_tallies(hour: str, agg: _Aggregate, started_ms: int, namespaces: list[str]) -> dict[str, int]:
    """Tallies against orders, finishing crashed batches; then each hour counter against its tallies.

    Returns, per child namespace, how many of the hour's tallies reconciliation has completed (read from
    the markers it tagged, so a second run reports the same number).
    """
    markers: dict[str, dict[str, int]] = {}
    for ns in sorted(namespaces):
        markers.update(_markers(ns, hour))
    found, to_complete = F.tally_findings(agg.batches, markers, hour, started_ms, clock.now_ms())
    completing = {f"{ns}|{asset}|{batch}" for ns, asset, batch, *_ in to_complete}
    for key in sorted(agg.batches):
        ns, asset, batch = key.split("|", 2)
        if batch and key not in markers and key not in completing:  # its Lambda may still be running: not yet
            agg.deferred.append(f"tallies:{ns}#batch-may-still-run:{batch}#{asset}")
    for ns, asset, batch, amount, count in to_complete:
        group = crediting.TallyGroup(ns, asset, hour, amount, count)
        crediting.write_tally(batch, group, completed_by="reconciliation")
    completed: dict[str, int] = defaultdict(int)
    pairs = {tuple(key.split("|", 2)[:2]) for key in list(agg.batches) + list(markers)}
    for ns, asset in sorted(pairs):
        before = _hour_counter(ns, asset, hour)
        current = {k: m for k, m in _markers(ns, hour).items() if k.startswith(f"{ns}|{asset}|")}
        after = _hour_counter(ns, asset, hour)
        completed[ns] += sum(m["completed"] for m in current.values())
        if before != after:
            agg.deferred.append(f"distributed:{ns}|{asset}")
            continue
        drift = F.distributed_finding(ns, asset, hour, before, after, sum(m["amount"] for m in current.values()))
        if drift:
            found.append(drift)
    _add(agg, found)
    return completed


def _stock_scenes(agg: _Aggregate, scenes: _Scenes) -> Iterator[tuple[str, Any, Any]]:
    """(scene_key, scene, child or None) of each stock-controlled, reconciled scene with orders in the hour."""
    for scene_key in sorted(agg.scene_amounts):
        ns, scene_id = scene_key.split("|", 1)
        activity_id, sub_activity_id = ns.split("/", 1)
        scene = scenes.get(activity_id, scene_id)
        if scene is None or not scene.stock_control or not scene.reconcile:
            continue
        try:
            child = config_store.get_activity(activity_id).child(sub_activity_id)
        except ActivityNotFound:
            child = None
        yield scene_key, scene, child


def _first_order_hour(child: Any) -> str:
    """The earliest hour an order of `child` can be written in: a grant's open_time_ms, which chooses the child,
    may be up to `OPEN_TIME_AHEAD_MS` ahead of the clock that files the order under its hour."""
    return clock.hour_of(child.starts_at_ms - OPEN_TIME_AHEAD_MS)


def _catch_up_hours(hour: str, agg: _Aggregate, scenes: _Scenes) -> list[str]:
    """The hours before `hour` that some stock checkpoint must cross and no pass has recorded (one query)."""
    bases = []
    for scene_key, scene, child in _stock_scenes(agg, scenes):
        if child is None:
            continue
        checkpoint = hours.read_checkpoint(ids.stock_counter_id(scene_key.split("|", 1)[0], scene.scene_id))
        if checkpoint is None or checkpoint["through"] < hour:
            bases.append(hours.checkpoint_base(checkpoint, _first_order_hour(child))[0])
    if not bases:
        return []
    return hours.unrecorded(next_hour(min(bases)), next_hour(hour, -1))


def _check_stock(hour: str, agg: _Aggregate, scenes: _Scenes) -> None:
    found: list[F.Finding] = []
    for scene_key, scene, child in _stock_scenes(agg, scenes):
        ns, scene_id = scene_key.split("|", 1)
        if child is None:
            agg.deferred.append(f"stock:{scene_key}")
            continue
        counter_id = ids.stock_counter_id(ns, scene_id)
        hour_amount = agg.hour_totals[scene_key] if agg.totals_complete else agg.scene_amounts[scene_key]
        advanced = hours.advance(counter_id, scene_key, hour, hour_amount, _first_order_hour(child))
        through, amount = advanced if advanced is not None else (hour, None)  # None: an hour is not summed yet
        shards = [F.ShardRow(s.index, s.cap, s.consumed, s.updated_at_ms) for s in counters.read_shards(counter_id)]
        stock, compared = F.stock_findings(ns, scene_id, scene.total, shards, amount,
                                           quiet_since_ms=clock.hour_start_ms(next_hour(through)))
        found.extend(stock)
        if not compared:
            agg.deferred.append(f"stock:{scene_key}")
    _add(agg, found)


def _dlq_depths() -> dict[str, int]:
    depths = {}
    for spec in ALL_QUEUES:
        attributes = clients.sqs().get_queue_attributes(
            QueueUrl=clients.queue_url(spec.dlq_name),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depths[spec.dlq_name] = sum(int(v) for v in attributes.values())
    return depths


def _unapplied_events(hour: str, now_ms: int) -> list[str]:
    """Callback events received in the hour and still not applied past the SLA."""
    start, end = clock.hour_start_ms(hour), clock.hour_start_ms(next_hour(hour))
    sla_ms = settings().received_sla_s * 1000
    ids_ = []
    for bucket in range(event_store.UNAPPLIED_BUCKETS):
        ids_.extend(item.event_id for item in _query_all(EventRecord.unapplied, str(bucket)))
    if not ids_:
        return []
    wanted = ["event_id", "status", "received_at_ms"]
    items = with_retries(lambda: list(EventRecord.batch_get(ids_, consistent_read=True, attributes_to_get=wanted)))
    return sorted(
        i.event_id for i in items
        if i.status == event_store.RECEIVED and start <= i.received_at_ms < end and now_ms - i.received_at_ms > sla_ms
    )


def _run_level(hour: str, pass_no: int, agg: _Aggregate) -> dict[str, Any]:
    now_ms = clock.now_ms()
    depths = _dlq_depths()
    unapplied = _unapplied_events(hour, now_ms)
    if unapplied:
        swept = event_sweeper.sweep(now_ms)  # claims and re-enqueues overdue events, with its own backoff
        logger.info("reconciliation re-enqueued callback events", extra={"hour": hour, "enqueued": swept.enqueued})
    found = [F.Finding("dlq_messages", RUN_NS, name, {"messages": depth}) for name, depth in depths.items() if depth]
    if pass_no == 2:
        found.extend(F.Finding("events_unapplied", RUN_NS, event_id) for event_id in unapplied)
    play = play_reconcile.reconcile_hour(hour)  # interactive play: events, settlement entries, counters
    found.extend(F.Finding(f.kind, RUN_NS, f.id, dict(f.details)) for f in play.findings)
    payouts = payout_reconcile.reconcile_hour(hour, RUN_NS, now_ms)  # withdrawals vs the provider's records
    found.extend(payouts.findings)
    _add(agg, found)
    return {"dlq_depths": depths, "events_unapplied": len(unapplied), "events_unapplied_ids": unapplied[:F.MAX_LISTED],
            "play": play.summary, "payouts": payouts.summary}


def _deferred_ns(deferred: str) -> str:
    """The child activity a deferred check belongs to: `wallet:{ns}#...` or `redrive:{ns}|...`."""
    kind, _, rest = deferred.partition(":")
    return rest.partition("|")[0] if kind == "redrive" else rest.partition("#")[0]


def _report(hour: str, pass_no: int, ns: str, agg: _Aggregate, completed: int) -> dict[str, Any]:
    discrepancies, count = _discrepancies(agg.listed.get(ns, {}))
    redriven = agg.redriven.get(ns, {"count": 0, "items": []})
    activity_id, _, sub_activity_id = ns.partition("/")
    return {
        "hour": display_hour(hour), "pass": pass_no, "activity_id": activity_id, "sub_activity_id": sub_activity_id,
        **asdict(agg.totals.get(ns, F.Totals())),
        "redriven": redriven["count"], "redriven_orders": redriven["items"],
        "tallies_completed": completed,
        "deferred_checks": sorted({d for d in agg.deferred if _deferred_ns(d) == ns}),
        "discrepancies": discrepancies,
        "discrepancy_count": count,
        "ok": count == 0,
    }


def _emit(reports: list[dict[str, Any]], run_report: dict[str, Any]) -> None:
    """One metric per run (an alarm watches it) and one log line per discrepancy kind and child activity."""
    total = sum(r["discrepancy_count"] for r in reports) + run_report["discrepancy_count"]
    emit_now("ReconciliationDiscrepancies", total)
    for report in [*reports, run_report]:
        for kind, entry in report["discrepancies"].items():
            logger.error("reconciliation discrepancy", extra={
                "kind": kind, "count": entry["count"], "hour": report["hour"], "pass": report["pass"],
                "activity_id": report.get("activity_id"), "sub_activity_id": report.get("sub_activity_id"),
                "sample": [item["id"] for item in entry["items"][:10]],
            })


def _hour_aggregate(hour: str, pass_no: int) -> _Aggregate:
    """The stored results of every bucket step of the pass, merged."""
    return _aggregate(json.loads(i.body) for i in _query_all(ReconItem, _run_pk(hour, pass_no),
                                                             range_key_condition=ReconItem.sk.startswith("bucket#"),
                                                             consistent_read=True))


def plan(hour: str, pass_no: int, scenes: _Scenes) -> tuple[list[str], list[str]]:
    """After the last bucket: record the hour's totals; return the unrecorded hours stock checkpoints must cross,
    and the child namespaces whose tallies are checked (each one's credit batches stored for its step)."""
    agg = _hour_aggregate(hour, pass_no)
    if agg.totals_complete:
        hours.record_hour(hour, agg.hour_totals)
    namespaces = _tally_namespaces(agg)
    pk = _run_pk(hour, pass_no)
    for ns in namespaces:
        pending = sorted(agg.pending.get(ns, []))
        unread = agg.pending_unread.get(ns, 0)
        if len(pending) > PENDING_REREAD:
            unread = -1 if unread < 0 else unread + len(pending) - PENDING_REREAD
            pending = pending[:PENDING_REREAD]
        _put_body(pk, f"tallyin#{ns}", {"batches": {k: v for k, v in agg.batches.items() if k.split("|", 1)[0] == ns},
                                        "pending": pending, "pending_unread": unread}, RUN_TTL_S)
    return _catch_up_hours(hour, agg, scenes), namespaces


def catch_up_step(hour: str, pass_no: int, gap_hour: str, bucket: int) -> None:
    """Sum one bucket of an hour no pass has recorded; after its last bucket, record the hour's totals."""
    rows, _ = _hour_rows(ids.hour_bucket(gap_hour, bucket))
    pk = _run_pk(hour, pass_no)
    _put_body(pk, f"gap#{gap_hour}#{bucket:04d}", F.scene_totals(rows), RUN_TTL_S)
    if bucket == settings().hour_buckets - 1:
        totals: dict[str, int] = defaultdict(int)
        for item in _query_all(ReconItem, pk, range_key_condition=ReconItem.sk.startswith(f"gap#{gap_hour}#"),
                               consistent_read=True):
            for key, amount in json.loads(item.body).items():
                totals[key] += amount
        hours.record_hour(gap_hour, totals)


def finish(hour: str, pass_no: int, head: dict[str, Any], scenes: _Scenes) -> list[dict[str, Any]]:
    """Checks that need the whole hour (the tally steps' results merged in); then the reports."""
    agg = _hour_aggregate(hour, pass_no)
    completed: dict[str, int] = {}
    for item in _query_all(ReconItem, _run_pk(hour, pass_no), range_key_condition=ReconItem.sk.startswith("tally#"),
                           consistent_read=True):
        part = json.loads(item.body)
        completed[item.sk.split("#", 1)[1]] = part["completed"]
        _merge_listed(agg.listed, part["findings"])
        agg.deferred.extend(part["deferred"])
    _check_stock(hour, agg, scenes)
    run_facts = _run_level(hour, pass_no, agg)
    reports = [_report(hour, pass_no, ns, agg, completed.get(ns, 0)) for ns in sorted(set(agg.totals) | set(agg.listed))
               if ns != RUN_NS]
    run_discrepancies, run_count = _discrepancies(agg.listed.get(RUN_NS, {}))
    run_report = {"hour": display_hour(hour), "pass": pass_no, **run_facts,
                  "discrepancies": run_discrepancies, "discrepancy_count": run_count, "ok": run_count == 0}
    for report in reports:
        _put_body(f"report#{hour}", f"{report['activity_id']}/{report['sub_activity_id']}#p{pass_no}", report)
    _put_body(f"report#{hour}", f"{RUN_NS}#p{pass_no}", run_report)
    _emit(reports, run_report)
    return reports


# --- driving a run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStatus:
    """Where a pass stands after an invocation."""

    hour: str
    pass_no: int
    status: str
    step: int
    steps: int
    invocation_steps: int
    catch_up_steps: int = 0

    @property
    def phase(self) -> str:
        """What the pass is doing next: hour buckets, planning, catch-up, tallies, finishing (or done)."""
        buckets = settings().hour_buckets
        if self.status == "done":
            return "done"
        if self.step < buckets:
            return "hour buckets"
        if self.step == buckets:
            return "planning"
        if self.step - buckets - 1 < self.catch_up_steps:
            return "catch-up: summing hours no pass recorded"
        return "tallies" if self.step < self.steps - 1 else "finishing"

    def body(self) -> dict[str, Any]:
        """JSON form."""
        return {"hour": display_hour(self.hour), "pass": self.pass_no, "status": self.status,
                "progress": {"step": self.step, "steps": self.steps}}


def _as_runs(hour_list: list[str]) -> list[list[Any]]:
    """Hours as runs of consecutive hours, `[first, count]` (compact in the head item however long the gap)."""
    runs: list[list[Any]] = []
    for hour in hour_list:
        if runs and next_hour(runs[-1][0], runs[-1][1]) == hour:
            runs[-1][1] += 1
        else:
            runs.append([hour, 1])
    return runs


def _nth_hour(runs: list[list[Any]], index: int) -> str:
    for first, count in runs:
        if index < count:
            return next_hour(first, index)
        index -= count
    raise IndexError(index)


def _step(hour: str, pass_no: int, head: dict[str, Any], scenes: _Scenes) -> None:
    """Do the step at the cursor and advance it (in `head`, which the caller stores).

    Steps: one per hour bucket; planning; one per bucket of each unrecorded hour to catch up over
    (`catch_up`); one per child namespace's tallies (`tally_ns`); finishing.
    """
    buckets = settings().hour_buckets
    step = head["step"]
    if step < buckets:
        _put_body(_run_pk(hour, pass_no), f"bucket#{step:04d}", bucket_step(hour, pass_no, step, scenes), RUN_TTL_S)
    elif step == buckets:
        gap, head["tally_ns"] = plan(hour, pass_no, scenes)
        head["catch_up"] = _as_runs(gap)
        head["steps"] = buckets + 1 + len(gap) * buckets + len(head["tally_ns"]) + 1
    else:
        runs, namespaces = head.get("catch_up", []), head.get("tally_ns", [])
        gap_steps = sum(count for _, count in runs) * buckets
        index = step - buckets - 1
        if index < gap_steps:
            catch_up_step(hour, pass_no, _nth_hour(runs, index // buckets), index % buckets)
        elif index - gap_steps < len(namespaces):
            tally_step(hour, pass_no, namespaces[index - gap_steps], head["started_at_ms"])
        else:
            finish(hour, pass_no, head, scenes)
            head["status"] = "done"
            head["finished_at_ms"] = clock.now_ms()
            return
    head["step"] = step + 1


def run(hour: str, pass_no: int, budget: Budget, restart: bool = False) -> RunStatus:
    """Advance pass `pass_no` over `hour` as far as the budget allows (always at least one step).

    A finished pass is left as it is unless `restart`, which runs it again from the start.
    """
    pk = _run_pk(hour, pass_no)
    head = _get_body(pk, "head")
    if head is None or (restart and head["status"] == "done"):
        head = {"status": "running", "step": 0, "started_at_ms": clock.now_ms(), "steps": settings().hour_buckets + 1}
        _put_body(pk, "head", head, RUN_TTL_S)
    scenes = _Scenes()
    done_here = 0
    while head["status"] != "done":
        if done_here and budget.expired():
            break
        _step(hour, pass_no, head, scenes)
        _put_body(pk, "head", head, RUN_TTL_S)
        done_here += 1
    return RunStatus(hour, pass_no, head["status"], head["step"], head["steps"], done_here,
                     sum(count for _, count in head.get("catch_up", [])) * settings().hour_buckets)


def status(hour: str, pass_no: int) -> dict[str, Any] | None:
    """A pass's progress record, if it was ever started."""
    return _get_body(_run_pk(hour, pass_no), "head")


def reports(hour: str) -> list[dict[str, Any]]:
    """Every stored report of an hour (each child activity and the run-level one, both passes)."""
    return [json.loads(i.body) for i in _query_all(ReconItem, f"report#{hour}", consistent_read=True)]


def scheduled(budget: Budget) -> list[RunStatus]:
    """The schedule's work: start or continue the due passes while time is left, newest first, each with a share.

    In each round every pass still owed gets an equal share of the time left (the newest first, so the
    on-time passes finish), and the rounds repeat while time is left: an old pass with a long way to go
    keeps advancing every invocation and never holds up a newer one.

    Every invocation emits `ReconciliationPassesBehind` (late passes still unfinished when it stops): an
    alarm fires when it is above 0, and when it is missing (the schedule itself stopped running).
    """
    due = due_runs(clock.now_ms())  # newest first
    late = set(due[ON_TIME_RUNS:])
    owed = [(hour, pass_no) for hour, pass_no in due
            if (head := status(hour, pass_no)) is None or head["status"] != "done"]
    outcomes: dict[tuple[str, int], RunStatus] = {}
    pending = list(owed)
    while pending and not (outcomes and budget.expired()):
        this_round = list(pending)
        for index, (hour, pass_no) in enumerate(this_round):
            if outcomes and budget.expired():
                break
            outcome = run(hour, pass_no, budget.share(len(this_round) - index))
            before = outcomes.get((hour, pass_no))
            if before is not None:
                outcome = replace(outcome, invocation_steps=before.invocation_steps + outcome.invocation_steps)
            outcomes[(hour, pass_no)] = outcome
            if outcome.status == "done":
                pending.remove((hour, pass_no))
    ran = list(outcomes.values())
    finished = {(r.hour, r.pass_no) for r in ran if r.status == "done"}
    reservations.return_expired()  # grant batches' reservations left by dead processes (reservation_returned)
    behind = sorted(r for r in owed if r in late and r not in finished)
    _emit_behind(behind)
    return ran


def _emit_behind(behind: list[tuple[str, int]]) -> None:
    emit_now("ReconciliationPassesBehind", len(behind))
    if behind:
        logger.error("reconciliation behind", extra={
            "passes": [f"{display_hour(hour)} pass {pass_no}" for hour, pass_no in behind]})
