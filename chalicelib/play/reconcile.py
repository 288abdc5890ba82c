"""Reconciliation of interactive play: events ⇄ settlement entries ⇄ counters, hour by hour.

Pure findings first, then the adapter `reconcile_hour(hour, budget)`, which the hourly reconciler calls
(`chalicelib.reconcile.runner`) and whose findings land in its run-level report and metric. The daily
bill runs the same partition check over the day before it closes (`bills`).

Discrepancy kinds:
- play_counter_drift        an hour counter shard differs from the sum of the entries beside it
- play_amount_mismatch      an entry's revenue or share is not price * num, revenue * share_bp // 10 000
- play_ratio_mismatch       an entry used another ratio version than the one in force when it arrived
- play_entry_without_event  an entry whose stream event is missing or is another message
- play_event_without_entry  a settled gift event in a game's stream with no entry
- bill_mismatch             a closed bill against its credit (`chalicelib.play.bill_checks`)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.dynamo import with_retries
from chalicelib.observability import logger
from chalicelib.play import apps, settlement, stream
from chalicelib.play.config import play_settings
from chalicelib.play.findings import PlayFinding
from chalicelib.play.lifecycle import RUNNING
from chalicelib.play.models import SEND_GIFT
from chalicelib.play.tables import PlayGameItem, PlaySettlementItem

LATE_WRITE_MS = 5 * 60 * 1000  # how far past the hour a seq of it may still have been allocated
GAME_LOOKBACK_MS = 7 * 24 * 3600 * 1000  # games started this long before the hour are scanned for its events
MAX_LISTED = 200


@dataclass(frozen=True)
class EntryRow:
    """A settlement entry as reconciliation reads it."""

    pk: str
    msg_id: str
    gift_id: int
    gift_num: int
    price: int
    revenue: int
    developer_share: int
    share_bp: int
    ratio_version: int
    game_id: str
    seq: int
    at_ms: int

    @property
    def ref(self) -> str:
        """`{pk}|{msg_id}`: how findings name an entry."""
        return f"{self.pk}|{self.msg_id}"


@dataclass(frozen=True)
class CounterRow:
    """An hour counter shard."""

    gifts: int = 0
    revenue: int = 0
    developer_share: int = 0
    ratio_versions: frozenset[int] = frozenset()


def partition_findings(pk: str, entries: Sequence[EntryRow], counter: CounterRow | None,
                       ratios: Sequence[settlement.Ratio]) -> list[PlayFinding]:
    """Entries of one partition against their counter, their own arithmetic and the ratio history."""
    found = []
    counter = counter or CounterRow()
    sums = CounterRow(gifts=len(entries), revenue=sum(e.revenue for e in entries),
                      developer_share=sum(e.developer_share for e in entries),
                      ratio_versions=frozenset(e.ratio_version for e in entries))
    if sums != counter:
        found.append(PlayFinding("play_counter_drift", pk, {
            "counter": {"gifts": counter.gifts, "revenue": counter.revenue,
                        "developer_share": counter.developer_share, "ratio_versions": sorted(counter.ratio_versions)},
            "entries": {"gifts": sums.gifts, "revenue": sums.revenue, "developer_share": sums.developer_share,
                        "ratio_versions": sorted(sums.ratio_versions)}}))
    for entry in entries:
        revenue = settlement.revenue_of(entry.price, entry.gift_num)
        if entry.revenue != revenue or entry.developer_share != settlement.share_of(revenue, entry.share_bp):
            found.append(PlayFinding("play_amount_mismatch", entry.ref, {
                "revenue": entry.revenue, "expected_revenue": revenue, "developer_share": entry.developer_share,
                "expected_share": settlement.share_of(revenue, entry.share_bp)}))
        if ratios:
            in_force = settlement.ratio_at(ratios, entry.at_ms)
            if (in_force.version, in_force.share_bp) != (entry.ratio_version, entry.share_bp):
                found.append(PlayFinding("play_ratio_mismatch", entry.ref, {
                    "ratio_version": entry.ratio_version, "share_bp": entry.share_bp,
                    "in_force_version": in_force.version, "in_force_share_bp": in_force.share_bp}))
    return found


def event_findings(entries: Iterable[EntryRow], events: Mapping[tuple[str, int], stream.StreamEvent | None],
                   settled_events: Iterable[tuple[str, stream.StreamEvent]]) -> list[PlayFinding]:
    """Entries against the stream events they were appended with, and settled events against entries.

    `events` maps each entry's (game_id, seq) to the stored event (None when missing); `settled_events`
    are the (game_id, event) pairs of the hour whose `settled` names an entry partition.
    """
    found = []
    refs = set()
    for entry in entries:
        refs.add((entry.pk, entry.msg_id))
        event = events.get((entry.game_id, entry.seq))
        if event is None or event.msg_id != entry.msg_id or event.cmd != SEND_GIFT or event.settled != entry.pk:
            found.append(PlayFinding("play_entry_without_event", entry.ref, {
                "game_id": entry.game_id, "seq": entry.seq, "found": None if event is None else event.msg_id}))
    for game_id, event in settled_events:
        if (event.settled, event.msg_id) not in refs:
            found.append(PlayFinding("play_event_without_entry", f"{game_id}|{event.seq}", {
                "msg_id": event.msg_id, "entry_partition": event.settled}))
    return found


# --- the adapter ---------------------------------------------------------------------------------


class Budget(Protocol):
    """Anything that says whether time is up (`chalicelib.reconcile.runner.Budget`)."""

    def expired(self) -> bool:
        """Whether no new step should start."""


def _entry_row(item: PlaySettlementItem) -> EntryRow:
    return EntryRow(pk=item.pk, msg_id=item.msg_id, gift_id=int(item.gift_id), gift_num=int(item.gift_num),
                    price=int(item.price), revenue=int(item.revenue), developer_share=int(item.developer_share),
                    share_bp=int(item.share_bp), ratio_version=int(item.ratio_version), game_id=item.game_id,
                    seq=int(item.seq), at_ms=int(item.at_ms))


def read_partition(pk: str) -> tuple[list[EntryRow], CounterRow | None]:
    """A settlement partition's entries and counter (one strongly consistent query)."""
    items = with_retries(lambda: list(PlaySettlementItem.query(pk, consistent_read=True)))
    entries = [_entry_row(i) for i in items if i.sk.startswith("e#")]
    counter = next((CounterRow(gifts=int(i.gifts or 0), revenue=int(i.revenue or 0),
                               developer_share=int(i.developer_share or 0),
                               ratio_versions=frozenset(int(v) for v in (i.ratio_versions or ())))
                    for i in items if i.sk == "sum"), None)
    return entries, counter


