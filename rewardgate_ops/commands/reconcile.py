"""`rewardgate reconcile --hour H`: run one reconciliation pass now, with a progress bar, and print its reports.

The bar counts the pass's steps (one per hour bucket, catch-up steps for hours a stock checkpoint must cross
that no pass recorded, the finishing step) and names the phase it is in; its total grows when catch-up is found.

Exit status: 0 when every report is clean, 3 when discrepancies were found (so scripts can tell), 1 on
an error.
"""

from __future__ import annotations

from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call
from rewardgate_ops.output import emit, output_option, progress, rich_table, write_options

DISCREPANCIES_FOUND = 3


def render(reports: list[dict[str, Any]]) -> Any:
    """Reports as tables: one row per child activity, then each discrepancy kind with its first ids."""
    from rich.console import Group

    children = sorted((r for r in reports if "activity_id" in r),
                      key=lambda r: (r["activity_id"], r["sub_activity_id"]))
    runs = [r for r in reports if "dlq_depths" in r]
    summary = rich_table(
        ("child activity", "orders", "amount", "credited", "amount", "pending", "redriven", "tallies+", "problems",
         "ok"),
        [(f"{r['activity_id']}/{r['sub_activity_id']}", r["orders"], r["orders_amount"], r["credited"],
          r["credited_amount"], r["pending"], r["redriven"], r["tallies_completed"], r["discrepancy_count"],
          "yes" if r["ok"] else "NO") for r in children], "reports")
    problems = []
    for report in children + runs:
        where = f"{report['activity_id']}/{report['sub_activity_id']}" if "activity_id" in report else "run"
        for kind, entry in report["discrepancies"].items():
            sample = ", ".join(item["id"] for item in entry["items"][:5])
            more = f" (+{entry['count'] - 5} more)" if entry["count"] > 5 else ""
            problems.append((where, kind, entry["count"], sample + more))
        for check in report.get("deferred_checks", []):
            problems.append((where, "deferred (still moving, re-checked later)", None, str(check)))
    parts = [summary]
    if problems:
        parts.append(rich_table(("where", "discrepancy", "count", "first ids"), problems, "discrepancies"))
    for run in runs:
        depths = ", ".join(f"{name}={depth}" for name, depth in sorted(run["dlq_depths"].items()))
        parts.append(f"queues: DLQ depths {depths}; callback events unapplied past SLA: {run['events_unapplied']}")
    return Group(*parts)


@click.command("reconcile")
@click.option("--hour", required=True, help="The UTC hour, like 2026-11-22T10.")
@click.option("--pass", "pass_no", type=click.IntRange(1, 2), default=None,
              help="1 (h+1) or 2 (h+2); default: the pass the hour is due for now.")
@write_options
@output_option
@pass_cli
def command(cli: CliContext, hour: str, pass_no: int | None, yes: bool, dry_run: bool, output: str) -> None:
    """Reconcile one hour now: orders, ledger, wallets, counters, queues; re-drive what is stuck."""
    cli.target()
    from chalicelib import clock
    from chalicelib.reconcile import runner

    key = domain_call(lambda: runner.parse_hour(hour))
    pass_no = pass_no or domain_call(lambda: runner.pass_for(key, clock.now_ms()))
    shown = runner.display_hour(key)
    # A pass re-drives stuck credits and callback events: it changes state, so it is confirmed on AWS.
    if not cli.confirm(f"run reconciliation pass {pass_no} of {shown}", yes, dry_run):
        emit(output, {"dry_run": True, "hour": shown, "pass": pass_no})
        return
    cli.audit("reconciliation.run", {"hour": shown}, {"pass": pass_no})
    outcome = domain_call(lambda: runner.run(key, pass_no, runner.Budget(0), restart=True))
    label = f"reconcile {shown} pass {pass_no}"
    with progress(output, outcome.steps, f"{label}: {outcome.phase}") as advance:
        advance(outcome.step)
        done = outcome.step
        while outcome.status != "done":
            outcome = domain_call(lambda: runner.run(key, pass_no, runner.Budget(0)))
            step = outcome.steps if outcome.status == "done" else outcome.step
            # The total grows when the pass must first sum hours no pass recorded (stock checkpoint catch-up).
            advance(step - done, total=outcome.steps, description=f"{label}: {outcome.phase}")
            done = step
    reports = [r for r in domain_call(lambda: runner.reports(key)) if r["pass"] == pass_no]
    emit(output, {"hour": shown, "pass": pass_no, "ok": all(r["ok"] for r in reports), "reports": reports},
         lambda d: render(d["reports"]))
    if not all(r["ok"] for r in reports):
        raise SystemExit(DISCREPANCIES_FOUND)
