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

Modules: this one drives a pass (steps, cursor, budget, schedule, reports); `buckets` is the bucket step,
`checks` the tally steps and the finishing step's checks, `records` the pass's stored records,
`wallet_checks` the wallet check, `hours` the hour totals and stock checkpoints.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from chalicelib import clock
from chalicelib.errors import InvalidField
from chalicelib.observability import emit_now, logger
from chalicelib.reconcile import findings as F
from chalicelib.reconcile import hours
from chalicelib.reconcile.buckets import BUCKET_LISTED, PENDING_REREAD, Scenes, bucket_step, hour_rows, merge_listed
from chalicelib.reconcile.checks import (
    Aggregate,
    aggregate,
    catch_up_hours,
    check_stock,
    discrepancy_report,
    run_level,
    tally_namespaces,
    tally_step,
)
from chalicelib.reconcile.records import RUN_NS, RUN_TTL_S, get_body, put_body, query_all, run_pk
from chalicelib.reconcile.tables import ReconItem
from chalicelib.rewards import ids, reservations
from chalicelib.settings import settings

__all__ = ["BUCKET_LISTED", "Budget", "bucket_step", "catch_up_step", "display_hour", "due_runs", "finish",
           "next_hour", "parse_hour", "pass_for", "plan", "reports", "run", "run_pk", "scheduled", "status",
           "tally_step"]

HOUR_MS = 3600 * 1000


# --- hours, passes, budgets ------------------------------------------------------------------


FIRST_HOUR, LAST_HOUR = datetime(1970, 1, 1, 0), datetime(9999, 12, 30, 23)


def parse_hour(text: str) -> str:
    """An hour from `YYYY-MM-DDTHH` (UTC) or `YYYYMMDDHH`, as `YYYYMMDDHH`; `InvalidField` otherwise."""
    for fmt in ("%Y-%m-%dT%H", "%Y%m%d%H"):
        try:
            moment = datetime.strptime(text, fmt)
        except (TypeError, ValueError):
            continue
        # Hours the store's epoch-millisecond keys and `datetime` (the hours after it) can hold: 0001-01-01T00
        # and 9999-12-31T23 answered 500 before.
        if not FIRST_HOUR <= moment <= LAST_HOUR:
            raise InvalidField("hour", f"must be an hour from {FIRST_HOUR:%Y-%m-%dT%H} to "
                                       f"{LAST_HOUR:%Y-%m-%dT%H} (UTC)")
        return f"{moment:%Y%m%d%H}"
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



def _deferred_ns(deferred: str) -> str:
    """The child activity a deferred check belongs to: `{kind}:{ns}` then `#` or `|` (`wallet:{ns}#...`,
    `tallies:{ns}#...`, `redrive:{ns}|...`, `stock:{ns}|{scene}`, `distributed:{ns}|{asset}`)."""
    rest = deferred.partition(":")[2]
    return rest.replace("|", "#", 1).partition("#")[0]


def _report(hour: str, pass_no: int, ns: str, agg: Aggregate, completed: int) -> dict[str, Any]:
    discrepancies, count = discrepancy_report(agg.listed.get(ns, {}))
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


def _hour_aggregate(hour: str, pass_no: int) -> Aggregate:
    """The stored results of every bucket step of the pass, merged."""
    return aggregate(json.loads(i.body) for i in query_all(ReconItem, run_pk(hour, pass_no),
                                                             range_key_condition=ReconItem.sk.startswith("bucket#"),
                                                             consistent_read=True))


