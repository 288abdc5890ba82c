"""The checks of a reconciliation pass that need the whole hour: tallies, stock, queues, events, payouts.

They start from the stored bucket results, merged (`aggregate`). Tallies run one step per child namespace
(`tally_step`); stock, queues, callback events, interactive play and payouts run in the finishing step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import clients, clock, deadline
from chalicelib.callbacks import store as event_store
from chalicelib.callbacks import sweeper as event_sweeper
from chalicelib.callbacks.tables import EventRecord
from chalicelib.dynamo import with_retries
from chalicelib.errors import ActivityNotFound
from chalicelib.observability import logger
from chalicelib.play import reconcile as play_reconcile
from chalicelib.queues import ALL_QUEUES
from chalicelib.reconcile import findings as F
from chalicelib.reconcile import hours
from chalicelib.reconcile import payouts as payout_reconcile
from chalicelib.reconcile.buckets import Scenes, get_order, listed, merge_listed
from chalicelib.reconcile.hours import next_hour
from chalicelib.reconcile.records import RUN_NS, RUN_TTL_S, get_body, put_body, query_all, run_pk
from chalicelib.rewards import config_store, counters, crediting, ids, reservations
from chalicelib.rewards.orders import OPEN_TIME_AHEAD_MS
from chalicelib.rewards.tables import CREDITED, CounterItem
from chalicelib.settings import settings

READ_THREADS = 8  # orders re-read in parallel by a tally step


@dataclass
class Aggregate:
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


def aggregate(parts: Iterable[dict[str, Any]]) -> Aggregate:
    agg = Aggregate({}, defaultdict(int), {}, {}, {}, [], defaultdict(int))
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
        merge_listed(agg.listed, part["findings"])
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


def add_findings(agg: Aggregate, found: Iterable[F.Finding]) -> None:
    merge_listed(agg.listed, listed(found))


def discrepancy_report(listed: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], int]:
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
        for item in query_all(CounterItem, ids.tally_counter_id(ns, hour, bucket), consistent_read=True):
            batch, asset = item.sk.split("#", 1)
            found[f"{ns}|{asset}|{batch}"] = {"amount": int(item.amount or 0), "count": int(item.count or 0),
                                              "updated_at_ms": int(item.updated_at_ms or 0),
                                              "completed": int(item.completed_by is not None)}
    return found


def _hour_counter(ns: str, asset: str, hour: str) -> int:
    return counters.sum_shards(ids.distributed_hour_counter_id(ns, asset, hour), settings().distributed_shards)[0]


def tally_namespaces(agg: Aggregate) -> list[str]:
    """The child namespaces whose tallies the pass checks (one step each)."""
    return sorted(set(agg.totals) | {key.split("|", 1)[0] for key in agg.batches})


def _credited_since(refs: list[str]) -> list[F.OrderRow]:
    """Those of `refs` (orders pending when their bucket was read) that are CREDITED now (consistent reads)."""
    def read(ref: str) -> F.OrderRow | None:
        try:
            return F.order_row(get_order(ref).attribute_values)
        except DoesNotExist:
            return None

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return [row for row in pool.map(deadline.carried(read), refs) if row is not None and row.status == CREDITED]


def tally_step(hour: str, pass_no: int, ns: str, started_ms: int) -> None:
    """Check one child namespace's tallies and hour counters; store the result.

    The bucket results it starts from may have been read invocations ago: an order pending then may have been
    credited since, by a batch that died before its tally. So the orders pending then (at most PENDING_REREAD)
    are read again first, and what they show now counts with their batches. Reads: 2 x RG_HOUR_BUCKETS marker
    queries and one GetItem per pending order.
    """
    pk = run_pk(hour, pass_no)
    agg = aggregate([])
    tally_in = get_body(pk, f"tallyin#{ns}") or {}
    agg.batches = tally_in.get("batches", {})
    for order in _credited_since(tally_in.get("pending", [])):
        F.add_to_batch(agg.batches, order)
    unread = tally_in.get("pending_unread", 0)
    if unread:  # orders that may have been credited since their bucket was read, and were not read again
        agg.deferred.append(f"tallies:{ns}#pending-unread:{'unknown' if unread < 0 else unread}")
    completed = _check_tallies(hour, agg, started_ms, [ns])
    # Stored in the per-bucket form (`listed`: items as a list) that `finish` merges.
    stored = {n: {kind: {"items": [entry["items"][i] for i in sorted(entry["items"])], "overflow": entry["overflow"]}
                  for kind, entry in kinds.items()} for n, kinds in agg.listed.items()}
    put_body(pk, f"tally#{ns}", {"findings": stored, "completed": completed.get(ns, 0),
                                  "deferred": agg.deferred}, RUN_TTL_S)


def _check_tallies(hour: str, agg: Aggregate, started_ms: int, namespaces: list[str]) -> dict[str, int]:
    """Tallies against orders, finishing crashed batches; then each hour counter against its tallies.

    Returns, per child namespace, how many of the hour's tallies reconciliation has completed (read from
    the markers it tagged, so a second run reports the same number).
    """
    markers: dict[str, dict[str, int]] = {}
    for ns in sorted(namespaces):
        markers.update(_markers(ns, hour))
    found, to_complete = F.tally_findings(agg.batches, markers, hour, started_ms, clock.now_ms(),
                                          marker_ttl_ms=crediting.TALLY_TTL_S * 1000)
    completing = {f"{ns}|{asset}|{batch}" for ns, asset, batch, *_ in to_complete}
    for expired in (f for f in found if f.kind == "tally_expired"):  # reported, not awaited
        batch, asset = expired.id.split("#", 1)
        completing.add(f"{expired.ns}|{asset}|{batch}")
    for key in sorted(agg.batches):
        ns, asset, batch = key.split("|", 2)
        if batch and key not in markers and key not in completing:  # its Lambda may still be running: not yet
            agg.deferred.append(f"tallies:{ns}#batch-may-still-run:{batch}#{asset}")
    for ns, asset, batch, amount, count in to_complete:
        group = crediting.TallyGroup(ns, asset, hour, amount, count)
        crediting.write_tally(batch, group, completed_by="reconciliation")
    # A batch whose marker may have expired stands for its marker with its orders' sum: the hour counter then still
    # agrees if the batch did tally, and shows the shortfall (a drift) if it never did.
    expired_sums: dict[tuple[str, str], int] = defaultdict(int)
    for finding in found:
        if finding.kind == "tally_expired":
            expired_sums[(finding.ns, finding.id.split("#", 1)[1])] += finding.details["orders_amount"]
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
        drift = F.distributed_finding(ns, asset, hour, before, after,
                                      sum(m["amount"] for m in current.values()) + expired_sums[(ns, asset)])
        if drift:
            found.append(drift)
    add_findings(agg, found)
    return completed


def _stock_scenes(agg: Aggregate, scenes: Scenes) -> Iterator[tuple[str, Any, Any]]:
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


def _first_order_hour(child: Any, counter_id: str) -> str:
    """The earliest hour an order of the counter can be written in (a checkpoint-less catch-up starts there).

    Bounded by the counter's own history, not the child's age: no order of it predates the counter's first
    consumption (an order and its units are one transaction, or its reservation came first), and a stamp may
    trail an order it counts by STAMP_LAG_MS. Without that stamp (a counter consumed before it existed): the
    child's start, less `OPEN_TIME_AHEAD_MS` (a grant's open_time_ms, which chooses the child, may run that far
    ahead of the clock that files the order under its hour).
    """
    child_hour = clock.hour_of(child.starts_at_ms - OPEN_TIME_AHEAD_MS)
    first = counters.first_consumed_ms(counter_id)
    return child_hour if first is None else max(child_hour, clock.hour_of(first - F.STAMP_LAG_MS))


def catch_up_hours(hour: str, agg: Aggregate, scenes: Scenes) -> list[str]:
    """The hours before `hour` that some stock checkpoint must cross and no pass has recorded (one query)."""
    bases = []
    for scene_key, scene, child in _stock_scenes(agg, scenes):
        if child is None:
            continue
        counter_id = ids.stock_counter_id(scene_key.split("|", 1)[0], scene.scene_id)
        checkpoint = hours.read_checkpoint(counter_id)
        if checkpoint is not None and checkpoint["through"] < hour:
            bases.append(checkpoint["through"])
        elif checkpoint is None:
            bases.append(hours.checkpoint_base(None, _first_order_hour(child, counter_id))[0])
    if not bases:
        return []
    return hours.unrecorded(next_hour(min(bases)), next_hour(hour, -1))


def check_stock(hour: str, agg: Aggregate, scenes: Scenes) -> None:
    found: list[F.Finding] = []
    for scene_key, scene, child in _stock_scenes(agg, scenes):
        ns, scene_id = scene_key.split("|", 1)
        if child is None:
            agg.deferred.append(f"stock:{scene_key}")
            continue
        counter_id = ids.stock_counter_id(ns, scene_id)
        hour_amount = agg.hour_totals[scene_key] if agg.totals_complete else agg.scene_amounts[scene_key]
        advanced = hours.advance(counter_id, scene_key, hour, hour_amount,
                                 lambda: _first_order_hour(child, counter_id))  # noqa: B023 - called at once
        through, amount = advanced if advanced is not None else (hour, None)  # None: an hour is not summed yet
        shards = [F.ShardRow(s.index, s.cap, s.consumed, s.updated_at_ms) for s in counters.read_shards(counter_id)]
        awaits = ""
        reaches = clock.hour_of(F.latest_counted_hour_ms(shards))
        if amount is not None and reaches > through:
            # The counter may hold orders of later hours: compare it with the orders through the latest of them,
            # if those hours are closed and recorded (their passes ran); else the comparison waits.
            later = hours.recorded_total(scene_key, next_hour(through), reaches)
            if later is not None:
                through, amount = reaches, amount + later
            elif clock.now_ms() >= clock.hour_start_ms(next_hour(reaches)) + settings().reconcile_grace_s * 1000:
                awaits = f"#awaits-hour:{reaches}"  # closed, not recorded yet: a last pass looks again
        stock, compared = F.stock_findings(ns, scene_id, scene.total, shards, amount,
                                           quiet_since_ms=clock.hour_start_ms(next_hour(through)))
        drift = [f for f in stock if f.kind == "stock_drift"]
        # Leases are read only when a drift shows (rare): one GetItem per shard.
        if drift and F.lease_explains(drift[0], reservations.outstanding(counter_id, [s.index for s in shards])):
            stock, compared = [f for f in stock if f.kind != "stock_drift"], False
        found.extend(stock)
        if not compared:
            agg.deferred.append(f"stock:{scene_key}{awaits}")
    add_findings(agg, found)


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
        ids_.extend(item.event_id for item in query_all(EventRecord.unapplied, str(bucket)))
    if not ids_:
        return []
    wanted = ["event_id", "status", "received_at_ms"]
    items = with_retries(lambda: list(EventRecord.batch_get(ids_, consistent_read=True, attributes_to_get=wanted)))
    return sorted(
        i.event_id for i in items
        if i.status == event_store.RECEIVED and start <= i.received_at_ms < end and now_ms - i.received_at_ms > sla_ms
    )


def run_level(hour: str, pass_no: int, agg: Aggregate) -> dict[str, Any]:
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
    add_findings(agg, found)
    return {"dlq_depths": depths, "events_unapplied": len(unapplied), "events_unapplied_ids": unapplied[:F.MAX_LISTED],
            "play": play.summary, "payouts": payouts.summary}
