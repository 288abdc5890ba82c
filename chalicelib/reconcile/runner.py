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
from dataclasses import dataclass, replace
from typing import Any

from chalicelib import clock
from chalicelib.observability import emit_now, logger
from chalicelib.reconcile import findings as F
from chalicelib.reconcile import hours, watermark
from chalicelib.reconcile.buckets import BUCKET_LISTED, PENDING_REREAD, Scenes, bucket_step, hour_rows
from chalicelib.reconcile.checks import (
    catch_up_hours,
    check_stock,
    discrepancy_report,
    run_level,
    tally_namespaces,
    tally_step,
)
from chalicelib.reconcile.passes import (
    HOUR_MS,
    LOOKBACK_HOURS,
    ON_TIME_RUNS,
    backlog,
    backlog_size,
    display_hour,
    due_runs,
    grace_ms,
    next_hour,
    parse_hour,
    pass_for,
)
from chalicelib.reconcile.records import RUN_NS, RUN_TTL_S, get_body, put_body, query_all, run_pk
from chalicelib.reconcile.reports import (
    _deferred_ns,  # noqa: F401 - re-exported for callers of runner
    _emit,
    _hour_aggregate,
    _report,
    _stored_so_far,
    partial_reports,
    reports,
)
from chalicelib.reconcile.tables import ReconItem
from chalicelib.rewards import ids, reservations
from chalicelib.rewards import late_hours as late
from chalicelib.settings import settings

__all__ = ["BUCKET_LISTED", "HOUR_MS", "LOOKBACK_HOURS", "ON_TIME_RUNS", "Budget", "bucket_step", "catch_up_step",
           "display_hour", "due_runs", "finish", "grace_ms", "next_hour", "parse_hour", "partial_reports", "pass_for",
           "plan", "reports", "run", "run_pk", "scheduled", "status", "tally_step"]

# --- budgets --------------------------------------------------------------------------------


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
    agg, completed = _stored_so_far(hour, pass_no)
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
    """Whether a report deferred a tally because its batch's Lambda might still be running, or a stock comparison
    because a later closed hour its counter may count was not recorded yet."""
    return any("#batch-may-still-run:" in d or "#awaits-hour:" in d
               for report in reports for d in report["deferred_checks"])


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


def scheduled(budget: Budget) -> list[RunStatus]:
    """The schedule's work: start or continue the due passes while time is left, newest first, each with a share.

    In each round every pass still owed gets an equal share of the time left (the newest first, so the
    on-time passes finish), and the rounds repeat while time is left: an old pass with a long way to go
    keeps advancing every invocation and never holds up a newer one. After them come the last passes of hours a
    late event marked dirty (`late`: a credit or tally after the hour's last pass), re-run once the marking
    batch is surely over: one query finds them, so the work follows the late events, not the hours' age.
    Then the backlog: hours older than the window whose last pass never finished (a reconciler outage longer
    than the window), oldest first from the durable watermark (`watermark`), with the time left — the oldest
    always advances by at least one step, so a backlog never starves and no hour is ever dropped.

    Every invocation emits `ReconciliationPassesBehind` (late passes still unfinished when it stops, the
    backlog's hours included): an alarm fires when it is above 0, and when it is missing (the schedule itself
    stopped running).
    """
    now_ms = clock.now_ms()
    due = due_runs(now_ms)  # newest first
    overdue = set(due[ON_TIME_RUNS:])
    on_time_last = due[1][0]  # the newest hour whose last pass is due
    mark = watermark.advance(watermark.current(now_ms), on_time_last, _last_pass_done)
    # Hours a late event (a credit or tally after their last pass) marked dirty: their last pass again, after
    # the schedule's own passes.
    marks = {(mark_.hour, LAST_PASS): mark_ for mark_ in late.due(now_ms)}
    due += [run_key for run_key in sorted(marks, reverse=True) if run_key not in due]
    heads = {run_key: status(*run_key) for run_key in due}
    rechecks = {run_key for run_key, head in heads.items() if recheck_due(head, now_ms)
                or (run_key in marks and head is not None and head["status"] == "done"
                    and head["started_at_ms"] < marks[run_key].recheck_ms)}
    owed = [run_key for run_key in due if heads[run_key] is None or heads[run_key]["status"] != "done"
            or run_key in rechecks]
    outcomes = _run_rounds(owed, rechecks, budget)
    outcomes.update(_run_backlog(mark, now_ms, budget, outcomes))
    ran = list(outcomes.values())
    finished = {(r.hour, r.pass_no) for r in ran if r.status == "done"}
    reservations.return_expired()  # grant batches' reservations left by dead processes (reservation_returned)
    _settle_marks(marks)
    mark = watermark.advance(mark, on_time_last, _last_pass_done)
    behind = sorted(r for r in owed if r in overdue and r not in finished)
    _emit_behind(behind, mark, now_ms)
    return ran


def _last_pass_done(hour: str) -> bool:
    head = status(hour, LAST_PASS)
    return head is not None and head["status"] == "done"


def _run_rounds(owed: list[tuple[str, int]], rechecks: set[tuple[str, int]],
                budget: Budget) -> dict[tuple[str, int], RunStatus]:
    """The window's and the late marks' passes, in rounds sharing the time left (see `scheduled`)."""
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
    return outcomes


def _run_backlog(mark: str, now_ms: int, budget: Budget,
                 done_here: dict[tuple[str, int], RunStatus]) -> dict[tuple[str, int], RunStatus]:
    """The last passes of the hours between the watermark and the window, oldest first, with the time left
    (the oldest owed one always advances by at least one step)."""
    outcomes: dict[tuple[str, int], RunStatus] = {}
    for hour in backlog(mark, now_ms):
        if (hour, LAST_PASS) in done_here or _last_pass_done(hour):
            continue
        if outcomes and budget.expired():
            break
        outcomes[(hour, LAST_PASS)] = outcome = run(hour, LAST_PASS, budget)
        if outcome.status != "done":
            break  # out of time: the next invocation continues it first
    return outcomes


def _settle_marks(marks: dict[tuple[str, int], late.Mark]) -> None:
    """Stamp each dirty mark a finished last pass covered (one that started once the mark's batch was over)."""
    for run_key, mark in marks.items():
        head = status(*run_key)
        if head is not None and head["status"] == "done" and head["started_at_ms"] >= mark.recheck_ms:
            late.settle(mark, head["started_at_ms"])


def _emit_behind(behind: list[tuple[str, int]], mark: str, now_ms: int) -> None:
    """The metric counts the window's unfinished late passes and the backlog's hours (the log line names them)."""
    backlog_hours = backlog_size(mark, now_ms)
    emit_now("ReconciliationPassesBehind", len(behind) + backlog_hours)
    if behind or backlog_hours:
        logger.error("reconciliation behind", extra={
            "passes": [f"{display_hour(hour)} pass {pass_no}" for hour, pass_no in behind],
            "backlog": {"hours": backlog_hours, "reconciled_through": display_hour(mark),
                        "oldest": [display_hour(hour) for hour in backlog(mark, now_ms, 3)]}})