def hour_partitions(app_id: int, hour: str) -> list[str]:
    """The settlement partitions of one app and hour."""
    return [settlement.entry_pk(app_id, hour, b) for b in range(play_settings().buckets)]


def _games_in_hour(app_id: int, hour: str) -> list[PlayGameItem]:
    start, end = settlement.hour_bounds(hour)
    keys = with_retries(lambda: [
        (i.pk, i.sk) for i in PlayGameItem.by_app.query(
            app_id, PlayGameItem.started_at_ms.between(start - GAME_LOOKBACK_MS, end),
            filter_condition=(PlayGameItem.status == RUNNING) | (PlayGameItem.ended_at_ms >= start))])
    if not keys:
        return []
    return with_retries(lambda: list(PlayGameItem.batch_get(keys, consistent_read=True)))


def _settled_events(game: PlayGameItem, hour: str) -> list[tuple[str, stream.StreamEvent]]:
    first = (game.first_seq_by_hour.as_dict() if game.first_seq_by_hour else {}).get(hour)
    if first is None:
        return []
    start, end = settlement.hour_bounds(hour)
    found = []
    for event in stream.scan_from(game.game_id, int(first)):
        if event.at_ms >= end + LATE_WRITE_MS:
            break
        if start <= event.at_ms < end and event.settled:
            found.append((game.game_id, event))
    return found


def _stream_events(refs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], stream.StreamEvent | None]:
    from chalicelib.play.tables import PlayStreamItem

    wanted = sorted(set(refs))
    found: dict[tuple[str, int], stream.StreamEvent | None] = dict.fromkeys(wanted)
    if wanted:
        items = with_retries(lambda: list(PlayStreamItem.batch_get(wanted, consistent_read=True)))
        for item in items:
            found[(item.game_id, int(item.seq))] = stream.from_item(item)
    return found


@dataclass
class HourCheck:
    """One app's hour: findings and figures."""

    findings: list[PlayFinding] = field(default_factory=list)
    entries: int = 0
    revenue: int = 0
    developer_share: int = 0
    events_checked: int = 0


def check_app_hour(app: apps.PlayApp, hour: str, with_events: bool = True) -> HourCheck:
    """Reconcile one app's hour (every settlement partition; with the streams unless `with_events` is off)."""
    check = HourCheck()
    all_entries: list[EntryRow] = []
    for pk in hour_partitions(app.app_id, hour):
        entries, counter = read_partition(pk)
        check.findings += partition_findings(pk, entries, counter, app.ratios)
        all_entries += entries
    check.entries = len(all_entries)
    check.revenue = sum(e.revenue for e in all_entries)
    check.developer_share = sum(e.developer_share for e in all_entries)
    if with_events:
        settled = [pair for game in _games_in_hour(app.app_id, hour) for pair in _settled_events(game, hour)]
        check.events_checked = len(settled)
        events = _stream_events((e.game_id, e.seq) for e in all_entries)
        check.findings += event_findings(all_entries, events, settled)
    return check


@dataclass
class PlayReconciliation:
    """What `reconcile_hour` found."""

    findings: list[PlayFinding]
    summary: dict[str, Any]
    deferred_apps: list[int]


def reconcile_hour(hour: str, budget: Budget | None = None) -> PlayReconciliation:
    """Reconcile every play app's settlement for one UTC hour (`YYYYMMDDHH`).

    Apps not reached before `budget` expired are listed in `deferred_apps` (the next pass covers them).
    """
    findings: list[PlayFinding] = []
    deferred: list[int] = []
    from chalicelib.play import bill_checks

    totals = {"apps": 0, "entries": 0, "revenue": 0, "developer_share": 0, "events_checked": 0, "bills_checked": 0}
    counted = bill_checks.namespace_counters(hour)  # before the credits are read: see namespace_findings
    bill_credits: list[bill_checks.CreditRow] = []
    for app in apps.list_apps():
        if budget is not None and budget.expired():
            deferred.append(app.app_id)
            continue
        check = check_app_hour(app, hour)
        findings += check.findings
        totals["apps"] += 1
        totals["entries"] += check.entries
        totals["revenue"] += check.revenue
        totals["developer_share"] += check.developer_share
        totals["events_checked"] += check.events_checked
        app_bills = bill_checks.check_app_bills(app, hour)
        findings += app_bills.findings
        totals["bills_checked"] += app_bills.bills_checked
        bill_credits += app_bills.credits
    if not deferred:  # every app's bill credits read: the namespaces' counters can be explained in full
        findings += bill_checks.namespace_findings(hour, counted, bill_credits)
    for finding in findings:
        logger.error("play reconciliation discrepancy", extra={"hour": hour, **finding.as_dict()})
    return PlayReconciliation(findings=findings, summary={**totals, "discrepancies": len(findings),
                                                          "deferred_apps": deferred},
                              deferred_apps=deferred)