def plan(hour: str, pass_no: int, scenes: Scenes) -> tuple[list[str], list[str]]:
    """After the last bucket: record the hour's totals; return the unrecorded hours stock checkpoints must cross,
    and the child namespaces whose tallies are checked (each one's credit batches stored for its step)."""
    agg = _hour_aggregate(hour, pass_no)
    if agg.totals_complete:
        hours.record_hour(hour, agg.hour_totals)
    namespaces = tally_namespaces(agg)
    pk = run_pk(hour, pass_no)
    for ns in namespaces:
        pending = sorted(agg.pending.get(ns, []))
        unread = agg.pending_unread.get(ns, 0)
        if len(pending) > PENDING_REREAD:
            unread = -1 if unread < 0 else unread + len(pending) - PENDING_REREAD
            pending = pending[:PENDING_REREAD]
        put_body(pk, f"tallyin#{ns}", {"batches": {k: v for k, v in agg.batches.items() if k.split("|", 1)[0] == ns},
                                        "pending": pending, "pending_unread": unread}, RUN_TTL_S)
    return catch_up_hours(hour, agg, scenes), namespaces


def catch_up_step(hour: str, pass_no: int, gap_hour: str, bucket: int) -> None:
    """Sum one bucket of an hour no pass has recorded; after its last bucket, record the hour's totals."""
    rows, _ = hour_rows(ids.hour_bucket(gap_hour, bucket))
    pk = run_pk(hour, pass_no)
    put_body(pk, f"gap#{gap_hour}#{bucket:04d}", F.scene_totals(rows), RUN_TTL_S)
    if bucket == settings().hour_buckets - 1:
        totals: dict[str, int] = defaultdict(int)
        for item in query_all(ReconItem, pk, range_key_condition=ReconItem.sk.startswith(f"gap#{gap_hour}#"),
                               consistent_read=True):
            for key, amount in json.loads(item.body).items():
                totals[key] += amount
        hours.record_hour(gap_hour, totals)


def finish(hour: str, pass_no: int, head: dict[str, Any], scenes: Scenes) -> list[dict[str, Any]]:
    """Checks that need the whole hour (the tally steps' results merged in); then the reports."""
    agg = _hour_aggregate(hour, pass_no)
    completed: dict[str, int] = {}
    for item in query_all(ReconItem, run_pk(hour, pass_no), range_key_condition=ReconItem.sk.startswith("tally#"),
                           consistent_read=True):
        part = json.loads(item.body)
        completed[item.sk.split("#", 1)[1]] = part["completed"]
        merge_listed(agg.listed, part["findings"])
        agg.deferred.extend(part["deferred"])
    check_stock(hour, agg, scenes)
    run_facts = run_level(hour, pass_no, agg)
    reports = [_report(hour, pass_no, ns, agg, completed.get(ns, 0)) for ns in sorted(set(agg.totals) | set(agg.listed))
               if ns != RUN_NS]
    run_discrepancies, run_count = discrepancy_report(agg.listed.get(RUN_NS, {}))
    run_report = {"hour": display_hour(hour), "pass": pass_no, **run_facts,
                  "discrepancies": run_discrepancies, "discrepancy_count": run_count, "ok": run_count == 0}
    for report in reports:
        put_body(f"report#{hour}", f"{report['activity_id']}/{report['sub_activity_id']}#p{pass_no}", report)
    put_body(f"report#{hour}", f"{RUN_NS}#p{pass_no}", run_report)
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


LAST_PASS = 2
MAX_RECHECKS = 3  # re-runs of a last pass that waited for a batch's Lambda; beyond, the report says so


def _waits_for_a_batch(reports: list[dict[str, Any]]) -> bool:
    """Whether a report deferred a tally because its batch's Lambda might still be running."""
    return any("#batch-may-still-run:" in d for report in reports for d in report["deferred_checks"])


def recheck_due(head: dict[str, Any] | None, now_ms: int) -> bool:
    """A finished last pass that deferred a tally to a batch's Lambda, once that Lambda is surely gone: run it
    again (it completes the tally: nothing else comes back to the hour). At most `MAX_RECHECKS` times."""
    return (head is not None and head["status"] == "done" and "recheck_at_ms" in head
            and now_ms >= head["recheck_at_ms"] and head.get("rechecks", 0) < MAX_RECHECKS)


