"""A pass's reports: what its stored step results say, per child activity, final or (while it runs) partial.

Every step of a pass stores its result before the cursor moves (`runner`), so the findings of the steps done
are readable at any time: `reports` gives an hour's final reports and, for a pass still running without any,
its partial ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from chalicelib.observability import emit_now, logger
from chalicelib.reconcile import findings as F
from chalicelib.reconcile.buckets import merge_listed
from chalicelib.reconcile.checks import Aggregate, aggregate, discrepancy_report
from chalicelib.reconcile.passes import display_hour
from chalicelib.reconcile.records import RUN_NS, get_body, query_all, run_pk
from chalicelib.reconcile.tables import ReconItem


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


def _stored_so_far(hour: str, pass_no: int) -> tuple[Aggregate, dict[str, int]]:
    """The pass's stored step results merged: its bucket steps', then its tally steps' (and their completions)."""
    agg = _hour_aggregate(hour, pass_no)
    completed: dict[str, int] = {}
    for item in query_all(ReconItem, run_pk(hour, pass_no), range_key_condition=ReconItem.sk.startswith("tally#"),
                           consistent_read=True):
        part = json.loads(item.body)
        completed[item.sk.split("#", 1)[1]] = part["completed"]
        merge_listed(agg.listed, part["findings"])
        agg.deferred.extend(part["deferred"])
    return agg, completed


def reports(hour: str) -> list[dict[str, Any]]:
    """Every stored report of an hour (each child activity and the run-level one, both passes); for a pass still
    running that has none yet, its partial reports: what its steps stored so far (see `partial_reports`)."""
    stored = [json.loads(i.body) for i in query_all(ReconItem, f"report#{hour}", consistent_read=True)]
    for pass_no in (1, 2):
        if not any(r["pass"] == pass_no for r in stored):
            stored.extend(partial_reports(hour, pass_no))
    return stored


def partial_reports(hour: str, pass_no: int) -> list[dict[str, Any]]:
    """A running pass's reports so far, per child activity: the findings, totals and re-drives of the steps it has
    stored (each step's result is stored before the cursor moves), marked `partial` with the pass's `progress`.
    The checks of the finishing step (stock, queues, events) are not in them yet. Empty unless the pass is running.
    """
    head = get_body(run_pk(hour, pass_no), "head")
    if head is None or head["status"] == "done":
        return []
    agg, completed = _stored_so_far(hour, pass_no)
    progress = {"partial": True, "progress": {"step": head["step"], "steps": head["steps"]}}
    return [{**_report(hour, pass_no, ns, agg, completed.get(ns, 0)), **progress}
            for ns in sorted(set(agg.totals) | set(agg.listed)) if ns != RUN_NS]