def _step(hour: str, pass_no: int, head: dict[str, Any], scenes: Scenes) -> None:
    """Do the step at the cursor and advance it (in `head`, which the caller stores).

    Steps: one per hour bucket; planning; one per bucket of each unrecorded hour to catch up over
    (`catch_up`); one per child namespace's tallies (`tally_ns`); finishing.
    """
    buckets = settings().hour_buckets
    step = head["step"]
    if step < buckets:
        put_body(run_pk(hour, pass_no), f"bucket#{step:04d}", bucket_step(hour, pass_no, step, scenes), RUN_TTL_S)
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
            finished = finish(hour, pass_no, head, scenes)
            head["status"] = "done"
            head["finished_at_ms"] = clock.now_ms()
            if pass_no == LAST_PASS and _waits_for_a_batch(finished):
                head["recheck_at_ms"] = head["finished_at_ms"] + F.MAX_INVOCATION_MS
            return
    head["step"] = step + 1


def run(hour: str, pass_no: int, budget: Budget, restart: bool = False) -> RunStatus:
    """Advance pass `pass_no` over `hour` as far as the budget allows (always at least one step).

    A finished pass is left as it is unless `restart`, which runs it again from the start.
    """
    pk = run_pk(hour, pass_no)
    head = get_body(pk, "head")
    if head is None or (restart and head["status"] == "done"):
        rechecks = 0 if head is None else head.get("rechecks", 0) + ("recheck_at_ms" in head)
        head = {"status": "running", "step": 0, "started_at_ms": clock.now_ms(), "steps": settings().hour_buckets + 1,
                "rechecks": rechecks}
        put_body(pk, "head", head, RUN_TTL_S)
    scenes = Scenes()
    done_here = 0
    while head["status"] != "done":
        if done_here and budget.expired():
            break
        _step(hour, pass_no, head, scenes)
        put_body(pk, "head", head, RUN_TTL_S)
        done_here += 1
    return RunStatus(hour, pass_no, head["status"], head["step"], head["steps"], done_here,
                     sum(count for _, count in head.get("catch_up", [])) * settings().hour_buckets)


def status(hour: str, pass_no: int) -> dict[str, Any] | None:
    """A pass's progress record, if it was ever started."""
    return get_body(run_pk(hour, pass_no), "head")


def reports(hour: str) -> list[dict[str, Any]]:
    """Every stored report of an hour (each child activity and the run-level one, both passes)."""
    return [json.loads(i.body) for i in query_all(ReconItem, f"report#{hour}", consistent_read=True)]


def scheduled(budget: Budget) -> list[RunStatus]:
    """The schedule's work: start or continue the due passes while time is left, newest first, each with a share.

    In each round every pass still owed gets an equal share of the time left (the newest first, so the
    on-time passes finish), and the rounds repeat while time is left: an old pass with a long way to go
    keeps advancing every invocation and never holds up a newer one.

    Every invocation emits `ReconciliationPassesBehind` (late passes still unfinished when it stops): an
    alarm fires when it is above 0, and when it is missing (the schedule itself stopped running).
    """
    now_ms = clock.now_ms()
    due = due_runs(now_ms)  # newest first
    late = set(due[ON_TIME_RUNS:])
    heads = {run_key: status(*run_key) for run_key in due}
    rechecks = {run_key for run_key, head in heads.items() if recheck_due(head, now_ms)}
    owed = [run_key for run_key in due if heads[run_key] is None or heads[run_key]["status"] != "done"
            or run_key in rechecks]
    outcomes: dict[tuple[str, int], RunStatus] = {}
    pending = list(owed)
    while pending and not (outcomes and budget.expired()):
        this_round = list(pending)
        for index, (hour, pass_no) in enumerate(this_round):
            if outcomes and budget.expired():
                break
            outcome = run(hour, pass_no, budget.share(len(this_round) - index),
                          restart=(hour, pass_no) in rechecks and (hour, pass_no) not in outcomes)
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
